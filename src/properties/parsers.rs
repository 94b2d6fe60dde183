//! Properties of the parsers of plugin output, threshold lines and plugin JSON.

use super::*;

/// Text that looks like plugin output: perfdata punctuation, digits, units,
/// quotes and line breaks, so most cases reach the parser's inner branches
/// rather than stopping at the first character.
fn plugin_output_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("|".to_string()),
            Just("=".to_string()),
            Just(";".to_string()),
            Just("'".to_string()),
            Just("''".to_string()),
            Just(" ".to_string()),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("U".to_string()),
            Just("e".to_string()),
            Just(".".to_string()),
            Just("-".to_string()),
            Just("+".to_string()),
            "[0-9]{1,4}",
            "[a-zA-Z%/]{1,3}",
            any::<char>().prop_map(String::from),
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

/// A perfdata label as a plugin may write it, quoted; never empty.
fn perf_label() -> impl Strategy<Value = String> {
    "[^\n\r]{1,12}".prop_filter("not blank", |s| !s.is_empty())
}

/// A unit: letters and symbols only (digits, signs and dots would read as
/// part of the number; `;` ends the field).
fn perf_unit() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("%".to_string()),
        Just("ms".to_string()),
        Just("KB".to_string()),
        "[a-zA-Z]{1,3}",
    ]
}

/// Writes one perfdata item the way a plugin does, quoting the label.
fn perf_item(label: &str, value: f64, units: &str) -> String {
    format!("'{}'={value}{units};1;2;0;100", label.replace('\'', "''"))
}

proptest! {
    // Plugin output never makes the parser panic, and what it returns is
    // bounded by what it got: no more metrics than `=` signs, no more text
    // than input, every value finite, every label non-empty.
    #[test]
    fn perfdata_output_is_bounded_for_any_input(
        stdout in prop_oneof![any::<String>(), plugin_output_like()]
    ) {
        let parsed = parse_output(&stdout);
        prop_assert!(parsed.text.len() <= stdout.len());
        prop_assert!(parsed.metrics.len() <= stdout.matches('=').count());
        for metric in &parsed.metrics {
            prop_assert!(metric.value.is_finite());
            prop_assert!(!metric.label.is_empty());
            prop_assert!(metric.label.len() <= stdout.len());
            prop_assert!(!metric.units.chars().any(|c| c.is_whitespace() || c.is_ascii_digit() || c == ';'));
        }
    }

    #[test]
    fn perfdata_items_never_panic(perf in prop_oneof![any::<String>(), plugin_output_like()]) {
        let metrics = parse_perfdata(&perf);
        prop_assert!(metrics.len() <= perf.matches('=').count());
    }

    // Round trip: items written as a plugin writes them read back as written.
    #[test]
    fn perfdata_items_read_back_as_written(
        items in prop::collection::vec((perf_label(), finite_f64(), perf_unit()), 0..8)
    ) {
        let perf: Vec<String> = items.iter().map(|(l, v, u)| perf_item(l, *v, u)).collect();
        let got = parse_perfdata(&perf.join(" "));
        let want: Vec<PerfValue> = items
            .iter()
            .map(|(label, value, units)| PerfValue {
                label: label.clone(),
                value: *value,
                units: units.clone(),
            })
            .collect();
        prop_assert_eq!(got, want);
    }

    // Round trip through a whole status line: the text before `|` comes
    // back trimmed and the items after it come back as written.
    #[test]
    fn a_status_line_splits_into_its_text_and_items(
        text in "[^|\n\r]{0,40}",
        items in prop::collection::vec((perf_label(), finite_f64(), perf_unit()), 1..6)
    ) {
        let perf: Vec<String> = items.iter().map(|(l, v, u)| perf_item(l, *v, u)).collect();
        let parsed = parse_output(&format!("{text}| {}\n", perf.join(" ")));
        prop_assert_eq!(parsed.text, text.trim());
        let labels: Vec<&str> = parsed.metrics.iter().map(|m| m.label.as_str()).collect();
        let want: Vec<&str> = items.iter().map(|(l, _, _)| l.as_str()).collect();
        prop_assert_eq!(labels, want);
    }
}

