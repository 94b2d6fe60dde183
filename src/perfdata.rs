//! Nagios plugin output: splitting human text from performance data.
//!
//! Owns the multi-line output rules of PROTOCOLS.md §1 (status line, long
//! text, perfdata parts 1 and 2) and the perfdata item syntax
//! `'label'=value[UOM];[warn];[crit];[min];[max]`. It keeps only label,
//! value and unit: Nagios-style warn/crit ranges are ignored, because cimaa
//! applies its own threshold language (`thresholds`) to the metrics.
//!
//! Data flows one way: the command check hands over plugin stdout, gets back
//! the text that becomes the fault message and the metrics that feed
//! thresholds and sinks. Deciding what a missing text or an exit code means is
//! left to the check. Nothing here does I/O, and nothing here fails: plugin
//! output is untrusted, so an item that does not parse is dropped rather than
//! reported.

/// One metric read from perfdata.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PerfValue {
    /// The label, with quoting removed (`'/var log'` gives `/var log`).
    pub label: String,
    /// The value, always finite.
    pub value: f64,
    /// The unit of measurement as written (`s`, `ms`, `%`, `KB`, `c`), or empty.
    pub units: String,
}

/// Plugin stdout split into what people read and what machines read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParsedOutput {
    /// Status line and long text, perfdata removed, lines right-trimmed and
    /// the whole trimmed. Empty when the plugin printed only perfdata.
    pub text: String,
    /// Every item of both perfdata parts that parsed, in order.
    pub metrics: Vec<PerfValue>,
}

/// Splits plugin stdout into human text and perfdata (multi-line rules of PROTOCOLS.md §1).
///
/// Line 1 is the status text up to its first `|`; what follows that `|` is
/// perfdata part 1. Later lines are long text until the first one holding a
/// `|`: its text before the `|` is still long text, and everything after it up
/// to the end of the output is perfdata part 2.
#[must_use]
pub(crate) fn parse_output(stdout: &str) -> ParsedOutput {
    let mut lines = stdout.lines();
    let mut text_lines: Vec<&str> = Vec::new();
    let mut perf = String::new();

    if let Some(status) = lines.next() {
        let (text, part1) = split_bar(status);
        text_lines.push(text);
        perf.push_str(part1.unwrap_or(""));
    }

    // Long text lines until the first later line that holds a `|`.
    for line in lines.by_ref() {
        let (text, part2) = split_bar(line);
        text_lines.push(text);
        if let Some(part2) = part2 {
            // Nagios glues the two parts with nothing between them, which
            // would merge the last item of part 1 with the first of part 2.
            perf.push(' ');
            perf.push_str(part2);
            break;
        }
    }
    // Whatever is left after part 2 started is perfdata, up to EOF.
    for line in lines {
        perf.push(' ');
        perf.push_str(line);
    }

    let text = text_lines
        .iter()
        .map(|line| line.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string();
    ParsedOutput {
        text,
        metrics: parse_perfdata(&perf),
    }
}

/// Parses one perfdata string (space-separated items).
///
/// Items that do not parse, and items whose value is `U` ("could not be
/// determined"), are skipped.
#[must_use]
pub(crate) fn parse_perfdata(perf: &str) -> Vec<PerfValue> {
    let mut metrics = Vec::new();
    let mut rest = perf;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return metrics;
        }
        let (item, after) = next_item(rest);
        if let Some(item) = item {
            metrics.push(item);
        }
        rest = after;
    }
}

/// Splits a line at its first `|`.
fn split_bar(line: &str) -> (&str, Option<&str>) {
    match line.split_once('|') {
        Some((text, perf)) => (text, Some(perf)),
        None => (line, None),
    }
}

/// Reads one item from the start of `input` (which starts with a non-space).
///
/// Returns the item if it parsed and the input after it. A bad item ends at
/// the next whitespace, so one stray token costs only itself.
fn next_item(input: &str) -> (Option<PerfValue>, &str) {
    let (label, after_label) = if let Some(quoted) = input.strip_prefix('\'') {
        match read_quoted(quoted) {
            Some(found) => found,
            None => return (None, skip_token(input)),
        }
    } else {
        let token_end = input.find(char::is_whitespace).unwrap_or(input.len());
        // A quote inside an unquoted label means the quoting went wrong.
        match input[..token_end].find('=') {
            Some(eq) if !input[..eq].contains('\'') => (input[..eq].to_string(), &input[eq..]),
            _ => return (None, &input[token_end..]),
        }
    };

    let Some(after_eq) = after_label.strip_prefix('=') else {
        return (None, skip_token(after_label));
    };
    let data_end = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
    let (data, after) = after_eq.split_at(data_end);
    if label.is_empty() {
        return (None, after);
    }
    // warn;crit;min;max are ignored: cimaa's own thresholds judge metrics.
    let first_field = data.split(';').next().unwrap_or("");
    let item = parse_value(first_field).map(|(value, units)| PerfValue {
        label,
        value,
        units: units.to_string(),
    });
    (item, after)
}

