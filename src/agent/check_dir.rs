//! The check directory: scanned every tick, parsed only where files changed.
//!
//! Owns the cache of check files (each file's `Stamp` and the checks it
//! defined), the rule that a file caught mid-write keeps its previous checks
//! until it settles, and the rule that a file that can no longer be read (a
//! dangling symlink, no permission) keeps its last good checks running
//! beside its CRITICAL fault. Parsing itself is `config`'s; the
//! agent's tick only awaits `CheckDirectory::scan`, which runs the file reads
//! and parsing (on `config::load_check_files`'s scoped threads) under
//! `spawn_blocking`, so a slow disk or a directory of thousands of files
//! never stalls the async workers.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tracing::{debug, error, warn};

use crate::checks::{CheckDef, CheckKind};
use crate::config::{self, Loaded, Scope};

/// How long a check file must be unchanged before its parse error is reported.
const SETTLE: Duration = Duration::from_secs(3);

/// What tells one version of a file from another: when any part changes,
/// the file is read again. Modification time and length alone miss a
/// `chmod` that makes the file unreadable (it changes only `ctime`) and a
/// symlink pointed at another file of the same size and time (`dev`, `ino`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: SystemTime,
    len: u64,
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of what `path` leads to; `None` when that cannot be
    /// stat'ed (a dangling symlink, a loop, a file just removed).
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            len: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// A cached check file.
struct CachedFile {
    stamp: Stamp,
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
    /// scan, so a file caught mid-write never pages. A file that cannot be
    /// read (it became a dangling symlink, lost its permissions) keeps its
    /// last good checks running beside its CRITICAL fault: that it cannot
    /// be read says nothing about what it checks, and dropping the checks
    /// would resolve their open alerts. Files whose stems clash run
    /// nothing; each clash is one CRITICAL fault.
    fn scan(&mut self, now: SystemTime) -> Vec<Arc<CheckDef>> {
        let listed = match config::check_files(&self.directory) {
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
        let (paths, clashes) = config::split_stem_clashes(&self.scope, listed);
        let listed: HashSet<&PathBuf> = paths.iter().collect();
        self.files.retain(|path, _| listed.contains(path));
        // Stat every file; read the new and changed ones (and those that
        // cannot be stat'ed, to say why), in parallel.
        let stamped: Vec<(PathBuf, Option<Stamp>)> = paths
            .into_iter()
            .map(|path| {
                let stamp = Stamp::of(&path);
                (path, stamp)
            })
            .collect();
        let changed: Vec<&Path> = stamped
            .iter()
            .filter(|(path, stamp)| {
                stamp.is_none_or(|stamp| {
                    self.files
                        .get(path)
                        .is_none_or(|cached| cached.stamp != stamp)
                })
            })
            .map(|(path, _)| path.as_path())
            .collect();
        let mut parsed: HashMap<PathBuf, Loaded> = config::load_check_files(&self.scope, &changed)
            .into_iter()
            .zip(&changed)
            .map(|(loaded, path)| (path.to_path_buf(), loaded))
            .collect();
        let mut checks: Vec<Arc<CheckDef>> = clashes.into_iter().map(Arc::new).collect();
        for (path, stamp) in stamped {
            match parsed.remove(&path) {
                Some(loaded) => self.take(path, stamp, loaded, now, &mut checks),
                None => {
                    if let Some(cached) = self.files.get(&path) {
                        checks.extend(cached.checks.iter().cloned());
                    }
                }
            }
        }
        checks
    }

    /// Takes what reading one changed file gave into the cache and adds the
    /// checks it runs now to `checks`.
    fn take(
        &mut self,
        path: PathBuf,
        stamp: Option<Stamp>,
        loaded: Loaded,
        now: SystemTime,
        checks: &mut Vec<Arc<CheckDef>>,
    ) {
        // A dangling link has no target to date: its own time counts.
        let modified = stamp.map_or_else(
            || {
                std::fs::symlink_metadata(&path)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH)
            },
            |s| s.modified,
        );
        let fresh = now.duration_since(modified).is_ok_and(|age| age < SETTLE) || modified > now;
        let definitions = match loaded {
            Loaded::Gone => {
                self.files.remove(&path);
                return;
            }
            Loaded::Unreadable(broken) => {
                if let Some(previous) = self.files.get(&path) {
                    checks.extend(
                        previous
                            .checks
                            .iter()
                            .filter(|c| c.name != broken.name)
                            .cloned(),
                    );
                }
                if fresh {
                    debug!(file = %path.display(), "check file changed just now and cannot be read; waiting for the next scan");
                } else {
                    checks.push(Arc::new(broken));
                }
                return;
            }
            Loaded::Read(definitions) => definitions,
        };
        // Not `into_iter().map(Arc::new).collect()`: that reuses the
        // definitions' allocation (in-place collect) and so keeps a
        // definition's size per check alive for a pointer's worth.
        let mut loaded = Vec::with_capacity(definitions.len());
        loaded.extend(definitions.into_iter().map(Arc::new));
        let broken = loaded
            .iter()
            .any(|c| matches!(c.kind, CheckKind::Broken(_)));
        if broken && fresh {
            debug!(file = %path.display(), "check file changed just now and does not load; waiting for the next scan");
            if let Some(previous) = self.files.get(&path) {
                checks.extend(previous.checks.iter().cloned());
            }
            return;
        }
        checks.extend(loaded.iter().cloned());
        // Read though it could not be stat'ed (it appeared meanwhile): not
        // cached, so the next scan reads it again.
        if let Some(stamp) = stamp {
            self.files.insert(
                path,
                CachedFile {
                    stamp,
                    checks: loaded,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A scanner over a fresh temp dir, and a `now` a minute ahead so every
    /// file there counts as settled.
    fn scanner() -> (tempfile::TempDir, Scanner, SystemTime) {
        let dir = tempfile::tempdir().unwrap();
        let scanner = Scanner {
            scope: Scope::new("web1"),
            directory: dir.path().to_path_buf(),
            files: HashMap::new(),
        };
        (dir, scanner, SystemTime::now() + Duration::from_mins(1))
    }

    /// `(name, broken message or "")` of each check, sorted.
    fn summary(checks: &[Arc<CheckDef>]) -> Vec<(String, String)> {
        let mut got: Vec<(String, String)> = checks
            .iter()
            .map(|c| {
                let message = match &c.kind {
                    CheckKind::Broken(m) => m.clone(),
                    _ => String::new(),
                };
                (c.name.clone(), message)
            })
            .collect();
        got.sort();
        got
    }

    // See: #18
    #[test]
    fn a_dangling_symlink_is_a_critical_placeholder() {
        let (dir, mut scanner, now) = scanner();
        symlink("/nowhere/x.yaml", dir.path().join("x.yaml")).unwrap();
        let path = dir.path().join("x.yaml");
        assert_eq!(
            summary(&scanner.scan(now)),
            [(
                "//web1/x/".to_string(),
                format!(
                    "error parsing {}: a dangling symlink to `/nowhere/x.yaml`",
                    path.display()
                )
            )]
        );
    }

    // See: #18
    #[test]
    fn a_symlink_loop_is_a_critical_placeholder() {
        let (dir, mut scanner, now) = scanner();
        symlink(dir.path().join("b.yaml"), dir.path().join("a.yaml")).unwrap();
        symlink(dir.path().join("a.yaml"), dir.path().join("b.yaml")).unwrap();
        let got = summary(&scanner.scan(now));
        assert_eq!(got.len(), 2, "{got:?}");
        for (name, message) in got {
            assert!(name == "//web1/a/" || name == "//web1/b/", "{name}");
            assert!(
                message.ends_with(": a symlink loop (too many levels of symbolic links)"),
                "{message}"
            );
        }
    }

    // See: #18
    #[test]
    fn a_directory_named_like_a_check_file_is_a_critical_placeholder() {
        let (dir, mut scanner, now) = scanner();
        std::fs::create_dir(dir.path().join("x.yaml")).unwrap();
        let got = summary(&scanner.scan(now));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "//web1/x/");
        assert!(
            got[0].1.ends_with(": a directory, not a check file"),
            "{}",
            got[0].1
        );
    }

    // See: #18
    #[test]
    fn a_file_that_becomes_a_dangling_symlink_keeps_its_checks_beside_its_fault() {
        let (dir, mut scanner, now) = scanner();
        let path = dir.path().join("app.yaml");
        std::fs::write(&path, "disk:\n  command: echo ok\n").unwrap();
        assert_eq!(
            summary(&scanner.scan(now)),
            [("//web1/app/disk".to_string(), String::new())]
        );
        std::fs::remove_file(&path).unwrap();
        symlink("/nowhere/app.yaml", &path).unwrap();
        for _ in 0..2 {
            let got = summary(&scanner.scan(now));
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!(got[0].0, "//web1/app/");
            assert!(got[0].1.contains("a dangling symlink"), "{}", got[0].1);
            assert_eq!(got[1], ("//web1/app/disk".to_string(), String::new()));
        }
        // Fixed: the fault goes and the file's checks load again.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "disk:\n  command: echo ok\n").unwrap();
        assert_eq!(
            summary(&scanner.scan(now)),
            [("//web1/app/disk".to_string(), String::new())]
        );
    }

    // See: #18
    #[test]
    fn a_file_made_unreadable_keeps_its_checks_beside_its_fault() {
        use std::os::unix::fs::PermissionsExt as _;
        if nix::unistd::geteuid().is_root() {
            // root reads a file whatever its mode: nothing to see here.
            return;
        }
        let (dir, mut scanner, now) = scanner();
        let path = dir.path().join("app.yaml");
        std::fs::write(&path, "disk:\n  command: echo ok\n").unwrap();
        scanner.scan(now);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        let got = summary(&scanner.scan(now));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].1.contains("Permission denied"), "{}", got[0].1);
        assert_eq!(got[1].0, "//web1/app/disk");
    }

    // See: #18
    #[test]
    fn two_files_with_one_stem_run_neither_and_report_the_clash() {
        let (dir, mut scanner, now) = scanner();
        std::fs::write(dir.path().join("good.yaml"), "a:\n  command: echo a\n").unwrap();
        std::fs::write(dir.path().join("good.yml"), "a:\n  command: echo b\n").unwrap();
        std::fs::write(dir.path().join("other.yaml"), "b:\n  command: echo c\n").unwrap();
        let first = dir.path().join("good.yaml");
        let second = dir.path().join("good.yml");
        for _ in 0..2 {
            assert_eq!(
                summary(&scanner.scan(now)),
                [
                    (
                        "//web1/good/".to_string(),
                        format!(
                            "check files `{}` and `{}` have the same stem `good`: neither runs until one is renamed or removed",
                            first.display(),
                            second.display()
                        )
                    ),
                    ("//web1/other/b".to_string(), String::new()),
                ]
            );
        }
    }
}
