//! Squelches: regex silences set by people (SPEC §1, §5), pure parts.
//!
//! Owns validating a new squelch (regex compiles within the limits, does not
//! match every name, reason given), parsing `--expires` durations and
//! matching fault names. Storage is the `Db`'s; the agent reads the active
//! regexes once per tick and uses `Matcher`.
//!
//! Regexes come from the shared database, which other agents and tools
//! write (SPEC §17): each one is compiled with a size limit, so a hostile
//! or mistaken one costs bounded memory and time, and is rejected (and
//! reported) rather than compiled.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use serde::{Deserialize, Serialize};

/// A squelch: a regex searched anywhere in fault names; matching faults do not page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Squelch {
    pub regex: String,
    pub reason: String,
    pub user: String,
    /// When it was set (epoch seconds).
    pub time: i64,
    pub permanent: bool,
    /// When it stops matching (epoch seconds), if ever.
    pub expires: Option<i64>,
}

impl Squelch {
    /// True while the squelch is in force at `now`.
    #[must_use]
    pub fn active(&self, now: i64) -> bool {
        self.expires.is_none_or(|expires| now < expires)
    }
}

/// Longest squelch regex accepted, in characters: a fault name is at most a
/// few hundred characters, so a longer pattern is a mistake or an attack.
pub(crate) const MAX_REGEX_CHARS: usize = 1024;

/// Memory one compiled squelch regex may take (the regex crate's default is
/// 10 MiB; a 1 MB pattern under it made agents use hundreds of MB).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Memory the compiled set of every squelch may take; past it the agent
/// matches with the single regexes instead.
const SET_SIZE_LIMIT: usize = 8 << 20;

/// Cache of the lazy DFA of one regex or of the set.
const DFA_SIZE_LIMIT: usize = 2 << 20;

/// Characters of a rejected regex quoted in messages and logs.
const QUOTED_CHARS: usize = 80;

/// Why a squelch was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    #[error("invalid squelch regex `{regex}`: {detail}")]
    Regex { regex: String, detail: String },
    #[error(
        "squelch regex is {chars} characters long; the limit is {MAX_REGEX_CHARS} (`{excerpt}`)"
    )]
    TooLong { chars: usize, excerpt: String },
    #[error(
        "squelch regex `{regex}` is too large once compiled (limit {REGEX_SIZE_LIMIT} bytes); use a simpler pattern"
    )]
    TooLarge { regex: String },
    #[error(
        "squelch regex `{0}` matches the empty string, so it matches every fault name and would silence every alert; to silence all checks on purpose, use `^//`"
    )]
    MatchesEverything(String),
    #[error(
        "`--permanent` and `--expires` contradict each other: a permanent squelch never expires"
    )]
    PermanentExpires,
    #[error("a squelch needs a reason, so the next person knows why alerts are silent")]
    NoReason,
    #[error("invalid duration `{0}`: use a number and a unit, e.g. `90s`, `30m`, `2h`, `1d`")]
    Duration(String),
    #[error(
        "`--expires {asked}` is longer than `squelch.max_duration` ({max}) in {config}; nothing stored"
    )]
    TooLongLived {
        asked: String,
        max: String,
        config: String,
    },
    #[error(
        "a squelch needs `--expires DURATION` (or `--permanent`): {config} sets `squelch.require_expiry` and no `squelch.default_expiry`; nothing stored"
    )]
    ExpiryRequired { config: String },
}

/// The `squelch:` section of the agent configuration (SPEC §12): the
/// limits the CLI puts on new squelches. Durations in whole seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// An `--expires` longer than this is refused.
    pub max_duration: Option<i64>,
    /// A non-permanent squelch needs an expiry (`--expires` or
    /// `default_expiry`).
    pub require_expiry: bool,
    /// The lifetime of a non-permanent squelch given without `--expires`.
    pub default_expiry: Option<i64>,
}