/// Reads a quoted label body (after the opening `'`), where `''` stands for `'`.
///
/// Returns the label and the input after the closing quote, or `None` when
/// the quote is never closed.
fn read_quoted(input: &str) -> Option<(String, &str)> {
    let mut label = String::new();
    let mut chars = input.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        if c != '\'' {
            label.push(c);
            continue;
        }
        if chars.next_if(|&(_, next)| next == '\'').is_some() {
            label.push('\'');
        } else {
            return Some((label, &input[index + 1..]));
        }
    }
    None
}

/// Returns the input after the token it starts with.
fn skip_token(input: &str) -> &str {
    let end = input.find(char::is_whitespace).unwrap_or(input.len());
    &input[end..]
}

/// Parses `value[UOM]`: `[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?` then the unit.
///
/// `U`, a non-finite value, and a unit holding digits, signs or dots (as in
/// `1.2.3` or `5-3`, which are garbage rather than a number with a unit) give
/// `None`.
fn parse_value(field: &str) -> Option<(f64, &str)> {
    let bytes = field.as_bytes();
    let digits_from = |start: usize| {
        bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };

    let mut end = usize::from(matches!(bytes.first(), Some(b'-' | b'+')));
    let integer = digits_from(end);
    end += integer;
    if bytes.get(end) == Some(&b'.') && digits_from(end + 1) > 0 {
        end += 1 + digits_from(end + 1);
    } else if integer == 0 {
        return None;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'-' | b'+')));
        let exponent = digits_from(end + 1 + sign);
        if exponent > 0 {
            end += 1 + sign + exponent;
        }
    }

    // All bytes consumed so far are ASCII, so `end` is a char boundary.
    let (number, units) = field.split_at(end);
    let value: f64 = number.parse().ok()?;
    let units_ok = !units
        .chars()
        .any(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | '=' | '\''));
    (value.is_finite() && units_ok).then_some((value, units))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(label: &str, value: f64, units: &str) -> PerfValue {
        PerfValue {
            label: label.to_string(),
            value,
            units: units.to_string(),
        }
    }

    #[test]
    fn output_is_split_into_text_and_metrics() {
        let cases: Vec<(&str, &str, &str, Vec<PerfValue>)> = vec![
            (
                "protocols example",
                "DISK WARNING - /var 85% | '/var log'=85%;80;90 rtt=1.2ms;100;200;0 queue=U\n",
                "DISK WARNING - /var 85%",
                vec![pv("/var log", 85.0, "%"), pv("rtt", 1.2, "ms")],
            ),
            (
                "multi-line with both perfdata parts",
                "OK - all good | load1=0.5;4;8\n\
                 long text line 2\n\
                 long text line 3 | load5=0.25 load15=0.125\n\
                 procs=42;;;0\n\
                 'mem used'=512MB;;;0;1024\n",
                "OK - all good\nlong text line 2\nlong text line 3",
                vec![
                    pv("load1", 0.5, ""),
                    pv("load5", 0.25, ""),
                    pv("load15", 0.125, ""),
                    pv("procs", 42.0, ""),
                    pv("mem used", 512.0, "MB"),
                ],
            ),
            (
                "part 2 without part 1; continuation lines are never text",
                "OK\nsecond line|a=1\nnot text b=2\n",
                "OK\nsecond line",
                vec![pv("a", 1.0, ""), pv("b", 2.0, "")],
            ),
            (
                "parts glued with no space by nagios are still separate items",
                "OK|a=1\n|b=2",
                "OK",
                vec![pv("a", 1.0, ""), pv("b", 2.0, "")],
            ),
            (
                "no perfdata at all",
                "PROCS OK: 3 processes  \nsecond line\t\n\n",
                "PROCS OK: 3 processes\nsecond line",
                vec![],
            ),
            (
                "only perfdata leaves no text",
                "| time=0.01s;;;0\n",
                "",
                vec![pv("time", 0.01, "s")],
            ),
            (
                "only a bar on a later line",
                "\n\n| x=3",
                "",
                vec![pv("x", 3.0, "")],
            ),
            ("empty output", "", "", vec![]),
            (
                "crlf line ends",
                "WARN - hot | temp=-3.5;;\r\nmore\r\n",
                "WARN - hot\nmore",
                vec![pv("temp", -3.5, "")],
            ),
            (
                "second bar on a later line belongs to perfdata",
                "OK\nx | a=1 | b=2\n",
                "OK\nx",
                vec![pv("a", 1.0, ""), pv("b", 2.0, "")],
            ),
        ];
        for (name, stdout, text, metrics) in cases {
            let parsed = parse_output(stdout);
            assert_eq!(parsed.text, text, "{name}: text");
            assert_eq!(parsed.metrics, metrics, "{name}: metrics");
        }
    }

    #[test]
    fn perfdata_items_parse() {
        let cases: Vec<(&str, &str, Vec<PerfValue>)> = vec![
            ("empty", "", vec![]),
            ("only whitespace", " \t \n ", vec![]),
            ("plain count", "users=5", vec![pv("users", 5.0, "")]),
            (
                "all fields",
                "time=0.002s;1;2;0;10",
                vec![pv("time", 0.002, "s")],
            ),
            (
                "negative and decimal values",
                "temp=-12.5C offset=-0.25s gain=+3 frac=.5",
                vec![
                    pv("temp", -12.5, "C"),
                    pv("offset", -0.25, "s"),
                    pv("gain", 3.0, ""),
                    pv("frac", 0.5, ""),
                ],
            ),
            (
                "exponents",
                "big=1.5e3B small=2E-2s",
                vec![pv("big", 1500.0, "B"), pv("small", 0.02, "s")],
            ),
            (
                "units",
                "a=1s b=2ms c=3us d=4% e=5B f=6KB g=7MB h=8TB i=9c",
                vec![
                    pv("a", 1.0, "s"),
                    pv("b", 2.0, "ms"),
                    pv("c", 3.0, "us"),
                    pv("d", 4.0, "%"),
                    pv("e", 5.0, "B"),
                    pv("f", 6.0, "KB"),
                    pv("g", 7.0, "MB"),
                    pv("h", 8.0, "TB"),
                    pv("i", 9.0, "c"),
                ],
            ),
            (
                "quoted labels with spaces and doubled quotes",
                "'/var log'=85% 'it''s here'=1 'a=b'=2 ''''=3",
                vec![
                    pv("/var log", 85.0, "%"),
                    pv("it's here", 1.0, ""),
                    pv("a=b", 2.0, ""),
                    pv("'", 3.0, ""),
                ],
            ),
            (
                "extra whitespace, trailing and empty fields",
                "  a=1;;;   b=2;  \t c=3;;;;;;  d=4;5;;;6 ",
                vec![
                    pv("a", 1.0, ""),
                    pv("b", 2.0, ""),
                    pv("c", 3.0, ""),
                    pv("d", 4.0, ""),
                ],
            ),
            (
                "unknown values are skipped",
                "queue=U a=1 b=U;1;2 c=Us",
                vec![pv("a", 1.0, "")],
            ),
            (
                "garbage items are skipped",
                "junk =5 ''=6 a= b=x c=1.2.3 d=5-3 e=-. x'y'=1 'open=7",
                vec![],
            ),
            (
                "garbage between good items",
                "a=1 junk 'x'y=2 b==3 c=nan d=inf e=1e999 f=2ms",
                vec![pv("a", 1.0, ""), pv("f", 2.0, "ms")],
            ),
            (
                "unterminated quote only costs its own token",
                "'open=7 b=2",
                vec![pv("b", 2.0, "")],
            ),
            (
                "label may hold odd characters unquoted",
                "/dev/sda1=40%;80;90 eth0.rx=12c",
                vec![pv("/dev/sda1", 40.0, "%"), pv("eth0.rx", 12.0, "c")],
            ),
            (
                "non-ascii units and labels",
                "température=21°C 'ünï'=1",
                vec![pv("température", 21.0, "°C"), pv("ünï", 1.0, "")],
            ),
        ];
        for (name, perf, want) in cases {
            assert_eq!(parse_perfdata(perf), want, "{name}: `{perf}`");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let inputs = [
            "'",
            "''",
            "'''",
            "=",
            "==",
            "'=",
            "a='",
            "+",
            "-",
            ".",
            "-.e",
            "1e",
            "1e+",
            "é=1é",
            "'é''",
            "x=+.e5",
            "||||",
            "\n|\n|\n",
            "a=1;;;;;;;;;;",
            ";;;;",
        ];
        for input in inputs {
            let _ = parse_perfdata(input);
            let _ = parse_output(input);
        }
        assert_eq!(parse_perfdata("x=1e"), vec![pv("x", 1.0, "e")]);
        assert_eq!(parse_perfdata("x=1e+"), vec![]);
    }
}
