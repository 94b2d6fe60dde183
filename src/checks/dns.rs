//! Name resolution for the network probes (SPEC §14 "DNS").
//!
//! Every probe (`http`, `tcp`, `socket` with `tcp://`) resolves its host
//! through the agent's one `Resolver`, shared in `Probes`. It asks the
//! nameservers through hickory-resolver (real DNS, with the records' TTLs)
//! and keeps each answer in its own cache: a fresh answer is used until its
//! TTL runs out; when the nameservers then fail (timeout, SERVFAIL, no
//! connection) the expired answer is served, stale, for up to an hour.
//! A name that does not exist (NXDOMAIN, no address) is an answer, not a
//! failure: it is neither served stale nor counted as a resolver outage.
//! IP literals and `localhost` never go to the nameservers.
//!
//! Each tick the resolver notes the names it was asked about. When the
//! nameservers failed for every one of them, `end_tick` reports an
//! `Outage`, which the agent turns into the ERROR `AGENT#dns`, naming the
//! hosts that could not be resolved (no stale answer either); the agent
//! suppresses those hosts' probes by it (SPEC §14, `suppressed_by`, see
//! `agent::dependencies`).
//!
//! The cache is pure (`Cache`, on a caller's clock) so its expiry and stale
//! rules are tested without a network.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// How long after its TTL ran out an answer may still be served while the
/// nameservers fail.
pub(crate) const STALE_FOR: Duration = Duration::from_hours(1);

/// How long a lookup waits for the nameservers when a stale answer is at
/// hand: a probe should not spend its timeout on a resolver that is down.
const STALE_PATIENCE: Duration = Duration::from_secs(2);

/// Names kept at most; the entries past their stale hour go first.
const MAX_ENTRIES: usize = 10_000;

/// One cached answer.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    addresses: Vec<IpAddr>,
    /// When the TTL runs out.
    expires: Instant,
}

/// What the cache holds for a name at some instant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cached {
    /// Within its TTL: use it without asking.
    Fresh(Vec<IpAddr>),
    /// Past its TTL but within the stale hour: ask, and use it if asking fails.
    Stale(Vec<IpAddr>),
    /// Nothing usable.
    Missing,
}

/// Answers by name, on the caller's clock. Pure.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: HashMap<String, Entry>,
}

impl Cache {
    /// What is held for `name` at `now`.
    #[must_use]
    pub(crate) fn get(&self, name: &str, now: Instant) -> Cached {
        match self.entries.get(name) {
            Some(entry) if now < entry.expires => Cached::Fresh(entry.addresses.clone()),
            Some(entry) if now < entry.expires + STALE_FOR => {
                Cached::Stale(entry.addresses.clone())
            }
            _ => Cached::Missing,
        }
    }

    /// Keeps the answer for `name`, fresh for `ttl` from `now`. An empty
    /// answer is not kept (and forgets an older one: the name went away).
    pub(crate) fn store(
        &mut self,
        name: &str,
        addresses: Vec<IpAddr>,
        ttl: Duration,
        now: Instant,
    ) {
        if addresses.is_empty() {
            self.entries.remove(name);
            return;
        }
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(name) {
            self.entries
                .retain(|_, entry| now < entry.expires + STALE_FOR);
            if self.entries.len() >= MAX_ENTRIES {
                // Every entry is still usable: drop the one that expires first.
                let first = self
                    .entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.expires)
                    .map(|(name, _)| name.clone());
                if let Some(first) = first {
                    self.entries.remove(&first);
                }
            }
        }
        self.entries.insert(
            name.to_string(),
            Entry {
                addresses,
                expires: now + ttl,
            },
        );
    }

    /// Forgets `name` (it does not exist any more).
    pub(crate) fn forget(&mut self, name: &str) {
        self.entries.remove(name);
    }
}

/// Why a name did not resolve. The message does not name the host: the
/// probe's own message does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    /// The nameservers answered that the name has no address.
    #[error("no address for the name: {0}")]
    NoAddress(String),
    /// The nameservers failed (timeout, SERVFAIL, unreachable) and no
    /// answer was cached.
    #[error("the resolver failed: {0}")]
    Failed(String),
}

/// The names of one tick, by what became of them.
#[derive(Debug, Default)]
struct TickLog {
    /// Every name asked about (not IP literals, not `localhost`).
    asked: BTreeSet<String>,
    /// Names answered: from the cache while fresh, or by the nameservers
    /// (a "no such name" included).
    answered: BTreeSet<String>,
    /// Names served stale because the nameservers failed.
    stale: BTreeSet<String>,
    /// The latest failure of the nameservers.
    error: Option<String>,
}

