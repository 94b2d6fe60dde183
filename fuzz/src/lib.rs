//! The pure parsers of cimaa, compiled from its own sources for fuzzing.
//!
//! They are `pub(crate)` in cimaa (internal by default), so this crate
//! includes their files with `#[path]` instead of widening cimaa's API: the
//! code fuzzed is the code shipped, byte for byte. The files name each other
//! as `crate::fault`, `crate::severity`, so they sit at this crate's root
//! under the same names. `checks/json.rs` takes three types from its parent
//! (`super::`); `checks` below repeats the two it cannot include (the real
//! `checks/mod.rs` pulls in every probe): if they change shape in cimaa,
//! this crate stops compiling and says where.
#![allow(dead_code, unreachable_pub, clippy::all, clippy::pedantic)]

#[path = "../../src/severity.rs"]
pub mod severity;

#[path = "../../src/fault.rs"]
pub mod fault;

#[path = "../../src/perfdata.rs"]
pub mod perfdata;

#[path = "../../src/thresholds.rs"]
pub mod thresholds;

pub mod checks {
    use chrono::{DateTime, Utc};

    pub(crate) use crate::fault::RawFault;

    /// As `cimaa::checks::RawMetric`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct RawMetric {
        pub name: String,
        pub value: f64,
        pub units: String,
        pub timestamp: Option<DateTime<Utc>>,
    }

    /// As `cimaa::checks::CheckOutput`, without the process record.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct CheckOutput {
        pub faults: Vec<RawFault>,
        pub metrics: Vec<RawMetric>,
        pub raw: Option<()>,
    }

    #[path = "../../../src/checks/json.rs"]
    pub mod json;
}
