//! HTTP probes: `http: {url, method, status, contains, ...}` (SPEC §4).
//!
//! Owns the agent's shared clients (`Clients`) and one probe run; the
//! `http:` options, their serde and their validation are in `options`
//! (`config` reads the YAML into `RawHttp` and validates it into `HttpCheck`).
//!
//! Connections: one reqwest client per agent (two when some check says
//! `tls_verify: false`, because certificate checking is a client setting),
//! built on first use, with keep-alive pools per host. Each host (scheme,
//! name, port) has a limit of `agent.connections_per_host` probes in flight
//! (default `CONNECTIONS_PER_HOST`), taken
//! once the probe holds its `max_concurrency` slot, so thousands of URLs on
//! one host share a few keep-alive connections (the agent takes turns
//! between hosts when it starts a tick's checks, so a crowded host does not
//! hold every slot while its probes queue). Redirect hops to another host do
//! not take that host's limit: holding one host's slot while waiting for
//! another's could deadlock. Each tick, `Clients::begin_tick` counts
//! the probes of every host; the last one of a host sends `Connection: close`
//! so that a tick over many hosts leaves no idle sockets behind (an idle pool
//! per host would otherwise keep one descriptor per host until it times out).
//!
//! Redirects are followed here, not by reqwest, because `follow_redirects`
//! is per check while reqwest's redirect policy is per client.
//!
//! A probe that fails by itself (connection, TLS, too many redirects) is an
//! `Error`, which `checks::run` reports as the check's own ERROR. A response
//! that does not match is an ERROR with exactly what mismatched; the metrics
//! describe the final response either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{CONNECTION, HeaderValue, LOCATION};
use reqwest::{Client, Response, Url};
use tokio::sync::Semaphore;

use super::{CheckOutput, RawFault, RawMetric};
use crate::severity::Severity;

mod options;

pub(crate) use options::RawHttp;
pub(crate) use options::{HttpCheck, Method};

/// Default of `agent.connections_per_host`: probes in flight to one host at
/// once, each on its own keep-alive connection.
pub(crate) const CONNECTIONS_PER_HOST: usize = 16;
/// Idle keep-alive connections are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Redirects followed before the probe gives up.
pub(crate) const MAX_REDIRECTS: usize = 10;
/// Default `body_limit`.
pub(crate) const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;
/// A redirect's own body is read (to reuse its connection) up to this much.
const REDIRECT_BODY_LIMIT: u64 = 64 * 1024;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// The key of a host's connection limit: `scheme://host:port`.
pub(crate) fn host_key(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// One host's probes of the current tick.
#[derive(Debug)]
struct Host {
    /// Probes in flight to this host.
    slots: Semaphore,
    /// Probes of this host still to start this tick.
    remaining: AtomicUsize,
}

impl Host {
    fn new(limit: usize, remaining: usize) -> Arc<Host> {
        Arc::new(Host {
            slots: Semaphore::new(limit),
            remaining: AtomicUsize::new(remaining),
        })
    }

    /// Counts one probe as started; true when it is the host's last this tick.
    fn start_one(&self) -> bool {
        let previous = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        previous <= 1
    }
}

/// The agent's HTTP clients and per-host limits, shared by every probe.
#[derive(Debug)]
pub(crate) struct Clients {
    /// The agent's caching resolver, which the clients resolve through.
    dns: Arc<super::dns::Resolver>,
    verified: OnceLock<Result<Client, String>>,
    unverified: OnceLock<Result<Client, String>>,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    /// Probes in flight to one host (`agent.connections_per_host`).
    per_host: usize,
}

impl Clients {
    /// Clients resolving through `dns`, built on first use, with at most
    /// `per_host` probes in flight to one host.
    #[must_use]
    pub(crate) fn new(dns: Arc<super::dns::Resolver>, per_host: usize) -> Clients {
        Clients {
            dns,
            verified: OnceLock::new(),
            unverified: OnceLock::new(),
            hosts: Mutex::new(HashMap::new()),
            per_host: per_host.max(1),
        }
    }

    /// Starts a tick: counts the probes of every host among `checks`.
    pub(crate) fn begin_tick<'a>(&self, checks: impl Iterator<Item = &'a HttpCheck>) {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for check in checks {
            *counts.entry(host_key(&check.url)).or_default() += 1;
        }
        let hosts = counts
            .into_iter()
            .map(|(key, count)| (key, Host::new(self.per_host, count)))
            .collect();
        if let Ok(mut table) = self.hosts.lock() {
            *table = hosts;
        }
    }

    /// The connection limit of `url`'s host.
    pub(crate) fn host_slot(&self, url: &Url) -> HostSlot {
        let key = host_key(url);
        let host = match self.hosts.lock() {
            Ok(mut table) => table
                .entry(key)
                .or_insert_with(|| Host::new(self.per_host, 0))
                .clone(),
            // A poisoned table only loses the sharing of limits.
            Err(_) => Host::new(self.per_host, 0),
        };
        HostSlot { host }
    }

    fn client(&self, tls_verify: bool) -> Result<&Client, Error> {
        let cell = if tls_verify {
            &self.verified
        } else {
            &self.unverified
        };
        cell.get_or_init(|| build_client(tls_verify, self.dns.clone(), self.per_host))
            .as_ref()
            .map_err(|detail| Error::Client(detail.clone()))
    }
}

