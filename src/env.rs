//! Environment variable names cimaa reads or sets, in one place.

/// Default configuration path when `-c` is not given; also set for command plugins.
pub(crate) const CONFIG: &str = "CIMAA_CONFIG";
/// Set for command plugins: the absolute path of the running `cimaa`
/// binary, so a plugin can call it without PATH (SPEC §14).
pub(crate) const BINARY: &str = "CIMAA";
/// Overrides `agent.max_concurrency`.
pub(crate) const MAX_CONCURRENCY: &str = "CIMAA_MAX_CONCURRENCY";
/// Overrides `agent.logging`.
pub(crate) const RUST_LOG: &str = "RUST_LOG";
/// Set for plugins and alerter commands: `AGENT_PID.RUN`, which run started
/// them, so that a leftover that left the process group is still known.
pub(crate) const RUN_ID: &str = "CIMAA_RUN_ID";
/// Who ran `sudo`, for squelch records.
pub(crate) const SUDO_USER: &str = "SUDO_USER";
/// Set for command alerters: `trigger` or `resolve`.
pub(crate) const ALERT_ACTION: &str = "CIMAA_ACTION";
/// Set for command alerters: the full fault name.
pub(crate) const ALERT_NAME: &str = "CIMAA_NAME";
/// Set for command alerters: the fault message (empty on resolve).
pub(crate) const ALERT_MESSAGE: &str = "CIMAA_MESSAGE";
/// Tests: endpoint of a local DynamoDB-compatible server (scripts/test.sh
/// starts dynalite and sets it); the dynamodb tests skip without it, or
/// fail when `CI` is set.
pub const TEST_DYNAMODB_ENDPOINT: &str = "CIMAA_TEST_DYNAMODB_ENDPOINT";
/// The URL of a PostgreSQL server the tests may create databases on
/// (scripts/test.sh starts a private one and sets it); the postgres tests
/// skip without it, or fail when `CI` is set.
pub const TEST_POSTGRES_URL: &str = "CIMAA_TEST_POSTGRES_URL";
/// Set by CI: tests that need an outside service fail instead of skipping.
pub const CI: &str = "CI";

/// Where the configuration lives when neither `-c` nor `CIMAA_CONFIG` says.
pub(crate) const DEFAULT_CONFIG_PATH: &str = "/etc/cimaa/agent.yaml";

/// Fault injection for tests of the crash path: a check whose full name
/// equals this variable's value panics inside the agent instead of running.
pub(crate) const PANIC_CHECK: &str = "CIMAA_PANIC_CHECK";

/// Tests only: endpoint of a local Kinesis (kinesalite) that `scripts/test.sh`
/// starts; Kinesis integration tests need it, and fail without it under `CI`.
pub const TEST_KINESIS_ENDPOINT: &str = "CIMAA_TEST_KINESIS_ENDPOINT";

/// Tests only (docs/operations.md): when a systemd watchdog is enabled,
/// blocks the tick loop's thread after this many seconds, as a hang would,
/// so that a test sees the watchdog pings stop.
pub const TEST_HANG_TICK_LOOP_AFTER: &str = "CIMAA_TEST_HANG_TICK_LOOP_AFTER";
