//! Property tests (proptest) for the parsers and the pure core (#18).
//!
//! `parsers`: perfdata, thresholds and plugin JSON; `faults`: the failure
//! counter, fault records and the alert plan; `files`: check files, the
//! agent file, and the regression cases the properties found.
//!
//! The agent's promise is "the bit that never breaks" (SPEC §17): plugin
//! output, plugin JSON, threshold lines, check files and the agent file all
//! come from outside, so each parser is fed generated input and must not
//! panic, must keep its output bounded by its input, and must read back what
//! a well-formed writer wrote. The fault machine's invariants (SPEC §5) are
//! checked over generated sequences of runs rather than a few hand-picked
//! ones. Unit tests beside each module keep the exact examples; these keep
//! the rules that hold for every input.
//!
//! Only `pub(crate)` functions are used, through `crate::` paths, so the
//! modules under test stay unchanged. 256 cases per property by default
//! (proptest's own default; `PROPTEST_CASES` raises it for a longer hunt);
//! the ones that write temporary files run fewer.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use proptest::prelude::*;

use crate::checks::{CheckKind, RawMetric, json};
use crate::config::{Scope, load_agent_config, load_check_file};
use crate::fault::{Action, Fault, RawFault, Tick, escalate, records};
use crate::perfdata::{PerfValue, parse_output, parse_perfdata};
use crate::severity::Severity;
use crate::thresholds::{Thresholds, format_value};

/// Cases for properties that write a temporary file per case.
const FILE_CASES: u32 = 64;

mod faults;
mod files;
mod parsers;

/// Any finite float, from tiny to huge, with both signs.
fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        (-1_000_000i32..1_000_000).prop_map(|n| f64::from(n) / 8.0),
    ]
}

fn severity() -> impl Strategy<Value = Severity> {
    prop::sample::select(vec![
        Severity::INFO,
        Severity::WARNING,
        Severity::ERROR,
        Severity::CRITICAL,
    ])
}

/// Writes `text` to `dir/NAME` and returns the path.
fn write_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    path
}

/// A YAML scalar: a number, a word, a quoted string or something odd.
fn yaml_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e-300".to_string()),
        Just(".nan".to_string()),
        Just("~".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        "[a-z]{1,6}",
        "[ -~]{0,12}".prop_map(|s| serde_json::Value::from(s).to_string()),
    ]
}