fn build_client(
    tls_verify: bool,
    dns: Arc<super::dns::Resolver>,
    per_host: usize,
) -> Result<Client, String> {
    Client::builder()
        .dns_resolver(Arc::new(super::dns::ForReqwest(dns)))
        .user_agent(concat!("cimaa/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        // A proxy's failure would pass for the target's.
        .no_proxy()
        .pool_max_idle_per_host(per_host)
        .pool_idle_timeout(IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .tls_info(true)
        .tls_danger_accept_invalid_certs(!tls_verify)
        .build()
        .map_err(|e| crate::error::chain(&e))
}

/// Why a probe failed by itself; the message names the URL.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("{url}: {detail}")]
    Request { url: Url, detail: String },
    #[error("{url}: redirect to `{location}` is not a valid URL")]
    BadRedirect { url: Url, location: String },
    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects { url: Url },
}

impl Error {
    fn request(url: &Url, error: &reqwest::Error) -> Error {
        Error::Request {
            url: url.clone(),
            detail: describe(error),
        }
    }
}

/// What went wrong below reqwest's "error sending request for url (...)".
fn describe(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in crate::error::causes(std::error::Error::source(error)) {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return "connection refused".into();
        }
        let text = cause.to_string();
        // hyper-util's "client error (Connect)" and the like say nothing new.
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        return error.to_string();
    }
    parts.join(": ")
}

/// A host's connection limit, as one probe holds it.
pub(crate) struct HostSlot {
    host: Arc<Host>,
}

impl HostSlot {
    /// Waits for one of the host's slots; it is held while the permit lives.
    pub(crate) async fn acquire(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so this is always `Some`.
        self.host.slots.acquire().await.ok()
    }

    /// Counts the probe as started; true when it is the host's last this tick.
    pub(crate) fn start(&self) -> bool {
        self.host.start_one()
    }
}

/// Runs one probe, once its host and global slots are held: request
/// (following redirects if asked), read the body up to its limit, compare,
/// measure. `close` asks the server to close the connection afterwards. The
/// caller bounds it by the timeout.
///
/// # Errors
/// When no response came back (see `Error`).
pub(crate) async fn probe(
    check: &HttpCheck,
    clients: &Clients,
    close: bool,
) -> Result<CheckOutput, Error> {
    let client = clients.client(check.tls_verify)?;
    let started = Instant::now();
    let mut url = check.url.clone();
    let mut redirects = 0;
    let mut response = loop {
        let mut request = client.request(check.method.as_reqwest(), url.clone());
        for (name, value) in &check.headers {
            request = request.header(name, value);
        }
        if close && !check.headers.iter().any(|(name, _)| name == CONNECTION) {
            request = request.header(CONNECTION, HeaderValue::from_static("close"));
        }
        let mut response = request.send().await.map_err(|e| Error::request(&url, &e))?;
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        match location {
            Some(location) if check.follow_redirects && response.status().is_redirection() => {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(Error::TooManyRedirects {
                        url: check.url.clone(),
                    });
                }
                let next = url.join(&location).map_err(|_| Error::BadRedirect {
                    url: url.clone(),
                    location: location.clone(),
                })?;
                // Read the little body so the connection can be reused.
                read_body(&mut response, REDIRECT_BODY_LIMIT, None)
                    .await
                    .map_err(|e| Error::request(&url, &e))?;
                url = next;
            }
            _ => break response,
        }
    };
    let status = response.status().as_u16();
    let certificate = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(reqwest::tls::TlsInfo::peer_certificate)
        .map(not_after);
    let (size, found) = if check.method == Method::Head {
        (0, check.contains.is_none())
    } else {
        read_body(
            &mut response,
            check.body_limit,
            check.contains.as_deref().map(str::as_bytes),
        )
        .await
        .map_err(|e| Error::request(&url, &e))?
    };
    let response_time = started.elapsed().as_secs_f64();
    drop(response);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let host = url.host_str().unwrap_or_default();
    Ok(judge(
        check,
        &Seen {
            status,
            size,
            found,
            response_time,
            certificate,
        },
        host,
        now,
    ))
}

