//! Threshold rules: the `METRIC [?] LEVEL OP VALUE ...` language of SPEC.md §4.
//!
//! Owns parsing threshold lines into rules (with errors that name the line
//! and say exactly what is wrong) and judging a check's metrics against them.
//! It leaves everything stateful to its callers: the check supplies metric
//! values, and the stored fault state answers whether a metric was failing,
//! which `clear` needs. Naming the faults (`CHECK#metric`), escalation and
//! retries belong to the fault state machine.
//!
//! Data flows: config validation calls [`Thresholds::parse`] once per check
//! file; after each run the check calls [`Thresholds::evaluate`] and adds the
//! returned faults to its result. Nothing here does I/O or reads a clock.

use std::fmt;

use crate::fault::RawFault;
use crate::severity::Severity;

/// The parsed threshold rules of one check, in the order they were written.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Thresholds {
    rules: Vec<Rule>,
}

/// A threshold line that does not parse.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("line {line} `{text}`: {detail}")]
pub(crate) struct ThresholdError {
    /// 1-based index of the line among the lines given.
    pub line: usize,
    /// The line, trimmed.
    pub text: String,
    /// What is wrong with it.
    pub detail: String,
}

/// One line: a metric and the conditions for each level.
#[derive(Clone, Debug, PartialEq)]
struct Rule {
    metric: String,
    /// A missing metric is fine (`?` or `optional`).
    optional: bool,
    warning: Option<Condition>,
    error: Option<Condition>,
    critical: Option<Condition>,
    /// While the metric's fault is ERROR or CRITICAL, it stays ERROR until
    /// this holds.
    clear: Option<Condition>,
}

/// `OP VALUE`, compared against a metric's value.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Condition {
    op: Op,
    threshold: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Greater,
    GreaterOrEqual,
    Equal,
    Less,
    LessOrEqual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Warning,
    Error,
    Critical,
    Clear,
}

impl Thresholds {
    /// Parses threshold lines; blank lines and lines starting with `#` are ignored.
    ///
    /// # Errors
    ///
    /// Returns the first line that does not parse, or that repeats a metric
    /// of an earlier line (its faults would share one name).
    pub(crate) fn parse<S: AsRef<str>>(lines: &[S]) -> Result<Thresholds, ThresholdError> {
        let mut rules: Vec<(usize, Rule)> = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let number = index + 1;
            let text = line.as_ref().trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let error = |detail: String| ThresholdError {
                line: number,
                text: text.to_string(),
                detail,
            };
            let rule = parse_rule(text).map_err(error)?;
            if let Some((first, _)) = rules.iter().find(|(_, r)| r.metric == rule.metric) {
                return Err(error(format!(
                    "metric `{}` already has a rule on line {first}",
                    rule.metric
                )));
            }
            rules.push((number, rule));
        }
        Ok(Thresholds {
            rules: rules.into_iter().map(|(_, rule)| rule).collect(),
        })
    }

    /// Splits a multi-line string into lines and parses them (line numbers count every line).
    #[cfg(test)]
    fn parse_text(text: &str) -> Result<Thresholds, ThresholdError> {
        Self::parse(&text.lines().collect::<Vec<_>>())
    }

    /// True when there are no rules.
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Evaluates every rule. `value(metric)` gives the metric's value if the check produced it;
    /// `was_failing(metric)` says whether the metric's stored fault is ERROR or CRITICAL (for `clear`).
    ///
    /// Returns at most one fault per rule, in rule order, each named after its
    /// metric (the caller makes it `CHECK#metric`).
    #[must_use]
    pub(crate) fn evaluate(
        &self,
        value: &dyn Fn(&str) -> Option<f64>,
        was_failing: &dyn Fn(&str) -> bool,
    ) -> Vec<RawFault> {
        self.rules
            .iter()
            .filter_map(|rule| rule.evaluate(value, was_failing))
            .collect()
    }
}