impl Policy {
    /// The lifetime in seconds of a new squelch asked with `expires_in`
    /// (`--expires`), `None` for one that never expires. `config` names the
    /// configuration file in messages.
    ///
    /// A permanent squelch never expires and is outside the limits (it is
    /// the explicit "never page this" choice, which the meta-check does not
    /// report either); a non-permanent one without `--expires` gets
    /// `default_expiry`, else needs none unless `require_expiry`.
    ///
    /// # Errors
    /// `PermanentExpires`, `TooLongLived` (`--expires` beyond
    /// `max_duration`), `ExpiryRequired`.
    pub(crate) fn lifetime(
        &self,
        permanent: bool,
        expires_in: Option<i64>,
        config: &str,
    ) -> Result<Option<i64>, Error> {
        match (permanent, expires_in) {
            (true, Some(_)) => Err(Error::PermanentExpires),
            (true, None) => Ok(None),
            (false, Some(asked)) => match self.max_duration {
                Some(max) if asked > max => Err(Error::TooLongLived {
                    asked: exact(asked),
                    max: exact(max),
                    config: config.to_owned(),
                }),
                _ => Ok(Some(asked)),
            },
            (false, None) => match self.default_expiry {
                Some(default) => Ok(Some(default)),
                None if self.require_expiry => Err(Error::ExpiryRequired {
                    config: config.to_owned(),
                }),
                None => Ok(None),
            },
        }
    }
}

/// Seconds written exactly, as `--expires` reads them: `4h 1s`, `1day`.
fn exact(seconds: i64) -> String {
    let seconds = u64::try_from(seconds).unwrap_or_default();
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}

/// The squelches of `stored` that have expired at `now` (to remove), and
/// the rest.
#[must_use]
pub(crate) fn split_expired(stored: Vec<Squelch>, now: i64) -> (Vec<Squelch>, Vec<Squelch>) {
    stored.into_iter().partition(|squelch| !squelch.active(now))
}

/// The squelches in force at `now` that expire within `within` seconds,
/// each with the number of `critical` fault names it matches (only those
/// matching at least one). A regex that does not compile matches nothing.
#[must_use]
pub(crate) fn expiring<'a>(
    squelches: &'a [Squelch],
    critical: &[&str],
    within: i64,
    now: i64,
) -> Vec<(&'a Squelch, usize)> {
    squelches
        .iter()
        .filter(|squelch| squelch.active(now))
        .filter(|squelch| squelch.expires.is_some_and(|at| at - now <= within))
        .filter_map(|squelch| {
            let regex = compile(&squelch.regex).ok()?;
            let matched = critical.iter().filter(|name| regex.is_match(name)).count();
            (matched > 0).then_some((squelch, matched))
        })
        .collect()
}

/// Parses a squelch's lifetime (`90s`, `30m`, `2h`, `1d`; also what
/// humantime reads, such as `1h30m`, `1.5h` or `2weeks`) into whole seconds.
///
/// # Errors
/// When humantime cannot read it, or it is shorter than one second or not a
/// whole number of seconds (`1500ms`).
pub(crate) fn parse_duration(text: &str) -> Result<i64, Error> {
    let bad = || Error::Duration(text.to_string());
    let duration = humantime::parse_duration(text.trim()).map_err(|_| bad())?;
    if duration.subsec_nanos() != 0 {
        return Err(bad());
    }
    match i64::try_from(duration.as_secs()) {
        Ok(seconds) if seconds > 0 => Ok(seconds),
        _ => Err(bad()),
    }
}

/// Builds a squelch record after checking the regex and the reason.
///
/// # Errors
/// An invalid regex or an empty reason.
pub(crate) fn new_squelch(
    regex: &str,
    reason: &str,
    user: &str,
    permanent: bool,
    expires_in: Option<i64>,
    now: i64,
) -> Result<Squelch, Error> {
    if permanent && expires_in.is_some() {
        return Err(Error::PermanentExpires);
    }
    check_regex(regex)?;
    if reason.trim().is_empty() {
        return Err(Error::NoReason);
    }
    Ok(Squelch {
        regex: regex.to_string(),
        reason: reason.to_string(),
        user: user.to_string(),
        time: now,
        permanent,
        expires: expires_in.map(|seconds| now.saturating_add(seconds)),
    })
}

/// Compiles the regex of a new squelch: within the limits, and not one
/// that matches every fault name.
///
/// # Errors
/// As `compile`, and `MatchesEverything`.
pub(crate) fn check_regex(regex: &str) -> Result<Regex, Error> {
    let compiled = compile(regex)?;
    if compiled.is_match("") {
        return Err(Error::MatchesEverything(regex.to_string()));
    }
    Ok(compiled)
}

/// Compiles one squelch regex within the length and size limits.
///
/// # Errors
/// `TooLong`, `TooLarge` or `Regex` (invalid syntax).
pub(crate) fn compile(regex: &str) -> Result<Regex, Error> {
    let chars = regex.chars().count();
    if chars > MAX_REGEX_CHARS {
        return Err(Error::TooLong {
            chars,
            excerpt: excerpt(regex),
        });
    }
    RegexBuilder::new(regex)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => Error::TooLarge {
                regex: excerpt(regex),
            },
            other => Error::Regex {
                regex: excerpt(regex),
                detail: syntax_detail(&other.to_string()),
            },
        })
}

