//! The soak benchmark at test size (#18): `bench/soak.py` drives the real
//! binary with 200 command checks at base_interval 1 for two minutes, with
//! random plugin failures and timeouts, SIGHUP every 10 s, the SQLite
//! database locked for seconds at random and a command alerter failing at
//! random, then checks what `bench/soak.sh` checks at full length (30
//! minutes, 2,000 checks; figures in BENCHMARKS.md). `CIMAA_SOAK_MINUTES`
//! and `CIMAA_SOAK_CHECKS` change the size.

use std::path::Path;
use std::process::Command;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

// See: #18
#[test]
fn two_minutes_of_faults_leave_the_agent_flat_and_its_faults_true() {
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("result.json");
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/soak.py");
    let output = Command::new("python3")
        .arg(&driver)
        .args(["--binary", env!("CARGO_BIN_EXE_cimaa")])
        .arg("--dir")
        .arg(dir.path().join("soak"))
        .args(["--checks", &env_or("CIMAA_SOAK_CHECKS", "200")])
        .args(["--files", "4"])
        .args(["--minutes", &env_or("CIMAA_SOAK_MINUTES", "2")])
        .args([
            "--sample-s",
            "3",
            "--lock-every-s",
            "10",
            "--settle-s",
            "45",
        ])
        .arg("--json")
        .arg(&result)
        .output()
        .expect("python3 runs bench/soak.py");
    let summary = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = std::fs::read_to_string(&result)
        .unwrap_or_else(|e| panic!("no result ({e}):\n{summary}\n{stderr}"));
    let result: serde_json::Value = serde_json::from_str(&text).unwrap();
    let verdicts = &result["verdicts"];
    // One assertion per invariant, each showing the whole summary.
    for verdict in [
        "alive",
        "flat_rss_kb",
        "flat_fds",
        "flat_threads",
        "no_zombie",
        "no_leak",
        "faults_match",
        "shutdown",
        "removed_on_sigterm",
    ] {
        assert_eq!(
            verdicts[verdict],
            serde_json::Value::Bool(true),
            "soak verdict `{verdict}` failed:\n{summary}\n{stderr}"
        );
    }
    // The run did meet its hostile conditions.
    assert!(result["hups"].as_u64() >= Some(10), "{summary}");
    assert!(result["locks"].as_u64() >= Some(3), "{summary}");
    assert!(result["alerter_calls"].as_u64() >= Some(1), "{summary}");
    assert!(output.status.success(), "{summary}\n{stderr}");
}
