//! The probes' caching resolver (SPEC §14 "DNS") through the real binary,
//! pointed by `agent.resolver` at a tiny DNS server on 127.0.0.1 that the
//! test steers: which address it answers with, the TTL, or SERVFAIL.
//! See: #16

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::util::{AGENT, Env, check_name};

/// What the fake nameserver does with a query.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Answers A queries for its names with this address and TTL.
    Answer(Ipv4Addr, u32),
    /// SERVFAIL for everything.
    ServFail,
}

#[derive(Debug)]
struct DnsState {
    mode: Mode,
    /// A queries received, by name (`web.test`).
    queries: Vec<String>,
}

/// A nameserver on 127.0.0.1 answering the names ending in `.test`.
pub(crate) struct DnsServer {
    port: u16,
    state: Arc<Mutex<DnsState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    pub(crate) fn start(mode: Mode) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(DnsState {
            mode,
            queries: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buffer = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, peer)) = socket.recv_from(&mut buffer) else {
                        continue;
                    };
                    if let Some(reply) = answer(&buffer[..len], &state) {
                        let _ = socket.send_to(&reply, peer);
                    }
                }
            })
        };
        DnsServer {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// A queries received so far for `name`.
    fn queries(&self, name: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.queries.iter().filter(|q| *q == name).count()
    }

    /// The names asked about, each once, sorted.
    fn names(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        let mut names = state.queries.clone();
        names.sort();
        names.dedup();
        names
    }

    /// The `agent:` lines pointing the resolver here, with one-second ticks.
    pub(crate) fn agent_lines(&self) -> String {
        format!(
            "  base_interval: 1\n  resolver:\n    nameservers: [\"127.0.0.1:{}\"]\n",
            self.port
        )
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reply to one query: the question echoed, and for an A query of a
/// `.test` name in `Answer` mode one A record.
fn answer(query: &[u8], state: &Mutex<DnsState>) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question = &query[12..at + 4];
    let name = labels.join(".");
    let mut state = state.lock().unwrap();
    if qtype == 1 {
        state.queries.push(name.clone());
    }
    // Names arrive lower-cased (see above).
    let known = labels.last().is_some_and(|label| label == "test");
    let (rcode, record) = match state.mode {
        Mode::ServFail => (2, None),
        Mode::Answer(..) if !known => (3, None),
        Mode::Answer(address, ttl) if qtype == 1 => (0, Some((address, ttl))),
        Mode::Answer(..) => (0, None),
    };
    let mut reply = Vec::new();
    reply.extend_from_slice(&query[..2]);
    // QR, the query's RD, RA, and the response code.
    reply.push(0x80 | (query[2] & 0x01));
    reply.push(0x80 | rcode);
    reply.extend_from_slice(&[0, 1, 0, u8::from(record.is_some()), 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if let Some((address, ttl)) = record {
        // A pointer to the question's name, type A, class IN.
        reply.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        reply.extend_from_slice(&ttl.to_be_bytes());
        reply.extend_from_slice(&[0, 4]);
        reply.extend_from_slice(&address.octets());
    }
    Some(reply)
}

/// `cimaa agent` in the background, killed when dropped.
struct Agent(Child);

impl Agent {
    fn start(env: &Env) -> Agent {
        let child = Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .arg("-c")
            .arg(env.config())
            .arg("agent")
            .current_dir(env.path(""))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Agent(child)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = kill(
            Pid::from_raw(i32::try_from(self.0.id()).unwrap()),
            Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

/// Waits up to 20 s for `done`, polling every 200 ms.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The message of the stored fault `name`, if any.
fn message(env: &Env, name: &str) -> Option<String> {
    env.fault(name)
        .map(|f| f["message"].as_str().unwrap_or_default().to_string())
}

/// A TCP check of `web.test` on a port listening on 127.0.0.1.
fn web_check(env: &Env, listener: &TcpListener) -> String {
    let port = listener.local_addr().unwrap().port();
    env.write_check(
        "web.yaml",
        &format!("port:\n  tcp: web.test:{port}\n  retry: 0\n  timeout: 5\n"),
    );
    check_name("web", "port")
}

/// Lets the one-second ticks of a running agent pass.
fn wait_ticks(ticks: u64) {
    std::thread::sleep(Duration::from_millis(1000 * ticks + 500));
}

#[test]
fn probes_resolve_names_through_the_configured_nameserver() {
    let dns = DnsServer::start(Mode::Answer(Ipv4Addr::LOCALHOST, 60));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        &dns.agent_lines(),
    );
    let name = web_check(&env, &listener);
    env.once();
    assert_eq!(message(&env, &name), None);
    assert_eq!(dns.queries("web.test"), 1);

    // The nameserver says the name is elsewhere: the probe goes there.
    dns.set(Mode::Answer(Ipv4Addr::new(127, 0, 0, 2), 60));
    env.once();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(
        message(&env, &name),
        Some(format!("web.test:{port}: connection refused"))
    );
}

#[test]
fn an_answer_is_reused_within_its_ttl() {
    let dns = DnsServer::start(Mode::Answer(Ipv4Addr::LOCALHOST, 3600));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        &dns.agent_lines(),
    );
    let name = web_check(&env, &listener);
    let _agent = Agent::start(&env);
    wait_for("the first lookup", || dns.queries("web.test") >= 1);
    // A changed answer is not asked for while the old one is fresh.
    dns.set(Mode::Answer(Ipv4Addr::new(127, 0, 0, 2), 3600));
    wait_ticks(4);
    assert_eq!(dns.queries("web.test"), 1);
    assert_eq!(message(&env, &name), None);
}

#[test]
fn a_changed_answer_is_used_once_the_ttl_runs_out() {
    let dns = DnsServer::start(Mode::Answer(Ipv4Addr::LOCALHOST, 2));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        &dns.agent_lines(),
    );
    let name = web_check(&env, &listener);
    let _agent = Agent::start(&env);
    wait_for("the first lookup", || dns.queries("web.test") >= 1);
    dns.set(Mode::Answer(Ipv4Addr::new(127, 0, 0, 2), 2));
    wait_for("the probe to follow the new answer", || {
        message(&env, &name) == Some(format!("web.test:{port}: connection refused"))
    });
    assert!(dns.queries("web.test") >= 2);
}

#[test]
fn a_failing_resolver_serves_the_stale_answer_and_raises_agent_dns() {
    let dns = DnsServer::start(Mode::Answer(Ipv4Addr::LOCALHOST, 1));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        &dns.agent_lines(),
    );
    let name = web_check(&env, &listener);
    let dns_fault = format!("{AGENT}#dns");
    let _agent = Agent::start(&env);
    wait_for("the first lookup", || dns.queries("web.test") >= 1);
    dns.set(Mode::ServFail);
    let asked = dns.queries("web.test");
    // The nameserver was asked again, failed, and the cached answer served.
    wait_for("AGENT#dns", || message(&env, &dns_fault).is_some());
    assert!(dns.queries("web.test") > asked);
    assert_eq!(
        message(&env, &dns_fault).unwrap(),
        format!(
            "The resolver failed for every name: {}; serving stale answers for `web.test`",
            servfail_detail(&env, &dns_fault)
        )
    );
    assert_eq!(message(&env, &name), None);
    assert_eq!(env.fault(&dns_fault).unwrap()["severity"], 40);

    // The nameserver answers again: AGENT#dns clears.
    dns.set(Mode::Answer(Ipv4Addr::LOCALHOST, 1));
    wait_for("AGENT#dns to clear", || message(&env, &dns_fault).is_none());
    assert_eq!(message(&env, &name), None);
}

/// The resolver's own words between the fixed parts of the message.
fn servfail_detail(env: &Env, fault: &str) -> String {
    let message = message(env, fault).unwrap();
    let rest = message
        .strip_prefix("The resolver failed for every name: ")
        .unwrap();
    let (detail, _) = rest.rsplit_once("; serving").unwrap();
    assert!(!detail.is_empty());
    detail.to_string()
}

#[test]
fn names_that_never_resolved_raise_one_agent_dns_naming_them() {
    let dns = DnsServer::start(Mode::ServFail);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        &dns.agent_lines(),
    );
    env.write_check(
        "web.yaml",
        &format!(
            "port:\n  tcp: a.test:{port}\n  retry: 0\npage:\n  http: {{url: \"http://b.test:{port}/\"}}\n  retry: 0\nlocal:\n  tcp: 127.0.0.1:{port}\n"
        ),
    );
    env.once();
    let faults = env.faults();
    let agent_faults: Vec<&Value> = faults
        .iter()
        .filter(|f| {
            f["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{AGENT}#"))
        })
        .collect();
    assert_eq!(agent_faults.len(), 1, "{faults:?}");
    let dns_fault = agent_faults[0];
    assert_eq!(dns_fault["name"], format!("{AGENT}#dns"));
    assert_eq!(dns_fault["severity"], 40);
    let text = dns_fault["message"].as_str().unwrap();
    assert!(
        text.starts_with("The resolver failed for every name: ")
            && text.ends_with("; cannot resolve `a.test`, `b.test`"),
        "{text}"
    );
    let port_message = message(&env, &check_name("web", "port")).unwrap();
    assert!(
        port_message.starts_with(&format!(
            "a.test:{port}: cannot resolve host: the resolver failed: "
        )),
        "{port_message}"
    );
    // The IP literal never went to the nameserver and still works.
    assert_eq!(message(&env, &check_name("web", "local")), None);
    assert_eq!(dns.names(), ["a.test", "b.test"]);
}

#[test]
fn a_name_that_does_not_exist_is_the_probes_own_error_not_an_outage() {
    let dns = DnsServer::start(Mode::Answer(Ipv4Addr::LOCALHOST, 60));
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        &dns.agent_lines(),
    );
    env.write_check("web.yaml", "port:\n  tcp: web.example:80\n  retry: 0\n");
    env.once();
    let text = message(&env, &check_name("web", "port")).unwrap();
    assert!(
        text.starts_with("web.example:80: cannot resolve host: no address for the name"),
        "{text}"
    );
    assert_eq!(message(&env, &format!("{AGENT}#dns")), None);
}
