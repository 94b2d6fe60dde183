//! Threshold lines (see `cimaa_fuzz::thresholds`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| cimaa_fuzz::thresholds(input));
