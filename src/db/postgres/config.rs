//! The `database: {type: postgres}` options: the server's URL, the pool
//! size, and what the URL asks for (TLS through `sslmode`, a CA file
//! through `sslrootcert`), with the password kept out of every printed
//! form of the URL (SPEC §15). Pure.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Connections a handle keeps at most, by default.
const DEFAULT_POOL: usize = 4;
/// The most connections `pool:` may ask for: an agent makes a handful of
/// calls per tick, and a fleet of agents each holding many connections
/// would exhaust the server's `max_connections`.
const MAX_POOL: usize = 32;
/// How long connecting (TCP, TLS, authentication) may take: a CLI command
/// against an unreachable server gives up well within 10 s (SPEC §15).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `database: {type: postgres}` options.
///
/// `Debug` shows the URL without its password, like every other form.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]`
    /// (`postgresql://` too). The password, when the URL has none, comes
    /// from `$PGPASSWORD`.
    pub url: String,
    /// Connections the handle keeps open at most (1 to 32).
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// `history: {retention: 30d}` (SPEC §12).
    #[serde(default)]
    pub history: crate::history::HistoryConfig,
}

fn default_pool() -> usize {
    DEFAULT_POOL
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact(&self.url))
            .field("pool", &self.pool)
            .field("history", &self.history)
            .finish()
    }
}

/// How the connection is protected, from the URL's `sslmode`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Tls {
    /// No TLS: `disable`, `allow`, `prefer` and no `sslmode` at all.
    Off,
    /// TLS, the server's certificate verified against the system's roots
    /// and `sslrootcert` if given: `require`, `verify-ca`, `verify-full`.
    Verified { root_cert: Option<PathBuf> },
}

/// What the URL says, ready to connect with.
pub(super) struct Target {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: Tls,
}

impl PostgresConfig {
    /// The URL as it may be shown: without its password.
    #[must_use]
    pub fn shown_url(&self) -> String {
        redact(&self.url)
    }

    /// Problems of the options, one sentence each (pure: `$PGPASSWORD` is
    /// not read). The URL is quoted without its password.
    #[must_use]
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(problem) = self.target(None) {
            problems.push(format!("database.url: {problem}"));
        }
        if !(1..=MAX_POOL).contains(&self.pool) {
            problems.push(format!(
                "database.pool: {} must be 1 to {MAX_POOL}",
                self.pool
            ));
        }
        problems
    }

    /// The connection settings of the URL, the password from `password`
    /// (`$PGPASSWORD`) when the URL has none.
    ///
    /// # Errors
    /// What is wrong with the URL, quoting it without its password.
    pub(super) fn target(&self, password: Option<&str>) -> Result<Target, String> {
        let shown = redact(&self.url);
        let Some(rest) = self
            .url
            .strip_prefix("postgres://")
            .or_else(|| self.url.strip_prefix("postgresql://"))
        else {
            return Err(format!(
                "`{shown}` must start with `postgres://` or `postgresql://`"
            ));
        };
        let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut tls = Tls::Off;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    tls = match value {
                        "disable" | "allow" | "prefer" => Tls::Off,
                        "require" | "verify-ca" | "verify-full" => {
                            Tls::Verified { root_cert: None }
                        }
                        other => {
                            return Err(format!(
                                "`{shown}`: sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                            ));
                        }
                    };
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value))),
                _ => kept.push(pair),
            }
        }
        if let Tls::Verified { root_cert: cert } = &mut tls {
            *cert = root_cert;
        }
        let url = if kept.is_empty() {
            format!("postgres://{head}")
        } else {
            format!("postgres://{head}?{}", kept.join("&"))
        };
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| format!("`{shown}` is not a PostgreSQL URL ({error})"))?;
        if config.get_user().is_none_or(str::is_empty) {
            return Err(format!(
                "`{shown}` names no user (`postgres://USER@HOST/DB`)"
            ));
        }
        if config.get_hosts().is_empty() {
            return Err(format!("`{shown}` names no host"));
        }
        if config.get_dbname().is_none_or(str::is_empty) {
            return Err(format!("`{shown}` names no database (`.../DB`)"));
        }
        if config.get_password().is_none()
            && let Some(password) = password
        {
            config.password(password);
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("cimaa")
            .ssl_mode(match tls {
                Tls::Off => tokio_postgres::config::SslMode::Disable,
                Tls::Verified { .. } => tokio_postgres::config::SslMode::Require,
            });
        Ok(Target { config, tls })
    }
}

/// `url` with the password of its user part (`user:PASSWORD@`) and of every
/// `password=` setting (a URL parameter, or a libpq `key=value` string,
/// quoted or not) replaced by `***`. Works on any text, so a URL too broken
/// to parse is still shown without its password.
///
/// A password may hold unencoded `/`, `?` and `@`, so the user part ends at
/// the last `@` of the text; when a parameter holds an `@` more is hidden
/// than the password, never less.
#[must_use]
pub(crate) fn redact(url: &str) -> String {
    let user_hidden = match url.find("://") {
        Some(at) => {
            let (scheme, rest) = url.split_at(at + 3);
            match rest.rfind('@') {
                Some(at) => {
                    let (user_info, host) = rest.split_at(at);
                    match user_info.split_once(':') {
                        Some((user, _password)) => format!("{scheme}{user}:***{host}"),
                        None => url.to_owned(),
                    }
                }
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    };
    match &*PASSWORD_SETTING {
        Some(setting) => setting.replace_all(&user_hidden, "${key}***").into_owned(),
        // Unreachable with the constant pattern; hide everything rather than
        // risk showing a password.
        None => "***".to_owned(),
    }
}

/// A `password=VALUE` setting: in a URL's query (up to `&`) or a libpq
/// `key=value` string (up to white space, or a quoted value).
static PASSWORD_SETTING: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)(?P<key>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^&\s]*)").ok()
    });

