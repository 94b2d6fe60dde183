//! `cimaa test-alert [NAME]`: a test trigger and its resolve through each
//! alerter, so that the paging setup is proven before a real incident.
//!
//! Each alerter is tested on its own, never through its `fallback`: the
//! point is to learn which alerters work, and a fallback that delivers
//! would hide a primary that does not. The alert cannot be mistaken for a
//! real incident (its name is `//AGENT/cimaa/test-alert#NAME`, its message
//! says who sent it from where) and deduplicates to one incident per agent
//! and alerter. Every call is bounded by `agent.alert_timeout`, as the
//! agent's deliveries are. Nothing is written to the database.

use super::Printer;
use crate::alerters::{self, AlerterConfig, Alerters, TestFailure};
use crate::config::Config;
use crate::env;
use crate::error::{CliError, ExitStatus};
use crate::squelch;

pub(super) async fn test_alert(
    config: &Config,
    name: Option<&str>,
) -> Result<ExitStatus, CliError> {
    // `default` first, then the `alerters:` keys in order.
    let configured: Vec<(&str, &AlerterConfig)> =
        std::iter::once((alerters::DEFAULT, &config.alerter))
            .chain(config.alerters.iter().map(|(n, c)| (n.as_str(), c)))
            .collect();
    let selected: Vec<(&str, &AlerterConfig)> = match name {
        None => configured.clone(),
        Some(wanted) => {
            let Some(found) = configured.iter().find(|(n, _)| *n == wanted) else {
                let names: Vec<String> = configured.iter().map(|(n, _)| format!("`{n}`")).collect();
                return Err(CliError::usage(format!(
                    "no alerter named `{wanted}` in `{}`; configured: {} (`default` is the `alerter` section)",
                    config.path.display(),
                    names.join(", ")
                )));
            };
            vec![*found]
        }
    };
    let context = alerters::Context {
        agent: config.agent.name.clone(),
        alert_timeout: config.agent.alert_timeout,
    };
    let built =
        Alerters::build(&config.alerter, &config.alerters, &context).map_err(CliError::failure)?;
    let user = squelch::user(
        crate::host::is_root(),
        std::env::var(env::SUDO_USER).ok().as_deref(),
        crate::host::user_name().as_deref(),
    );
    let message = format!(
        "Test alert from `cimaa test-alert` by {user} on {}; the resolve follows",
        config.agent.name
    );
    let mut failed = Vec::new();
    for (alerter_name, alerter_config) in &selected {
        let label = format!("{alerter_name} ({})", alerter_config.kind());
        let Some(alerter) = built.alone(alerter_name) else {
            // Built from this configuration, so not expected; never a
            // silent pass.
            eprintln!("{label}: cannot be built on its own, so it was not tested");
            failed.push(format!("`{alerter_name}`"));
            continue;
        };
        let fault = alerters::test_alert_name(&config.agent.name, alerter_name);
        let outcome = alerters::send_test(
            alerter.as_ref(),
            &fault,
            &message,
            config.agent.alert_timeout,
        )
        .await;
        let (step, error) = match outcome {
            Ok(()) => {
                Printer::line(&format!("ok: {label}: trigger and resolve delivered"));
                continue;
            }
            Err(TestFailure::Trigger(error)) => ("trigger failed", error),
            Err(TestFailure::Resolve(error)) => (
                "trigger delivered, but the resolve failed (the test alert is still open)",
                error,
            ),
        };
        let why = match error {
            alerters::Error::TimedOut | alerters::Error::CommandTimedOut => format!(
                "timed out after {}s (`agent.alert_timeout`)",
                config.agent.alert_timeout.as_secs_f64()
            ),
            other => crate::error::chain(&other),
        };
        let fallback = alerter_config.fallback().map_or_else(String::new, |fallback| {
            format!(
                " (its fallback `{fallback}` is not tried here: test it with `cimaa test-alert {fallback}`)"
            )
        });
        eprintln!("{label}: {step}: {why}{fallback}");
        failed.push(format!("`{alerter_name}`"));
    }
    if failed.is_empty() {
        return Ok(ExitStatus::Success);
    }
    eprintln!(
        "test alert failed through {} of {} alerter(s): {}",
        failed.len(),
        selected.len(),
        failed.join(", ")
    );
    Ok(ExitStatus::Failure)
}
