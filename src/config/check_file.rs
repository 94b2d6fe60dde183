//! Check files (SPEC §3): parsing one into `CheckDef`s, listing a check
//! directory and loading many files in parallel.
//!
//! A check file never fails to load: a file that does not parse becomes
//! one broken check, and a bad entry becomes a broken check of its own while
//! the other entries still load. A file that cannot be read (a dangling
//! symlink, a symlink loop, a directory named `x.yaml`, a FIFO, a file over
//! `CHECK_FILE_CAP`) is one broken check too, and so are two files with the
//! same stem (`good.yaml` beside `good.yml`), which would give their checks
//! the same names: neither file's checks run. Error details quote at most a
//! short excerpt of what the file says (`excerpt`), never the whole file.
//!
//! This module reads the options every check shares (`interval`, `retry`,
//! `thresholds`, ...) and the alerter routing, and hands the kind keys to
//! `checks::KindOptions`, where each kind validates its own options. The
//! YAML is read through `load`.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::Scope;
use super::load::{from_yaml, from_yaml_seed};
use crate::checks::http::RawHttp;
use crate::checks::meta::RawMeta;
use crate::checks::{CheckDef, CheckKind, DEFAULT_MONITOR_RETRY, KindOptions, positive_seconds};
use crate::thresholds::Thresholds;

/// One check entry as written.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a check (a mapping with one of `command`, `http`, `tcp`, `socket` or `meta`)"
)]
///
/// The kind keys come first (`checks::KindOptions` validates them);
/// the field order is the order serde lists them in an unknown-field error.
struct RawCheck {
    /// A plugin command line, run with `/bin/sh -c`.
    command: Option<String>,
    /// The HTTP probe's options.
    http: Option<RawHttp>,
    /// A TCP probe's `HOST:PORT`.
    tcp: Option<String>,
    /// A socket probe's `unix:PATH` or `tcp://HOST:PORT`.
    socket: Option<String>,
    /// The meta-check's options; `meta:` alone (or `{}`) takes the defaults.
    #[serde(default, deserialize_with = "crate::checks::meta::present")]
    meta: Option<RawMeta>,
    /// Ticks between runs (default 1).
    interval: Option<u64>,
    /// Retries after a failure before escalating (default 3).
    retry: Option<u32>,
    /// Ticks between runs while failing (default 1).
    retry_interval: Option<u64>,
    /// Seconds; overrides `agent.timeout`.
    #[serde(rename = "timeout")]
    timeout_secs: Option<f64>,
    /// Parse Nagios perfdata into metrics (default true).
    nagios_performance: Option<bool>,
    /// Threshold lines over the check's metrics.
    thresholds: Option<ThresholdLines>,
    /// Named alerter for this check's alerts.
    alerter: Option<String>,
    /// Consecutive runs with a broken monitor before its faults page
    /// (default 10; 0 never).
    monitor_retry: Option<u32>,
    /// `fleet` (default) or `per_agent` (SPEC §10).
    notify: Option<crate::checks::Notify>,
    /// `false`, `true` (the agent's levels) or `{high, low}` (SPEC §11).
    flap: Option<crate::flap::Setting>,
    /// Checks this one depends on (SPEC §11): `KEY`, `STEM/KEY` or `//...`.
    depends_on: Option<DependsOn>,
}

/// `depends_on:` as written: a list of check names, each checked for what
/// can be told without the other checks (so the error has its line).
struct DependsOn(Vec<String>);

impl<'de> Deserialize<'de> for DependsOn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        for name in &names {
            let why = if name.trim().is_empty() {
                Some("an empty check name")
            } else if name.contains('#') {
                Some("a fault name (`#`); name the check")
            } else if name.ends_with('/') {
                Some("a name ending with `/`")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(de::Error::custom(format_args!("`{name}` is {why}")));
            }
        }
        Ok(DependsOn(names))
    }
}

/// `thresholds:` as a multi-line string or a list of lines.
struct ThresholdLines(Vec<String>);

