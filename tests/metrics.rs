//! `agent.metrics_listen` (SPEC §13): the real agent serves `/metrics` on
//! 127.0.0.1, read here with a strict parser of the text format 0.0.4 and
//! with `promtool check metrics` (Debian's `prometheus` package, which
//! scripts/test.sh installs; a missing promtool fails, never skips).

#![expect(
    clippy::float_cmp,
    reason = "the values compared are small counts, exact in f64"
)]

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{Env, wait_for};

/// The exposition's content type (PROTOCOLS.md §8).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Seconds per tick: short enough to wait for one, long enough that a
/// scrape right after a tick sees no second one.
const BASE_INTERVAL: &str = "10";

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An agent with `metrics_listen` on a free port (when `listen`), a log
/// metric sink, a CRITICAL command check that alerts at once and a TCP
/// probe of `probed`.
fn env_with_checks(listen: Option<u16>, probed: u16) -> Env {
    let listen = listen
        .map(|port| format!("  metrics_listen: 127.0.0.1:{port}\n"))
        .unwrap_or_default();
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\nmetrics:\n  type: log\n  path: metrics.jsonl\n",
        &format!("  base_interval: {BASE_INTERVAL}\n  splay: 0\n{listen}"),
    );
    env.write_check(
        "app.yaml",
        "down:\n  command: echo 'CRITICAL - down | load=5'; exit 2\n  retry: 0\n",
    );
    env.write_check("port.yaml", &format!("port:\n  tcp: 127.0.0.1:{probed}\n"));
    env
}

/// `cimaa agent` running in the background; killed when dropped.
struct Agent {
    child: Child,
    log: std::path::PathBuf,
}

impl Agent {
    fn start(env: &Env) -> Agent {
        let log = env.path("agent.log");
        let child = Command::new(env!("CARGO_BIN_EXE_cimaa"))
            .args(["-c", &env.config().display().to_string(), "agent"])
            .current_dir(env.path(""))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The TCP ports this process listens on, from /proc.
    fn listening_ports(&self) -> Vec<u16> {
        let pid = self.child.id();
        let inodes: HashSet<String> = fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|target| {
                let target = target.display().to_string();
                Some(
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_string(),
                )
            })
            .collect();
        let mut ports = Vec::new();
        for table in ["tcp", "tcp6"] {
            let text = fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // local address, state 0A (LISTEN), inode.
                if fields.get(3) == Some(&"0A")
                    && fields.get(9).is_some_and(|i| inodes.contains(*i))
                {
                    let port = fields[1].rsplit(':').next().unwrap();
                    ports.push(u16::from_str_radix(port, 16).unwrap());
                }
            }
        }
        ports
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET of `path`: status, content type, body.
fn get(port: u16, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// A scrape of `/metrics`, checked and parsed.
fn scrape(port: u16) -> Exposition {
    let (status, content_type, body) = get(port, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, CONTENT_TYPE);
    parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

/// Waits until the agent at `port` answers and has finished `ticks` ticks.
fn wait_for_ticks(port: u16, ticks: f64) -> Exposition {
    let mut last = None;
    wait_for("the agent's tick", Duration::from_secs(40), || {
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            return false;
        }
        let exposition = scrape(port);
        let done = exposition.value("cimaa_ticks_total", &[]) >= ticks;
        last = Some(exposition);
        done
    });
    last.unwrap()
}

/// One sample: its name (with `_bucket`, `_sum`, `_count`), labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A family: HELP, TYPE and its samples.
#[derive(Debug)]
struct Family {
    help: String,
    kind: String,
    samples: Vec<Sample>,
}

#[derive(Debug)]
struct Exposition {
    families: BTreeMap<String, Family>,
}

impl Exposition {
    fn family(&self, name: &str) -> &Family {
        self.families
            .get(name)
            .unwrap_or_else(|| panic!("no family `{name}` in {:?}", self.families.keys()))
    }

    /// The value of the one sample `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let matching: Vec<&Sample> = self
            .families
            .values()
            .flat_map(|family| &family.samples)
            .filter(|sample| sample.name == name && sample.labels == want)
            .collect();
        assert_eq!(matching.len(), 1, "{name}{labels:?} in {self:#?}");
        matching[0].value
    }

    /// The samples `name` with their labels.
    fn samples(&self, name: &str) -> Vec<&Sample> {
        self.families
            .values()
            .flat_map(|family| &family.samples)
            .filter(|sample| sample.name == name)
            .collect()
    }
}

fn is_name(name: &str, first: impl Fn(char) -> bool, rest: impl Fn(char) -> bool) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(first) && chars.all(rest)
}

