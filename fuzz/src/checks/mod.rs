//! What `checks/json.rs` takes from its parent (`super::`): as in
//! cimaa's `src/checks/mod.rs`, which cannot be included whole.

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