/// The facts of a final response that `judge` compares.
#[derive(Debug)]
pub(crate) struct Seen {
    pub status: u16,
    pub size: u64,
    /// Whether `contains` was found (true when none was asked).
    pub found: bool,
    pub response_time: f64,
    /// The peer certificate's notAfter (epoch seconds), for https.
    pub certificate: Option<Result<i64, String>>,
}

/// Faults and metrics of a final response; pure.
pub(crate) fn judge(check: &HttpCheck, seen: &Seen, host: &str, now: i64) -> CheckOutput {
    let mut faults = Vec::new();
    let mut mismatches = Vec::new();
    if !check.status.matches(seen.status) {
        mismatches.push(format!(
            "expected status {}, got {}",
            check.status, seen.status
        ));
    }
    if let Some(text) = &check.contains
        && !seen.found
    {
        mismatches.push(format!("body does not contain {text:?}"));
    }
    if !mismatches.is_empty() {
        faults.push(RawFault {
            name: None,
            severity: Severity::ERROR,
            message: mismatches.join("; "),
            escalates: true,
        });
    }
    #[expect(clippy::cast_precision_loss, reason = "body sizes are far below 2^52")]
    let size = seen.size as f64;
    let mut metrics = vec![
        metric("response_time", seen.response_time, "s"),
        metric("status", f64::from(seen.status), ""),
        metric("size", size, "B"),
    ];
    match &seen.certificate {
        Some(Ok(not_after)) => {
            #[expect(
                clippy::cast_precision_loss,
                reason = "seconds between two dates are far below 2^52"
            )]
            let days = (not_after - now) as f64 / SECONDS_PER_DAY;
            metrics.push(metric(
                "cert_expiry_days",
                (days * 100.0).round() / 100.0,
                "d",
            ));
            if let Some(warn) = check.cert_expiry_days {
                faults.extend(expiry_fault(host, days, warn));
            }
        }
        Some(Err(detail)) if check.cert_expiry_days.is_some() => faults.push(RawFault {
            name: Some("cert_expiry".into()),
            severity: Severity::ERROR,
            message: format!("cannot read the certificate of {host}: {detail}"),
            escalates: true,
        }),
        Some(Err(_)) | None => {}
    }
    CheckOutput {
        faults,
        metrics,
        raw: None,
    }
}

