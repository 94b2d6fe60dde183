//! The agent's own Prometheus metrics and its `/metrics` listener (SPEC §13).
//!
//! Owns the registry (`Metrics`), the hooks the agent calls to count (a
//! tick, a check run, a delivery attempt through `alerters::Observer`, a
//! database request through `Counted`), and the HTTP listener that serves
//! the text format 0.0.4. Nothing here exists unless `agent.metrics_listen`
//! is set: `agent::run` then builds one `Metrics` for its whole life, so
//! counters survive SIGHUP rescans (which rebuild nothing).
//!
//! Every family SPEC §13 lists is in every scrape with its HELP and TYPE:
//! the label values known in advance (severities, check kinds, configured
//! alerters and both actions, database operations) start at zero, as the
//! Prometheus guidance on missing metrics advises, since the `prometheus`
//! crate leaves out a family without series. The metric-sink families are
//! read from the agent's `MetricBuffer` at scrape time.
//!
//! The listener is hyper's HTTP/1 server on a tokio `TcpListener`: GET
//! `/metrics` only, a bounded number of connections, each with a header
//! read timeout and an overall deadline, so a stuck client holds nothing.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::Error;
use super::counted::{Counted, OPERATIONS};
use crate::alerters::{Alerters, Observer};
use crate::checks::CheckKind;
use crate::config::Config;
use crate::db::Db;
use crate::severity::Severity;
use crate::sinks::MetricBuffer;

/// Buckets of every duration histogram, in seconds: from a fast database
/// call to a tick of a minute.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0,
];
/// The `kind` label values: one per `CheckKind`.
const KINDS: &[&str] = &["command", "http", "tcp", "socket", "meta", "broken"];
/// The `severity` label values of `cimaa_faults`.
const SEVERITIES: &[&str] = &["info", "warning", "error", "critical"];
/// The `action` label values of the alert families.
const ACTIONS: &[&str] = &["trigger", "resolve"];
/// The text format 0.0.4, UTF-8 (`prometheus::TEXT_FORMAT` leaves out the
/// charset).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Scrapes served at once; more wait for a slot.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection may stay open, whatever it does.
const CONNECTION_DEADLINE: Duration = Duration::from_mins(1);

/// The agent's registry and its families.
pub(super) struct Metrics {
    registry: Registry,
    ticks: IntCounter,
    tick_duration: Histogram,
    checks_run: IntCounterVec,
    check_duration: HistogramVec,
    faults: IntGaugeVec,
    alerts_delivered: IntCounterVec,
    alerts_failed: IntCounterVec,
    db_requests: IntCounterVec,
    db_errors: IntCounterVec,
    db_duration: HistogramVec,
    sink_depth: IntGauge,
    sink_sent: IntCounter,
    sink_dropped: IntCounter,
    /// The agent's metric buffer, read at each scrape; the lock also keeps
    /// two scrapes from adding the same delta to the sink counters.
    sink: Mutex<Option<MetricBuffer>>,
}

/// Registers `collector` and hands it back.
fn registered<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> Result<C, prometheus::Error> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

fn histogram_opts(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(BUCKETS.to_vec())
}

