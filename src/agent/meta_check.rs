//! The meta-check's reads (SPEC §8, §14): what `cimaa meta-check` prints and
//! what the in-process `meta:` check kind reports, from one function.
//!
//! Reads every heartbeat (on DynamoDB one Query of the heartbeat items,
//! agent `_`, paged by 1 MB: a peer whose clock runs ahead never looks
//! stale, a peer behind always does, and only the whole list shows which
//! is which and which expected agents never reported; so the cost of a run
//! grows with the fleet, about one read unit per 4 KB of heartbeats), the squelches, the
//! agents whose alerts fail and the agents stopped with open alerts; then
//! the observer's memory of its peers (`observations`), which it updates.
//! `meta::observe`, `meta::peer_faults`, `meta::expected_faults`,
//! `meta::faults` and `meta::stopped_faults` judge.

use std::path::Path;

use super::observations::{self, Memory};
use crate::db::{self, Db};
use crate::meta::{self, Limits, MetaFault, Observations};
use crate::severity::Severity;

/// The meta-check's faults as seen by `own_agent` at `now`, remembering
/// what it saw in `memory` (none: judged by the heartbeat times alone) and
/// checking the agents listed in `expect`.
///
/// A memory that cannot be read or written is a WARNING `observations`
/// (the run goes on, judging by what it has); an expect file that cannot
/// be read or parsed is the meta-check's own ERROR (an empty name), naming
/// the file: a list nobody checks must not look like a fleet in order.
///
/// # Errors
/// When the database cannot be read.
pub(crate) async fn meta_faults(
    db: &dyn Db,
    own_agent: &str,
    limits: Limits,
    now: i64,
    memory: Option<&Memory>,
    expect: Option<&Path>,
) -> Result<Vec<MetaFault>, db::Error> {
    let heartbeats = db.agents().await?;
    let stored = db.get_squelch_details().await?;
    let squelches = super::squelches::expire(db, stored, own_agent, now).await;
    let failures = db.alert_failures().await?;
    let stopped = db.stopped_agents().await?;
    let mut problems = Vec::new();
    let seen = match memory {
        Some(memory) => {
            let previous = observations::load(&memory.file).unwrap_or_else(|error| {
                problems.push(error);
                Observations::new()
            });
            let seen = meta::observe(&previous, &heartbeats, own_agent, now);
            if let Err(error) = observations::store(&memory.file, &memory.database, &seen) {
                problems.push(error);
            }
            seen
        }
        None => Observations::new(),
    };
    let mut faults = meta::peer_faults(own_agent, &heartbeats, &seen, limits, now);
    if let Some(path) = expect {
        match read_expected(path) {
            Ok(expected) => faults.extend(meta::expected_faults(own_agent, &expected, &heartbeats)),
            Err(message) => faults.push(MetaFault {
                name: String::new(),
                severity: Severity::ERROR,
                message,
            }),
        }
    }
    faults.extend(meta::faults(own_agent, &squelches, &failures, limits, now));
    faults.extend(super::squelches::expiring_faults(db, &squelches, limits, now).await?);
    faults.extend(meta::stopped_faults(own_agent, &stopped, limits, now));
    if !problems.is_empty() {
        faults.push(MetaFault {
            name: "observations".to_owned(),
            severity: Severity::WARNING,
            message: format!(
                "meta-check memory: {}; peers are judged by their heartbeat times",
                problems.join("; ")
            ),
        });
    }
    // A fault rather than stderr: a plugin's stderr is an ERROR (#18).
    let skipped = db.skipped_rows();
    if !skipped.is_empty() {
        faults.push(MetaFault {
            name: "database".to_owned(),
            severity: Severity::WARNING,
            message: db::skipped_message(&skipped),
        });
    }
    Ok(faults)
}

/// The expect file's entries.
///
/// # Errors
/// When it cannot be read or holds an invalid regex, naming the file.
fn read_expected(path: &Path) -> Result<Vec<meta::Expected>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        format!(
            "cannot read the expect file `{}`: {error}; expected agents are not checked",
            path.display()
        )
    })?;
    meta::parse_expected(&text).map_err(|error| {
        format!(
            "expect file `{}`: {error}; expected agents are not checked",
            path.display()
        )
    })
}
