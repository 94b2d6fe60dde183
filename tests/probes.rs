//! Network probes (SPEC §4 "Network checks") against local servers, through
//! the real binary: `cimaa check` for metrics, `cimaa agent --once` for
//! faults, retries and alerts. See: #8

use std::fmt::Write as _;
use std::path::Path;

use crate::servers::{self, HttpServer, SocketServer, Stalled};
use crate::util::{Env, assert_success, check_name, event, events, stdout};

/// `(metric, value, units)` as `cimaa check` prints them for one check.
type Metrics = Vec<(String, String, String)>;

fn metrics(env: &Env, file: &str, key: &str) -> Metrics {
    metrics_with(env, file, key, &[])
}

fn metrics_with(env: &Env, file: &str, key: &str, vars: &[(&str, &Path)]) -> Metrics {
    let path = env.path(&format!("checks.d/{file}"));
    let output = env.cimaa_with_env(&["check", &path.display().to_string(), key], vars);
    assert_success(&output);
    let prefix = format!(
        "  metric {}#",
        check_name(file.trim_end_matches(".yaml"), key)
    );
    stdout(&output)
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|rest| {
            let (name, value) = rest.split_once(" = ").unwrap();
            let split = value
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
                .unwrap_or(value.len());
            (
                name.to_string(),
                value[..split].to_string(),
                value[split..].to_string(),
            )
        })
        .collect()
}

/// A metric's printed value and units.
fn metric(metrics: &Metrics, name: &str) -> (String, String) {
    match metrics.iter().find(|(n, _, _)| n == name) {
        Some((_, value, units)) => (value.clone(), units.clone()),
        None => panic!("no metric {name} in {metrics:?}"),
    }
}

/// A metric's value as a number.
fn value(metrics: &Metrics, name: &str) -> f64 {
    metric(metrics, name).0.parse().unwrap()
}

fn shown(value: &str, units: &str) -> (String, String) {
    (value.into(), units.into())
}

/// The stored faults of one check: `(suffix after the check name, severity, message)`.
fn faults_of(env: &Env, name: &str) -> Vec<(String, i64, String)> {
    let mut faults: Vec<_> = env
        .faults()
        .into_iter()
        .filter_map(|f| {
            let full = f["name"].as_str()?;
            let rest = full.strip_prefix(name)?;
            if !(rest.is_empty() || rest.starts_with('#')) {
                return None;
            }
            Some((
                rest.to_string(),
                f["severity"].as_i64()?,
                f["message"].as_str()?.to_string(),
            ))
        })
        .collect();
    faults.sort();
    faults
}

fn fault(suffix: &str, severity: i64, message: &str) -> (String, i64, String) {
    (suffix.into(), severity, message.into())
}

#[test]
fn a_healthy_page_passes_and_reports_its_metrics() {
    let server = HttpServer::start();
    let env = Env::new();
    env.write_check(
        "web.yaml",
        &format!(
            "health:\n  http: {{url: \"{}\", status: 200, contains: \"ok\"}}\n",
            server.url("/ok")
        ),
    );
    env.once();
    assert_eq!(faults_of(&env, &check_name("web", "health")), []);
    let metrics = metrics(&env, "web.yaml", "health");
    let names: Vec<&str> = metrics.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["response_time", "status", "size"]);
    assert_eq!(metric(&metrics, "status"), shown("200", ""));
    assert_eq!(metric(&metrics, "size"), shown("11", "B"));
    let time = value(&metrics, "response_time");
    assert!(time > 0.0 && time < 5.0, "{time}");
    assert_eq!(metric(&metrics, "response_time").1, "s");
}

