//! One notification per incident, fleet-wide (SPEC §10): the shared record
//! of a fleet fault's notifications, pure.
//!
//! A *fleet fault* is a fault of a check with an absolute name (`//...`)
//! whose `notify` is not `per_agent`. Every agent that finds one CRITICAL
//! registers in its `Notice` (a record in the shared database, one per
//! fault name); the notice says which messages the fleet has delivered for
//! the open incident and which delivery is in flight (`Claim`). Backends
//! store notices with one compare-and-swap (`Db::put_notice`: write if the
//! stored version is the one read), so every decision here is made on a
//! value read from the database and applied with a conditional write; no
//! agent is a leader. The transitions (join, leave, claim, take over an
//! expired claim, record a delivery) are functions of this module, with
//! table-driven tests; the agent's `fleet` part does the I/O around them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// How many delivered messages of one incident a notice remembers.
pub(crate) const DELIVERED_CAP: usize = 16;

/// The shared notification record of one fleet fault.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The fleet fault's full name (`//CHECK` or `//CHECK#NAME`).
    pub name: String,
    /// Agents that hold the fault CRITICAL (registered in this record).
    /// A holder whose heartbeat is gone or older than
    /// `alerting.holder_timeout` base intervals holds nothing.
    pub holders: BTreeSet<String>,
    /// Messages delivered (triggered) for the open incident, oldest first,
    /// at most `DELIVERED_CAP`; empty when nothing is open at the receivers.
    pub delivered: Vec<String>,
    /// The delivery in flight.
    pub claim: Option<Claim>,
    /// Bumped by every write; 0: not stored. `Db::put_notice` writes only
    /// over the version it was given.
    pub version: u64,
}

/// A delivery one agent has taken on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The agent delivering.
    pub agent: String,
    /// What it delivers.
    pub action: Pending,
    /// Epoch seconds after which another holder may take the delivery over
    /// (the claimer is presumed dead): the claim's time plus
    /// `alert_timeout` plus the database budget.
    pub until: i64,
}

/// The notification a claim delivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pending {
    Trigger { message: String },
    Resolve,
}

impl Notice {
    /// A record not stored yet.
    #[must_use]
    pub fn new(name: &str) -> Notice {
        Notice {
            name: name.to_owned(),
            ..Notice::default()
        }
    }

    /// Whether storing this record means removing it: nobody holds it,
    /// nothing is open and nothing is in flight.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.holders.is_empty() && self.delivered.is_empty() && self.claim.is_none()
    }
}
