//! Plugin stdout into text and perfdata: no panic, bounded output.
#![no_main]

use cimaa_fuzz::perfdata::parse_output;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|stdout: &str| {
    let parsed = parse_output(stdout);
    assert!(parsed.text.len() <= stdout.len());
    assert!(parsed.metrics.len() <= stdout.matches('=').count());
    assert!(parsed.metrics.iter().all(|m| m.value.is_finite() && !m.label.is_empty()));
});