/// What is wrong in a regex, from the regex crate's report, as the end of
/// one sentence: `unclosed group at character 1`.
///
/// The report spans several lines: a header, the pattern with carets under
/// the culprit, then `error: WHAT`. Its last line alone kept that `error: `
/// (so the user read `error: invalid squelch regex ...: error: ...`), and
/// the pattern and carets do not fit a one-line message; the caret's column
/// becomes `at character N` instead (only for a one-line pattern with one
/// culprit: a multi-line report numbers its lines differently).
fn syntax_detail(report: &str) -> String {
    let lines: Vec<&str> = report.lines().collect();
    let last = lines.last().copied().unwrap_or_default().trim();
    let what = last.strip_prefix("error:").unwrap_or(last).trim();
    // `regex parse error:`, `    PATTERN`, `    ^^^`, `error: WHAT`.
    if let [_, _, carets, _] = lines.as_slice()
        && let [run] = carets.split_whitespace().collect::<Vec<_>>().as_slice()
        && run.chars().all(|c| c == '^')
    {
        // The pattern and its carets are both indented by four spaces.
        let column = carets.chars().take_while(|&c| c == ' ').count();
        if let Some(column) = column.checked_sub(3) {
            return format!("{what} at character {column}");
        }
    }
    what.to_string()
}

/// The start of a long regex, for messages: `abc... (N characters)`.
#[must_use]
pub(crate) fn excerpt(regex: &str) -> String {
    match regex.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!(
            "{}... ({} characters)",
            &regex[..cut],
            regex.chars().count()
        ),
        None => regex.to_string(),
    }
}

/// Who set a squelch: `$SUDO_USER` when running as root and it is set, else
/// the current user.
#[must_use]
pub(crate) fn user(is_root: bool, sudo_user: Option<&str>, current: Option<&str>) -> String {
    match (is_root, sudo_user) {
        (true, Some(sudo)) if !sudo.is_empty() => sudo.to_string(),
        _ => current.unwrap_or("unknown").to_string(),
    }
}

/// Compiled squelch regexes, searched anywhere in a fault name.
///
/// One `RegexSet`, so a fault name is scanned once however many squelches
/// there are. Each pattern also compiles alone (to find invalid and
/// oversized ones), and those single regexes are kept for the rare set that
/// passes its size limit: silently dropping every squelch would page people.
#[derive(Debug, Default)]
pub(crate) struct Matcher {
    /// The patterns read, in order: an unchanged list is not compiled again.
    patterns: Vec<String>,
    set: Option<RegexSet>,
    each: Vec<Regex>,
    /// Patterns ignored, each with why.
    rejected: Vec<(String, Error)>,
}

impl Matcher {
    /// Compiles the regexes; invalid and oversized ones (written by another
    /// tool) are skipped and listed in `rejected`.
    #[must_use]
    pub(crate) fn new(patterns: &[String]) -> Matcher {
        let mut each = Vec::new();
        let mut rejected = Vec::new();
        for pattern in patterns {
            match compile(pattern) {
                Ok(regex) => each.push(regex),
                Err(why) => rejected.push((pattern.clone(), why)),
            }
        }
        let set = RegexSetBuilder::new(each.iter().map(Regex::as_str))
            .size_limit(SET_SIZE_LIMIT)
            .dfa_size_limit(DFA_SIZE_LIMIT)
            .build()
            .ok();
        Matcher {
            patterns: patterns.to_vec(),
            set,
            each,
            rejected,
        }
    }

    /// True when this matcher was built from exactly `patterns`.
    #[must_use]
    pub(crate) fn is_built_from(&self, patterns: &[String]) -> bool {
        self.patterns == patterns
    }

    /// The patterns ignored, each with why.
    #[must_use]
    pub(crate) fn rejected(&self) -> &[(String, Error)] {
        &self.rejected
    }

    /// True when any squelch matches anywhere in `name`.
    #[must_use]
    pub(crate) fn matches(&self, name: &str) -> bool {
        match &self.set {
            Some(set) => set.is_match(name),
            None => self.each.iter().any(|r| r.is_match(name)),
        }
    }

