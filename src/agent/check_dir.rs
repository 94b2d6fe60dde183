//! The check directory: scanned every tick, parsed only where files changed.
//!
//! Owns the cache of check files (modification time, length and the checks
//! each file defined) and the rule that a file caught mid-write keeps its
//! previous checks until it settles. Parsing itself is `config`'s; the
//! agent's tick only awaits `CheckDirectory::scan`, which runs the file reads
//! and parsing (on `config::load_check_files`'s scoped threads) under
//! `spawn_blocking`, so a slow disk or a directory of thousands of files
//! never stalls the async workers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tracing::{debug, error, warn};

use crate::checks::{CheckDef, CheckKind};
use crate::config::{self, Scope};

/// How long a check file must be unchanged before its parse error is reported.
const SETTLE: Duration = Duration::from_secs(3);

/// A cached check file.
struct CachedFile {
    modified: SystemTime,
    len: u64,
    checks: Vec<Arc<CheckDef>>,
}

/// The check directory, rescanned every tick; unchanged files are not re-read.
///
/// A handle: the cache sits behind a mutex so the blocking scan can own it
/// for its duration (a `std` mutex, as no `.await` happens while it is held).
pub(crate) struct CheckDirectory {
    files: Arc<Mutex<Scanner>>,
}

/// What the scan keeps between ticks.
struct Scanner {
    scope: Scope,
    directory: PathBuf,
    files: HashMap<PathBuf, CachedFile>,
}

impl CheckDirectory {
    pub(crate) fn new(scope: Scope, directory: &Path) -> Self {
        CheckDirectory {
            files: Arc::new(Mutex::new(Scanner {
                scope,
                directory: directory.to_path_buf(),
                files: HashMap::new(),
            })),
        }
    }

    /// The current checks, read on the blocking pool (see `Scanner::scan`).
    ///
    /// Should the scan itself panic, the tick goes on with the checks cached
    /// so far rather than with none, which would resolve every open alert.
    pub(crate) async fn scan(&self, now: SystemTime) -> Vec<Arc<CheckDef>> {
        let files = self.files.clone();
        match tokio::task::spawn_blocking(move || lock(&files).scan(now)).await {
            Ok(checks) => checks,
            Err(e) => {
                error!(error = %e, "the check directory scan failed; keeping the checks loaded before");
                lock(&self.files).cached()
            }
        }
    }
}

/// Locks the cache. A scan that panicked leaves whole entries only (each
/// update is one map insert or removal), so a poisoned lock is taken over.
fn lock(files: &Mutex<Scanner>) -> MutexGuard<'_, Scanner> {
    files.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scanner {
    /// Every check of every cached file.
    fn cached(&self) -> Vec<Arc<CheckDef>> {
        self.files
            .values()
            .flat_map(|f| f.checks.iter().cloned())
            .collect()
    }

    /// The current checks. A file whose parse fails while it was modified
    /// within `SETTLE` keeps its previous checks (or none) until the next
    /// scan, so a file caught mid-write never pages.
    fn scan(&mut self, now: SystemTime) -> Vec<Arc<CheckDef>> {
        let paths = match config::check_files(&self.directory) {
            Ok(paths) => paths,
            Err(e) => {
                warn!(directory = %self.directory.display(), error = %e, "cannot read the check directory");
                let mut checks = self.cached();
                checks.push(Arc::new(CheckDef::broken(
                    format!("//{}/", self.scope.agent),
                    &self.directory,
                    format!(
                        "cannot read check directory {}: {e}",
                        self.directory.display()
                    ),
                )));
                return checks;
            }
        };
        self.files.retain(|path, _| paths.contains(path));
        // Stat every file; parse the new and changed ones, in parallel.
        let stamped: Vec<(PathBuf, SystemTime, u64)> = paths
            .into_iter()
            .filter_map(|path| {
                let meta = std::fs::metadata(&path).ok()?;
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                Some((path, modified, meta.len()))
            })
            .collect();
        let changed: Vec<&Path> = stamped
            .iter()
            .filter(|(path, modified, len)| {
                self.files
                    .get(path)
                    .is_none_or(|cached| cached.modified != *modified || cached.len != *len)
            })
            .map(|(path, _, _)| path.as_path())
            .collect();
        let mut parsed: HashMap<PathBuf, Vec<CheckDef>> =
            config::load_check_files(&self.scope, &changed)
                .into_iter()
                .zip(&changed)
                .map(|(checks, path)| (path.to_path_buf(), checks))
                .collect();
        let mut checks = Vec::new();
        for (path, modified, len) in stamped {
            let Some(definitions) = parsed.remove(&path) else {
                if let Some(cached) = self.files.get(&path) {
                    checks.extend(cached.checks.iter().cloned());
                }
                continue;
            };
            // Not `into_iter().map(Arc::new).collect()`: that reuses the
            // definitions' allocation (in-place collect) and so keeps a
            // definition's size per check alive for a pointer's worth.
            let mut loaded = Vec::with_capacity(definitions.len());
            loaded.extend(definitions.into_iter().map(Arc::new));
            let fresh =
                now.duration_since(modified).is_ok_and(|age| age < SETTLE) || modified > now;
            let broken = loaded
                .iter()
                .any(|c| matches!(c.kind, CheckKind::Broken(_)));
            if broken && fresh {
                debug!(file = %path.display(), "check file changed just now and does not load; waiting for the next scan");
                if let Some(previous) = self.files.get(&path) {
                    checks.extend(previous.checks.iter().cloned());
                }
                continue;
            }
            checks.extend(loaded.iter().cloned());
            self.files.insert(
                path,
                CachedFile {
                    modified,
                    len,
                    checks: loaded,
                },
            );
        }
        checks
    }
}