/// `#cert_expiry`: ERROR once expired, WARNING within `warn` days.
fn expiry_fault(host: &str, days: f64, warn: u32) -> Option<RawFault> {
    let (severity, message) = if days <= 0.0 {
        let ago = whole_days(-days);
        let when = if ago == 0 {
            "less than a day ago".to_string()
        } else {
            format!("{} ago", plural_days(ago))
        };
        (
            Severity::ERROR,
            format!("certificate for {host} expired {when}"),
        )
    } else if days < f64::from(warn) {
        let left = whole_days(days);
        let when = if left == 0 {
            "less than a day".to_string()
        } else {
            plural_days(left)
        };
        (
            Severity::WARNING,
            format!("certificate for {host} expires in {when}"),
        )
    } else {
        return None;
    };
    Some(RawFault {
        name: Some("cert_expiry".into()),
        severity,
        message,
        escalates: true,
    })
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a non-negative number of days, floored"
)]
fn whole_days(days: f64) -> u64 {
    days.max(0.0).floor() as u64
}

fn plural_days(days: u64) -> String {
    if days == 1 {
        "1 day".into()
    } else {
        format!("{days} days")
    }
}

fn metric(name: &str, value: f64, units: &str) -> RawMetric {
    RawMetric {
        name: name.into(),
        value,
        units: units.into(),
        timestamp: None,
    }
}

/// A certificate's notAfter in epoch seconds.
fn not_after(der: &[u8]) -> Result<i64, String> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, certificate)| certificate.validity().not_after.timestamp())
        .map_err(|e| e.to_string())
}

/// Reads at most `limit` body bytes; returns how many and whether `needle`
/// occurs in them. Reads no further than the limit.
async fn read_body(
    response: &mut Response,
    limit: u64,
    needle: Option<&[u8]>,
) -> Result<(u64, bool), reqwest::Error> {
    let mut search = needle.map(Search::new);
    let mut read = 0u64;
    while read < limit {
        let Some(chunk) = response.chunk().await? else {
            break;
        };
        let room = usize::try_from(limit - read).unwrap_or(usize::MAX);
        let part = &chunk[..chunk.len().min(room)];
        if let Some(search) = &mut search {
            search.feed(part);
        }
        read += part.len() as u64;
    }
    Ok((read, search.is_none_or(|s| s.found)))
}

/// Substring search over a body that arrives in chunks, keeping only the
/// last `needle.len() - 1` bytes between chunks instead of the whole body.
struct Search<'a> {
    needle: &'a [u8],
    tail: Vec<u8>,
    found: bool,
}

