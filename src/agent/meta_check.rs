//! The meta-check's reads (SPEC §8, §14): what `cimaa meta-check` prints and
//! what the in-process `meta:` check kind reports, from one function.
//!
//! Reads only stale heartbeats, squelches, the agents whose alerts fail and
//! the agents stopped with open alerts, so the cost grows with trouble, not
//! with the fleet; `meta::faults` and `meta::stopped_faults` judge.

use crate::db::{self, Db};
use crate::meta::{self, Limits, MetaFault};
use crate::severity::Severity;

/// The meta-check's faults as seen by `own_agent` at `now`.
///
/// # Errors
/// When the database cannot be read.
pub(crate) async fn meta_faults(
    db: &dyn Db,
    own_agent: &str,
    limits: Limits,
    now: i64,
) -> Result<Vec<MetaFault>, db::Error> {
    let stale = db.old_agents(limits.warn_secs(), now).await?;
    let squelches = db.get_squelch_details().await?;
    let failures = db.alert_failures().await?;
    let stopped = db.stopped_agents().await?;
    let mut faults = meta::faults(own_agent, &stale, &squelches, &failures, limits, now);
    faults.extend(meta::stopped_faults(own_agent, &stopped, limits, now));
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
