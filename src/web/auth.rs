//! Who may change squelches (SPEC §13): the configured token, given once
//! at the login form (which sets a signed cookie) or with every API call as
//! `Authorization: Bearer`; a CSRF token, derived from the cookie, in every
//! form and in `X-CSRF-Token` for cookie-authenticated API calls.
//!
//! Nothing is kept on the server: the cookie carries the login name and an
//! expiry, signed (HMAC-SHA256) with a key derived from the token, so any
//! `cimaa web` process with the same token accepts it. The token itself is
//! never written into a page, a response or a log line.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};

/// The login cookie's name.
pub(crate) const SESSION_COOKIE: &str = "cimaa_session";
/// The cookie the login form's CSRF token is bound to (before a login).
pub(crate) const LOGIN_COOKIE: &str = "cimaa_login";
/// How long a login lasts (seconds): 12 hours.
const SESSION_SECONDS: i64 = 12 * 3600;
/// The longest login name kept (characters).
const MAX_USER_CHARS: usize = 64;

type Mac256 = Hmac<Sha256>;

/// The keys derived from the token.
pub(crate) struct Keys {
    /// Compared with a given token through its MAC (no early exit on the
    /// first differing byte).
    token_mac: [u8; 32],
    key: Vec<u8>,
}

/// Why a change was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token configured: the web view is read-only (403).
    ReadOnly,
    /// No or a wrong bearer token, no or an expired login (401).
    Unauthenticated,
    /// A login without the right CSRF token (403).
    BadCsrf,
}

impl Refusal {
    pub(crate) fn status(&self) -> axum::http::StatusCode {
        match self {
            Refusal::Unauthenticated => axum::http::StatusCode::UNAUTHORIZED,
            Refusal::ReadOnly | Refusal::BadCsrf => axum::http::StatusCode::FORBIDDEN,
        }
    }

    pub(crate) fn message(&self) -> &'static str {
        match self {
            Refusal::ReadOnly => {
                "read-only: this web view has no token (web.token or $CIMAA_WEB_TOKEN), so it changes nothing"
            }
            Refusal::Unauthenticated => {
                "log in (or give `Authorization: Bearer TOKEN`) to change squelches"
            }
            Refusal::BadCsrf => "missing or wrong CSRF token: reload the page and try again",
        }
    }
}

/// A signed login: who, and the cookie value the CSRF token is derived from.
pub(crate) struct Session {
    pub user: String,
    cookie: String,
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = Mac256::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Equal without an early exit (for MACs).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 16 random bytes from the kernel, as hex (the login form's nonce).
pub(crate) fn nonce() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Still unguessable enough to bind a form to its cookie.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (now ^ u128::from(fastrand::u64(..))).to_be_bytes();
    }
    hex(&bytes)
}

/// The value of cookie `name` in `headers`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole site.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict")
}

impl Keys {
    pub(crate) fn new(token: &str) -> Keys {
        let key = mac(b"cimaa web key", &[token.as_bytes()]).to_vec();
        Keys {
            token_mac: mac(&key, &[b"token", token.as_bytes()]),
            key,
        }
    }

    /// True when `given` is the token.
    pub(crate) fn is_token(&self, given: &str) -> bool {
        same(
            &mac(&self.key, &[b"token", given.as_bytes()]),
            &self.token_mac,
        )
    }

    /// The login cookie's value for `user` until `now` + 12 hours; `None`
    /// for an empty or too long name.
    pub(crate) fn session_cookie(&self, user: &str, now: i64) -> Option<String> {
        let user = user.trim();
        if user.is_empty()
            || user.chars().count() > MAX_USER_CHARS
            || user.chars().any(char::is_control)
        {
            return None;
        }
        let user = hex(user.as_bytes());
        let expires = (now + SESSION_SECONDS).to_string();
        let sig = mac(
            &self.key,
            &[b"session", user.as_bytes(), expires.as_bytes()],
        );
        Some(format!("{user}.{expires}.{}", hex(&sig)))
    }