/// `%XX` escapes of a URL parameter decoded (invalid ones kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%'
            && let Some(byte) = text
                .get(at + 1..at + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            decoded.push(byte);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> PostgresConfig {
        PostgresConfig {
            url: url.to_owned(),
            pool: 4,
            history: crate::history::HistoryConfig::default(),
        }
    }

    #[test]
    fn the_password_of_the_user_part_is_redacted() {
        assert_eq!(
            redact("postgres://cimaa:s3cr@t@db.example:5432/cimaa?sslmode=require"),
            "postgres://cimaa:***@db.example:5432/cimaa?sslmode=require"
        );
    }

    #[test]
    fn a_password_parameter_is_redacted() {
        assert_eq!(
            redact("postgresql://cimaa@db/cimaa?password=hunter2&sslmode=disable"),
            "postgresql://cimaa@db/cimaa?password=***&sslmode=disable"
        );
    }

    #[test]
    fn a_url_without_password_is_shown_as_it_is() {
        assert_eq!(
            redact("postgres://cimaa@db/cimaa"),
            "postgres://cimaa@db/cimaa"
        );
    }

    #[test]
    fn passwords_are_hidden_wherever_they_are_written() {
        let cases = [
            (
                "unencoded slash and question mark",
                "postgres://cimaa:pa/ss?w@rd@db:5432/cimaa",
                "postgres://cimaa:***@db:5432/cimaa",
            ),
            (
                "slash after the at sign of the password",
                "postgres://cimaa:a@b/c@db/cimaa?sslmode=require",
                "postgres://cimaa:***@db/cimaa?sslmode=require",
            ),
            (
                "upper-case parameter",
                "postgres://cimaa@db/cimaa?PASSWORD=hunter2",
                "postgres://cimaa@db/cimaa?PASSWORD=***",
            ),
            (
                "libpq key=value string",
                "host=db user=cimaa password=hunter2 dbname=cimaa",
                "host=db user=cimaa password=*** dbname=cimaa",
            ),
            (
                "libpq quoted value with a space and an escaped quote",
                "host=db password = 'hun ter\\'2' dbname=cimaa",
                "host=db password = *** dbname=cimaa",
            ),
            (
                "a parameter after an at sign in the query",
                "postgres://cimaa@db/cimaa?password=hunter2&application_name=a@b",
                "postgres://cimaa@db/cimaa?password=***&application_name=a@b",
            ),
        ];
        for (what, url, shown) in cases {
            let redacted = redact(url);
            assert_eq!(redacted, shown, "{what}");
            assert!(
                !redacted.contains("hunter") && !redacted.contains("w@rd"),
                "{what}"
            );
        }
    }

    #[test]
    fn debug_of_the_config_hides_the_password() {
        let shown = format!("{:?}", config("postgres://u:hunter2@db/cimaa"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("u:***@db"), "{shown}");
    }

    #[test]
    fn both_schemes_are_accepted() {
        for url in ["postgres://u@db/cimaa", "postgresql://u@db:5433/cimaa"] {
            assert_eq!(config(url).validate(), Vec::<String>::new(), "{url}");
        }
    }

    #[test]
    fn a_broken_url_is_refused_without_its_password() {
        let problems = config("mysql://u:hunter2@db/cimaa").validate();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("u:***@db"), "{problems:?}");
        assert!(!problems[0].contains("hunter2"), "{problems:?}");
    }

    #[test]
    fn sslmode_require_and_verify_use_tls_and_prefer_does_not() {
        let tls = |url: &str| config(url).target(None).map(|target| target.tls);
        assert_eq!(tls("postgres://u@db/c"), Ok(Tls::Off));
        assert_eq!(tls("postgres://u@db/c?sslmode=prefer"), Ok(Tls::Off));
        assert_eq!(
            tls("postgres://u@db/c?sslmode=verify-full&sslrootcert=/etc/ca%20file.pem"),
            Ok(Tls::Verified {
                root_cert: Some(PathBuf::from("/etc/ca file.pem"))
            })
        );
        assert_eq!(
            tls("postgres://u@db/c?sslmode=require"),
            Ok(Tls::Verified { root_cert: None })
        );
        assert!(tls("postgres://u@db/c?sslmode=sometimes").is_err());
    }

    #[test]
    fn the_password_comes_from_the_url_before_pgpassword() {
        let password = |url: &str| {
            config(url)
                .target(Some("from-env"))
                .map(|target| target.config.get_password().map(<[u8]>::to_vec))
        };
        assert_eq!(
            password("postgres://u:from-url@db/c"),
            Ok(Some(b"from-url".to_vec()))
        );
        assert_eq!(
            password("postgres://u@db/c"),
            Ok(Some(b"from-env".to_vec()))
        );
    }

    #[test]
    fn a_pool_out_of_range_is_refused() {
        let mut options = config("postgres://u@db/c");
        options.pool = 0;
        assert_eq!(options.validate(), ["database.pool: 0 must be 1 to 32"]);
    }
}