/// A metric name that is no keyword of the threshold language.
fn metric_name() -> impl Strategy<Value = String> {
    "m_[a-z0-9_.]{0,8}"
}

fn op() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![">", ">=", "==", "<", "<="])
}

/// One threshold rule as written, and its parts.
#[derive(Clone, Debug)]
struct GenRule {
    metric: String,
    optional: bool,
    /// (level, op, value) in the order written.
    levels: Vec<(&'static str, &'static str, f64)>,
}

impl GenRule {
    fn line(&self) -> String {
        let mut line = self.metric.clone();
        if self.optional {
            line.push_str(" ?");
        }
        for (level, op, value) in &self.levels {
            let _ = write!(line, " {level} {op} {}", format_value(*value));
        }
        line
    }

    fn condition(&self, level: &str) -> Option<(&'static str, f64)> {
        self.levels
            .iter()
            .find(|(l, _, _)| *l == level)
            .map(|&(_, op, value)| (op, value))
    }
}

fn holds(op: &str, v: f64, t: f64) -> bool {
    match op {
        ">" => v > t,
        ">=" => v >= t,
        "==" => v.partial_cmp(&t) == Some(std::cmp::Ordering::Equal),
        "<" => v < t,
        _ => v <= t,
    }
}

/// A rule with one to four distinct levels, at least one of which is not `clear`.
fn gen_rule() -> impl Strategy<Value = GenRule> {
    (
        metric_name(),
        any::<bool>(),
        prop::sample::subsequence(vec!["warning", "error", "critical", "clear"], 1..=4)
            .prop_filter("clear needs another level", |levels| {
                levels.iter().any(|l| *l != "clear")
            })
            .prop_shuffle(),
        prop::collection::vec((op(), finite_f64()), 4),
    )
        .prop_map(|(metric, optional, levels, conditions)| GenRule {
            metric,
            optional,
            levels: levels
                .into_iter()
                .zip(conditions)
                .map(|(level, (op, value))| (level, op, value))
                .collect(),
        })
}

/// Rules with distinct metric names (a repeated metric is an error).
fn gen_rules() -> impl Strategy<Value = Vec<GenRule>> {
    prop::collection::vec(gen_rule(), 0..6).prop_map(|rules| {
        let mut seen = HashSet::new();
        rules
            .into_iter()
            .filter(|rule| seen.insert(rule.metric.clone()))
            .collect()
    })
}

/// Text that looks like threshold lines.
fn threshold_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("warning".to_string()),
            Just("error".to_string()),
            Just("critical".to_string()),
            Just("clear".to_string()),
            Just("?".to_string()),
            Just("optional".to_string()),
            op().prop_map(str::to_string),
            Just("nan".to_string()),
            Just("inf".to_string()),
            Just("1e999".to_string()),
            "[a-z]{1,5}",
            "-?[0-9]{1,4}(\\.[0-9]{1,3})?",
            any::<char>().prop_map(String::from),
        ],
        0..12,
    )
    .prop_map(|tokens| tokens.join(" "))
}