    /// Squelches in the set.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.each.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("90s", Some(90)),
            ("30m", Some(1800)),
            ("2h", Some(7200)),
            ("1d", Some(86_400)),
            ("0m", None),
            ("5", None),
            ("m", None),
            ("1h30m", Some(5400)),
            ("2weeks", Some(1_209_600)),
            ("5x", None),
            ("-5m", None),
            ("1.5h", Some(5400)),
            ("1500ms", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn squelches_match_anywhere_in_the_name() {
        let matcher = Matcher::new(&["web[12]/app".into(), "^//db".into(), "(".into()]);
        let rejected: Vec<&str> = matcher.rejected().iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(rejected, ["("]);
        let cases = [
            ("//web1/app/disk", true),
            ("//web3/app/disk", false),
            ("//db2/x/y", true),
            ("//x/db/y", false),
        ];
        for (name, want) in cases {
            assert_eq!(matcher.matches(name), want, "{name}");
        }
    }

    // See: #22. The message said `error:` twice.
    #[test]
    fn an_invalid_regex_is_named_in_one_sentence_with_where() {
        let cases = [
            (
                "(",
                "invalid squelch regex `(`: unclosed group at character 1",
            ),
            (
                "web[12/app",
                "invalid squelch regex `web[12/app`: unclosed character class at character 4",
            ),
            (
                "^//x)",
                "invalid squelch regex `^//x)`: unopened group at character 5",
            ),
            (
                "é(",
                "invalid squelch regex `é(`: unclosed group at character 2",
            ),
            (
                r"(?-u:\xFF)",
                r"invalid squelch regex `(?-u:\xFF)`: pattern can match invalid UTF-8 at character 6",
            ),
            // A pattern of several lines: no position.
            ("a\n(", "invalid squelch regex `a\n(`: unclosed group"),
        ];
        for (regex, want) in cases {
            let error = new_squelch(regex, "r", "u", false, None, 0).unwrap_err();
            assert_eq!(error.to_string(), want, "{regex}");
        }
    }

    #[test]
    fn new_squelches_are_validated() {
        assert!(matches!(
            new_squelch("(", "r", "u", false, None, 0),
            Err(Error::Regex { .. })
        ));
        assert_eq!(
            new_squelch("x", "  ", "u", false, None, 0),
            Err(Error::NoReason)
        );
        let squelch = new_squelch("x", "deploy", "ann", false, Some(60), 1000).unwrap();
        assert_eq!((squelch.time, squelch.expires), (1000, Some(1060)));
    }

    // See: #18
    #[test]
    fn a_long_regex_is_refused_with_the_limit() {
        let long = "a".repeat(MAX_REGEX_CHARS + 1);
        let error = new_squelch(&long, "r", "u", false, None, 0).unwrap_err();
        assert!(matches!(error, Error::TooLong { chars: 1025, .. }));
        let text = error.to_string();
        assert!(text.contains("the limit is 1024"), "{text}");
        assert!(text.len() < 300, "the message quotes an excerpt: {text}");
        assert!(new_squelch(&"a".repeat(MAX_REGEX_CHARS), "r", "u", false, None, 0).is_ok());
    }

    // See: #18
    #[test]
    fn a_short_regex_that_compiles_huge_is_refused() {
        // 1000 repetitions of 1000 repetitions of a Unicode class.
        let error = new_squelch(r"\w{1000}{1000}", "r", "u", false, None, 0).unwrap_err();
        assert!(matches!(error, Error::TooLarge { .. }), "{error}");
    }

    // See: #18
    #[test]
    fn a_regex_matching_every_name_is_refused() {
        for regex in ["", ".*", "x?", "|"] {
            let error = new_squelch(regex, "r", "u", false, None, 0).unwrap_err();
            assert_eq!(error, Error::MatchesEverything(regex.into()), "{regex}");
            assert!(error.to_string().contains("silence every alert"));
        }
        assert!(new_squelch("^//", "r", "u", false, None, 0).is_ok());
    }

    // See: #18
    #[test]
    fn permanent_with_expires_is_refused() {
        assert_eq!(
            new_squelch("x", "r", "u", true, Some(60), 0),
            Err(Error::PermanentExpires)
        );
        assert!(new_squelch("x", "r", "u", true, None, 0).is_ok());
    }

    // See: #18
    #[test]
    fn oversized_stored_regexes_are_rejected_and_the_rest_still_match() {
        let huge = format!("({})", "x|".repeat(500_000));
        let matcher = Matcher::new(&[huge.clone(), r"\w{1000}{1000}".into(), "web1".into()]);
        let rejected: Vec<&str> = matcher.rejected().iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(rejected, [huge.as_str(), r"\w{1000}{1000}"]);
        assert!(matches!(matcher.rejected()[0].1, Error::TooLong { .. }));
        assert!(matches!(matcher.rejected()[1].1, Error::TooLarge { .. }));
        assert_eq!(matcher.len(), 1);
        assert!(matcher.matches("//web1/app/disk"));
        assert!(!matcher.matches("//web2/app/disk"));
    }

    const HOUR: i64 = 3600;

    fn policy(max: Option<i64>, require: bool, default: Option<i64>) -> Policy {
        Policy {
            max_duration: max,
            require_expiry: require,
            default_expiry: default,
        }
    }

    #[test]
    fn an_expiry_beyond_max_duration_is_refused_naming_both() {
        let limited = policy(Some(4 * HOUR), false, None);
        assert_eq!(
            limited.lifetime(false, Some(4 * HOUR), "`a.yaml`"),
            Ok(Some(4 * HOUR))
        );
        let error = limited
            .lifetime(false, Some(4 * HOUR + 1), "`a.yaml`")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "`--expires 4h 1s` is longer than `squelch.max_duration` (4h) in `a.yaml`; nothing stored"
        );
    }