impl Metrics {
    /// Builds the registry with every family, the known label values at
    /// zero; `alerters` are the configured alerters' names.
    ///
    /// # Errors
    /// Only when a family is defined twice or badly (a bug, caught by tests).
    #[expect(
        clippy::too_many_lines,
        reason = "one registration per family, in SPEC §13's order"
    )]
    pub(super) fn new<'a>(
        alerters: impl Iterator<Item = &'a str>,
        operations: &[&str],
    ) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let build_info = registered(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "cimaa_build_info",
                    "The running cimaa's version and commit; always 1.",
                ),
                &["version", "commit"],
            )?,
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("CIMAA_COMMIT")])
            .set(1);
        let metrics = Metrics {
            ticks: registered(
                r,
                IntCounter::new("cimaa_ticks_total", "Ticks the agent ran.")?,
            )?,
            tick_duration: registered(
                r,
                Histogram::with_opts(histogram_opts(
                    "cimaa_tick_duration_seconds",
                    "How long each tick took, from its start to its database write being queued.",
                ))?,
            )?,
            checks_run: registered(
                r,
                IntCounterVec::new(
                    Opts::new("cimaa_checks_run_total", "Checks run, by kind."),
                    &["kind"],
                )?,
            )?,
            check_duration: registered(
                r,
                HistogramVec::new(
                    histogram_opts(
                        "cimaa_check_duration_seconds",
                        "How long each check run took, by kind.",
                    ),
                    &["kind"],
                )?,
            )?,
            faults: registered(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "cimaa_faults",
                        "This agent's current faults (its AGENT# ones included), by severity.",
                    ),
                    &["severity"],
                )?,
            )?,
            alerts_delivered: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "cimaa_alerts_delivered_total",
                        "Alert events an alerter delivered, by alerter and action.",
                    ),
                    &["alerter", "action"],
                )?,
            )?,
            alerts_failed: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "cimaa_alerts_failed_total",
                        "Alert events an alerter failed to deliver (errors and timeouts), by alerter and action.",
                    ),
                    &["alerter", "action"],
                )?,
            )?,
            db_requests: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "cimaa_db_requests_total",
                        "Requests to the shared database, by operation.",
                    ),
                    &["operation"],
                )?,
            )?,
            db_errors: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "cimaa_db_errors_total",
                        "Database requests that failed or timed out, by operation.",
                    ),
                    &["operation"],
                )?,
            )?,
            db_duration: registered(
                r,
                HistogramVec::new(
                    histogram_opts(
                        "cimaa_db_request_duration_seconds",
                        "How long each database request took, by operation.",
                    ),
                    &["operation"],
                )?,
            )?,
            sink_depth: registered(
                r,
                IntGauge::new(
                    "cimaa_sink_buffer_depth",
                    "Metric records waiting in the buffer in front of the metric sink.",
                )?,
            )?,
            sink_sent: registered(
                r,
                IntCounter::new(
                    "cimaa_sink_metrics_sent_total",
                    "Metric records the metric sink took.",
                )?,
            )?,
            sink_dropped: registered(
                r,
                IntCounter::new(
                    "cimaa_sink_metrics_dropped_total",
                    "Metric records dropped because the buffer was full.",
                )?,
            )?,
            sink: Mutex::new(None),
            registry,
        };
        for kind in KINDS {
            metrics.checks_run.with_label_values(&[kind]);
            metrics.check_duration.with_label_values(&[kind]);
        }
        for severity in SEVERITIES {
            metrics.faults.with_label_values(&[severity]);
        }
        for alerter in alerters {
            for action in ACTIONS {
                metrics
                    .alerts_delivered
                    .with_label_values(&[alerter, action]);
                metrics.alerts_failed.with_label_values(&[alerter, action]);
            }
        }
        for operation in operations {
            metrics.db_requests.with_label_values(&[operation]);
            metrics.db_errors.with_label_values(&[operation]);
            metrics.db_duration.with_label_values(&[operation]);
        }
        Ok(metrics)
    }

    /// Reads the sink families from `buffer` at each scrape.
    pub(super) fn watch_sink(&self, buffer: MetricBuffer) {
        *self.sink.lock().unwrap_or_else(PoisonError::into_inner) = Some(buffer);
    }

    /// A check of `kind` ran for `took`.
    pub(super) fn check_ran(&self, kind: &CheckKind, took: Duration) {
        let kind = [kind_label(kind)];
        self.checks_run.with_label_values(&kind).inc();
        self.check_duration
            .with_label_values(&kind)
            .observe(took.as_secs_f64());
    }

    /// A tick ended: `counted` for a real tick (a SIGHUP rescan only
    /// updates the faults), which took `took` seconds; `faults` are the
    /// agent's faults now.
    pub(super) fn ticked<'a>(
        &self,
        counted: bool,
        took: f64,
        faults: impl Iterator<Item = &'a crate::db::Fault>,
    ) {
        if counted {
            self.ticks.inc();
            self.tick_duration.observe(took.max(0.0));
        }
        let mut counts = [0i64; SEVERITIES.len()];
        for fault in faults {
            counts[severity_index(fault.severity)] += 1;
        }
        for (severity, count) in SEVERITIES.iter().zip(counts) {
            self.faults.with_label_values(&[severity]).set(count);
        }
    }

    /// A database request `operation` took `took` and failed or not.
    pub(super) fn db_request(&self, operation: &str, took: Duration, failed: bool) {
        let operation = [operation];
        self.db_requests.with_label_values(&operation).inc();
        self.db_duration
            .with_label_values(&operation)
            .observe(took.as_secs_f64());
        if failed {
            self.db_errors.with_label_values(&operation).inc();
        }
    }

    /// The exposition: every family, in the text format 0.0.4.
    pub(super) fn render(&self) -> String {
        let sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(buffer) = sink.as_ref() {
            self.sink_depth
                .set(i64::try_from(buffer.len()).unwrap_or(i64::MAX));
            // The buffer's totals only grow; the lock keeps deltas single.
            self.sink_sent
                .inc_by(buffer.sent().saturating_sub(self.sink_sent.get()));
            self.sink_dropped
                .inc_by(buffer.dropped().saturating_sub(self.sink_dropped.get()));
        }
        let mut text = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            warn!(error = %e, "cannot encode the metrics");
        }
        drop(sink);
        String::from_utf8(text).unwrap_or_default()
    }
}

