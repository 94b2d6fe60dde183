//! The check directory: scanned every tick, parsed only where files changed.
//!
//! Owns the cache of check files (each file's `Stamp` and the checks it
//! defined), the rule that a file caught mid-write keeps its previous checks
//! until it settles, and the last good versions (SPEC §14): a file that no
//! longer parses or can no longer be read, and an entry that became invalid,
//! keep running what last loaded beside their CRITICAL faults. Those
//! versions are copies of the files' text under `agent.state_dir`
//! (`Store`), re-parsed after a restart. Parsing itself is `config`'s; the
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

/// A file's last good version (SPEC §14): the newest text of it that
/// parsed and left no entry to fall back on an older version.
///
/// Why that rule: the copy is re-read at start, so it must give the same
/// checks a running agent gives. A version in which an entry fell back to
/// the copy must not replace the copy, or a restart would lose that entry's
/// last good version; a version with a new entry that never loaded loses
/// nothing and replaces it.
struct Kept {
    /// The file's text, as stored under the state folder.
    text: String,
    /// Its checks that loaded, once needed (a copy read back at start is
    /// parsed only when the file falls back on it).
    checks: Option<Vec<Arc<CheckDef>>>,
}

/// Largest kept copy read back, in bytes (a check file may have 16 MiB).
const KEPT_CAP: u64 = 16 * 1024 * 1024;

/// Where the last good copies live: `STATE_DIR/last-good/AGENT/FILE`, one
/// copy per check file, named as the file is; keyed by agent because
/// several agents on one host may share a state folder (the default one
/// sits beside a shared SQLite file). Every failure here is logged and
/// ignored: the copies are a safety net, never a reason to stop.
struct Store {
    /// `None`: keep nothing on disk (no state folder configured).
    folder: Option<PathBuf>,
}

impl Store {
    fn new(state_dir: &Path, agent: &str) -> Store {
        if state_dir.as_os_str().is_empty() {
            return Store { folder: None };
        }
        let mut agent = agent.replace(['/', '\0'], "_");
        if agent.is_empty() || agent == "." || agent == ".." {
            agent.insert(0, '_');
        }
        Store {
            folder: Some(state_dir.join("last-good").join(agent)),
        }
    }

    /// The copy of `file`: the same file name in the folder.
    fn copy_of(&self, file: &Path) -> Option<PathBuf> {
        Some(self.folder.as_ref()?.join(file.file_name()?))
    }

    /// The stored copy of `file`, if there is a readable one.
    fn read(&self, file: &Path) -> Option<String> {
        let copy = self.copy_of(file)?;
        let read = std::fs::metadata(&copy).and_then(|meta| {
            if meta.len() > KEPT_CAP {
                return Err(std::io::Error::other(format!(
                    "{} bytes, more than a check file may have",
                    meta.len()
                )));
            }
            std::fs::read(&copy)
        });
        match read.map(String::from_utf8) {
            Ok(Ok(text)) => Some(text),
            Ok(Err(_)) => {
                warn!(copy = %copy.display(), "the last good copy of a check file is not UTF-8 text; ignoring it");
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                warn!(copy = %copy.display(), error = %e, "cannot read the last good copy of a check file; ignoring it");
                None
            }
        }
    }

    /// Stores `text` as the copy of `file`: written beside it under a
    /// hidden temporary name, synced, then renamed over it, so a crash
    /// leaves the old copy or the new one, never half of one.
    fn write(&self, file: &Path, text: &str) {
        use std::io::Write as _;
        let (Some(folder), Some(copy)) = (&self.folder, self.copy_of(file)) else {
            return;
        };
        let Some(name) = file.file_name() else {
            return;
        };
        let temporary = folder.join(format!(".{}.tmp", name.to_string_lossy()));
        let written = std::fs::create_dir_all(folder)
            .and_then(|()| std::fs::File::create(&temporary))
            .and_then(|mut out| {
                out.write_all(text.as_bytes())?;
                out.sync_all()
            })
            .and_then(|()| std::fs::rename(&temporary, &copy));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            warn!(copy = %copy.display(), error = %e, "cannot store the last good copy of a check file");
        }
    }

    /// Forgets the copy of `file` (its file left the directory).
    fn remove(&self, file: &Path) {
        let Some(copy) = self.copy_of(file) else {
            return;
        };
        match std::fs::remove_file(&copy) {
            Ok(()) => {
                debug!(copy = %copy.display(), "removed the last good copy of a removed check file");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(copy = %copy.display(), error = %e, "cannot remove the last good copy of a check file");
            }
        }
    }

    /// Removes every copy (and leftover temporary file) whose check file is
    /// not in `listed`: files removed while the agent was not running.
    fn sweep(&self, listed: &HashSet<&std::ffi::OsStr>) {
        let Some(folder) = &self.folder else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(folder) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            if !listed.contains(name.as_os_str()) {
                let path = entry.path();
                if let Err(e) = std::fs::remove_file(&path) {
                    warn!(copy = %path.display(), error = %e, "cannot remove a stale last good copy");
                }
            }
        }
    }
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
    /// Each listed file's last good version, once looked up (`None`: it
    /// has none). Only files currently listed are kept.
    kept: HashMap<PathBuf, Option<Kept>>,
    store: Store,
    /// Whether the store has been swept of copies of vanished files.
    swept: bool,
}

