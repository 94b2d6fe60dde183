//! Threshold lines: no panic; an error names a real line; a parsed rule
//! set evaluates to at most one fault per line.
#![no_main]

use cimaa_fuzz::thresholds::Thresholds;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let lines: Vec<&str> = text.lines().collect();
    match Thresholds::parse(&lines) {
        Ok(thresholds) => {
            // Every metric present with a value taken from the input's length,
            // then every metric missing.
            let v = text.len() as f64 - 50.0;
            let present = thresholds.evaluate(&|_| Some(v), &|_| true);
            assert!(present.len() <= lines.len());
            let missing = thresholds.evaluate(&|_| None, &|_| false);
            assert!(missing.len() <= lines.len());
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines.len());
            assert_eq!(e.text, lines[e.line - 1].trim());
        }
    }
});