impl<'de> Deserialize<'de> for ThresholdLines {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LinesVisitor;
        impl<'de> Visitor<'de> for LinesVisitor {
            type Value = ThresholdLines;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a multi-line string or a list of threshold lines")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ThresholdLines, E> {
                Ok(ThresholdLines(text.lines().map(str::to_string).collect()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ThresholdLines, A::Error> {
                let mut lines = Vec::new();
                while let Some(line) = seq.next_element::<String>()? {
                    lines.push(line);
                }
                Ok(ThresholdLines(lines))
            }
        }
        deserializer.deserialize_any(LinesVisitor)
    }
}

/// The checks of one file: fine ones and the ones that only report their error.
fn checks_of_file(scope: &Scope, path: &Path, text: &str) -> Vec<CheckDef> {
    let agent = &scope.agent;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let display = path.display();
    // Fast path: the whole file at once.
    let entries: Result<Vec<(String, RawCheck)>, _> =
        from_yaml::<Option<OrderedMap<RawCheck>>>(text)
            .map(|map| map.map(|m| m.0).unwrap_or_default());
    let raw = match entries {
        Ok(entries) => entries
            .into_iter()
            .map(|(k, v)| (k, Ok(v)))
            .collect::<Vec<_>>(),
        Err(whole) => match from_yaml::<Option<OrderedMap<IgnoredAny>>>(text) {
            // Not even a mapping of keys: the file cannot be parsed.
            Err(e) => {
                return vec![CheckDef::broken(
                    format!("//{agent}/{stem}/"),
                    path,
                    format!("error parsing {display}: {}", excerpt(&e)),
                )];
            }
            // Some entry is bad: isolate each one, so the others still run.
            Ok(keys) => keys
                .map(|m| m.0)
                .unwrap_or_default()
                .into_iter()
                .map(|(key, _)| {
                    let one = OneEntry { key: key.clone() };
                    let result = from_yaml_seed(one, text);
                    let result = result.and_then(|v| v.ok_or_else(|| whole.clone()));
                    (key, result)
                })
                .collect(),
        },
    };
    // Lines of `depends_on`, for the errors found once every check is known.
    let lines = if text.contains("depends_on") {
        depends_on_lines(text)
    } else {
        std::collections::HashMap::new()
    };
    raw.into_iter()
        .map(|(key, entry)| {
            let line = lines.get(key.as_str()).copied();
            let name = if key.starts_with("//") {
                key.clone()
            } else {
                format!("//{agent}/{stem}/{key}")
            };
            match entry.and_then(|raw| raw.validate(&name, path, scope)) {
                Ok(mut check) => {
                    check.depends_on_line = line;
                    check
                }
                Err(detail) => CheckDef::broken(
                    name,
                    path,
                    format!(
                        "error loading check {display} [{}]: {}",
                        excerpt(&key),
                        excerpt(&detail)
                    ),
                ),
            }
        })
        .collect()
}

/// The line (1-based) of each top-level entry's `depends_on` key, found
/// in the text: serde_yaml gives no positions to values that parsed, and
/// a dependency's error (an unknown name, a cycle) is found only once
/// every check file is read. Block style (`depends_on:` on its own line
/// under the entry) and flow style (`KEY: {..., depends_on: [...]}`) are
/// found; anything else has no line.
fn depends_on_lines(text: &str) -> std::collections::HashMap<&str, usize> {
    let mut lines = std::collections::HashMap::new();
    let mut entry: Option<&str> = None;
    for (number, line) in text.lines().enumerate() {
        let top = !line.starts_with([' ', '\t', '#', '-']) && !line.is_empty();
        let mut rest = line;
        if top {
            let Some((key, after)) = split_key(line) else {
                entry = None;
                continue;
            };
            entry = Some(key);
            rest = after;
        }
        let Some(key) = entry else {
            continue;
        };
        // A key: at the start of the line or after `{` or `,`, then `:`.
        let mentions = rest.match_indices("depends_on").any(|(at, _)| {
            let before = rest[..at].trim_end().chars().last();
            matches!(before, None | Some('{' | ','))
                && rest[at + "depends_on".len()..]
                    .trim_start()
                    .starts_with(':')
        });
        if mentions {
            lines.entry(key).or_insert(number + 1);
        }
    }
    lines
}

/// A top-level line's key (unquoted) and what follows its colon.
fn split_key(line: &str) -> Option<(&str, &str)> {
    for quote in ['"', '\''] {
        if let Some(body) = line.strip_prefix(quote) {
            let end = body.find(quote)?;
            let after = body[end + 1..].trim_start().strip_prefix(':')?;
            return Some((&body[..end], after));
        }
    }
    let at = line
        .find(": ")
        .or_else(|| line.trim_end().strip_suffix(':').map(str::len))?;
    Some((line[..at].trim_end(), line.get(at + 1..).unwrap_or("")))
}

/// Longest quoted value (`"..."` or `` `...` ``) an error detail keeps whole, in bytes.
const QUOTE_MAX: usize = 80;
/// What a longer quoted value keeps of its start, in bytes at most.
const QUOTE_KEEP: usize = 40;
/// Longest error detail kept whole once its quotes are short, in bytes.
const DETAIL_MAX: usize = 600;
/// Longest location suffix (` at line L column C`) kept after a cut.
const LOCATION_MAX: usize = 120;

/// An error detail quoting at most a short excerpt of what the file says.
///
/// serde quotes the value it did not expect whole (`invalid type: string
/// "..."`): with a 5 MB scalar that is the whole file, secrets included, in
/// a fault that is stored, logged and sent to PagerDuty. Each long quoted
/// value keeps its start and says how much was cut; should the detail still
/// be long, it keeps its start and its location.
fn excerpt(detail: &str) -> String {
    let short = shorten_quotes(detail);
    if short.len() <= DETAIL_MAX {
        return short;
    }
    let location = short
        .rfind(" at line ")
        .filter(|at| short.len() - at <= LOCATION_MAX)
        .map_or("", |at| &short[at..]);
    let mut cut = DETAIL_MAX - LOCATION_MAX;
    while !short.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{} ... [{} bytes cut]{location}",
        &short[..cut],
        short.len() - cut - location.len()
    )
}

