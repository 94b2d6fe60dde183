//! Plugin JSON: no panic; an error is one `json-error` with a bounded message.
#![no_main]

use cimaa_fuzz::checks::json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let out = json::output(text);
    if let Err(message) = json::parse(text) {
        assert_eq!(out.faults.len(), 1);
        assert_eq!(out.faults[0].name.as_deref(), Some("json-error"));
        assert!(message.len() <= text.len() + 200, "{} for {}", message.len(), text.len());
    }
});