    #[test]
    fn a_squelch_without_expires_takes_the_default_expiry() {
        let with_default = policy(Some(4 * HOUR), true, Some(HOUR));
        assert_eq!(with_default.lifetime(false, None, "f"), Ok(Some(HOUR)));
        // Given, `--expires` wins over the default.
        assert_eq!(
            with_default.lifetime(false, Some(2 * HOUR), "f"),
            Ok(Some(2 * HOUR))
        );
    }

    #[test]
    fn require_expiry_refuses_an_open_ended_squelch_only() {
        let strict = policy(None, true, None);
        assert!(matches!(
            strict.lifetime(false, None, "f"),
            Err(Error::ExpiryRequired { .. })
        ));
        assert_eq!(strict.lifetime(false, Some(60), "f"), Ok(Some(60)));
        // A permanent squelch is the explicit "never": outside the limits.
        assert_eq!(strict.lifetime(true, None, "f"), Ok(None));
        assert_eq!(
            policy(Some(60), true, Some(60)).lifetime(true, None, "f"),
            Ok(None)
        );
    }

    #[test]
    fn without_a_policy_a_squelch_lives_as_asked() {
        let none = Policy::default();
        assert_eq!(none.lifetime(false, None, "f"), Ok(None));
        assert_eq!(
            none.lifetime(false, Some(86_400 * 365), "f"),
            Ok(Some(86_400 * 365))
        );
        assert_eq!(
            none.lifetime(true, Some(60), "f"),
            Err(Error::PermanentExpires)
        );
    }

    fn stored(regex: &str, expires: Option<i64>) -> Squelch {
        Squelch {
            regex: regex.into(),
            reason: "r".into(),
            user: "u".into(),
            time: 0,
            permanent: false,
            expires,
        }
    }

    #[test]
    fn a_squelch_is_expired_from_its_expiry_second_on() {
        let list = vec![
            stored("a", Some(100)),
            stored("b", Some(101)),
            stored("c", None),
        ];
        let (expired, in_force) = split_expired(list, 100);
        assert_eq!(expired, [stored("a", Some(100))]);
        assert_eq!(in_force, [stored("b", Some(101)), stored("c", None)]);
    }

    #[test]
    fn expiring_squelches_are_those_ending_soon_that_match_a_critical_fault() {
        let list = [
            stored("web", Some(1000 + 900)),
            stored("db", Some(1000 + 901)),
            stored("mail", Some(1000 + 60)),
            stored("open", None),
            stored("gone", Some(1000)),
        ];
        let critical = [
            "//web1/app/x",
            "//web2/app/x",
            "//db1/pg/y",
            "//open/z",
            "//gone/z",
        ];
        let got: Vec<(&str, usize)> = expiring(&list, &critical, 900, 1000)
            .into_iter()
            .map(|(s, n)| (s.regex.as_str(), n))
            .collect();
        // db: beyond the window; mail: matches nothing critical; open:
        // never expires; gone: already expired.
        assert_eq!(got, [("web", 2)]);
    }

    #[test]
    fn the_user_is_sudo_user_only_for_root() {
        assert_eq!(user(true, Some("ann"), Some("root")), "ann");
        assert_eq!(user(true, None, Some("root")), "root");
        assert_eq!(user(false, Some("ann"), Some("bob")), "bob");
    }
}