/// `text` with every quoted value longer than `QUOTE_MAX` bytes cut to its
/// first `QUOTE_KEEP` bytes and `... [N bytes cut]`.
fn shorten_quotes(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len().min(DETAIL_MAX));
    let mut rest = text;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = &rest[open..=open];
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        let Some(close) = closing_quote(body, quote) else {
            rest = body;
            break;
        };
        let inner = &body[..close];
        if inner.len() > QUOTE_MAX {
            let mut cut = QUOTE_KEEP;
            while !inner.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&inner[..cut]);
            let _ = write!(out, "... [{} bytes cut]", inner.len() - cut);
        } else {
            out.push_str(inner);
        }
        out.push_str(quote);
        rest = &body[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Where a quoted value that starts `body` ends: the next backquote, or the
/// next double quote not escaped with a backslash (serde quotes strings as
/// Rust's `Debug` does).
fn closing_quote(body: &str, quote: &str) -> Option<usize> {
    if quote == "`" {
        return body.find('`');
    }
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

impl RawCheck {
    /// Validates one entry into the check named `name`. Pure.
    ///
    /// # Errors
    /// The first problem: a bad entry is one broken check with one message.
    fn validate(self, name: &str, path: &Path, scope: &Scope) -> Result<CheckDef, String> {
        if let Some(alerter) = &self.alerter
            && !scope.alerters.contains(alerter)
        {
            return Err(format!(
                "no alerter named `{alerter}` (known: {})",
                scope
                    .alerters
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let kind = KindOptions {
            command: self.command,
            http: self.http,
            tcp: self.tcp,
            socket: self.socket,
            meta: self.meta,
        }
        .validate()?;
        let interval = self.interval.unwrap_or(1);
        let retry_interval = self.retry_interval.unwrap_or(1);
        if interval == 0 {
            return Err("`interval` must be at least 1".into());
        }
        if retry_interval == 0 {
            return Err("`retry_interval` must be at least 1".into());
        }
        let timeout = self
            .timeout_secs
            .map(|secs| positive_seconds("timeout", secs))
            .transpose()?;
        let nagios_performance = self.nagios_performance.unwrap_or(true);
        let thresholds = match self.thresholds {
            None => Thresholds::default(),
            Some(ThresholdLines(lines)) => {
                if !nagios_performance && matches!(kind, CheckKind::Command(_)) {
                    return Err(
                        "`thresholds` need metrics, but `nagios_performance` is false".into(),
                    );
                }
                Thresholds::parse(&lines).map_err(|e| format!("thresholds: {e}"))?
            }
        };
        Ok(CheckDef {
            name: name.to_string(),
            file: path.to_path_buf(),
            kind,
            interval,
            retry: self.retry.unwrap_or(3),
            retry_interval,
            timeout,
            nagios_performance,
            thresholds,
            alerter: self.alerter,
            monitor_retry: self.monitor_retry.unwrap_or(DEFAULT_MONITOR_RETRY),
            notify: self.notify.unwrap_or_default(),
            flap: self.flap.unwrap_or_default(),
            depends_on: self.depends_on.map(|d| d.0).unwrap_or_default(),
            depends_on_line: None,
        })
    }
}

/// A YAML mapping read in document order.
struct OrderedMap<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of check names to checks")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedMap<V>, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                // A set, not a scan of `entries`: a file of 1,000 checks
                // would otherwise compare half a million key pairs.
                let mut seen = HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value()?;
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format_args!("duplicate check `{key}`")));
                    }
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

/// Deserializes one entry of a check file and skips the others.
struct OneEntry {
    key: String,
}

impl<'de> DeserializeSeed<'de> for OneEntry {
    type Value = Option<RawCheck>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OneEntry {
    type Value = Option<RawCheck>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of check names to checks")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.key && found.is_none() {
                found = Some(map.next_value::<RawCheck>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Largest check file read, in bytes: a bigger one is a broken check (a
/// deployment's checks fit in far less; a runaway file must not cost the
/// agent its memory, SPEC §17).
const CHECK_FILE_CAP: u64 = 16 * 1024 * 1024;

/// What reading one listed check file gave.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// The file was read: its checks, broken ones included, and its text
    /// (`None` when it is not UTF-8), which the agent keeps as the file's
    /// last good version when it loads cleanly.
    Read(Vec<CheckDef>, Option<String>),
    /// The file cannot be read (a dangling symlink, a symlink loop, not a
    /// regular file, too big, no permission): its broken check
    /// `//AGENT/STEM/`. The agent keeps the file's last good checks.
    Unreadable(Box<CheckDef>),
    /// The file was removed between listing and reading: as if never listed.
    Gone,
}

/// Loads one check file; never fails: problems become broken checks.
#[must_use]
pub(crate) fn load_check_file(scope: &Scope, path: &Path) -> Vec<CheckDef> {
    match read_check_file(scope, path) {
        Loaded::Read(checks, _) => checks,
        Loaded::Unreadable(broken) => vec![*broken],
        Loaded::Gone => Vec::new(),
    }
}

/// Reads and parses one check file, telling an unreadable file from a
/// broken one.
#[must_use]
pub(crate) fn read_check_file(scope: &Scope, path: &Path) -> Loaded {
    // A command runs in its file's folder: the folder of a bare `x.yaml`
    // is the empty path, where no process starts. See: #22
    let absolute = std::path::absolute(path);
    let path = absolute.as_deref().unwrap_or(path);
    let broken = |detail: String| {
        CheckDef::broken(
            placeholder(scope, path),
            path,
            format!("error parsing {}: {detail}", path.display()),
        )
    };
    match read_text(path) {
        Ok(Ok(text)) => Loaded::Read(checks_of_file(scope, path, &text), Some(text)),
        // Bytes that are not UTF-8 are what the file says, like bad YAML.
        Ok(Err(e)) => Loaded::Read(vec![broken(format!("not UTF-8 text: {e}"))], None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.symlink_metadata().is_err() => {
            Loaded::Gone
        }
        Err(e) => Loaded::Unreadable(Box::new(broken(why_unreadable(path, &e)))),
    }
}

/// Parses `text` as the check file at `path` says it (the agent's kept
/// last good copy of that file, re-read at start so that an upgrade reads
/// it as it reads the file itself). Never fails, as `read_check_file`.
#[must_use]
pub(crate) fn parse_check_text(scope: &Scope, path: &Path, text: &str) -> Vec<CheckDef> {
    let absolute = std::path::absolute(path);
    let path = absolute.as_deref().unwrap_or(path);
    checks_of_file(scope, path, text)
}

/// The name of the check that reports a file-level problem: `//AGENT/STEM/`.
pub(crate) fn placeholder(scope: &Scope, path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("//{}/{stem}/", scope.agent)
}

/// The file's text, if it is a regular file of at most `CHECK_FILE_CAP`
/// bytes. Checked before opening: reading a FIFO would block the scan,
/// and a device such as `/dev/zero` would never end.
fn read_text(path: &Path) -> std::io::Result<Result<String, std::string::FromUtf8Error>> {
    use std::io::{Error, Read as _};
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(Error::other("a directory, not a check file"));
    }
    if !meta.is_file() {
        return Err(Error::other(
            "not a regular file (a FIFO, socket or device)",
        ));
    }
    let too_big = |len: u64| {
        Error::other(format!(
            "{len} bytes, more than the {} MiB a check file may have",
            CHECK_FILE_CAP / 1024 / 1024
        ))
    };
    if meta.len() > CHECK_FILE_CAP {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(CHECK_FILE_CAP + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > CHECK_FILE_CAP {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(String::from_utf8(bytes))
}

/// Why a listed file cannot be read, in the user's words.
fn why_unreadable(path: &Path, error: &std::io::Error) -> String {
    if error.raw_os_error() == Some(libc::ELOOP) {
        return "a symlink loop (too many levels of symbolic links)".into();
    }
    if error.kind() == std::io::ErrorKind::NotFound
        && let Ok(target) = std::fs::read_link(path)
    {
        return format!("a dangling symlink to `{}`", target.display());
    }
    error.to_string()
}

/// The `*.yaml`/`*.yml` entries of a check directory, sorted: files, and
/// whatever else bears such a name (a dangling symlink, a directory), which
/// loads as a broken check rather than vanishing silently. Hidden files
/// (editor swap files, `.x.yaml`) are skipped.
///
/// # Errors
/// When the directory cannot be listed.
pub(crate) fn check_files(directory: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Splits out check files whose stems clash (`good.yaml` beside
/// `good.yml`). SPEC §3 makes the stem unique on the host: both files would
/// name their checks `//AGENT/good/KEY`, and running either would let a
/// rename decide which one pages. So neither runs, and each clash is one
/// broken check `//AGENT/STEM/` naming the files.
///
/// Returns the files that may load, in order, and the clashes.
#[must_use]
pub(crate) fn split_stem_clashes(
    scope: &Scope,
    paths: Vec<PathBuf>,
) -> (Vec<PathBuf>, Vec<CheckDef>) {
    let mut by_stem: std::collections::BTreeMap<String, Vec<PathBuf>> =
        std::collections::BTreeMap::new();
    for path in paths {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        by_stem.entry(stem).or_default().push(path);
    }
    let mut kept = Vec::new();
    let mut clashes = Vec::new();
    for (stem, mut files) in by_stem {
        if files.len() == 1 {
            kept.append(&mut files);
            continue;
        }
        let names = files
            .iter()
            .map(|f| format!("`{}`", f.display()))
            .collect::<Vec<_>>()
            .join(" and ");
        clashes.push(CheckDef::broken(
            placeholder(scope, &files[0]),
            &files[0],
            format!(
                "check files {names} have the same stem `{stem}`: neither runs until one is renamed or removed"
            ),
        ));
    }
    kept.sort();
    (kept, clashes)
}

/// Files per thread at least before `load_check_files` uses more threads.
const FILES_PER_THREAD: usize = 8;

/// Loads check files (each as `read_check_file`), in their order, on as
/// many threads as there are cores when there are many files: loading
/// 50,000 checks is mostly YAML parsing.
#[must_use]
pub(crate) fn load_check_files(scope: &Scope, paths: &[&Path]) -> Vec<Loaded> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let threads = cores.min(paths.len() / FILES_PER_THREAD).max(1);
    let load = |part: &[&Path]| -> Vec<Loaded> {
        part.iter()
            .map(|path| read_check_file(scope, path))
            .collect()
    };
    if threads == 1 {
        return load(paths);
    }
    let chunk = paths.len().div_ceil(threads);
    std::thread::scope(|threads| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| threads.spawn(move || load(part)))
            .collect();
        workers
            .into_iter()
            // A panic while parsing is a bug: raise it here.
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Loads every check file of a directory; stem clashes and unreadable
/// files are broken checks (so `cimaa validate` reports them).
///
/// # Errors
/// When the directory cannot be listed.
pub(crate) fn load_check_dir(scope: &Scope, directory: &Path) -> std::io::Result<Vec<CheckDef>> {
    let (files, mut checks) = split_stem_clashes(scope, check_files(directory)?);
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    for loaded in load_check_files(scope, &paths) {
        match loaded {
            Loaded::Read(read, _) => checks.extend(read),
            Loaded::Unreadable(broken) => checks.push(*broken),
            Loaded::Gone => {}
        }
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_line_of_each_entrys_depends_on_is_found() {
        let text = "a:\n  command: x\n  depends_on: [b]\n\"//web\":\n  command: y\n  # depends_on: no\n  depends_on:\n    - a\nc: {command: z, depends_on: [a]}\nd:\n  command: \"depends_on: not a key\"\n";
        let lines = depends_on_lines(text);
        let mut got: Vec<(&str, usize)> = lines.into_iter().collect();
        got.sort_unstable();
        assert_eq!(got, [("//web", 7), ("a", 3), ("c", 9)]);
    }

    use super::*;
    use crate::checks::http::{HttpCheck, Method};
    use reqwest::Url;
    use std::time::Duration;

    fn load(text: &str) -> Vec<CheckDef> {
        checks_of_file(&Scope::new("web1"), Path::new("/c/app.yaml"), text)
    }

    #[test]
    fn relative_and_absolute_check_names() {
        let checks = load("disk:\n  command: echo ok\n//meta:\n  command: echo ok\n");
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["//web1/app/disk", "//meta"]);
    }

    #[test]
    fn a_bad_entry_is_isolated_and_the_others_still_load() {
        let checks = load("good:\n  command: echo ok\nbad:\n  command: echo ok\n  intervl: 5\n");
        assert_eq!(checks[0].kind, CheckKind::Command("echo ok".into()));
        assert_eq!(
            checks[1].kind,
            CheckKind::Broken(
                "error loading check /c/app.yaml [bad]: bad: unknown field `intervl`, expected one of `command`, `http`, `tcp`, `socket`, `meta`, `interval`, `retry`, `retry_interval`, `timeout`, `nagios_performance`, `thresholds`, `alerter`, `monitor_retry`, `notify`, `flap`, `depends_on` at line 5 column 3".into()
            )
        );
    }

    #[test]
    fn a_file_that_does_not_parse_is_one_broken_check() {
        let checks = load("good:\n  command: [unclosed\n");
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].name, "//web1/app/");
        assert!(
            matches!(&checks[0].kind, CheckKind::Broken(m) if m.starts_with("error parsing /c/app.yaml: ")),
            "{:?}",
            checks[0].kind
        );
    }

    #[test]
    fn semantic_problems_of_an_entry_are_reported() {
        let cases = [
            ("x:\n  interval: 2\n", "found none"),
            ("x:\n  command: a\n  tcp: b\n", "found `command`, `tcp`"),
            (
                "x:\n  command: a\n  nagios_performance: false\n  thresholds: a warning > 1\n",
                "`nagios_performance` is false",
            ),
            (
                "x:\n  command: a\n  nagios_performance: maybe\n",
                "nagios_performance: invalid type",
            ),
            (
                "x:\n  command: a\n  thresholds: a warnin > 1\n",
                "thresholds: line 1",
            ),
            (
                "x:\n  command: a\n  interval: 0\n",
                "`interval` must be at least 1",
            ),
        ];
        for (text, want) in cases {
            let checks = load(text);
            match &checks[0].kind {
                CheckKind::Broken(message) => assert!(message.contains(want), "{text}: {message}"),
                other => panic!("{text}: expected a broken check, got {other:?}"),
            }
        }
    }

    // See: #18
    #[test]
    fn a_huge_broken_file_is_quoted_as_a_short_excerpt() {
        // One 5 MB scalar: serde quotes the value it did not expect whole.
        let text = format!("{} --password hunter2\n", "a".repeat(5_000_000));
        let checks = load(&text);
        let CheckKind::Broken(message) = &checks[0].kind else {
            panic!("{:?}", checks[0].name)
        };
        assert!(message.len() < 400, "{} bytes", message.len());
        assert!(!message.contains("hunter2"), "{message}");
        let start = format!("\"{}... [", "a".repeat(40));
        assert!(
            message.starts_with("error parsing /c/app.yaml: invalid type: string ")
                && message.contains(&start)
                && message.contains(" bytes cut]\", expected a mapping of check names to checks"),
            "{message}"
        );
    }

    // See: #18
    #[test]
    fn long_quoted_values_are_cut_and_the_rest_of_the_detail_kept() {
        let long = "é".repeat(100);
        let cases = [
            (
                "unknown field `x`, expected `a`".to_string(),
                "unknown field `x`, expected `a`".to_string(),
            ),
            (
                format!(
                    "invalid type: string \"{long}\\\"{long}\", expected a check at line 2 column 3"
                ),
                format!(
                    "invalid type: string \"{}... [362 bytes cut]\", expected a check at line 2 column 3",
                    "é".repeat(20)
                ),
            ),
            (
                format!("unknown field `{long}`"),
                format!("unknown field `{}... [160 bytes cut]`", "é".repeat(20)),
            ),
            (
                "an open quote \"never closed".to_string(),
                "an open quote \"never closed".to_string(),
            ),
        ];
        for (detail, want) in cases {
            assert_eq!(excerpt(&detail), want);
        }
    }

    // See: #18
    #[test]
    fn a_huge_bad_entry_is_quoted_as_a_short_excerpt() {
        let text = format!("x:\n  command: a\n  retry: {}\n", "9".repeat(1_000_000));
        let CheckKind::Broken(message) = &load(&text)[0].kind else {
            panic!("expected a broken check")
        };
        assert!(message.len() < 400, "{} bytes", message.len());
        assert!(
            message.starts_with("error loading check /c/app.yaml [x]: "),
            "{message}"
        );
    }

    // See: #18
    #[test]
    fn messages_name_what_the_user_wrote_not_internal_types() {
        let cases = [
            (
                "x: 5\n",
                "error loading check /c/app.yaml [x]: x: invalid type: integer `5`, expected a check (a mapping with one of `command`, `http`, `tcp`, `socket` or `meta`) at line 1 column 4",
            ),
            (
                "x:\n  http: http://h/\n",
                "error loading check /c/app.yaml [x]: x.http: invalid type: string \"http://h/\", expected the `http` options (a mapping with `url`) at line 2 column 9",
            ),
        ];
        for (text, want) in cases {
            match &load(text)[0].kind {
                CheckKind::Broken(message) => {
                    assert!(
                        !message.contains("Raw") && !message.contains("struct"),
                        "{message}"
                    );
                    assert_eq!(message, want, "{text}");
                }
                other => panic!("{text}: expected a broken check, got {other:?}"),
            }
        }
    }

    // See: #18
    #[test]
    fn a_stem_clash_is_one_broken_check_for_validate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.yaml"), "a:\n  command: echo a\n").unwrap();
        std::fs::write(dir.path().join("good.yml"), "a:\n  command: echo b\n").unwrap();
        let checks = load_check_dir(&Scope::new("web1"), dir.path()).unwrap();
        assert_eq!(checks.len(), 1, "{checks:?}");
        assert_eq!(checks[0].name, "//web1/good/");
        let CheckKind::Broken(message) = &checks[0].kind else {
            panic!("{:?}", checks[0].kind)
        };
        assert!(message.contains("good.yaml` and `"), "{message}");
        assert!(
            message.contains("good.yml` have the same stem `good`"),
            "{message}"
        );
    }

    // See: #22
    #[test]
    fn meta_checks_load_with_the_meta_check_defaults() {
        use crate::checks::meta::MetaCheck;
        let checks = load(
            "a:\n  meta:\nb:\n  meta: null\nc:\n  meta: {}\nd:\n  meta: {warn: 1.5, error: 3, squelch: 0}\n",
        );
        let kinds: Vec<&CheckKind> = checks.iter().map(|c| &c.kind).collect();
        let defaults = CheckKind::Meta(MetaCheck::default());
        let given = CheckKind::Meta(MetaCheck {
            warn_intervals: 1.5,
            error_intervals: 3.0,
            squelch_minutes: 0,
            expiring_minutes: 15,
            max_inactive: 5,
            expect: None,
        });
        assert_eq!(kinds, [&defaults, &defaults, &defaults, &given]);
    }

    // See: #22
    #[test]
    fn bad_meta_options_are_load_errors_with_key_and_line() {
        let cases = [
            (
                "x:\n  meta: {fold: -5}\n",
                "error loading check /c/app.yaml [x]: x.meta.fold: `-5` is negative; use a number of agents (a whole number, 0 or more) at line 2 column 16",
            ),
            (
                "x:\n  meta:\n    expiring: -5\n",
                "error loading check /c/app.yaml [x]: x.meta.expiring: `-5` is negative; use a whole number of minutes (0 or more) at line 3 column 15",
            ),
            (
                "x:\n  meta:\n    expect: {file: a}\n",
                "error loading check /c/app.yaml [x]: x.meta.expect: invalid type: map, expected the absolute path of the expect file at line 3 column 13",
            ),
            (
                "x:\n  meta: {warn: .nan}\n",
                "error loading check /c/app.yaml [x]: x.meta.warn: `NaN` is not a number of base intervals (0 or more) at line 2 column 16",
            ),
            (
                "x:\n  meta: {warn: two}\n",
                "error loading check /c/app.yaml [x]: x.meta.warn: invalid type: string \"two\", expected a number of base intervals (0 or more) at line 2 column 16",
            ),
            (
                "x:\n  meta: {squelch: 1.5}\n",
                "error loading check /c/app.yaml [x]: x.meta.squelch: `1.5` is not a whole number of minutes (0 or more) at line 2 column 19",
            ),
            (
                "x:\n  meta: {squelch: -5}\n",
                "error loading check /c/app.yaml [x]: x.meta.squelch: `-5` is negative; use a whole number of minutes (0 or more) at line 2 column 19",
            ),
            (
                "x:\n  meta: {warn: 6}\n",
                "error loading check /c/app.yaml [x]: meta.error: `5` is below `meta.warn` (`6`); a silent agent is a WARNING after `warn` base intervals and an ERROR after `error`",
            ),
            (
                "x:\n  meta: 5\n",
                "error loading check /c/app.yaml [x]: x.meta: invalid type: integer `5`, expected the `meta` options (a mapping with `warn`, `error`, `squelch`, `fold`, `expiring`, `expect`) at line 2 column 9",
            ),
            (
                "x:\n  meta: {}\n  command: echo\n",
                "error loading check /c/app.yaml [x]: a check needs exactly one of `command`, `http`, `tcp`, `socket`, `meta`; found `command`, `meta`",
            ),
            (
                "x:\n  command: echo\n  monitor_retry: -1\n",
                "error loading check /c/app.yaml [x]: x.monitor_retry: invalid type: integer `-1`, expected u32 at line 3 column 18",
            ),
        ];
        for (text, want) in cases {
            match &load(text)[0].kind {
                CheckKind::Broken(message) => assert_eq!(message, want, "{text}"),
                other => panic!("{text}: expected a broken check, got {other:?}"),
            }
        }
    }

    // See: #22
    #[test]
    fn monitor_retry_defaults_to_ten() {
        let checks = load("a:\n  command: echo\nb:\n  command: echo\n  monitor_retry: 0\n");
        let retries: Vec<u32> = checks.iter().map(|c| c.monitor_retry).collect();
        assert_eq!(retries, [10, 0]);
    }

    #[test]
    fn thresholds_may_be_a_list() {
        let checks =
            load("x:\n  command: a\n  thresholds:\n    - a warning > 1\n    - b ? error < 2\n");
        assert!(matches!(checks[0].kind, CheckKind::Command(_)));
        assert!(!checks[0].thresholds.is_empty());
    }

    #[test]
    fn http_options_load_with_their_defaults() {
        let checks = load(
            "a:\n  http: {url: \"http://127.0.0.1:8080/health\"}\nb:\n  http:\n    url: https://example.com/\n    method: HEAD\n    status: [200, 300-399]\n    headers: {Host: example.org, X-Probe: cimaa}\n    timeout: 2.5\n    follow_redirects: true\n    tls_verify: false\n    cert_expiry_days: 14\n    body_limit: 64 KiB\n  timeout: 9\n",
        );
        let CheckKind::Http(a) = &checks[0].kind else {
            panic!("{:?}", checks[0].kind)
        };
        assert_eq!(
            **a,
            HttpCheck::new(Url::parse("http://127.0.0.1:8080/health").unwrap())
        );
        let CheckKind::Http(b) = &checks[1].kind else {
            panic!("{:?}", checks[1].kind)
        };
        assert_eq!(b.method, Method::Head);
        assert_eq!(b.status.to_string(), "200, 300-399");
        assert_eq!(b.headers[0].0, "host");
        assert_eq!(b.headers[0].1, "example.org");
        assert_eq!(b.timeout, Some(Duration::from_millis(2500)));
        assert!(b.follow_redirects && !b.tls_verify);
        assert_eq!((b.cert_expiry_days, b.body_limit), (Some(14), 65_536));
        assert_eq!(checks[1].timeout, Some(Duration::from_secs(9)));
    }

    #[test]
    fn status_ranges_may_be_written_plainly() {
        for (status, shown) in [
            ("200", "200"),
            ("200-399", "200-399"),
            ("'204, 301-302'", "204, 301-302"),
        ] {
            let checks = load(&format!(
                "a:\n  http: {{url: 'http://h/', status: {status}}}\n"
            ));
            let CheckKind::Http(http) = &checks[0].kind else {
                panic!("{status}: {:?}", checks[0].kind)
            };
            assert_eq!(http.status.to_string(), shown);
        }
    }

    #[test]
    fn tcp_and_socket_targets_load() {
        let checks = load(
            "a:\n  tcp: 127.0.0.1:5432\nb:\n  socket: unix:/run/app.sock\nc:\n  socket: tcp://localhost:9000\n",
        );
        let kinds: Vec<String> = checks
            .iter()
            .map(|c| match &c.kind {
                CheckKind::Tcp(t) => format!("tcp {t}"),
                CheckKind::Socket(s) => format!("socket {s}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "tcp 127.0.0.1:5432",
                "socket unix:/run/app.sock",
                "socket tcp://localhost:9000"
            ]
        );
    }

    #[test]
    fn bad_probe_options_are_load_errors_with_key_and_line() {
        let cases = [
            (
                "x:\n  http:\n    url: http://h/\n    urll: http://h/\n",
                "error loading check /c/app.yaml [x]: x.http: unknown field `urll`, expected one of `url`, `method`, `status`, `contains`, `headers`, `timeout`, `follow_redirects`, `tls_verify`, `cert_expiry_days`, `body_limit` at line 4 column 5",
            ),
            (
                "x:\n  http:\n    url: http://h/\n    method: POST\n",
                "error loading check /c/app.yaml [x]: x.http.method: unknown method `POST` (use GET or HEAD) at line 4 column 13",
            ),
            (
                "x:\n  http:\n    url: http://h/\n    status: 2xx\n",
                "error loading check /c/app.yaml [x]: x.http.status: `2xx` is not a status code (100-599) or a range like `200-399` at line 4 column 13",
            ),
            (
                "x:\n  http:\n    url: http://h/\n    status: [200, 500-400]\n",
                "error loading check /c/app.yaml [x]: x.http.status[1]: the range `500-400` is reversed at line 4 column 19",
            ),
            (
                "x:\n  http: {url: 'not a url'}\n",
                "error loading check /c/app.yaml [x]: http.url: `not a url` is not a valid URL: relative URL without a base",
            ),
            (
                "x:\n  http: {url: 'ftp://h/'}\n",
                "error loading check /c/app.yaml [x]: http.url: `ftp://h/` must start with http:// or https://",
            ),
            (
                "x:\n  http: {url: 'http://h/', method: HEAD, contains: ok}\n",
                "error loading check /c/app.yaml [x]: http.contains: a HEAD response has no body to search; use `method: GET`",
            ),
            (
                "x:\n  http: {url: 'http://h/', cert_expiry_days: 10}\n",
                "error loading check /c/app.yaml [x]: http.cert_expiry_days: `http://h/` is not an https URL",
            ),
            (
                "x:\n  http: {url: 'http://h/', body_limit: 2 parsecs}\n",
                "error loading check /c/app.yaml [x]: x.http.body_limit: unknown unit `parsecs` in `2 parsecs` (use B, KiB, MiB, GiB, kB, MB or GB) at line 2 column 40",
            ),
            (
                "x:\n  http: {url: 'http://h/', headers: {'bad header': x}}\n",
                "error loading check /c/app.yaml [x]: http.headers: `bad header` is not a valid header name",
            ),
            (
                "x:\n  http: {url: 'http://h/', timeout: 0}\n",
                "error loading check /c/app.yaml [x]: `http.timeout` must be a positive number of seconds, got `0`",
            ),
            (
                "x:\n  tcp: localhost\n",
                "error loading check /c/app.yaml [x]: tcp: `localhost` is not HOST:PORT: no port",
            ),
            (
                "x:\n  socket: /run/app.sock\n",
                "error loading check /c/app.yaml [x]: socket: `/run/app.sock` is not `unix:PATH` or `tcp://HOST:PORT`",
            ),
            (
                "x:\n  http: {url: 'http://h/'}\n  tcp: h:1\n",
                "error loading check /c/app.yaml [x]: a check needs exactly one of `command`, `http`, `tcp`, `socket`, `meta`; found `http`, `tcp`",
            ),
        ];
        for (text, want) in cases {
            match &load(text)[0].kind {
                CheckKind::Broken(message) => assert_eq!(message, want, "{text}"),
                other => panic!("{text}: expected a broken check, got {other:?}"),
            }
        }
    }
}
