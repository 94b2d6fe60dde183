//! Plugin stdout into text and perfdata (see `cimaa_fuzz::perfdata`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| cimaa_fuzz::perfdata(input));