impl Observer for Metrics {
    fn attempted(&self, alerter: &str, action: &'static str, delivered: bool) {
        let family = if delivered {
            &self.alerts_delivered
        } else {
            &self.alerts_failed
        };
        family.with_label_values(&[alerter, action]).inc();
    }
}

/// The `kind` label of a check.
fn kind_label(kind: &CheckKind) -> &'static str {
    match kind {
        CheckKind::Command(_) => "command",
        CheckKind::Http(_) => "http",
        CheckKind::Tcp(_) => "tcp",
        CheckKind::Socket(_) => "socket",
        CheckKind::Meta(_) => "meta",
        CheckKind::Broken(_) => "broken",
    }
}

/// The place of `severity` in `SEVERITIES`; below WARNING counts as info.
fn severity_index(severity: Severity) -> usize {
    match severity {
        s if s >= Severity::CRITICAL => 3,
        s if s >= Severity::ERROR => 2,
        s if s >= Severity::WARNING => 1,
        _ => 0,
    }
}

/// The registry and its listener, alive for the agent's whole run.
pub(super) struct Served {
    pub(super) metrics: Arc<Metrics>,
    _listener: Listener,
}

/// With `agent.metrics_listen`, builds the registry, has `alerters` report
/// to it and serves it; without, builds nothing.
///
/// # Errors
/// When the address cannot be bound.
pub(super) async fn start(config: &Config, alerters: &Alerters) -> Result<Option<Served>, Error> {
    let Some(address) = config.agent.metrics_listen else {
        return Ok(None);
    };
    let metrics = Metrics::new(alerters.names(), OPERATIONS)
        .map_err(|e| Error::MetricsListen(address, std::io::Error::other(e)))?;
    let metrics = Arc::new(metrics);
    alerters.observe(Arc::clone(&metrics) as Arc<dyn Observer>);
    let listener = listen(address, Arc::clone(&metrics))
        .await
        .map_err(|e| Error::MetricsListen(address, e))?;
    Ok(Some(Served {
        metrics,
        _listener: listener,
    }))
}

/// `db`, counted when the agent serves metrics.
pub(super) fn counted(db: Arc<dyn Db>, served: Option<&Served>) -> Arc<dyn Db> {
    match served {
        Some(served) => Arc::new(Counted {
            inner: db,
            metrics: Arc::clone(&served.metrics),
        }),
        None => db,
    }
}

/// Has the sink families read from `buffer`, when the agent serves metrics.
pub(super) fn watch_sink(served: Option<&Served>, buffer: &MetricBuffer) {
    if let Some(served) = served {
        served.metrics.watch_sink(buffer.clone());
    }
}

