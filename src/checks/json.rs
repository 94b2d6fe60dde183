//! The plugin JSON protocol: `{"faults": [...], "metrics": [...]}` (SPEC §4).
//!
//! Pure parsing. Anything wrong becomes one message saying exactly what
//! ("faults[1]: missing key `message`"), which the caller reports as the
//! escalating ERROR fault `json-error`. Shared by command checks and, later,
//! socket probes.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::{CheckOutput, RawFault, RawMetric};
use crate::severity::Severity;

/// Parses plugin JSON into faults and metrics, or says what is wrong.
///
/// # Errors
/// A one-line description of the first problem found.
pub(crate) fn parse(text: &str) -> Result<(Vec<RawFault>, Vec<RawMetric>), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(top) = value else {
        return Err("expected a JSON object".into());
    };
    let faults = match top.get("faults") {
        None => return Err("missing key `faults`".into()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| fault(item).map_err(|e| format!("faults[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(format!("`faults` must be a list, got {}", kind(other))),
    };
    let metrics = match top.get("metrics") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| metric(item).map_err(|e| format!("metrics[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(format!("`metrics` must be a list, got {}", kind(other))),
    };
    Ok((faults, metrics))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn object(item: &Value) -> Result<&Map<String, Value>, String> {
    item.as_object()
        .ok_or_else(|| format!("expected an object, got {}", kind(item)))
}

fn fault(item: &Value) -> Result<RawFault, String> {
    let item = object(item)?;
    let severity = match item.get("severity") {
        None => return Err("missing key `severity`".into()),
        Some(Value::Number(n)) => n.as_i64().and_then(severity_number).ok_or_else(|| {
            format!("`severity` must be 20, 30, 40 or an integer of at least 50, got `{n}`")
        })?,
        Some(Value::String(name)) => Severity::from_name(name).ok_or_else(|| {
            format!("unknown severity `{name}` (use info, warning, error or critical)")
        })?,
        Some(other) => {
            return Err(format!(
                "`severity` must be a number or a name, got {}",
                kind(other)
            ));
        }
    };
    let message = match item.get("message") {
        None => return Err("missing key `message`".into()),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("`message` must be a string, got {}", kind(other))),
    };
    let name = match item.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("`name` must be a string, got {}", kind(other))),
    };
    let escalates = match item.get("escalates") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "`escalates` must be a boolean, got {}",
                kind(other)
            ));
        }
    };
    Ok(RawFault {
        name,
        severity,
        message,
        escalates,
    })
}

/// An integer severity as plugin JSON may give it (SPEC §4): one of the
/// named levels 20, 30, 40, or anything from 50 up (all critical). Other
/// numbers (negative, 0, Python's DEBUG 10, 35) name no level a fault can
/// have, so they are a plugin bug, reported as `json-error`, not stored.
fn severity_number(n: i64) -> Option<Severity> {
    let severity = Severity(n);
    let named = [Severity::INFO, Severity::WARNING, Severity::ERROR];
    (named.contains(&severity) || severity.is_critical()).then_some(severity)
}

fn metric(item: &Value) -> Result<RawMetric, String> {
    let item = object(item)?;
    let name = match item.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None => return Err("missing key `name`".into()),
        Some(other) => {
            return Err(format!(
                "`name` must be a non-empty string, got {}",
                kind(other)
            ));
        }
    };
    let value = match item.get("value") {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| format!("`value` `{n}` is out of range"))?,
        None => return Err("missing key `value`".into()),
        Some(other) => return Err(format!("`value` must be a number, got {}", kind(other))),
    };
    let units = match item.get("units") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("`units` must be a string, got {}", kind(other))),
    };
    let timestamp = match item.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(parse_timestamp(s).ok_or_else(|| format!("`timestamp` `{s}` is not ISO 8601"))?)
        }
        Some(other) => {
            return Err(format!(
                "`timestamp` must be an ISO 8601 string, got {}",
                kind(other)
            ));
        }
    };
    Ok(RawMetric {
        name,
        value,
        units,
        timestamp,
    })
}

/// A check's output from plugin JSON: its faults and metrics, or one
/// escalating ERROR `json-error` saying what is wrong (SPEC §4).
#[must_use]
pub(crate) fn output(text: &str) -> CheckOutput {
    match parse(text) {
        Ok((faults, metrics)) => CheckOutput {
            faults,
            metrics,
            raw: None,
        },
        Err(message) => json_error(message),
    }
}