impl Rule {
    fn evaluate(
        &self,
        value: &dyn Fn(&str) -> Option<f64>,
        was_failing: &dyn Fn(&str) -> bool,
    ) -> Option<RawFault> {
        let fault = |severity, message, escalates| RawFault {
            name: Some(self.metric.clone()),
            severity,
            message,
            escalates,
        };
        let Some(v) = value(&self.metric) else {
            return (!self.optional)
                .then(|| fault(Severity::ERROR, "Missing metric".into(), false));
        };
        let crossed = |condition: Option<Condition>| condition.filter(|c| c.holds(v));

        if let Some(c) = crossed(self.critical) {
            return Some(fault(Severity::CRITICAL, c.describe(v), true));
        }
        if let Some(c) = crossed(self.error) {
            return Some(fault(Severity::ERROR, c.describe(v), true));
        }
        // Checked only after error and critical, which report the stronger
        // reason, and before warning, which a failing metric must not drop to.
        if let Some(clear) = self.clear
            && !clear.holds(v)
            && was_failing(&self.metric)
        {
            let message = format!(
                "{} not clear {} {}",
                format_value(v),
                clear.op,
                format_value(clear.threshold)
            );
            return Some(fault(Severity::ERROR, message, true));
        }
        crossed(self.warning).map(|c| fault(Severity::WARNING, c.describe(v), true))
    }
}

impl Condition {
    fn holds(self, v: f64) -> bool {
        let t = self.threshold;
        match self.op {
            Op::Greater => v > t,
            Op::GreaterOrEqual => v >= t,
            // Exact equality is what `==` asks for; `partial_cmp` says so
            // without tripping the float comparison lint.
            Op::Equal => v.partial_cmp(&t) == Some(std::cmp::Ordering::Equal),
            Op::Less => v < t,
            Op::LessOrEqual => v <= t,
        }
    }

    /// `V OP T`, the message of a crossed threshold.
    fn describe(self, v: f64) -> String {
        format!(
            "{} {} {}",
            format_value(v),
            self.op,
            format_value(self.threshold)
        )
    }
}

impl Op {
    fn from_token(token: &str) -> Option<Op> {
        Some(match token {
            ">" => Op::Greater,
            ">=" => Op::GreaterOrEqual,
            "==" => Op::Equal,
            "<" => Op::Less,
            "<=" => Op::LessOrEqual,
            _ => return None,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Greater => ">",
            Op::GreaterOrEqual => ">=",
            Op::Equal => "==",
            Op::Less => "<",
            Op::LessOrEqual => "<=",
        })
    }
}

impl Level {
    fn from_token(token: &str) -> Option<Level> {
        // Only the full names: `Severity::from_name` also takes `warn`, but
        // a second spelling here would just be one more thing to document.
        Some(match token.to_ascii_lowercase().as_str() {
            "warning" => Level::Warning,
            "error" => Level::Error,
            "critical" => Level::Critical,
            "clear" => Level::Clear,
            _ => return None,
        })
    }
}

/// Parses one non-blank, non-comment line; the error is the detail only.
fn parse_rule(line: &str) -> Result<Rule, String> {
    let mut tokens = line.split_whitespace().peekable();
    // The caller passes a non-blank line, so there is a first token.
    let metric = tokens.next().unwrap_or_default();
    // `warning > 50` or `? warning > 50`: the metric was left out.
    let level_first =
        Level::from_token(metric).is_some() && tokens.peek().is_some_and(|t| is_op(t));
    if level_first || is_optional_marker(metric) || is_op(metric) {
        return Err(format!("missing metric name before `{metric}`"));
    }
    let marker = tokens.next_if(|t| is_optional_marker(t));

    let mut rule = Rule {
        metric: metric.to_string(),
        optional: marker.is_some(),
        warning: None,
        error: None,
        critical: None,
        clear: None,
    };
    // What came last, for "after `...`" in messages.
    let mut previous = match marker {
        Some(marker) => format!("{metric} {marker}"),
        None => metric.to_string(),
    };

    while let Some(level_token) = tokens.next() {
        let Some(level) = Level::from_token(level_token) else {
            if is_op(level_token) || parse_number(level_token).is_some() {
                return Err(format!(
                    "unexpected `{level_token}` after `{previous}`; expected a level"
                ));
            }
            return Err(format!(
                "unknown level `{level_token}`; expected `warning`, `error`, `critical` or `clear`"
            ));
        };
        let Some(op_token) = tokens.next() else {
            return Err(format!(
                "expected an operator after `{level_token}`, found end of line"
            ));
        };
        let op = Op::from_token(op_token).ok_or_else(|| {
            format!(
                "expected an operator after `{level_token}`, found `{op_token}`; \
                 operators are `>`, `>=`, `==`, `<`, `<=`"
            )
        })?;
        let Some(value_token) = tokens.next() else {
            return Err(format!(
                "expected a value after `{level_token} {op_token}`, found end of line"
            ));
        };
        let threshold =
            parse_number(value_token).ok_or_else(|| format!("`{value_token}` is not a number"))?;
        let slot = match level {
            Level::Warning => &mut rule.warning,
            Level::Error => &mut rule.error,
            Level::Critical => &mut rule.critical,
            Level::Clear => &mut rule.clear,
        };
        if slot.is_some() {
            return Err(format!(
                "level `{}` is given more than once",
                level_token.to_ascii_lowercase()
            ));
        }
        *slot = Some(Condition { op, threshold });
        previous = format!("{level_token} {op_token} {value_token}");
    }

    if rule.warning.is_none() && rule.error.is_none() && rule.critical.is_none() {
        let detail = if rule.clear.is_some() {
            "`clear` needs a `warning`, `error` or `critical` level"
        } else {
            "expected at least one `LEVEL OP VALUE` (level `warning`, `error` or `critical`)"
        };
        return Err(detail.to_string());
    }
    Ok(rule)
}