/// Aborts the listener when the agent's run ends.
struct Listener(tokio::task::JoinHandle<()>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Binds `address` and serves `metrics` there until the returned
/// `Listener` drops.
///
/// # Errors
/// When `address` cannot be bound (in use, not this host's).
async fn listen(address: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<Listener> {
    let listener = TcpListener::bind(address).await?;
    info!(address = %listener.local_addr().unwrap_or(address), "serving /metrics");
    Ok(Listener(tokio::spawn(serve(listener, metrics))))
}

async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // The semaphore is never closed, so this is `Ok`.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                warn!(error = %e, "cannot accept a /metrics connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request| {
                let metrics = Arc::clone(&metrics);
                async move { Ok::<_, std::convert::Infallible>(respond(&request, &metrics)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_DEADLINE, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%peer, error = %e, "/metrics connection failed"),
                Err(_) => debug!(%peer, "/metrics connection closed at its deadline"),
            }
        });
    }
}

/// GET `/metrics` gets the exposition; anything else a short refusal.
fn respond(request: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let refuse = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return refuse(StatusCode::NOT_FOUND, "not found: try /metrics\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = refuse(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(["default", "slack"].into_iter(), &["get_faults"]).unwrap()
    }

    /// The sample lines of `text` whose name is `name` (with labels).
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .collect()
    }

    #[test]
    fn every_family_has_help_and_type_before_any_work() {
        let text = metrics().render();
        for family in [
            "cimaa_build_info",
            "cimaa_ticks_total",
            "cimaa_tick_duration_seconds",
            "cimaa_checks_run_total",
            "cimaa_check_duration_seconds",
            "cimaa_faults",
            "cimaa_alerts_delivered_total",
            "cimaa_alerts_failed_total",
            "cimaa_db_requests_total",
            "cimaa_db_errors_total",
            "cimaa_db_request_duration_seconds",
            "cimaa_sink_buffer_depth",
            "cimaa_sink_metrics_sent_total",
            "cimaa_sink_metrics_dropped_total",
        ] {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}:\n{text}"
            );
        }
        assert_eq!(samples(&text, "cimaa_faults").len(), 4, "{text}");
        assert_eq!(
            samples(&text, "cimaa_alerts_failed_total").len(),
            4,
            "{text}"
        );
        assert_eq!(samples(&text, "cimaa_checks_run_total").len(), KINDS.len());
    }

    #[test]
    fn faults_are_counted_by_severity_and_replaced_each_tick() {
        let metrics = metrics();
        let fault = |severity| crate::db::Fault {
            name: "x".into(),
            severity,
            message: String::new(),
            since: 0,
            updated: 0,
            triggered: false,
            escalates: false,
            attempts: 0,
            monitor_runs: 0,
            storm: false,
            suppressed_by: None,
            held: false,
            flapping: false,
        };
        let faults = [
            fault(Severity::CRITICAL),
            fault(Severity::CRITICAL),
            fault(Severity(10)),
            fault(Severity::ERROR),
        ];
        metrics.ticked(true, 0.5, faults.iter());
        let text = metrics.render();
        assert!(
            text.contains("cimaa_faults{severity=\"critical\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("cimaa_faults{severity=\"error\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cimaa_faults{severity=\"info\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cimaa_faults{severity=\"warning\"} 0\n"),
            "{text}"
        );
        metrics.ticked(false, 9.0, faults[..1].iter());
        let text = metrics.render();
        assert!(
            text.contains("cimaa_faults{severity=\"critical\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cimaa_faults{severity=\"error\"} 0\n"),
            "{text}"
        );
        // The rescan is not a tick.
        assert!(text.contains("cimaa_ticks_total 1\n"), "{text}");
        assert!(
            text.contains("cimaa_tick_duration_seconds_count 1\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped_in_the_exposition() {
        let metrics = metrics();
        metrics.attempted("a\"b\\c\nd", "trigger", false);
        let text = metrics.render();
        assert!(
            text.contains(
                "cimaa_alerts_failed_total{action=\"trigger\",alerter=\"a\\\"b\\\\c\\nd\"} 1\n"
            ),
            "{text}"
        );
    }
}