#[test]
fn a_503_is_an_escalating_error_with_metrics_of_the_response() {
    let server = HttpServer::start();
    let env = Env::new();
    env.write_check(
        "web.yaml",
        &format!(
            "api:\n  http: {{url: \"{}\"}}\n  retry: 1\n",
            server.url("/fail")
        ),
    );
    let name = check_name("web", "api");
    env.once();
    assert_eq!(
        faults_of(&env, &name),
        [fault("", 40, "expected status 200-399, got 503 (1 of 2)")]
    );
    env.once();
    assert_eq!(
        faults_of(&env, &name),
        [fault("", 50, "expected status 200-399, got 503")]
    );
    assert_eq!(
        events(&env.alerts()),
        [event("trigger", &name, "expected status 200-399, got 503")]
    );
    let metrics = metrics(&env, "web.yaml", "api");
    assert_eq!(metric(&metrics, "status"), shown("503", ""));
    assert_eq!(metric(&metrics, "size"), shown("4", "B"));
}

#[test]
fn missing_text_and_wrong_status_are_said_exactly() {
    let server = HttpServer::start();
    let env = Env::new();
    env.write_check(
        "web.yaml",
        &format!(
            "text:\n  http: {{url: \"{ok}\", contains: \"healthy\"}}\nboth:\n  http: {{url: \"{fail}\", status: [200, 204], contains: \"ok\"}}\nhead:\n  http: {{url: \"{ok}\", method: HEAD}}\n",
            ok = server.url("/ok"),
            fail = server.url("/fail")
        ),
    );
    env.once();
    assert_eq!(
        faults_of(&env, &check_name("web", "text")),
        [fault("", 40, r#"body does not contain "healthy" (1 of 4)"#)]
    );
    assert_eq!(
        faults_of(&env, &check_name("web", "both")),
        [fault(
            "",
            40,
            r#"expected status 200, 204, got 503; body does not contain "ok" (1 of 4)"#
        )]
    );
    assert_eq!(faults_of(&env, &check_name("web", "head")), []);
    assert_eq!(
        metric(&metrics(&env, "web.yaml", "head"), "size"),
        shown("0", "B")
    );
}

#[test]
fn a_server_that_hangs_times_out_after_the_probe_timeout() {
    let server = HttpServer::start();
    let env = Env::new();
    env.write_check(
        "web.yaml",
        &format!(
            "own:\n  http: {{url: \"{url}\", timeout: 0.5}}\n  timeout: 30\ncheck:\n  http: {{url: \"{url}\"}}\n  timeout: 1\n",
            url = server.url("/hang")
        ),
    );
    let started = std::time::Instant::now();
    env.once();
    assert!(started.elapsed().as_secs_f64() < 10.0);
    let url = server.url("/hang");
    assert_eq!(
        faults_of(&env, &check_name("web", "own")),
        [fault(
            "",
            40,
            &format!("{url}: timed out after 0.5 s (1 of 4)")
        )]
    );
    assert_eq!(
        faults_of(&env, &check_name("web", "check")),
        [fault(
            "",
            40,
            &format!("{url}: timed out after 1 s (1 of 4)")
        )]
    );
}

#[test]
fn redirects_are_followed_only_when_asked() {
    let server = HttpServer::start();
    let env = Env::new();
    env.write_check(
        "web.yaml",
        &format!(
            "plain:\n  http: {{url: \"{r}\"}}\nstrict:\n  http: {{url: \"{r}\", status: 200}}\nfollowed:\n  http: {{url: \"{r2}\", status: 200, contains: \"all ok\", follow_redirects: true}}\nloop:\n  http: {{url: \"{l}\", follow_redirects: true}}\n",
            r = server.url("/redirect"),
            r2 = server.url("/redirect-twice"),
            l = server.url("/loop"),
        ),
    );
    env.once();
    assert_eq!(faults_of(&env, &check_name("web", "plain")), []);
    assert_eq!(
        faults_of(&env, &check_name("web", "strict")),
        [fault("", 40, "expected status 200, got 302 (1 of 4)")]
    );
    assert_eq!(faults_of(&env, &check_name("web", "followed")), []);
    assert_eq!(
        faults_of(&env, &check_name("web", "loop")),
        [fault(
            "",
            40,
            &format!("{}: more than 10 redirects (1 of 4)", server.url("/loop"))
        )]
    );
    // Metrics describe the final response.
    let followed = metrics(&env, "web.yaml", "followed");
    assert_eq!(metric(&followed, "status"), shown("200", ""));
    assert_eq!(metric(&followed, "size"), shown("11", "B"));
    assert_eq!(
        metric(&metrics(&env, "web.yaml", "plain"), "status"),
        shown("302", "")
    );
}

#[test]
fn a_huge_body_is_read_up_to_the_limit_only() {
    let server = HttpServer::start();
    let env = Env::new();
    env.write_check(
        "web.yaml",
        &format!(
            "big:\n  http: {{url: \"{u}\"}}\nend:\n  http: {{url: \"{u}\", contains: THE-END}}\nsmall:\n  http: {{url: \"{u}\", body_limit: 1 KiB}}\nall:\n  http: {{url: \"{u}\", contains: THE-END, body_limit: 4 MiB}}\n",
            u = server.url("/huge")
        ),
    );
    env.once();
    assert_eq!(faults_of(&env, &check_name("web", "big")), []);
    assert_eq!(
        faults_of(&env, &check_name("web", "end")),
        [fault("", 40, r#"body does not contain "THE-END" (1 of 4)"#)]
    );
    assert_eq!(faults_of(&env, &check_name("web", "all")), []);
    assert_eq!(
        metric(&metrics(&env, "web.yaml", "big"), "size"),
        shown("1048576", "B")
    );
    assert_eq!(
        metric(&metrics(&env, "web.yaml", "small"), "size"),
        shown("1024", "B")
    );
    assert_eq!(
        metric(&metrics(&env, "web.yaml", "all"), "size").0,
        servers::HUGE.to_string()
    );
}

#[test]
fn a_refused_connection_names_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let env = Env::new();
    let url = format!("http://127.0.0.1:{port}/health");
    env.write_check("web.yaml", &format!("down:\n  http: {{url: \"{url}\"}}\n"));
    env.once();
    assert_eq!(
        faults_of(&env, &check_name("web", "down")),
        [fault(
            "",
            40,
            &format!("{url}: connection refused (1 of 4)")
        )]
    );
}

#[test]
fn probes_of_one_host_share_keep_alive_connections() {
    let server = HttpServer::start();
    let env = Env::new();
    let mut text = String::new();
    for i in 0..200 {
        let url = server.url(&format!("/ok?{i}"));
        writeln!(text, "p{i}:\n  http: {{url: \"{url}\"}}").unwrap();
    }
    env.write_check("many.yaml", &text);
    env.once();
    assert_eq!(env.faults().len(), 0);
    assert_eq!(server.count(|c| &c.requests), 200);
    let connections = server.count(|c| &c.connections);
    // At most 16 probes of a host are in flight; a connection that returns
    // to the pool just after the next probe started lets that probe open
    // another, which then stays pooled (up to 16 idle), so a few more than
    // 16 connections may open, never one per probe.
    assert!(
        connections <= 32,
        "{connections} connections for 200 probes of one host"
    );
    // The host's last probe of the tick closes its connection.
    assert_eq!(server.count(|c| &c.closing), 1);
}

#[test]
fn headers_are_sent_as_given() {
    let server = HttpServer::start();
    let env = Env::new();
    env.write_check(
        "web.yaml",
        &format!(
            "vhost:\n  http:\n    url: \"{}\"\n    headers: {{Host: shop.example.com}}\n    contains: shop.example.com\n",
            server.url("/echo-host")
        ),
    );
    env.once();
    assert_eq!(faults_of(&env, &check_name("web", "vhost")), []);
}

fn https_check(env: &Env, server: &HttpServer, options: &str) -> String {
    env.write_check(
        "tls.yaml",
        &format!(
            "site:\n  http: {{url: \"{}\"{options}}}\n",
            server.https_url("/ok")
        ),
    );
    check_name("tls", "site")
}

#[test]
fn https_with_a_trusted_certificate_reports_its_expiry() {
    let certificate = servers::certificate(90);
    let server = HttpServer::start_tls(&certificate);
    let env = Env::new();
    env.write("ca.pem", &certificate.ca_pem);
    let ca = env.path("ca.pem");
    let name = https_check(&env, &server, ", cert_expiry_days: 14");
    assert_success(&env.cimaa_with_env(&["agent", "--once"], &[("SSL_CERT_FILE", &ca)]));
    assert_eq!(faults_of(&env, &name), []);
    let metrics = metrics_with(&env, "tls.yaml", "site", &[("SSL_CERT_FILE", &ca)]);
    let days = value(&metrics, "cert_expiry_days");
    assert!((90.0..90.1).contains(&days), "{days}");
    assert_eq!(metric(&metrics, "cert_expiry_days").1, "d");
    // Without that CA the certificate is not trusted: the probe's own error.
    env.once();
    let faults = faults_of(&env, &name);
    assert_eq!(faults.len(), 1, "{faults:?}");
    let message = &faults[0].2;
    assert!(
        message.starts_with(&format!("{}: ", server.https_url("/ok")))
            && message.contains("UnknownIssuer")
            && message.ends_with(" (1 of 4)"),
        "{message}"
    );
}

#[test]
fn a_certificate_expiring_soon_is_a_warning() {
    let certificate = servers::certificate(3);
    let server = HttpServer::start_tls(&certificate);
    let env = Env::new();
    env.write("ca.pem", &certificate.ca_pem);
    let name = https_check(&env, &server, ", cert_expiry_days: 14");
    assert_success(&env.cimaa_with_env(
        &["agent", "--once"],
        &[("SSL_CERT_FILE", &env.path("ca.pem"))],
    ));
    assert_eq!(
        faults_of(&env, &name),
        [fault(
            "#cert_expiry",
            30,
            "certificate for 127.0.0.1 expires in 3 days"
        )]
    );
}

#[test]
fn an_expired_certificate_is_an_error_whatever_tls_verify_says() {
    let certificate = servers::certificate(-2);
    let server = HttpServer::start_tls(&certificate);
    let env = Env::new();
    env.write("ca.pem", &certificate.ca_pem);
    let ca = env.path("ca.pem");
    let name = https_check(&env, &server, ", cert_expiry_days: 14, tls_verify: false");
    assert_success(&env.cimaa_with_env(&["agent", "--once"], &[("SSL_CERT_FILE", &ca)]));
    assert_eq!(
        faults_of(&env, &name),
        [fault(
            "#cert_expiry",
            40,
            "certificate for 127.0.0.1 expired 1 day ago (1 of 4)"
        )]
    );
    let metrics = metrics_with(&env, "tls.yaml", "site", &[("SSL_CERT_FILE", &ca)]);
    assert!(value(&metrics, "cert_expiry_days") < -1.0);
    // Verified, the handshake itself fails.
    let name = https_check(&env, &server, ", cert_expiry_days: 14");
    assert_success(&env.cimaa_with_env(&["agent", "--once"], &[("SSL_CERT_FILE", &ca)]));
    let faults = faults_of(&env, &name);
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0].0, "");
    assert!(
        faults[0].2.starts_with(&server.https_url("/ok")) && faults[0].2.contains("xpired"),
        "{}",
        faults[0].2
    );
}

#[test]
fn tcp_probes_connect_or_say_why_not() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = {
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        other.local_addr().unwrap().port()
    };
    let stalled = Stalled::start();
    let env = Env::new();
    env.write_check(
        "ports.yaml",
        &format!(
            "open:\n  tcp: 127.0.0.1:{open}\nclosed:\n  tcp: 127.0.0.1:{closed}\nstalled:\n  tcp: 127.0.0.1:{}\n  timeout: 1\n",
            stalled.port
        ),
    );
    env.once();
    assert_eq!(faults_of(&env, &check_name("ports", "open")), []);
    assert_eq!(
        faults_of(&env, &check_name("ports", "closed")),
        [fault(
            "",
            40,
            &format!("127.0.0.1:{closed}: connection refused (1 of 4)")
        )]
    );
    assert_eq!(
        faults_of(&env, &check_name("ports", "stalled")),
        [fault(
            "",
            40,
            &format!("127.0.0.1:{}: timed out after 1 s (1 of 4)", stalled.port)
        )]
    );
    let open = metrics(&env, "ports.yaml", "open");
    assert!((0.0..1.0).contains(&value(&open, "connect_time")));
    assert_eq!(metric(&open, "connect_time").1, "s");
}