impl<'a> Search<'a> {
    fn new(needle: &'a [u8]) -> Search<'a> {
        Search {
            needle,
            tail: Vec::new(),
            found: needle.is_empty(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if self.found {
            return;
        }
        let keep = self.needle.len().saturating_sub(1);
        // A match across the seam starts in the tail and ends in the
        // chunk's first `keep` bytes.
        if !self.tail.is_empty() {
            let mut seam = self.tail.clone();
            seam.extend_from_slice(&chunk[..chunk.len().min(keep)]);
            if memchr::memmem::find(&seam, self.needle).is_some() {
                self.found = true;
                return;
            }
        }
        if memchr::memmem::find(chunk, self.needle).is_some() {
            self.found = true;
            return;
        }
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: u16, found: bool, certificate: Option<Result<i64, String>>) -> Seen {
        Seen {
            status,
            size: 12,
            found,
            response_time: 0.5,
            certificate,
        }
    }

    fn check() -> HttpCheck {
        HttpCheck::new(Url::parse("https://example.com/health").unwrap())
    }

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    #[test]
    fn mismatches_are_one_error_with_every_reason() {
        let mut check = check();
        check.contains = Some("ok".into());
        let output = judge(&check, &seen(503, false, None), "example.com", NOW);
        assert_eq!(output.faults.len(), 1);
        assert_eq!(
            output.faults[0].message,
            r#"expected status 200-399, got 503; body does not contain "ok""#
        );
        assert_eq!(output.faults[0].name, None);
        assert!(output.faults[0].escalates);
        let names: Vec<_> = output
            .metrics
            .iter()
            .map(|m| (m.name.as_str(), m.value, m.units.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("response_time", 0.5, "s"),
                ("status", 503.0, ""),
                ("size", 12.0, "B")
            ]
        );
    }

    #[test]
    fn certificate_expiry_cases() {
        type Case<'a> = (i64, Option<(Severity, &'a str)>, f64);
        let mut check = check();
        check.cert_expiry_days = Some(14);
        let cases: [Case; 6] = [
            (NOW + 30 * DAY, None, 30.0),
            (
                NOW + 3 * DAY + 3600,
                Some((
                    Severity::WARNING,
                    "certificate for example.com expires in 3 days",
                )),
                3.04,
            ),
            (
                NOW + DAY + 10,
                Some((
                    Severity::WARNING,
                    "certificate for example.com expires in 1 day",
                )),
                1.0,
            ),
            (
                NOW + 3600,
                Some((
                    Severity::WARNING,
                    "certificate for example.com expires in less than a day",
                )),
                0.04,
            ),
            (
                NOW - 3600,
                Some((
                    Severity::ERROR,
                    "certificate for example.com expired less than a day ago",
                )),
                -0.04,
            ),
            (
                NOW - 2 * DAY - 5,
                Some((
                    Severity::ERROR,
                    "certificate for example.com expired 2 days ago",
                )),
                -2.0,
            ),
        ];
        for (not_after, want, days) in cases {
            let output = judge(
                &check,
                &seen(200, true, Some(Ok(not_after))),
                "example.com",
                NOW,
            );
            let got: Vec<_> = output
                .faults
                .iter()
                .map(|f| {
                    assert_eq!(f.name.as_deref(), Some("cert_expiry"));
                    (f.severity, f.message.as_str())
                })
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{not_after}");
            let metric = output.metrics.last().unwrap();
            assert_eq!(
                (metric.name.as_str(), metric.units.as_str()),
                ("cert_expiry_days", "d")
            );
            assert!(
                (metric.value - days).abs() < 0.001,
                "{} vs {days}",
                metric.value
            );
        }
    }

    #[test]
    fn without_cert_expiry_days_the_metric_is_still_written() {
        let output = judge(
            &check(),
            &seen(200, true, Some(Ok(NOW - DAY))),
            "example.com",
            NOW,
        );
        assert!(output.faults.is_empty());
        assert_eq!(output.metrics.len(), 4);
    }

    #[test]
    fn a_search_finds_text_across_chunk_seams() {
        type Case<'a> = (&'a [&'a [u8]], &'a [u8], bool);
        let cases: [Case; 7] = [
            (&[b"hello world"], b"world", true),
            (&[b"hello wo", b"rld"], b"world", true),
            (&[b"w", b"o", b"r", b"l", b"d"], b"world", true),
            (&[b"xxwor", b"l", b"dyy"], b"world", true),
            (&[b"hello wor", b"ld"], b"worlds", false),
            (&[b"abc", b"def"], b"", true),
            (&[b"wo", b"xrld"], b"world", false),
        ];
        for (chunks, needle, want) in cases {
            let mut search = Search::new(needle);
            for chunk in chunks {
                search.feed(chunk);
            }
            assert_eq!(search.found, want, "{chunks:?} {needle:?}");
        }
    }

    #[test]
    fn the_last_probe_of_a_host_closes_its_connection() {
        let host = Host::new(CONNECTIONS_PER_HOST, 3);
        let closes: Vec<bool> = (0..4).map(|_| host.start_one()).collect();
        assert_eq!(closes, [false, false, true, true]);
        assert_eq!(
            host_key(&Url::parse("https://Example.com/a").unwrap()),
            "https://example.com:443"
        );
    }

    #[test]
    fn a_host_admits_as_many_probes_at_once_as_connections_per_host() {
        let dns = Arc::new(super::super::dns::Resolver::new(Vec::new()));
        let clients = Clients::new(dns, 40);
        let url = Url::parse("http://127.0.0.1:8080/a").unwrap();
        clients.begin_tick(std::iter::empty());
        let slot = clients.host_slot(&url);
        assert_eq!(slot.host.slots.available_permits(), 40);
    }
}
