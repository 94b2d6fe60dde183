//! The meta-check's memory between runs (SPEC §14): what an observer last
//! saw of each peer's heartbeat and when it last saw it change, in a small
//! JSON file under `agent.state_dir`, one per database and observer name
//! (`meta-observations-<hash of the database>-<observer>.json`), so
//! `cimaa meta-check` and a `meta:` check of the same agent share it and
//! two databases never mix.
//!
//! Written whole, through a temporary file renamed over the old one, so a
//! crash or a concurrent run leaves either the old memory or the new one
//! (two writers: the last one wins, losing at most one run's changes). A
//! missing file is an empty memory (the meta-check then trusts the peers'
//! clocks until it sees them change); an unreadable or damaged one too,
//! and the caller reports why.
//!
//! Elapsed times are on the observer's wall clock, not a monotonic one: a
//! monotonic clock does not survive a restart or span `cimaa meta-check`
//! processes. `meta::observe` keeps them from going negative when that
//! clock steps back.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::db::DbConfig;
use crate::meta::{Observation, Observations};

/// The file's layout version; another one is read as an empty memory.
const VERSION: u32 = 1;

/// The file as stored.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    /// The database it is about, for people reading the file.
    database: String,
    peers: BTreeMap<String, Observation>,
}

/// Where an observer keeps its memory, and of which database.
#[derive(Clone, Debug)]
pub(crate) struct Memory {
    pub file: PathBuf,
    /// The database's identity, written into the file for people.
    pub database: String,
}

/// The memory of `config`'s agent for `config`'s database; `None` for the
/// `memory` database, which lives and dies with one process.
#[must_use]
pub(crate) fn memory_of(config: &Config) -> Option<Memory> {
    let database = identity(&config.database)?;
    let mut hash = String::new();
    for byte in &Sha256::digest(database.as_bytes())[..8] {
        let _ = write!(hash, "{byte:02x}");
    }
    let observer: String = config
        .agent
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let file = config
        .agent
        .state_dir
        .join(format!("meta-observations-{hash}-{observer}.json"));
    Some(Memory { file, database })
}

/// What names a database across runs: the SQLite file, or the DynamoDB
/// endpoint, region and table prefix.
fn identity(database: &DbConfig) -> Option<String> {
    match database {
        DbConfig::Sqlite(sqlite) => {
            let path = std::path::absolute(&sqlite.path).unwrap_or_else(|_| sqlite.path.clone());
            Some(format!("sqlite:{}", path.display()))
        }
        DbConfig::DynamoDb(dynamo) => Some(format!(
            "dynamodb:{}:{}:{}",
            dynamo.endpoint_url.as_deref().unwrap_or_default(),
            dynamo.region.as_deref().unwrap_or_default(),
            dynamo.prefix
        )),
        DbConfig::Postgres(postgres) => Some(format!("postgres:{}", postgres.shown_url())),
        DbConfig::Memory(_) => None,
    }
}

/// The observations kept in `path`: empty when there is no file yet.
///
/// # Errors
/// When the file cannot be read or is not an observations file, naming it;
/// the caller goes on with an empty memory.
pub(crate) fn load(path: &Path) -> Result<Observations, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Observations::new()),
        Err(error) => return Err(format!("cannot read `{}`: {error}", path.display())),
    };
    match serde_json::from_str::<Stored>(&text) {
        Ok(stored) if stored.version == VERSION => Ok(stored.peers),
        Ok(stored) => Err(format!(
            "`{}` has layout version {} (this cimaa writes {VERSION}); starting afresh",
            path.display(),
            stored.version
        )),
        Err(error) => Err(format!(
            "`{}` is not a meta-check observations file ({error}); starting afresh",
            path.display()
        )),
    }
}

/// Replaces the observations kept in `path` (creating its folder), through
/// a temporary file in the same folder renamed over it.
///
/// # Errors
/// When the folder or file cannot be written, naming it.
pub(crate) fn store(path: &Path, database: &str, peers: &Observations) -> Result<(), String> {
    let stored = Stored {
        version: VERSION,
        database: database.to_owned(),
        peers: peers.clone(),
    };
    store_json(path, &stored)
}

/// Replaces the JSON file `path` with `value` (creating its folder),
/// through a temporary file in the same folder renamed over it, so a crash
/// or a concurrent writer leaves the old file or the new one: the agent's
/// small state files (this memory, the flap state).
///
/// # Errors
/// When the folder or file cannot be written, naming it.
pub(crate) fn store_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let folder = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(folder)
        .map_err(|error| format!("cannot create `{}`: {error}", folder.display()))?;
    let text = serde_json::to_string(value)
        .map_err(|error| format!("cannot encode `{}`: {error}", path.display()))?;
    let temporary = folder.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .map(|name| name.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|error| format!("cannot write `{}`: {error}", path.display()));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_survive_a_store_and_a_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/meta-observations-x-web1.json");
        assert_eq!(load(&path).unwrap(), Observations::new());
        let mut peers = Observations::new();
        peers.insert(
            "web2".into(),
            Observation {
                heartbeat: 100,
                changed: Some(160),
            },
        );
        store(&path, "sqlite:/x", &peers).unwrap();
        assert_eq!(load(&path).unwrap(), peers);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn a_damaged_file_is_named_and_read_as_no_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obs.json");
        std::fs::write(&path, "{not json").unwrap();
        let error = load(&path).unwrap_err();
        assert!(
            error.contains("obs.json` is not a meta-check observations file"),
            "{error}"
        );
    }
}