/// A tick in which the nameservers failed for every name asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outage {
    /// Names with no answer at all (neither fresh nor stale): their probes
    /// could not run.
    pub unresolved: BTreeSet<String>,
    /// Names served from a stale answer.
    pub stale: BTreeSet<String>,
    /// The nameservers' latest error.
    pub error: String,
}

impl Outage {
    /// The `AGENT#dns` message.
    #[must_use]
    pub(crate) fn message(&self) -> String {
        let list = |names: &BTreeSet<String>| {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut message = format!("The resolver failed for every name: {}", self.error);
        if !self.unresolved.is_empty() {
            message += "; cannot resolve ";
            message += &list(&self.unresolved);
        }
        if !self.stale.is_empty() {
            message += "; serving stale answers for ";
            message += &list(&self.stale);
        }
        message
    }
}

/// The agent's caching resolver (see the module doc).
pub(crate) struct Resolver {
    /// Nameservers from `agent.resolver`; empty: the system's configuration.
    nameservers: Vec<SocketAddr>,
    /// Built on first use; a failed build (no resolv.conf yet, early at
    /// boot) is not kept, so the next lookup tries again.
    upstream: OnceLock<TokioResolver>,
    cache: Mutex<Cache>,
    tick: Mutex<TickLog>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("nameservers", &self.nameservers)
            .finish_non_exhaustive()
    }
}

impl Default for Resolver {
    fn default() -> Resolver {
        Resolver::new(Vec::new())
    }
}

/// The addresses of a name that never goes to the nameservers.
fn literal(host: &str) -> Option<Vec<IpAddr>> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(vec![ip]);
    }
    let name = bare.strip_suffix('.').unwrap_or(bare);
    (name.eq_ignore_ascii_case("localhost")).then(|| {
        vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
    })
}

impl Resolver {
    /// A resolver asking `nameservers` (empty: the system's configuration,
    /// read on first use).
    #[must_use]
    pub(crate) fn new(nameservers: Vec<SocketAddr>) -> Resolver {
        Resolver {
            nameservers,
            upstream: OnceLock::new(),
            cache: Mutex::new(Cache::default()),
            tick: Mutex::new(TickLog::default()),
        }
    }

    fn upstream(&self) -> Result<&TokioResolver, String> {
        if let Some(built) = self.upstream.get() {
            return Ok(built);
        }
        let built = build_upstream(&self.nameservers)?;
        Ok(self.upstream.get_or_init(|| built))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A poisoned cache only held answers; keep using it.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn log(&self, note: impl FnOnce(&mut TickLog)) {
        let mut log = self
            .tick
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        note(&mut log);
    }

    /// Starts a tick's record of names.
    pub(crate) fn begin_tick(&self) {
        self.log(|log| *log = TickLog::default());
    }

    /// Ends the tick: an `Outage` when the nameservers failed for every name
    /// asked about in it (a name whose lookup a probe's timeout cut short
    /// counts as failed).
    pub(crate) fn end_tick(&self) -> Option<Outage> {
        let mut outage = None;
        self.log(|log| {
            let log = std::mem::take(log);
            if log.asked.is_empty() || !log.answered.is_empty() {
                return;
            }
            let unresolved = log.asked.difference(&log.stale).cloned().collect();
            outage = Some(Outage {
                unresolved,
                stale: log.stale,
                error: log
                    .error
                    .unwrap_or_else(|| "no answer within the probes' timeouts".into()),
            });
        });
        outage
    }

    /// The addresses of `host`: literal, cached, asked, or stale (see the
    /// module doc).
    ///
    /// # Errors
    /// The name has no address, or the nameservers failed and nothing usable
    /// is cached.
    pub(crate) async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if let Some(addresses) = literal(host) {
            return Ok(addresses);
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        self.log(|log| {
            log.asked.insert(name.clone());
        });
        let stale = match self.cache().get(&name, Instant::now()) {
            Cached::Fresh(addresses) => {
                self.log(|log| {
                    log.answered.insert(name.clone());
                });
                return Ok(addresses);
            }
            Cached::Stale(addresses) => Some(addresses),
            Cached::Missing => None,
        };
        let asked = self.ask(&name, stale.is_some()).await;
        match asked {
            Ok((addresses, ttl)) => {
                self.cache()
                    .store(&name, addresses.clone(), ttl, Instant::now());
                self.log(|log| {
                    log.answered.insert(name.clone());
                });
                Ok(addresses)
            }
            Err(ResolveError::NoAddress(why)) => {
                self.cache().forget(&name);
                self.log(|log| {
                    log.answered.insert(name.clone());
                });
                Err(ResolveError::NoAddress(why))
            }
            Err(ResolveError::Failed(why)) => {
                self.log(|log| {
                    if stale.is_some() {
                        log.stale.insert(name.clone());
                    }
                    log.error = Some(why.clone());
                });
                match stale {
                    Some(addresses) => {
                        tracing::debug!(host = %name, error = %why, "resolver failed; serving a stale answer");
                        Ok(addresses)
                    }
                    None => Err(ResolveError::Failed(why)),
                }
            }
        }
    }

    /// Asks the nameservers: the addresses and how long they stay fresh.
    async fn ask(
        &self,
        name: &str,
        have_stale: bool,
    ) -> Result<(Vec<IpAddr>, Duration), ResolveError> {
        let upstream = self.upstream().map_err(ResolveError::Failed)?;
        // As written: a trailing dot would make `db` fully qualified and
        // skip resolv.conf's search domains, which getaddrinfo applies.
        let lookup = upstream.lookup_ip(name);
        let answer = if have_stale {
            match tokio::time::timeout(STALE_PATIENCE, lookup).await {
                Ok(answer) => answer,
                Err(_) => {
                    return Err(ResolveError::Failed(format!(
                        "no answer within {} s",
                        STALE_PATIENCE.as_secs()
                    )));
                }
            }
        } else {
            lookup.await
        };
        match answer {
            Ok(lookup) => {
                let ttl = lookup
                    .valid_until()
                    .saturating_duration_since(Instant::now());
                let addresses: Vec<IpAddr> = lookup.iter().collect();
                if addresses.is_empty() {
                    return Err(ResolveError::NoAddress("the answer is empty".into()));
                }
                Ok((addresses, ttl))
            }
            Err(e) if e.is_no_records_found() => Err(ResolveError::NoAddress(e.to_string())),
            Err(e) => Err(ResolveError::Failed(e.to_string())),
        }
    }
}

/// The hickory resolver over `nameservers`, else the system's configuration.
fn build_upstream(nameservers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?
    } else {
        let servers = nameservers
            .iter()
            .map(|address| {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut connection| {
                        connection.port = address.port();
                        connection
                    })
                    .collect();
                NameServerConfig::new(address.ip(), true, connections)
            })
            .collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
    };
    builder
        .build()
        .map_err(|e| format!("cannot start the resolver: {e}"))
}

