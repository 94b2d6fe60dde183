//! The pure parsers of cimaa, compiled from its own sources for fuzzing.
//!
//! They are `pub(crate)` in cimaa (internal by default), so this crate
//! includes their files with `#[path]` instead of widening cimaa's API: the
//! code fuzzed is the code shipped, byte for byte. The files name each other
//! as `crate::fault`, `crate::severity`, so they sit at this crate's root
//! under the same names. `checks/json.rs` takes three types from its parent
//! (`super::`); `checks/mod.rs` here repeats the two it cannot include (the real
//! `checks/mod.rs` pulls in every probe): if they change shape in cimaa,
//! this crate stops compiling and says where.
#![allow(
    dead_code,
    unreachable_pub,
    private_interfaces,
    clippy::all,
    clippy::pedantic
)]

#[path = "../../src/severity.rs"]
pub mod severity;

#[path = "../../src/fault.rs"]
pub mod fault;

#[path = "../../src/perfdata.rs"]
pub mod perfdata;

#[path = "../../src/thresholds.rs"]
pub mod thresholds;

pub mod checks;

// The targets' bodies live here, inside this crate, because what they call
// is `pub(crate)`; `fuzz_targets/*.rs` only hand the input over.

/// Plugin stdout into text and perfdata: no panic, bounded output.
pub fn perfdata(stdout: &str) {
    let parsed = perfdata::parse_output(stdout);
    assert!(parsed.text.len() <= stdout.len());
    assert!(parsed.metrics.len() <= stdout.matches('=').count());
    assert!(
        parsed
            .metrics
            .iter()
            .all(|m| m.value.is_finite() && !m.label.is_empty())
    );
}

/// Threshold lines: no panic; an error names a real line and quotes it; a
/// parsed rule set evaluates to at most one fault per line.
pub fn thresholds(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    match thresholds::Thresholds::parse(&lines) {
        Ok(rules) => {
            // Every metric present, with a value taken from the input's
            // length; then every metric missing.
            let v = text.len() as f64 - 50.0;
            assert!(rules.evaluate(&|_| Some(v), &|_| true).len() <= lines.len());
            assert!(rules.evaluate(&|_| None, &|_| false).len() <= lines.len());
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines.len());
            assert_eq!(e.text, lines[e.line - 1].trim());
        }
    }
}

/// Plugin JSON: no panic; an error is one `json-error` with a message at
/// most 200 bytes longer than the input.
pub fn plugin_json(text: &str) {
    let out = checks::json::output(text);
    if let Err(message) = checks::json::parse(text) {
        assert_eq!(out.faults.len(), 1);
        assert_eq!(out.faults[0].name.as_deref(), Some("json-error"));
        assert!(
            message.len() <= text.len() + 200,
            "{} for {}",
            message.len(),
            text.len()
        );
    }
}