proptest! {
    // Threshold lines never make the parser panic; an error names a line
    // that exists and quotes exactly that line, trimmed.
    #[test]
    fn thresholds_errors_name_a_real_line(
        lines in prop::collection::vec(prop_oneof![any::<String>(), threshold_like()], 0..6)
    ) {
        match Thresholds::parse(&lines) {
            Ok(_) => {}
            Err(e) => {
                prop_assert!(e.line >= 1 && e.line <= lines.len());
                prop_assert_eq!(e.text.as_str(), lines[e.line - 1].trim());
                prop_assert!(!e.detail.is_empty());
            }
        }
    }

    // Round trip: every rule written in the documented syntax parses, and
    // evaluating it gives at most one fault per rule, named after its
    // metric, in rule order, with the strongest level crossed.
    #[test]
    fn written_rules_parse_and_judge_by_the_strongest_level(
        rules in gen_rules(),
        values in prop::collection::vec(prop::option::of(finite_f64()), 6),
        failing in any::<bool>(),
    ) {
        let lines: Vec<String> = rules.iter().map(GenRule::line).collect();
        let parsed = Thresholds::parse(&lines);
        prop_assert!(parsed.is_ok(), "{:?} gave {:?}", lines, parsed);
        let thresholds = parsed.unwrap_or_default();
        prop_assert_eq!(thresholds.is_empty(), rules.is_empty());
        let value_of: BTreeMap<String, f64> = rules
            .iter()
            .zip(&values)
            .filter_map(|(rule, value)| value.map(|v| (rule.metric.clone(), v)))
            .collect();
        let faults = thresholds.evaluate(&|m| value_of.get(m).copied(), &|_| failing);
        prop_assert!(faults.len() <= rules.len());
        let mut names = rules.iter().map(|r| r.metric.as_str());
        for fault in &faults {
            let name = fault.name.as_deref().unwrap_or_default();
            // In rule order: the fault's rule comes after the previous fault's.
            prop_assert!(names.any(|n| n == name), "fault {} out of order", name);
            let rule = rules.iter().find(|r| r.metric == name);
            prop_assert!(rule.is_some());
            let Some(rule) = rule else { continue };
            let crossed = |level| {
                rule.condition(level)
                    .is_some_and(|(op, t)| value_of.get(name).is_some_and(|&v| holds(op, v, t)))
            };
            let want = match value_of.get(name) {
                None => Severity::ERROR,
                Some(_) if crossed("critical") => Severity::CRITICAL,
                Some(_) if crossed("error") => Severity::ERROR,
                Some(_) if failing && rule.condition("clear").is_some() && !crossed("clear") => Severity::ERROR,
                Some(_) => Severity::WARNING,
            };
            prop_assert_eq!(fault.severity, want, "rule {} value {:?}", rule.line(), value_of.get(name));
            prop_assert!(fault.message.len() <= 80, "message {}", fault.message);
        }
        // A rule whose metric is present and crosses nothing gives no fault;
        // a missing metric gives one unless optional.
        for rule in &rules {
            let has_fault = faults.iter().any(|f| f.name.as_deref() == Some(rule.metric.as_str()));
            match value_of.get(&rule.metric) {
                None => prop_assert_eq!(has_fault, !rule.optional),
                Some(&v) => {
                    let any_crossed = ["warning", "error", "critical"].iter().any(|level| {
                        rule.condition(level).is_some_and(|(op, t)| holds(op, v, t))
                    });
                    let held_by_clear = failing
                        && rule.condition("clear").is_some_and(|(op, t)| !holds(op, v, t));
                    prop_assert_eq!(has_fault, any_crossed || held_by_clear);
                }
            }
        }
    }

    // The value in a threshold message reads back as the same number and
    // is short whatever the magnitude (no 300-digit messages).
    #[test]
    fn format_value_reads_back_and_is_short(v in finite_f64()) {
        let text = format_value(v);
        prop_assert!(text.len() <= 24, "{} is {} long", text, text.len());
        let back: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        // `-0` is written `0`, which reads back equal (not bit for bit).
        prop_assert!(back.partial_cmp(&v) == Some(std::cmp::Ordering::Equal), "{} read back as {}", v, back);
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        finite_f64().prop_map(Value::from),
        prop_oneof![
            Just("error".to_string()),
            Just("critical".to_string()),
            Just("2014-12-13T10:28:31".to_string()),
            any::<String>()
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        let key = prop_oneof![
            Just("faults".to_string()),
            Just("metrics".to_string()),
            Just("name".to_string()),
            Just("severity".to_string()),
            Just("message".to_string()),
            Just("escalates".to_string()),
            Just("value".to_string()),
            Just("units".to_string()),
            Just("timestamp".to_string()),
            "[a-z]{1,4}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A plugin fault as a well-formed plugin writes it.
fn gen_raw_fault() -> impl Strategy<Value = RawFault> {
    (
        prop::option::of("[^#]{1,12}"),
        severity(),
        any::<String>(),
        any::<bool>(),
    )
        .prop_map(|(name, severity, message, escalates)| RawFault {
            name,
            severity,
            message,
            escalates,
        })
}

fn gen_metric() -> impl Strategy<Value = RawMetric> {
    (
        ".{1,12}",
        finite_f64(),
        prop_oneof![Just(String::new()), "[a-zA-Z%]{1,3}"],
        prop::option::of(0i64..4_000_000_000),
    )
        .prop_map(|(name, value, units, seconds)| RawMetric {
            name,
            value,
            units,
            timestamp: seconds.and_then(|s| chrono::DateTime::from_timestamp(s, 0)),
        })
}

proptest! {
    // Plugin JSON never panics; what is wrong is one escalating ERROR
    // `json-error` whose message is bounded by the input.
    #[test]
    fn plugin_json_never_panics_and_errors_are_bounded(
        text in prop_oneof![
            any::<String>(),
            json_value().prop_map(|v| v.to_string()),
            json_value().prop_map(|v| serde_json::json!({"faults": [v.clone()], "metrics": [v]}).to_string()),
        ]
    ) {
        let out = json::output(&text);
        if let Err(message) = json::parse(&text) {
            prop_assert_eq!(out.faults.len(), 1);
            let fault = &out.faults[0];
            prop_assert_eq!(fault.name.as_deref(), Some("json-error"));
            prop_assert_eq!(fault.severity, Severity::ERROR);
            prop_assert!(fault.escalates);
            prop_assert!(out.metrics.is_empty());
            prop_assert!(message.len() <= text.len() + 200, "message of {} for input of {}", message.len(), text.len());
        }
    }

    // Round trip: what a well-formed plugin writes is read back as written
    // (names as given, severities by number or by name, metric values to
    // the last bit or within one unit in the last place).
    #[test]
    fn plugin_json_reads_back_as_written(
        faults in prop::collection::vec(gen_raw_fault(), 0..5),
        metrics in prop::collection::vec(gen_metric(), 0..5),
        by_name in any::<bool>(),
    ) {
        let written = serde_json::json!({
            "faults": faults.iter().map(|f| {
                let severity = if by_name {
                    serde_json::Value::from(f.severity.label().to_lowercase())
                } else {
                    serde_json::Value::from(f.severity.0)
                };
                serde_json::json!({"name": f.name, "severity": severity, "message": f.message, "escalates": f.escalates})
            }).collect::<Vec<_>>(),
            "metrics": metrics.iter().map(|m| serde_json::json!({
                "name": m.name,
                "value": m.value,
                "units": m.units,
                "timestamp": m.timestamp.map(|t| t.to_rfc3339()),
            })).collect::<Vec<_>>(),
        });
        let parsed = json::parse(&written.to_string());
        prop_assert!(parsed.is_ok(), "{:?}", parsed);
        let (got_faults, got_metrics) = parsed.unwrap_or_default();
        prop_assert_eq!(got_faults, faults);
        prop_assert_eq!(got_metrics.len(), metrics.len());
        for (got, want) in got_metrics.iter().zip(&metrics) {
            prop_assert_eq!(&got.name, &want.name);
            prop_assert_eq!(&got.units, &want.units);
            prop_assert_eq!(got.timestamp, want.timestamp);
            let close = got.value.partial_cmp(&want.value) == Some(std::cmp::Ordering::Equal)
                || (got.value - want.value).abs() <= want.value.abs() * 4.0 * f64::EPSILON;
            prop_assert!(close, "{} read back as {}", want.value, got.value);
        }
    }
}