fn metric_name(name: &str) -> bool {
    is_name(
        name,
        |c| c.is_ascii_alphabetic() || c == '_' || c == ':',
        |c| c.is_ascii_alphanumeric() || c == '_' || c == ':',
    )
}

fn label_name(name: &str) -> bool {
    !name.starts_with("__")
        && is_name(
            name,
            |c| c.is_ascii_alphabetic() || c == '_',
            |c| c.is_ascii_alphanumeric() || c == '_',
        )
}

/// The family a sample name belongs to among `families` (histograms add
/// `_bucket`, `_sum` and `_count`).
fn family_of<'a>(sample: &'a str, families: &BTreeMap<String, Family>) -> Option<&'a str> {
    if families.contains_key(sample) {
        return Some(sample);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = sample.strip_suffix(suffix)?;
        families
            .get(base)
            .is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
            .then_some(base)
    })
}

/// `{a="x",b="y"} rest` → the labels (unescaped) and `rest`.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').ok_or("no `{`")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest
            .split_once("=\"")
            .ok_or("no `=\"` after a label name")?;
        if !label_name(name) {
            return Err(format!("bad label name `{name}`"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling `\\`")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => return Err(format!("bad escape `\\{other}`")),
                },
                (_, '\n') => return Err("raw newline in a label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label `{name}` twice"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("bad value `{text}`")),
    }
}

/// A strict parser of the text format 0.0.4: HELP and TYPE once per
/// family, before its samples; each family's lines together; valid names;
/// label values escaped; each name and label set once; histograms
/// cumulative and ending in `+Inf` equal to `_count`; a final newline.
fn parse(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the last line does not end in a newline".into());
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut seen = HashSet::new();
    for line in text.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, doc) = help.split_once(' ').ok_or("HELP without text")?;
            if !metric_name(name) || families.contains_key(name) {
                return Err(format!("HELP for `{name}`: bad or repeated"));
            }
            families.insert(
                name.to_string(),
                Family {
                    help: doc.to_string(),
                    kind: String::new(),
                    samples: Vec::new(),
                },
            );
            current = Some(name.to_string());
        } else if let Some(kind) = line.strip_prefix("# TYPE ") {
            let (name, kind) = kind.split_once(' ').ok_or("TYPE without a type")?;
            let family = families
                .get_mut(name)
                .filter(|f| f.kind.is_empty() && f.samples.is_empty())
                .ok_or(format!("TYPE of `{name}` not right after its HELP"))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("bad type `{kind}`"));
            }
            family.kind = kind.to_string();
        } else if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line `{line}`"));
        } else {
            let split = line
                .find(['{', ' '])
                .ok_or(format!("bad sample `{line}`"))?;
            let (name, rest) = line.split_at(split);
            let (labels, rest) = if rest.starts_with('{') {
                parse_labels(rest)?
            } else {
                (BTreeMap::new(), rest)
            };
            let value = rest
                .strip_prefix(' ')
                .ok_or(format!("no value in `{line}`"))?;
            let value = parse_value(value)?;
            let family = family_of(name, &families).ok_or(format!("`{name}` without HELP"))?;
            if current.as_deref() != Some(family) {
                return Err(format!("`{name}` outside its family's group"));
            }
            if !seen.insert(format!("{name}{labels:?}")) {
                return Err(format!("`{name}{labels:?}` twice"));
            }
            families
                .get_mut(family)
                .ok_or("no family")?
                .samples
                .push(Sample {
                    name: name.to_string(),
                    labels,
                    value,
                });
        }
    }
    for (name, family) in &families {
        if family.kind.is_empty() {
            return Err(format!("`{name}` has no TYPE"));
        }
        if family.kind == "counter" && !name.ends_with("_total") {
            return Err(format!("counter `{name}` does not end in _total"));
        }
        if family.kind == "histogram" {
            check_histogram(name, family)?;
        }
    }
    Ok(Exposition { families })
}

/// Each series' buckets ascend, grow, and end at `+Inf` equal to `_count`.
fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    let series = |sample: &Sample| {
        let mut labels = sample.labels.clone();
        labels.remove("le");
        labels
    };
    for count in family.samples.iter().filter(|s| s.name.ends_with("_count")) {
        let labels = series(count);
        let buckets: Vec<(f64, f64)> = family
            .samples
            .iter()
            .filter(|s| s.name.ends_with("_bucket") && series(s) == labels)
            .map(|s| {
                Ok((
                    parse_value(s.labels.get("le").ok_or("bucket without le")?)?,
                    s.value,
                ))
            })
            .collect::<Result<_, String>>()?;
        let ordered = buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        let last = buckets.last().ok_or(format!("`{name}` has no buckets"))?;
        if !ordered || last.0 != f64::INFINITY || last.1 != count.value {
            return Err(format!("`{name}{labels:?}`: bad buckets {buckets:?}"));
        }
    }
    Ok(())
}

