//! Plugin JSON (see `cimaa_fuzz::plugin_json`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| cimaa_fuzz::plugin_json(input));