    /// The login a cookie value carries, if signed by this token and not
    /// expired.
    pub(crate) fn session(&self, cookie: &str, now: i64) -> Option<Session> {
        let mut parts = cookie.split('.');
        let (user, expires, sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let want = mac(
            &self.key,
            &[b"session", user.as_bytes(), expires.as_bytes()],
        );
        if !same(&unhex(sig)?, &want) || expires.parse::<i64>().ok()? <= now {
            return None;
        }
        Some(Session {
            user: String::from_utf8(unhex(user)?).ok()?,
            cookie: cookie.to_owned(),
        })
    }

    /// The CSRF token of a session (forms and `X-CSRF-Token`).
    pub(crate) fn csrf(&self, session: &Session) -> String {
        hex(&mac(&self.key, &[b"csrf", session.cookie.as_bytes()]))
    }

    /// The login form's CSRF token, bound to its `cimaa_login` nonce cookie.
    pub(crate) fn login_csrf(&self, nonce: &str) -> String {
        hex(&mac(&self.key, &[b"login", nonce.as_bytes()]))
    }

    /// True when `given` is the CSRF token of `session`.
    pub(crate) fn csrf_ok(&self, session: &Session, given: Option<&str>) -> bool {
        given.is_some_and(|given| same(given.as_bytes(), self.csrf(session).as_bytes()))
    }

    /// True when `given` is the login form's CSRF token for `nonce`.
    pub(crate) fn login_csrf_ok(&self, nonce: Option<&str>, given: &str) -> bool {
        nonce.is_some_and(|nonce| same(given.as_bytes(), self.login_csrf(nonce).as_bytes()))
    }
}

/// The login of a request's cookie, if any.
pub(crate) fn session_of(keys: Option<&Keys>, headers: &HeaderMap, now: i64) -> Option<Session> {
    keys?.session(cookie(headers, SESSION_COOKIE)?, now)
}

/// Who may make an API change: a bearer token (the user is `api_user`, or
/// `api`), or a login with the CSRF token in `X-CSRF-Token`.
///
/// # Errors
/// The refusal (nothing may be changed then).
pub(crate) fn api_user(
    keys: Option<&Keys>,
    headers: &HeaderMap,
    api_user: Option<&str>,
    now: i64,
) -> Result<String, Refusal> {
    let keys = keys.ok_or(Refusal::ReadOnly)?;
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let given = value
            .strip_prefix("Bearer ")
            .ok_or(Refusal::Unauthenticated)?;
        if !keys.is_token(given.trim()) {
            return Err(Refusal::Unauthenticated);
        }
        let user = api_user
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or("api");
        return Ok(user.chars().take(MAX_USER_CHARS).collect());
    }
    let session = session_of(Some(keys), headers, now).ok_or(Refusal::Unauthenticated)?;
    let csrf = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !keys.csrf_ok(&session, csrf) {
        return Err(Refusal::BadCsrf);
    }
    Ok(session.user)
}

/// Who may make a change through a form: a login whose CSRF token is the
/// form's `csrf` field.
///
/// # Errors
/// The refusal.
pub(crate) fn form_user(
    keys: Option<&Keys>,
    headers: &HeaderMap,
    csrf: Option<&str>,
    now: i64,
) -> Result<String, Refusal> {
    let keys = keys.ok_or(Refusal::ReadOnly)?;
    let session = session_of(Some(keys), headers, now).ok_or(Refusal::Unauthenticated)?;
    if !keys.csrf_ok(&session, csrf) {
        return Err(Refusal::BadCsrf);
    }
    Ok(session.user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cookie_carries_its_user_until_it_expires() {
        let keys = Keys::new("s3cret");
        let cookie = keys.session_cookie("ann|x.y", 1000).unwrap();
        assert!(!cookie.contains("s3cret"));
        assert_eq!(keys.session(&cookie, 1001).unwrap().user, "ann|x.y");
        assert!(keys.session(&cookie, 1000 + SESSION_SECONDS).is_none());
    }

    #[test]
    fn a_cookie_signed_with_another_token_is_refused() {
        let cookie = Keys::new("one").session_cookie("ann", 1000).unwrap();
        assert!(Keys::new("two").session(&cookie, 1001).is_none());
    }

    #[test]
    fn a_tampered_user_is_refused() {
        let keys = Keys::new("t");
        let cookie = keys.session_cookie("ann", 1000).unwrap();
        let forged = cookie.replacen(&hex(b"ann"), &hex(b"bob"), 1);
        assert!(keys.session(&forged, 1001).is_none());
    }

    #[test]
    fn only_the_token_itself_is_the_token() {
        let keys = Keys::new("right");
        assert!(keys.is_token("right"));
        assert!(!keys.is_token("righ"));
        assert!(!keys.is_token(""));
    }
}