/// The families SPEC §13 lists, with their types.
const FAMILIES: &[(&str, &str)] = &[
    ("cimaa_build_info", "gauge"),
    ("cimaa_ticks_total", "counter"),
    ("cimaa_tick_duration_seconds", "histogram"),
    ("cimaa_checks_run_total", "counter"),
    ("cimaa_check_duration_seconds", "histogram"),
    ("cimaa_faults", "gauge"),
    ("cimaa_alerts_delivered_total", "counter"),
    ("cimaa_alerts_failed_total", "counter"),
    ("cimaa_db_requests_total", "counter"),
    ("cimaa_db_errors_total", "counter"),
    ("cimaa_db_request_duration_seconds", "histogram"),
    ("cimaa_sink_buffer_depth", "gauge"),
    ("cimaa_sink_metrics_sent_total", "counter"),
    ("cimaa_sink_metrics_dropped_total", "counter"),
];

#[test]
fn every_family_is_served_with_help_and_type() {
    let (port, probed) = (free_port(), TcpListener::bind("127.0.0.1:0").unwrap());
    let env = env_with_checks(Some(port), probed.local_addr().unwrap().port());
    let _agent = Agent::start(&env);
    let exposition = wait_for_ticks(port, 0.0);
    for (name, kind) in FAMILIES {
        let family = exposition.family(name);
        assert_eq!(family.kind, *kind, "{name}");
        assert!(!family.help.is_empty(), "{name}");
    }
    assert_eq!(exposition.families.len(), FAMILIES.len());
    let info = exposition.samples("cimaa_build_info");
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].labels["version"], env!("CARGO_PKG_VERSION"));
    assert!(!info[0].labels["commit"].is_empty());
    assert_eq!(info[0].value, 1.0);
}

#[test]
fn a_tick_counts_checks_by_kind_faults_by_severity_and_deliveries() {
    let (port, probed) = (free_port(), TcpListener::bind("127.0.0.1:0").unwrap());
    let env = env_with_checks(Some(port), probed.local_addr().unwrap().port());
    let agent = Agent::start(&env);
    let m = wait_for_ticks(port, 1.0);
    assert_eq!(m.value("cimaa_ticks_total", &[]), 1.0);
    assert_eq!(m.value("cimaa_tick_duration_seconds_count", &[]), 1.0);
    for kind in ["command", "tcp"] {
        assert_eq!(m.value("cimaa_checks_run_total", &[("kind", kind)]), 1.0);
        let count = m.value("cimaa_check_duration_seconds_count", &[("kind", kind)]);
        assert_eq!(count, 1.0, "{kind}");
    }
    assert_eq!(m.value("cimaa_checks_run_total", &[("kind", "http")]), 0.0);
    // The CRITICAL `down`; the TCP probe passes.
    for (severity, count) in [
        ("critical", 1.0),
        ("error", 0.0),
        ("warning", 0.0),
        ("info", 0.0),
    ] {
        assert_eq!(
            m.value("cimaa_faults", &[("severity", severity)]),
            count,
            "{severity}"
        );
    }
    let trigger = [("alerter", "default"), ("action", "trigger")];
    assert_eq!(m.value("cimaa_alerts_delivered_total", &trigger), 1.0);
    assert_eq!(m.value("cimaa_alerts_failed_total", &trigger), 0.0);
    let resolve = [("alerter", "default"), ("action", "resolve")];
    assert_eq!(m.value("cimaa_alerts_delivered_total", &resolve), 0.0);
    assert_eq!(env.alerts().len(), 1);
    // The start read the previous state: every request has its latency.
    assert!(m.value("cimaa_db_requests_total", &[("operation", "get_faults")]) >= 1.0);
    for request in m.samples("cimaa_db_requests_total") {
        let operation = request.labels["operation"].as_str();
        let labels = [("operation", operation)];
        assert_eq!(
            m.value("cimaa_db_errors_total", &labels),
            0.0,
            "{operation}"
        );
        let timed = m.value("cimaa_db_request_duration_seconds_count", &labels);
        assert_eq!(timed, request.value, "{operation}");
    }
    // `down`'s one perfdata value reaches the log sink.
    wait_for("the metric sink", Duration::from_secs(10), || {
        scrape(port).value("cimaa_sink_metrics_sent_total", &[]) >= 1.0
    });
    let m = scrape(port);
    assert_eq!(m.value("cimaa_sink_metrics_dropped_total", &[]), 0.0);
    assert_eq!(m.value("cimaa_sink_buffer_depth", &[]), 0.0);
    assert!(agent.listening_ports().contains(&port));
}