/// `reqwest`'s resolver hook over the agent's `Resolver`.
#[derive(Debug)]
pub(crate) struct ForReqwest(pub Arc<Resolver>);

impl reqwest::dns::Resolve for ForReqwest {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses = resolver.resolve(&host).await?;
            // reqwest puts the URL's port in.
            let addrs: reqwest::dns::Addrs =
                Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Parses one `agent.resolver.nameservers` entry: `IP` (port 53) or
/// `IP:PORT` (`[IPV6]:PORT`).
///
/// # Errors
/// A sentence naming the entry.
pub(crate) fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}` is not a nameserver address (IP or IP:PORT, e.g. `10.0.0.2` or `127.0.0.1:5353`)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_answer_is_fresh_within_its_ttl_then_stale_for_an_hour_then_gone() {
        let start = Instant::now();
        let mut cache = Cache::default();
        cache.store(
            "web.test",
            vec![ip("10.0.0.1")],
            Duration::from_secs(30),
            start,
        );
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(
            cache.get("web.test", at(0)),
            Cached::Fresh(vec![ip("10.0.0.1")])
        );
        assert_eq!(
            cache.get("web.test", at(29)),
            Cached::Fresh(vec![ip("10.0.0.1")])
        );
        assert_eq!(
            cache.get("web.test", at(30)),
            Cached::Stale(vec![ip("10.0.0.1")])
        );
        assert_eq!(
            cache.get("web.test", at(30 + 3599)),
            Cached::Stale(vec![ip("10.0.0.1")])
        );
        assert_eq!(cache.get("web.test", at(30 + 3600)), Cached::Missing);
        assert_eq!(cache.get("other.test", at(0)), Cached::Missing);
    }

    #[test]
    fn a_new_answer_replaces_the_old_with_its_own_ttl() {
        let start = Instant::now();
        let mut cache = Cache::default();
        cache.store(
            "web.test",
            vec![ip("10.0.0.1")],
            Duration::from_secs(30),
            start,
        );
        let later = start + Duration::from_secs(40);
        cache.store(
            "web.test",
            vec![ip("10.0.0.2")],
            Duration::from_secs(5),
            later,
        );
        assert_eq!(
            cache.get("web.test", later + Duration::from_secs(4)),
            Cached::Fresh(vec![ip("10.0.0.2")])
        );
        assert_eq!(
            cache.get("web.test", later + Duration::from_secs(5)),
            Cached::Stale(vec![ip("10.0.0.2")])
        );
    }

    #[test]
    fn a_zero_ttl_answer_is_only_ever_stale() {
        let start = Instant::now();
        let mut cache = Cache::default();
        cache.store("web.test", vec![ip("10.0.0.1")], Duration::ZERO, start);
        assert_eq!(
            cache.get("web.test", start),
            Cached::Stale(vec![ip("10.0.0.1")])
        );
    }

    #[test]
    fn an_empty_answer_or_a_vanished_name_forgets_the_old_one() {
        let start = Instant::now();
        let mut cache = Cache::default();
        cache.store(
            "a.test",
            vec![ip("10.0.0.1")],
            Duration::from_secs(30),
            start,
        );
        cache.store("a.test", Vec::new(), Duration::from_secs(30), start);
        assert_eq!(cache.get("a.test", start), Cached::Missing);
        cache.store(
            "b.test",
            vec![ip("10.0.0.1")],
            Duration::from_secs(30),
            start,
        );
        cache.forget("b.test");
        assert_eq!(cache.get("b.test", start), Cached::Missing);
    }

    #[test]
    fn a_full_cache_drops_dead_entries_first_then_the_soonest_to_expire() {
        let start = Instant::now();
        let mut cache = Cache::default();
        for n in 0..MAX_ENTRIES {
            let ttl = Duration::from_secs(100 + n as u64);
            cache.store(&format!("n{n}.test"), vec![ip("10.0.0.1")], ttl, start);
        }
        cache.store(
            "new.test",
            vec![ip("10.0.0.2")],
            Duration::from_secs(100),
            start,
        );
        assert_eq!(cache.entries.len(), MAX_ENTRIES);
        assert_eq!(cache.get("n0.test", start), Cached::Missing);
        assert_eq!(
            cache.get("n1.test", start),
            Cached::Fresh(vec![ip("10.0.0.1")])
        );

        // Two hours on, every entry is past its stale hour: all go at once.
        let late = start + Duration::from_secs(7200 + 2 * MAX_ENTRIES as u64);
        cache.store(
            "late.test",
            vec![ip("10.0.0.3")],
            Duration::from_secs(10),
            late,
        );
        assert_eq!(cache.entries.len(), 1);
    }

    #[test]
    fn ip_literals_and_localhost_are_not_names() {
        assert_eq!(literal("127.0.0.1"), Some(vec![ip("127.0.0.1")]));
        assert_eq!(literal("::1"), Some(vec![ip("::1")]));
        assert_eq!(literal("[::1]"), Some(vec![ip("::1")]));
        assert_eq!(
            literal("LocalHost."),
            Some(vec![ip("127.0.0.1"), ip("::1")])
        );
        assert_eq!(literal("localhost.example.com"), None);
        assert_eq!(literal("web.test"), None);
    }

    #[tokio::test]
    async fn literals_never_count_as_names_asked() {
        // A nameserver that does not exist: asking it would fail.
        let resolver = Resolver::new(vec!["127.0.0.1:9".parse().unwrap()]);
        resolver.begin_tick();
        assert_eq!(
            resolver.resolve("127.0.0.1").await,
            Ok(vec![ip("127.0.0.1")])
        );
        assert_eq!(
            resolver.resolve("localhost").await,
            Ok(vec![ip("127.0.0.1"), ip("::1")])
        );
        assert_eq!(resolver.end_tick(), None);
    }

    #[test]
    fn nameservers_parse_with_and_without_a_port() {
        assert_eq!(
            parse_nameserver("10.0.0.2"),
            Ok("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(
            parse_nameserver(" 127.0.0.1:5353 "),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(parse_nameserver("::1"), Ok("[::1]:53".parse().unwrap()));
        assert_eq!(
            parse_nameserver("[::1]:5353"),
            Ok("[::1]:5353".parse().unwrap())
        );
        assert!(
            parse_nameserver("dns.example.com")
                .unwrap_err()
                .contains("`dns.example.com` is not a nameserver address")
        );
    }

    #[test]
    fn the_outage_message_names_unresolved_and_stale_hosts() {
        let outage = Outage {
            unresolved: ["a.test".to_string()].into(),
            stale: ["b.test".to_string()].into(),
            error: "request timed out".into(),
        };
        assert_eq!(
            outage.message(),
            "The resolver failed for every name: request timed out; cannot resolve `a.test`; \
             serving stale answers for `b.test`"
        );
    }
}