/// Plugin JSON cut off at the output cap: `serde_json` would only say
/// `EOF while parsing`, which hides that the plugin printed too much.
#[must_use]
pub(crate) fn truncated(cap: usize) -> CheckOutput {
    json_error(format!(
        "plugin JSON was truncated at {cap} bytes (the output cap); print less"
    ))
}

/// The one escalating ERROR `json-error` for anything wrong with plugin JSON.
fn json_error(message: String) -> CheckOutput {
    CheckOutput {
        faults: vec![RawFault {
            name: Some("json-error".into()),
            severity: Severity::ERROR,
            message,
            escalates: true,
        }],
        ..CheckOutput::default()
    }
}

/// ISO 8601 with an offset, or without one (then UTC).
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_parses() {
        let (faults, metrics) = parse(
            r#"{"faults": [{"name": "server", "severity": "error", "message": "badness", "escalates": true}],
                "metrics": [{"name": "speed", "value": 99, "units": "rpm", "timestamp": "2014-12-13T10:28:31"}]}"#,
        )
        .unwrap();
        assert_eq!(
            faults,
            vec![RawFault {
                name: Some("server".into()),
                severity: Severity::ERROR,
                message: "badness".into(),
                escalates: true
            }]
        );
        assert!((metrics[0].value - 99.0).abs() < f64::EPSILON);
        assert_eq!(metrics[0].units, "rpm");
        assert_eq!(
            metrics[0].timestamp.map(|t| t.timestamp()),
            Some(1_418_466_511)
        );
    }

    #[test]
    fn severities_by_number_and_name_in_any_case() {
        let (faults, _) = parse(
            r#"{"faults": [{"severity": 50, "message": "a"}, {"severity": "WARNING", "message": "b", "escalates": false}]}"#,
        )
        .unwrap();
        assert_eq!(faults[0].severity, Severity::CRITICAL);
        assert_eq!(faults[0].name, None);
        assert_eq!(faults[1].severity, Severity::WARNING);
        assert!(!faults[1].escalates);
    }

    // See: #18
    #[test]
    fn severities_outside_the_named_levels_are_json_errors() {
        for bad in ["-5", "0", "10", "35", "49"] {
            let text = format!(r#"{{"faults": [{{"severity": {bad}, "message": "m"}}]}}"#);
            assert_eq!(
                parse(&text).unwrap_err(),
                format!(
                    "faults[0]: `severity` must be 20, 30, 40 or an integer of at least 50, got `{bad}`"
                ),
                "{bad}"
            );
        }
        for good in [20, 30, 40, 50, 60, i64::MAX] {
            let text = format!(r#"{{"faults": [{{"severity": {good}, "message": "m"}}]}}"#);
            assert_eq!(
                parse(&text).unwrap().0[0].severity,
                Severity(good),
                "{good}"
            );
        }
    }

    #[test]
    fn timestamps_with_offsets_are_converted_to_utc() {
        let (_, metrics) = parse(
            r#"{"faults": [], "metrics": [{"name": "x", "value": 1, "timestamp": "2014-12-13T12:28:31+02:00"}]}"#,
        )
        .unwrap();
        assert_eq!(
            metrics[0].timestamp.map(|t| t.timestamp()),
            Some(1_418_466_511)
        );
    }

    #[test]
    fn problems_are_described() {
        let cases = [
            ("{", "invalid JSON"),
            ("[]", "expected a JSON object"),
            (r#"{"metrics": []}"#, "missing key `faults`"),
            (
                r#"{"faults": {}}"#,
                "`faults` must be a list, got an object",
            ),
            (
                r#"{"faults": [{"message": "x"}]}"#,
                "faults[0]: missing key `severity`",
            ),
            (
                r#"{"faults": [{"severity": 40}]}"#,
                "faults[0]: missing key `message`",
            ),
            (
                r#"{"faults": [{"severity": "bad", "message": "x"}]}"#,
                "faults[0]: unknown severity `bad`",
            ),
            (
                r#"{"faults": [{"severity": 40, "message": 3}]}"#,
                "faults[0]: `message` must be a string, got a number",
            ),
            (
                r#"{"faults": [], "metrics": [{"name": "x"}]}"#,
                "metrics[0]: missing key `value`",
            ),
            (
                r#"{"faults": [], "metrics": [{"name": "x", "value": "1"}]}"#,
                "metrics[0]: `value` must be a number, got a string",
            ),
            (
                r#"{"faults": [], "metrics": [{"name": "x", "value": 1, "timestamp": "yesterday"}]}"#,
                "metrics[0]: `timestamp` `yesterday` is not ISO 8601",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap_err();
            assert!(got.starts_with(want), "{text}: {got}");
        }
    }
}