#[test]
fn promtool_check_metrics_accepts_the_exposition() {
    let (port, probed) = (free_port(), TcpListener::bind("127.0.0.1:0").unwrap());
    let env = env_with_checks(Some(port), probed.local_addr().unwrap().port());
    let _agent = Agent::start(&env);
    wait_for_ticks(port, 1.0);
    let (_, _, body) = get(port, "/metrics");
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut promtool) = promtool else {
        panic!("promtool is missing: install Debian's `prometheus` package (scripts/test.sh does)");
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}\n{body}");
    assert_eq!(said.trim(), "", "{body}");
}

#[test]
fn counters_survive_a_sighup_rescan() {
    let (port, probed) = (free_port(), TcpListener::bind("127.0.0.1:0").unwrap());
    let env = env_with_checks(Some(port), probed.local_addr().unwrap().port());
    let agent = Agent::start(&env);
    wait_for_ticks(port, 1.0);
    agent.signal("HUP");
    wait_for("the rescan", Duration::from_secs(10), || {
        agent.log().contains("SIGHUP: rescanning")
    });
    let m = scrape(port);
    // A rescan is not a tick, and nothing was reset.
    assert_eq!(m.value("cimaa_ticks_total", &[]), 1.0);
    assert_eq!(
        m.value("cimaa_checks_run_total", &[("kind", "command")]),
        1.0
    );
    let trigger = [("alerter", "default"), ("action", "trigger")];
    assert_eq!(m.value("cimaa_alerts_delivered_total", &trigger), 1.0);
    assert_eq!(m.value("cimaa_faults", &[("severity", "critical")]), 1.0);
    // The next tick adds to the same counters.
    let m = wait_for_ticks(port, 2.0);
    assert_eq!(m.value("cimaa_ticks_total", &[]), 2.0);
    assert_eq!(
        m.value("cimaa_checks_run_total", &[("kind", "command")]),
        2.0
    );
    assert_eq!(env.alerts().len(), 1);
}

#[test]
fn without_metrics_listen_the_agent_listens_nowhere() {
    let probed = TcpListener::bind("127.0.0.1:0").unwrap();
    let env = env_with_checks(None, probed.local_addr().unwrap().port());
    let agent = Agent::start(&env);
    wait_for("the agent's start", Duration::from_secs(15), || {
        agent.log().contains("agent started")
    });
    assert_eq!(agent.listening_ports(), Vec::<u16>::new());
}

#[test]
fn only_get_metrics_is_served() {
    let (port, probed) = (free_port(), TcpListener::bind("127.0.0.1:0").unwrap());
    let env = env_with_checks(Some(port), probed.local_addr().unwrap().port());
    let _agent = Agent::start(&env);
    wait_for_ticks(port, 0.0);
    let (status, _, _) = get(port, "/");
    assert_eq!(status, 404);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 405 "), "{response}");
}

#[test]
fn a_metrics_address_in_use_stops_the_agent_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let env = env_with_checks(Some(port), port);
    let output = env.cimaa(&["agent", "--once"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot serve /metrics on `127.0.0.1:{port}` (agent.metrics_listen)"
        )),
        "{stderr}"
    );
}

#[test]
fn a_metrics_listen_that_is_no_address_is_a_configuration_error() {
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        "  metrics_listen: localhost\n",
    );
    let output = env.cimaa(&["validate"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("agent.metrics_listen"), "{stderr}");
    assert!(stderr.contains("line 5"), "{stderr}");
}

#[test]
fn the_parser_refuses_what_the_format_forbids() {
    let cases = [
        (
            "# HELP a_total x\n# TYPE a_total counter\na_total 1",
            "newline",
        ),
        ("a_total 1\n", "without HELP"),
        (
            "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"x\ny\"} 1\n",
            "label",
        ),
        ("# HELP a x\n# TYPE a counter\na 1\n", "_total"),
        (
            "# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total 2\n",
            "twice",
        ),
        (
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "buckets",
        ),
    ];
    for (text, why) in cases {
        let error = parse(text).expect_err(text);
        assert!(!error.is_empty(), "{why}");
    }
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"q\\\"\\\\\\n\"} 1\n";
    let parsed = parse(ok).unwrap();
    assert_eq!(parsed.value("a_total", &[("l", "q\"\\\n")]), 1.0);
}