fn is_optional_marker(token: &str) -> bool {
    token == "?" || token.eq_ignore_ascii_case("optional")
}

fn is_op(token: &str) -> bool {
    Op::from_token(token).is_some()
}

/// A finite number; `inf` and `nan` are refused because no metric crosses them usefully.
fn parse_number(token: &str) -> Option<f64> {
    token.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Shortest form of a value: `99`, not `99.0`; `0.5`; `-3`.
///
/// Very large and very small magnitudes use an exponent (`1e20`), as
/// Python's `repr` does, so a message never carries dozens of digits.
#[must_use]
pub(crate) fn format_value(v: f64) -> String {
    if v == 0.0 {
        // Also turns `-0` into `0`.
        return "0".to_string();
    }
    let magnitude = v.abs();
    if v.is_finite() && !(1e-5..1e16).contains(&magnitude) {
        format!("{v:e}")
    } else {
        // Rust's `Display` for floats is the shortest text that reads back
        // as the same value, and drops a `.0`.
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SPEED: &str = "speed warning > 50 error > 70 critical > 110 clear < 60";
    const FREE: &str = "free ? warning <= 20 error <= 10 critical <= 3";

    fn fault(metric: &str, severity: Severity, message: &str) -> RawFault {
        RawFault {
            name: Some(metric.to_string()),
            severity,
            message: message.to_string(),
            escalates: true,
        }
    }

    fn missing(metric: &str) -> RawFault {
        RawFault {
            name: Some(metric.to_string()),
            severity: Severity::ERROR,
            message: "Missing metric".to_string(),
            escalates: false,
        }
    }

    /// Evaluates `lines` with `values` present and `failing` metrics marked as failing.
    fn run(lines: &[&str], values: &[(&str, f64)], failing: &[&str]) -> Vec<RawFault> {
        let thresholds = Thresholds::parse(lines).unwrap();
        let values: HashMap<String, f64> =
            values.iter().map(|&(k, v)| (k.to_string(), v)).collect();
        thresholds.evaluate(&|m| values.get(m).copied(), &|m| failing.contains(&m))
    }

    #[test]
    fn format_value_is_shortest() {
        let cases = [
            (99.0, "99"),
            (0.5, "0.5"),
            (-3.0, "-3"),
            (0.0, "0"),
            (-0.0, "0"),
            (1.25, "1.25"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123_456.0, "123456"),
            (1e20, "1e20"),
            (-2.5e-7, "-2.5e-7"),
            (0.0001, "0.0001"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(v), want, "{v:?}");
        }
    }

    #[test]
    fn levels_fire_in_order() {
        // (name, lines, metric values, failing metrics, expected faults)
        type Case = (
            &'static str,
            &'static [&'static str],
            &'static [(&'static str, f64)],
            &'static [&'static str],
            Vec<RawFault>,
        );
        let cases: Vec<Case> = vec![
            (
                "below every level",
                &[SPEED],
                &[("speed", 40.0)],
                &[],
                vec![],
            ),
            (
                "warning",
                &[SPEED],
                &[("speed", 55.0)],
                &[],
                vec![fault("speed", Severity::WARNING, "55 > 50")],
            ),
            (
                "error",
                &[SPEED],
                &[("speed", 99.0)],
                &[],
                vec![fault("speed", Severity::ERROR, "99 > 70")],
            ),
            (
                "critical",
                &[SPEED],
                &[("speed", 120.0)],
                &[],
                vec![fault("speed", Severity::CRITICAL, "120 > 110")],
            ),
            (
                "critical wins while failing",
                &[SPEED],
                &[("speed", 120.0)],
                &["speed"],
                vec![fault("speed", Severity::CRITICAL, "120 > 110")],
            ),
            (
                "error wins over not clear",
                &[SPEED],
                &[("speed", 80.0)],
                &["speed"],
                vec![fault("speed", Severity::ERROR, "80 > 70")],
            ),
            (
                "decimal values",
                &["load warning > 1.5"],
                &[("load", 1.75)],
                &[],
                vec![fault("load", Severity::WARNING, "1.75 > 1.5")],
            ),
            (
                "negative values",
                &["temp critical < -10"],
                &[("temp", -12.5)],
                &[],
                vec![fault("temp", Severity::CRITICAL, "-12.5 < -10")],
            ),
            (
                "only some levels",
                &["queue error >= 100"],
                &[("queue", 100.0)],
                &[],
                vec![fault("queue", Severity::ERROR, "100 >= 100")],
            ),
            (
                "levels in any order and case",
                &["speed CRITICAL > 110 Warning > 50"],
                &[("speed", 60.0)],
                &[],
                vec![fault("speed", Severity::WARNING, "60 > 50")],
            ),
            (
                "several rules, in rule order",
                &["b warning > 1", "a critical > 1", "c warning > 100"],
                &[("a", 2.0), ("b", 2.0), ("c", 2.0)],
                &[],
                vec![
                    fault("b", Severity::WARNING, "2 > 1"),
                    fault("a", Severity::CRITICAL, "2 > 1"),
                ],
            ),
        ];
        for (name, lines, values, failing, want) in cases {
            assert_eq!(run(lines, values, failing), want, "{name}");
        }
    }

    #[test]
    fn boundary_operators() {
        let cases = [
            ("x warning > 5", 5.0, None),
            ("x warning > 5", 5.5, Some("5.5 > 5")),
            ("x warning >= 5", 5.0, Some("5 >= 5")),
            ("x warning >= 5", 4.9, None),
            ("x warning == 5", 5.0, Some("5 == 5")),
            ("x warning == 5", 5.1, None),
            ("x warning < 5", 5.0, None),
            ("x warning < 5", 4.0, Some("4 < 5")),
            ("x warning <= 5", 5.0, Some("5 <= 5")),
            ("x warning <= 5", 5.01, None),
        ];
        for (line, v, want) in cases {
            let want: Vec<_> = want
                .map(|m| fault("x", Severity::WARNING, m))
                .into_iter()
                .collect();
            assert_eq!(run(&[line], &[("x", v)], &[]), want, "{line} with {v}");
        }
    }

    #[test]
    fn clear_is_sticky() {
        let cases: Vec<(&str, f64, bool, Vec<RawFault>)> = vec![
            (
                "failing and not clear: stays error",
                65.0,
                true,
                vec![fault("speed", Severity::ERROR, "65 not clear < 60")],
            ),
            (
                "failing and not clear below warning too",
                60.0,
                true,
                vec![fault("speed", Severity::ERROR, "60 not clear < 60")],
            ),
            (
                "failing and clear: warning still holds",
                59.0,
                true,
                vec![fault("speed", Severity::WARNING, "59 > 50")],
            ),
            ("failing and clear: no fault", 45.0, true, vec![]),
            (
                "not failing: warning",
                65.0,
                false,
                vec![fault("speed", Severity::WARNING, "65 > 50")],
            ),
            ("not failing: no fault", 45.0, false, vec![]),
        ];
        for (name, v, was_failing, want) in cases {
            let failing: &[&str] = if was_failing { &["speed"] } else { &[] };
            assert_eq!(run(&[SPEED], &[("speed", v)], failing), want, "{name}");
        }

        // A clear that holds above the warning level falls through to warning.
        let line = "speed warning > 50 error > 70 clear < 60";
        let got = run(&[line], &[("speed", 55.0)], &["speed"]);
        assert_eq!(got, vec![fault("speed", Severity::WARNING, "55 > 50")]);
        let line = "speed warning > 50 error > 70 clear <= 55";
        let got = run(&[line], &[("speed", 55.0)], &["speed"]);
        assert_eq!(got, vec![fault("speed", Severity::WARNING, "55 > 50")]);

        // Only the failing metric is held.
        let lines = [SPEED, "other error > 1 clear < 0"];
        let got = run(&lines, &[("speed", 65.0), ("other", 0.5)], &["other"]);
        assert_eq!(
            got,
            vec![
                fault("speed", Severity::WARNING, "65 > 50"),
                fault("other", Severity::ERROR, "0.5 not clear < 0"),
            ]
        );
    }

    #[test]
    fn missing_metrics() {
        let cases: Vec<(&str, &[&str], Vec<RawFault>)> = vec![
            ("optional with ?", &[FREE], vec![]),
            (
                "optional spelled out",
                &["free optional warning <= 20"],
                vec![],
            ),
            (
                "optional in any case",
                &["free Optional warning <= 20"],
                vec![],
            ),
            ("required", &[SPEED], vec![missing("speed")]),
            (
                "required even while failing",
                &["speed error > 70 clear < 60"],
                vec![missing("speed")],
            ),
        ];
        for (name, lines, want) in cases {
            assert_eq!(run(lines, &[], &["speed"]), want, "{name}");
        }
    }

    #[test]
    fn spec_example_free() {
        let cases = [
            (25.0, None),
            (20.0, Some((Severity::WARNING, "20 <= 20"))),
            (10.0, Some((Severity::ERROR, "10 <= 10"))),
            (3.0, Some((Severity::CRITICAL, "3 <= 3"))),
            (0.0, Some((Severity::CRITICAL, "0 <= 3"))),
        ];
        for (v, want) in cases {
            let want: Vec<_> = want
                .map(|(severity, m)| fault("free", severity, m))
                .into_iter()
                .collect();
            assert_eq!(run(&[FREE], &[("free", v)], &[]), want, "free = {v}");
        }
    }

    #[test]
    fn blank_and_comment_lines_are_skipped() {
        let text = "\n# speeds\n  \n   # indented comment\nspeed warning > 50\n";
        let thresholds = Thresholds::parse_text(text).unwrap();
        assert!(!thresholds.is_empty());
        assert!(Thresholds::parse_text("# nothing\n\n").unwrap().is_empty());
        assert!(Thresholds::parse::<&str>(&[]).unwrap().is_empty());

        // Line numbers count blank and comment lines.
        let err = Thresholds::parse_text("# one\n\nspeed warn > 5").unwrap_err();
        assert_eq!(err.line, 3);
        let err = Thresholds::parse(&["", "  speed   warn > 5  "]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2 `speed   warn > 5`: unknown level `warn`; \
             expected `warning`, `error`, `critical` or `clear`"
        );
    }

    #[test]
    fn bad_lines() {
        let cases = [
            (
                "speed warn > 50",
                "unknown level `warn`; expected `warning`, `error`, `critical` or `clear`",
            ),
            (
                "speed error 70",
                "expected an operator after `error`, found `70`; \
                 operators are `>`, `>=`, `==`, `<`, `<=`",
            ),
            (
                "speed error => 70",
                "expected an operator after `error`, found `=>`; \
                 operators are `>`, `>=`, `==`, `<`, `<=`",
            ),
            (
                "speed warning",
                "expected an operator after `warning`, found end of line",
            ),
            (
                "speed warning >",
                "expected a value after `warning >`, found end of line",
            ),
            ("speed warning > abc", "`abc` is not a number"),
            ("speed warning > nan", "`nan` is not a number"),
            ("speed warning > 50km", "`50km` is not a number"),
            (
                "speed warning > 50 60",
                "unexpected `60` after `warning > 50`; expected a level",
            ),
            (
                "speed warning > 50 error",
                "expected an operator after `error`, found end of line",
            ),
            (
                "speed ? >= 5",
                "unexpected `>=` after `speed ?`; expected a level",
            ),
            (
                "speed warning > 50 warning > 60",
                "level `warning` is given more than once",
            ),
            (
                "speed clear < 5 CLEAR < 6 error > 1",
                "level `clear` is given more than once",
            ),
            (
                "speed clear < 60",
                "`clear` needs a `warning`, `error` or `critical` level",
            ),
            (
                "speed",
                "expected at least one `LEVEL OP VALUE` (level `warning`, `error` or `critical`)",
            ),
            (
                "speed optional",
                "expected at least one `LEVEL OP VALUE` (level `warning`, `error` or `critical`)",
            ),
            ("warning > 50", "missing metric name before `warning`"),
            ("? warning > 50", "missing metric name before `?`"),
            ("> 50", "missing metric name before `>`"),
        ];
        for (line, detail) in cases {
            let err = Thresholds::parse(&[line]).unwrap_err();
            assert_eq!(
                err,
                ThresholdError {
                    line: 1,
                    text: line.to_string(),
                    detail: detail.to_string(),
                },
                "{line}"
            );
        }
    }

    #[test]
    fn repeated_metric_is_an_error() {
        let err = Thresholds::parse(&["a warning > 1", "", "a error > 2"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3 `a error > 2`: metric `a` already has a rule on line 1"
        );
    }
}