#[test]
fn socket_checks_read_plugin_json() {
    let env = Env::new();
    let reply =
        br#"{"faults": [{"name": "queue", "severity": "warning", "message": "queue is long"}],
                     "metrics": [{"name": "queue", "value": 120, "units": "jobs"}]}"#;
    let server = SocketServer::start(&env.path(""), reply.to_vec());
    env.write_check(
        "app.yaml",
        &format!(
            "unix:\n  socket: unix:{}\n  thresholds: queue error > 100\ntcp:\n  socket: tcp://127.0.0.1:{}\n",
            server.path.display(),
            server.port
        ),
    );
    env.once();
    assert_eq!(
        faults_of(&env, &check_name("app", "unix")),
        [fault("#queue", 40, "120 > 100 (1 of 4)")]
    );
    assert_eq!(
        faults_of(&env, &check_name("app", "tcp")),
        [fault("#queue", 30, "queue is long")]
    );
    assert_eq!(
        metric(&metrics(&env, "app.yaml", "tcp"), "queue"),
        shown("120", "jobs")
    );
}

#[test]
fn socket_failures_bad_json_and_floods_are_errors() {
    let env = Env::new();
    let bad = tempfile::tempdir().unwrap();
    let flood = tempfile::tempdir().unwrap();
    let bad_server = SocketServer::start(bad.path(), b"{\"faults\": 3}".to_vec());
    let flood_server = SocketServer::start(flood.path(), vec![b' '; 2 * 1024 * 1024]);
    let missing = env.path("missing.sock");
    env.write_check(
        "app.yaml",
        &format!(
            "bad:\n  socket: unix:{}\nflood:\n  socket: unix:{}\nmissing:\n  socket: unix:{}\n",
            bad_server.path.display(),
            flood_server.path.display(),
            missing.display()
        ),
    );
    env.once();
    assert_eq!(
        faults_of(&env, &check_name("app", "bad")),
        [fault(
            "#json-error",
            40,
            "`faults` must be a list, got a number (1 of 4)"
        )]
    );
    assert_eq!(
        faults_of(&env, &check_name("app", "flood")),
        [fault(
            "",
            40,
            &format!(
                "unix:{}: sent more than 1 MiB (1 of 4)",
                flood_server.path.display()
            )
        )]
    );
    assert_eq!(
        faults_of(&env, &check_name("app", "missing")),
        [fault(
            "",
            40,
            &format!(
                "unix:{}: cannot connect: No such file or directory (os error 2) (1 of 4)",
                missing.display()
            )
        )]
    );
}

#[test]
fn thresholds_apply_to_probe_metrics() {
    let server = HttpServer::start();
    let env = Env::new();
    env.write_check(
        "web.yaml",
        &format!(
            "page:\n  http: {{url: \"{}\"}}\n  thresholds: |\n    size warning < 100\n    response_time error > 30\n",
            server.url("/ok")
        ),
    );
    env.once();
    assert_eq!(
        faults_of(&env, &check_name("web", "page")),
        [fault("#size", 30, "11 < 100")]
    );
}

#[test]
fn a_broken_probe_option_is_a_critical_check_error() {
    let env = Env::new();
    env.write_check(
        "web.yaml",
        "bad:\n  http:\n    url: http://127.0.0.1:1/\n    status: 2xx\n",
    );
    env.once();
    let path = env.path("checks.d/web.yaml");
    assert_eq!(
        faults_of(&env, &check_name("web", "bad")),
        [fault(
            "",
            50,
            &format!(
                "error loading check {} [bad]: bad.http.status: `2xx` is not a status code (100-599) or a range like `200-399` at line 4 column 13",
                path.display()
            )
        )]
    );
}