impl CheckDirectory {
    /// The directory's scanner, keeping last good copies under `state_dir`
    /// (empty: in memory only).
    pub(crate) fn new(scope: Scope, directory: &Path, state_dir: &Path) -> Self {
        let store = Store::new(state_dir, &scope.agent);
        CheckDirectory {
            files: Arc::new(Mutex::new(Scanner {
                scope,
                directory: directory.to_path_buf(),
                files: HashMap::new(),
                kept: HashMap::new(),
                store,
                swept: false,
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

/// Whether a check only reports a configuration problem.
fn is_broken(check: &CheckDef) -> bool {
    matches!(check.kind, CheckKind::Broken(_))
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
    /// scan, so a file caught mid-write never pages. A file that no longer
    /// parses, or cannot be read (it became a dangling symlink, lost its
    /// permissions), keeps running its last good version beside its
    /// CRITICAL fault; an invalid entry keeps its last good version the same
    /// way (see `take`). That a file is broken says nothing about what it
    /// checks, and dropping the checks would resolve their open alerts.
    /// Files whose stems clash run nothing; each clash is one CRITICAL fault.
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
        // Last good copies are bounded by the directory: only files that
        // may load keep one.
        let store = &self.store;
        self.kept.retain(|path, _| {
            let keep = listed.contains(path);
            if !keep {
                store.remove(path);
            }
            keep
        });
        if !self.swept {
            self.swept = true;
            let names: HashSet<&std::ffi::OsStr> =
                paths.iter().filter_map(|p| p.file_name()).collect();
            self.store.sweep(&names);
        }
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

    /// The checks of `path`'s last good version (none when it has none),
    /// read back from the store the first time they are needed. A copy that
    /// no longer parses at all is logged and ignored.
    fn kept_checks(&mut self, path: &Path) -> Vec<Arc<CheckDef>> {
        let store = &self.store;
        let kept = self
            .kept
            .entry(path.to_path_buf())
            .or_insert_with(|| store.read(path).map(|text| Kept { text, checks: None }));
        let Some(found) = kept else {
            return Vec::new();
        };
        if found.checks.is_none() {
            let defs = config::parse_check_text(&self.scope, path, &found.text);
            let placeholder = config::placeholder(&self.scope, path);
            if defs.iter().any(|c| is_broken(c) && c.name == placeholder) {
                warn!(file = %path.display(), "the last good copy of this check file does not parse; ignoring it");
                *kept = None;
                return Vec::new();
            }
            let mut checks = Vec::with_capacity(defs.len());
            checks.extend(defs.into_iter().filter(|c| !is_broken(c)).map(Arc::new));
            found.checks = Some(checks);
        }
        found.checks.clone().unwrap_or_default()
    }

    /// Makes `text` (whose loaded checks are `checks`) the last good
    /// version of `path`, storing it unless the store holds it already.
    fn keep(&mut self, path: &Path, text: String, checks: Vec<Arc<CheckDef>>) {
        let store = &self.store;
        let kept = self
            .kept
            .entry(path.to_path_buf())
            .or_insert_with(|| store.read(path).map(|text| Kept { text, checks: None }));
        if kept.as_ref().is_none_or(|k| k.text != text) {
            self.store.write(path, &text);
        }
        *kept = Some(Kept {
            text,
            checks: Some(checks),
        });
    }

    /// What `path` ran before this read: its cached checks (without its
    /// file-level placeholder), else its last good version.
    fn previous(&mut self, path: &Path) -> Vec<Arc<CheckDef>> {
        let placeholder = config::placeholder(&self.scope, path);
        match self.files.get(path) {
            Some(cached) => cached
                .checks
                .iter()
                .filter(|c| c.name != placeholder)
                .cloned()
                .collect(),
            None => self.kept_checks(path),
        }
    }

    /// Takes what reading one changed file gave into the cache and adds the
    /// checks it runs now to `checks`.
    ///
    /// A file that does not parse runs its last good version beside its
    /// `//AGENT/STEM/` fault. An invalid entry with a last good version runs
    /// that version under its own name, so its faults and open alerts stay
    /// as they were; the entry's CRITICAL `error loading check PATH [KEY]`
    /// fault cannot take that same name (two checks of one name would
    /// overwrite each other's faults), so it is reported by the file's
    /// `//AGENT/STEM/` check, several such entries in one message. An
    /// invalid entry with nothing to keep is its own broken check, as
    /// always (SPEC §3).
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
        let (definitions, text) = match loaded {
            Loaded::Gone => {
                self.files.remove(&path);
                self.kept.remove(&path);
                self.store.remove(&path);
                return;
            }
            Loaded::Unreadable(broken) => {
                checks.extend(self.previous(&path));
                if fresh {
                    debug!(file = %path.display(), "check file changed just now and cannot be read; waiting for the next scan");
                } else {
                    checks.push(Arc::from(broken));
                }
                return;
            }
            Loaded::Read(definitions, text) => (definitions, text),
        };
        let any_broken = definitions.iter().any(is_broken);
        if any_broken && fresh {
            debug!(file = %path.display(), "check file changed just now and does not load; waiting for the next scan");
            checks.extend(self.previous(&path));
            return;
        }
        let placeholder = config::placeholder(&self.scope, &path);
        let unparsed = definitions
            .iter()
            .any(|c| is_broken(c) && c.name == placeholder);
        // Not `into_iter().map(Arc::new).collect()`: that reuses the
        // definitions' allocation (in-place collect) and so keeps a
        // definition's size per check alive for a pointer's worth.
        let mut loaded = Vec::with_capacity(definitions.len());
        if unparsed {
            let kept = self.kept_checks(&path);
            if !kept.is_empty() {
                warn!(file = %path.display(), checks = kept.len(), "check file does not parse; running its last good version");
            }
            loaded.extend(kept);
            loaded.extend(definitions.into_iter().map(Arc::new));
        } else {
            let kept: HashMap<String, Arc<CheckDef>> = if any_broken {
                self.kept_checks(&path)
                    .into_iter()
                    .map(|c| (c.name.clone(), c))
                    .collect()
            } else {
                HashMap::new()
            };
            let mut errors = Vec::new();
            for definition in definitions {
                match (&definition.kind, kept.get(&definition.name)) {
                    (CheckKind::Broken(message), Some(good)) => {
                        warn!(file = %path.display(), check = %definition.name, "check entry does not load; running its last good version");
                        errors.push(message.clone());
                        loaded.push(Arc::clone(good));
                    }
                    _ => loaded.push(Arc::new(definition)),
                }
            }
            if errors.is_empty() {
                if let Some(text) = text {
                    let good = loaded.iter().filter(|c| !is_broken(c)).cloned().collect();
                    self.keep(&path, text, good);
                }
            } else {
                let file = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
                loaded.push(Arc::new(CheckDef::broken(
                    placeholder,
                    &file,
                    errors.join("; "),
                )));
            }
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
            kept: HashMap::new(),
            store: Store { folder: None },
            swept: false,
        };
        (dir, scanner, SystemTime::now() + Duration::from_mins(1))
    }

    /// A scanner of `checks` keeping last good copies under `state`, as a
    /// fresh agent start makes one.
    fn scanner_over(checks: &Path, state: &Path) -> Scanner {
        Scanner {
            scope: Scope::new("web1"),
            directory: checks.to_path_buf(),
            files: HashMap::new(),
            kept: HashMap::new(),
            store: Store::new(state, "web1"),
            swept: false,
        }
    }

    /// A check directory and a state folder, both fresh.
    fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf, SystemTime) {
        let dir = tempfile::tempdir().unwrap();
        let checks = dir.path().join("checks.d");
        std::fs::create_dir(&checks).unwrap();
        let state = dir.path().join("state");
        (
            dir,
            checks,
            state,
            SystemTime::now() + Duration::from_mins(1),
        )
    }

    /// Writes a check file whose stamp differs from the previous version's
    /// (same length and second otherwise: the inode changes).
    fn rewrite(path: &Path, text: &str) {
        let _ = std::fs::remove_file(path);
        std::fs::write(path, text).unwrap();
    }

    fn copy(state: &Path, file: &str) -> PathBuf {
        state.join("last-good").join("web1").join(file)
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

    // See: #16
    #[test]
    fn a_file_that_stops_parsing_keeps_its_last_good_checks_beside_its_parse_fault() {
        let (_dir, checks, state, now) = dirs();
        let mut scanner = scanner_over(&checks, &state);
        let path = checks.join("app.yaml");
        rewrite(&path, "disk:\n  command: echo ok\n");
        scanner.scan(now);
        rewrite(&path, "disk: [unclosed\n");
        for _ in 0..2 {
            let got = summary(&scanner.scan(now));
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!(got[0].0, "//web1/app/");
            assert!(
                got[0]
                    .1
                    .starts_with(&format!("error parsing {}: ", path.display())),
                "{}",
                got[0].1
            );
            assert_eq!(got[1], ("//web1/app/disk".to_string(), String::new()));
        }
    }

    // See: #16
    #[test]
    fn a_file_that_never_parsed_keeps_nothing() {
        let (_dir, checks, state, now) = dirs();
        let mut scanner = scanner_over(&checks, &state);
        rewrite(&checks.join("app.yaml"), "disk: [unclosed\n");
        let got = summary(&scanner.scan(now));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "//web1/app/");
        assert!(!copy(&state, "app.yaml").exists());
    }

    // See: #16
    #[test]
    fn the_last_good_version_survives_a_restart() {
        let (_dir, checks, state, now) = dirs();
        let path = checks.join("app.yaml");
        rewrite(&path, "disk:\n  command: echo ok\n");
        scanner_over(&checks, &state).scan(now);
        assert_eq!(
            std::fs::read_to_string(copy(&state, "app.yaml")).unwrap(),
            "disk:\n  command: echo ok\n"
        );
        rewrite(&path, "disk: [unclosed\n");
        let got = summary(&scanner_over(&checks, &state).scan(now));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "//web1/app/");
        assert!(got[0].1.starts_with("error parsing "), "{}", got[0].1);
        assert_eq!(got[1], ("//web1/app/disk".to_string(), String::new()));
    }

    // See: #16
    #[test]
    fn an_invalid_entry_keeps_its_last_good_version_and_its_file_reports_the_error() {
        let (_dir, checks, state, now) = dirs();
        let path = checks.join("app.yaml");
        rewrite(
            &path,
            "disk:\n  command: echo ok\nweb:\n  command: echo one\n",
        );
        let mut running = scanner_over(&checks, &state);
        running.scan(now);
        let broken = "disk:\n  comand: echo ok\nweb:\n  command: echo two\n";
        rewrite(&path, broken);
        // Before and after a restart alike.
        for scanner in [&mut running, &mut scanner_over(&checks, &state)] {
            let got = scanner.scan(now);
            let names = summary(&got);
            assert_eq!(names.len(), 3, "{names:?}");
            assert_eq!(names[0].0, "//web1/app/");
            assert!(
                names[0].1.starts_with(&format!(
                    "error loading check {} [disk]: disk: unknown field `comand`",
                    path.display()
                )),
                "{}",
                names[0].1
            );
            let disk = got.iter().find(|c| c.name == "//web1/app/disk").unwrap();
            assert_eq!(disk.kind, CheckKind::Command("echo ok".into()));
            // The valid entry runs as the file says now.
            let web = got.iter().find(|c| c.name == "//web1/app/web").unwrap();
            assert_eq!(web.kind, CheckKind::Command("echo two".into()));
        }
        // The copy stays the version `disk` last loaded from.
        assert!(
            std::fs::read_to_string(copy(&state, "app.yaml"))
                .unwrap()
                .contains("command: echo ok")
        );
    }

    // See: #16
    #[test]
    fn an_invalid_entry_that_never_loaded_is_its_own_broken_check() {
        let (_dir, checks, state, now) = dirs();
        let mut scanner = scanner_over(&checks, &state);
        let path = checks.join("app.yaml");
        rewrite(&path, "disk:\n  command: echo ok\n");
        scanner.scan(now);
        rewrite(&path, "disk:\n  command: echo ok\nnew:\n  comand: x\n");
        let got = summary(&scanner.scan(now));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "//web1/app/disk");
        assert_eq!(got[1].0, "//web1/app/new");
        assert!(got[1].1.starts_with("error loading check "), "{}", got[1].1);
    }

    // See: #16
    #[test]
    fn removing_a_broken_file_removes_its_checks_and_its_copy() {
        let (_dir, checks, state, now) = dirs();
        let mut scanner = scanner_over(&checks, &state);
        let path = checks.join("app.yaml");
        rewrite(&path, "disk:\n  command: echo ok\n");
        scanner.scan(now);
        rewrite(&path, "disk: [unclosed\n");
        scanner.scan(now);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(summary(&scanner.scan(now)), []);
        assert!(!copy(&state, "app.yaml").exists());
        // Back as a broken file: nothing left to keep.
        rewrite(&path, "disk: [unclosed\n");
        assert_eq!(scanner.scan(now).len(), 1);
    }

    // See: #16
    #[test]
    fn copies_of_files_removed_while_stopped_are_swept_at_start() {
        let (_dir, checks, state, now) = dirs();
        rewrite(&checks.join("app.yaml"), "disk:\n  command: echo ok\n");
        rewrite(&checks.join("gone.yaml"), "x:\n  command: echo ok\n");
        scanner_over(&checks, &state).scan(now);
        assert!(copy(&state, "gone.yaml").exists());
        std::fs::remove_file(checks.join("gone.yaml")).unwrap();
        scanner_over(&checks, &state).scan(now);
        assert!(!copy(&state, "gone.yaml").exists());
        assert!(copy(&state, "app.yaml").exists());
    }

    // See: #16
    #[test]
    fn a_fixed_file_replaces_the_kept_copy() {
        let (_dir, checks, state, now) = dirs();
        let mut scanner = scanner_over(&checks, &state);
        let path = checks.join("app.yaml");
        rewrite(&path, "disk:\n  command: echo ok\n");
        scanner.scan(now);
        rewrite(&path, "disk: [unclosed\n");
        scanner.scan(now);
        rewrite(&path, "load:\n  command: echo ok\n");
        assert_eq!(
            summary(&scanner.scan(now)),
            [("//web1/app/load".to_string(), String::new())]
        );
        assert_eq!(
            std::fs::read_to_string(copy(&state, "app.yaml")).unwrap(),
            "load:\n  command: echo ok\n"
        );
    }

    // See: #16
    #[test]
    fn a_corrupt_or_unreadable_kept_copy_is_ignored() {
        let (_dir, checks, state, now) = dirs();
        let path = checks.join("app.yaml");
        rewrite(&path, "disk: [unclosed\n");
        std::fs::create_dir_all(copy(&state, "")).unwrap();
        std::fs::write(copy(&state, "app.yaml"), b"\xff\xfe not text").unwrap();
        let got = summary(&scanner_over(&checks, &state).scan(now));
        assert_eq!(got.len(), 1, "{got:?}");
        std::fs::write(copy(&state, "app.yaml"), "also: [broken\n").unwrap();
        let got = summary(&scanner_over(&checks, &state).scan(now));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "//web1/app/");
    }

    // See: #16
    #[test]
    fn a_state_folder_that_cannot_be_written_keeps_the_copy_in_memory() {
        let (dir, checks, _state, now) = dirs();
        // A file where the folder should be: nothing can be created under it.
        let state = dir.path().join("not-a-folder");
        std::fs::write(&state, "").unwrap();
        let mut scanner = scanner_over(&checks, &state);
        let path = checks.join("app.yaml");
        rewrite(&path, "disk:\n  command: echo ok\n");
        scanner.scan(now);
        rewrite(&path, "disk: [unclosed\n");
        assert_eq!(scanner.scan(now).len(), 2);
    }
}
