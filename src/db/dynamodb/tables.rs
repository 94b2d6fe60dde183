//! The two tables themselves: `setup-db` creating a missing one or checking
//! the keys and indexes of an existing one, and the health check asking
//! that both exist and are ACTIVE. It never changes a table that exists.

use tokio::time::Instant;
use tracing::{debug, warn};

use super::DynamoDb;
use super::api::{ApiFailure, TableKind, TableState};
use super::history::{AGENT_INDEX, EXPIRES};
use super::item::UPDATED_INDEX;
use crate::db::{Capacity, Error};

impl DynamoDb {
    /// Creates a missing table (a racing creator is fine) or checks the
    /// keys and indexes of an existing one; false while it is not ACTIVE.
    pub(super) async fn ensure_table(
        &self,
        table: &str,
        kind: TableKind,
        capacity: Option<Capacity>,
        deadline: Instant,
    ) -> Result<bool, Error> {
        let state = self
            .retrying("DescribeTable", table, deadline, || {
                self.api.describe(table)
            })
            .await?;
        match state {
            TableState::Missing => {
                self.retrying("CreateTable", table, deadline, || async move {
                    match self.api.create(table, kind, capacity).await {
                        // Another `setup-db` is creating it right now.
                        Err(error) if error.failure == ApiFailure::TableExists => Ok(()),
                        created => created,
                    }
                })
                .await?;
                Ok(false)
            }
            TableState::Busy(why) => {
                debug!(table, state = %why, "waiting for the table");
                Ok(false)
            }
            TableState::Active { keys, indexes } => {
                let (want_keys, want_index): (&[&str], Option<&str>) = match kind {
                    TableKind::Faults => (&["agent", "name"], Some(UPDATED_INDEX)),
                    TableKind::Squelches => (&["regex"], None),
                    TableKind::History => (&["bucket", "key"], Some(AGENT_INDEX)),
                };
                if keys != want_keys {
                    return Err(Error::TableMismatch {
                        table: table.to_owned(),
                        detail: format!(
                            "its keys are `{}`, expected `{}`",
                            keys.join(", "),
                            want_keys.join(", ")
                        ),
                    });
                }
                if let Some(index) = want_index
                    && !indexes.iter().any(|name| name == index)
                {
                    return Err(Error::TableMismatch {
                        table: table.to_owned(),
                        detail: format!("it has no global secondary index `{index}`"),
                    });
                }
                Ok(true)
            }
        }
    }

    /// Turns on the history table's TTL (SPEC §12) if it is off. A server
    /// without TTL (a local test server) is only warned about: reads leave
    /// expired records out anyway.
    pub(super) async fn enable_history_ttl(&self) {
        match self.api.enable_ttl(&self.history_table, EXPIRES).await {
            Ok(true) => debug!(table = %self.history_table, "time to live enabled"),
            Ok(false) => {}
            Err(error) => warn!(
                table = %self.history_table,
                error = %error.detail,
                "cannot enable the history table's time to live; expired records are left out of reads but not deleted"
            ),
        }
    }

    /// DescribeTable, for `validate --healthchecks`: the table exists and is
    /// ACTIVE. Unlike `ensure_table` it never creates one.
    pub(super) async fn describe_active(
        &self,
        table: &str,
        deadline: Instant,
    ) -> Result<(), Error> {
        let state = self
            .retrying("DescribeTable", table, deadline, || {
                self.api.describe(table)
            })
            .await?;
        match state {
            TableState::Missing => Err(Error::TableMissing {
                table: table.to_owned(),
            }),
            TableState::Busy(why) => Err(Error::TableMismatch {
                table: table.to_owned(),
                detail: format!("it is `{why}`, not `ACTIVE`"),
            }),
            TableState::Active { .. } => Ok(()),
        }
    }
}
