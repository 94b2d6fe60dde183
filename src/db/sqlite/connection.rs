//! The connection to the `sqlite` file: opening it (its folder, the busy
//! timeout, WAL mode, the schema) and opening it again when the file was
//! deleted or replaced under a running agent.
//!
//! Everything here blocks: `SqliteDb::run` calls it on tokio's blocking pool.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};
use tracing::warn;

use super::schema::create_schema;
use crate::db::Error;

/// How long a write waits for another agent's transaction on the same file.
///
/// Writes are a handful of rows per tick, so 5 s is far beyond any honest wait
/// and still well below a base interval.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait before trying again to switch a contended file to WAL.
const WAL_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// `BUSY_TIMEOUT` in ms.
#[expect(clippy::cast_possible_truncation, reason = "5 s in ms fits")]
pub(super) const BUSY_TIMEOUT_MS: u64 = BUSY_TIMEOUT.as_millis() as u64;

/// The open connection and the identity of the file it opened.
#[derive(Debug)]
pub(super) struct Handle {
    /// `None` after a reopen failed: the next call tries again.
    pub(super) connection: Option<Connection>,
    /// Device and inode of the file when it was opened.
    pub(super) identity: Option<(u64, u64)>,
    /// The busy timeout set on `connection`, in ms.
    pub(super) busy_ms: u64,
}

/// Device and inode of the file at `path`; `None` when it is gone.
pub(super) fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .map(|metadata| (metadata.dev(), metadata.ino()))
}

/// Whether the file at `path` is no longer the one `opened` names: deleted,
/// or replaced. A `stat` that fails for another reason (a permission
/// changed) says nothing, so it does not count.
fn replaced(path: &Path, opened: Option<(u64, u64)>) -> bool {
    match std::fs::metadata(path) {
        Ok(metadata) => Some((metadata.dev(), metadata.ino())) != opened,
        Err(error) => error.kind() == std::io::ErrorKind::NotFound,
    }
}

impl Handle {
    /// The connection, opened again when the file at `path` is not the one
    /// it opened (deleted, or replaced); blocks.
    pub(super) fn current(&mut self, path: &Path, busy_ms: u64) -> Result<&mut Connection, Error> {
        if self.connection.is_some() && replaced(path, self.identity) {
            warn!(
                path = %path.display(),
                "the sqlite database file was deleted or replaced; opening it again and writing the full state"
            );
            // Closed before the new open: closing the last connection of the
            // old file removes the `-wal` file by name, which is the new
            // file's by then.
            self.connection = None;
        }
        if self.connection.is_none() {
            let connection = open_blocking(path, Duration::from_millis(busy_ms))?;
            self.identity = identity(path);
            self.busy_ms = busy_ms;
            self.connection = Some(connection);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(Error::Task("sqlite connection vanished".to_owned()));
        };
        if self.busy_ms != busy_ms {
            connection.busy_timeout(Duration::from_millis(busy_ms))?;
            self.busy_ms = busy_ms;
        }
        Ok(connection)
    }
}

/// Creates the folder, opens the file and sets it up; blocks.
pub(super) fn open_blocking(path: &Path, busy: Duration) -> Result<Connection, Error> {
    // `parent()` of a bare file name is `""`: the current folder, which exists.
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder).map_err(|source| Error::CreateFolder {
            path: folder.to_owned(),
            source,
        })?;
    }
    let setup = || -> rusqlite::Result<Connection> {
        let connection = Connection::open(path)?;
        // Set before anything else, so that switching to WAL and creating the
        // schema wait for an agent that opens the same new file right now.
        connection.busy_timeout(busy)?;
        enable_wal(&connection)?;
        create_schema(&connection)?;
        Ok(connection)
    };
    setup().map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })
}

/// Switches the file to WAL mode (it stays so: the mode is kept in the file).
///
/// The switch needs an exclusive lock, and the library answers `SQLITE_BUSY` at
/// once, without calling the busy handler, when two connections race for it
/// (waiting could deadlock). That happens when agents open a new file
/// together, so the switch is retried until `BUSY_TIMEOUT` runs out.
fn enable_wal(connection: &Connection) -> rusqlite::Result<()> {
    // Asking first keeps the open of a file already in WAL mode read-only.
    let mode: String = connection.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        // The pragma answers with the mode now in force; a file system
        // without WAL support keeps the rollback journal, which still works.
        let switched = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0));
        match switched {
            Err(err)
                if err.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                // On the blocking pool, so sleeping stalls no async task.
                std::thread::sleep(WAL_RETRY_PAUSE);
            }
            switched => return switched.map(drop),
        }
    }
}
