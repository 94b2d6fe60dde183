//! `depends_on` (SPEC §11) and the `AGENT#dns` suppression of probes (SPEC
//! §14) through the real binary, with a file alerter whose deliveries are
//! counted exactly. See: #21, #16

use std::net::TcpListener;

use serde_json::Value;

use crate::dns::{DnsServer, Mode};
use crate::util::{AGENT, Env, assert_success, check_name, event, events, stderr, stdout};

/// A plugin that fails CRITICAL with `down` while the file `NAME.down`
/// exists next to the config, else says OK.
fn switch(env: &Env, name: &str) -> String {
    // Plugins run in the check file's folder: the switch is named whole.
    let flag = env.path(&format!("{name}.down"));
    let path = env.script(
        &format!("{name}.sh"),
        &format!(
            "if [ -e {} ]; then echo down; exit 2; fi\necho ok",
            flag.display()
        ),
    );
    path.display().to_string()
}

fn set(env: &Env, name: &str, down: bool) {
    let path = env.path(&format!("{name}.down"));
    if down {
        std::fs::write(path, "").unwrap();
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// `net/gw` and two checks of `app` that depend on it.
fn gateway_and_dependents(env: &Env) -> (String, String, String) {
    let gw = switch(env, "gw");
    let web = switch(env, "web");
    env.write_check("net.yaml", &format!("gw:\n  command: {gw}\n  retry: 0\n"));
    env.write_check(
        "app.yaml",
        &format!(
            "web:\n  command: {web}\n  retry: 0\n  depends_on: [net/gw]\napi:\n  command: {web}\n  retry: 0\n  depends_on:\n    - net/gw\n"
        ),
    );
    (
        check_name("net", "gw"),
        check_name("app", "web"),
        check_name("app", "api"),
    )
}

/// Events of one tick, whose deliveries run concurrently, in a stable order.
fn sorted(mut events: Vec<(String, String, String)>) -> Vec<(String, String, String)> {
    events.sort();
    events
}

fn suppressed_by(env: &Env, name: &str) -> Value {
    env.fault(name).unwrap()["suppressed_by"].clone()
}

#[test]
fn a_failing_dependency_suppresses_its_dependents_then_releases_them() {
    let env = Env::new();
    let (gw, web, api) = gateway_and_dependents(&env);
    set(&env, "gw", true);
    set(&env, "web", true);

    // The gateway and its dependents fail in one tick: one page.
    env.once();
    assert_eq!(events(&env.alerts()), [event("trigger", &gw, "down")]);
    assert_eq!(suppressed_by(&env, &web), Value::from(gw.as_str()));
    assert_eq!(suppressed_by(&env, &api), Value::from(gw.as_str()));
    assert_eq!(suppressed_by(&env, &gw), Value::Null);
    let table = stdout(&env.cimaa(&["faults"]));
    assert!(
        table.lines().next().unwrap().contains("SUPPRESSED BY"),
        "{table}"
    );
    let web_row = table.lines().find(|l| l.contains(&web)).unwrap();
    assert!(web_row.contains(&gw), "{table}");

    // Still down: nothing more.
    env.once();
    assert_eq!(env.alerts().len(), 1);

    // The gateway is back, the dependents are still down: their next run
    // triggers them.
    set(&env, "gw", false);
    env.once();
    assert_eq!(
        sorted(events(&env.alerts())[1..].to_vec()),
        [
            event("resolve", &gw, ""),
            event("trigger", &api, "down"),
            event("trigger", &web, "down"),
        ]
    );
    assert_eq!(suppressed_by(&env, &web), Value::Null);

    set(&env, "web", false);
    env.once();
    assert_eq!(env.alerts().len(), 6);
    assert_eq!(env.faults(), Vec::<Value>::new());
}

#[test]
fn a_trigger_sent_before_the_dependency_failed_stays_open_until_its_own_fault_clears() {
    let env = Env::new();
    let (gw, web, api) = gateway_and_dependents(&env);
    set(&env, "web", true);
    env.once();
    assert_eq!(
        sorted(events(&env.alerts())),
        [
            event("trigger", &api, "down"),
            event("trigger", &web, "down")
        ]
    );

    // The gateway fails too: it pages, the open alerts stay open.
    set(&env, "gw", true);
    env.once();
    env.once();
    assert_eq!(env.alerts().len(), 3);
    assert_eq!(suppressed_by(&env, &web), Value::from(gw.as_str()));

    // The dependents clear while the gateway is down: resolved as usual.
    set(&env, "web", false);
    env.once();
    assert_eq!(
        sorted(events(&env.alerts())[3..].to_vec()),
        [event("resolve", &api, ""), event("resolve", &web, "")]
    );
}

#[test]
fn check_prints_each_checks_dependencies() {
    let env = Env::new();
    let (gw, web, _) = gateway_and_dependents(&env);
    env.write_check(
        "db.yaml",
        "replica:\n  command: echo ok\n  depends_on: [\"//db/primary\", app/web]\n",
    );
    let output = env.cimaa(&["check"]);
    assert_success(&output);
    let text = stdout(&output);
    assert!(
        text.contains(&format!("{web}\n  depends on: {gw}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}\n  depends on: //db/primary (any agent), {web}\n",
            check_name("db", "replica")
        )),
        "{text}"
    );
}

#[test]
fn a_dependency_cycle_is_a_configuration_fault_and_validate_names_it() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "a:\n  command: echo ok\n  depends_on: [b]\nb:\n  command: echo ok\n  depends_on: [a]\nc:\n  command: echo ok\n  depends_on: [a]\n",
    );
    let file = env.path("checks.d/app.yaml");
    let (a, b) = (check_name("app", "a"), check_name("app", "b"));
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let want_a = format!(
        "error loading check {} [a]: depends_on: a dependency cycle: `{a}` -> `{b}` -> `{a}` at line 3",
        file.display()
    );
    let want_b = format!(
        "error loading check {} [b]: depends_on: a dependency cycle: `{b}` -> `{a}` -> `{b}` at line 6",
        file.display()
    );
    let text = stderr(&output);
    assert!(text.contains(&want_a) && text.contains(&want_b), "{text}");
    assert!(text.contains("2 problem(s) in 3 check(s)"), "{text}");

    // The agent keeps running: the checks on the cycle report it, CRITICAL.
    env.once();
    let fault = env.fault(&a).unwrap();
    assert_eq!(fault["severity"], 50);
    assert_eq!(fault["message"], want_a.as_str());
    // `c` only depends on the cycle: it runs as usual.
    assert_eq!(env.fault(&check_name("app", "c")), None);
    assert_eq!(
        sorted(events(&env.alerts())),
        [event("trigger", &a, &want_a), event("trigger", &b, &want_b)]
    );
}

#[test]
fn an_unknown_relative_name_is_a_configuration_fault_naming_file_key_and_line() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "web:\n  command: echo ok\n  retry: 0\n  depends_on: [\"//db/primary\", net/gw]\n",
    );
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    let want = format!(
        "error loading check {} [web]: depends_on: no check `net/gw` on this agent (a relative name is `KEY` of the same file or `STEM/KEY`; an absolute one starts with `//`) at line 4",
        env.path("checks.d/app.yaml").display()
    );
    assert!(stderr(&output).contains(&want), "{}", stderr(&output));

    // Deployed: the check is its configuration fault until the gateway's
    // file arrives.
    env.once();
    assert_eq!(
        env.fault(&check_name("app", "web")).unwrap()["message"],
        want.as_str()
    );
    env.write_check("net.yaml", "gw:\n  command: echo ok\n");
    let output = env.cimaa(&["validate"]);
    assert_success(&output);
    env.once();
    assert_eq!(env.faults(), Vec::<Value>::new());
}

#[test]
fn a_name_that_cannot_be_a_check_is_refused_with_its_line() {
    let env = Env::new();
    env.write_check(
        "app.yaml",
        "web:\n  command: echo ok\n  depends_on: [\"net/gw#speed\"]\n",
    );
    let output = env.cimaa(&["validate"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("`net/gw#speed` is a fault name (`#`); name the check at line 2"),
        "{text}"
    );
}

#[test]
fn probes_that_cannot_resolve_in_a_dns_outage_are_suppressed_by_agent_dns() {
    let dns = DnsServer::start(Mode::ServFail);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = Env::with_alerter(
        "alerter:\n  type: file\n  path: alerts.jsonl\n",
        &dns.agent_lines(),
    );
    env.write_check(
        "web.yaml",
        &format!("port:\n  tcp: a.test:{port}\n  retry: 0\n  timeout: 5\n"),
    );
    let name = check_name("web", "port");
    let dns_fault = format!("{AGENT}#dns");

    env.once();
    let fault = env.fault(&name).unwrap();
    assert_eq!(fault["severity"], 50);
    assert_eq!(fault["suppressed_by"], dns_fault.as_str());
    assert!(env.fault(&dns_fault).is_some());
    assert_eq!(env.alerts().len(), 0);

    // The resolver answers again: the probe works, nothing was ever sent.
    dns.set(Mode::Answer(std::net::Ipv4Addr::LOCALHOST, 60));
    env.once();
    assert_eq!(env.faults(), Vec::<Value>::new());
    assert_eq!(env.alerts().len(), 0);
}

/// A second agent, `peer-agent`, sharing the test agent's database, with
/// its own check directory and alert file.
fn peer(env: &Env, check: &str) {
    env.write(
        "peer.yaml",
        "agent:\n  name: peer-agent\n  directory: peer.d\n  base_interval: 60\ndatabase:\n  type: sqlite\n  path: cimaa.db\nalerter:\n  type: file\n  path: peer-alerts.jsonl\n",
    );
    env.write("peer.d/primary.yaml", check);
    crate::util::age(&env.path("peer.d/primary.yaml"));
}

fn run_peer(env: &Env) {
    let config = env.path("peer.yaml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cimaa"))
        .arg("-c")
        .arg(&config)
        .args(["agent", "--once"])
        .current_dir(env.path(""))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_success(&output);
}

#[test]
fn an_absolute_dependency_is_judged_on_the_live_agents_that_hold_it() {
    let env = Env::new();
    let primary = switch(&env, "primary");
    let web = switch(&env, "web");
    peer(
        &env,
        &format!("\"//db/primary\":\n  command: {primary}\n  retry: 0\n"),
    );
    env.write_check(
        "app.yaml",
        &format!("web:\n  command: {web}\n  retry: 0\n  depends_on: [\"//db/primary\"]\n"),
    );
    set(&env, "primary", true);
    set(&env, "web", true);

    // The peer finds the primary down and pages it (the fleet's one page).
    run_peer(&env);
    assert_eq!(
        events(&crate::util::read_json_lines(
            &env.path("peer-alerts.jsonl")
        )),
        [event("trigger", "//db/primary", "down")]
    );
    // This agent's dependent is suppressed by it: no page here.
    env.once();
    let web_name = check_name("app", "web");
    assert_eq!(suppressed_by(&env, &web_name), Value::from("//db/primary"));
    assert_eq!(env.alerts().len(), 0);

    // The primary is back on the peer: the dependent pages at its next run.
    set(&env, "primary", false);
    run_peer(&env);
    env.once();
    assert_eq!(events(&env.alerts()), [event("trigger", &web_name, "down")]);
}
