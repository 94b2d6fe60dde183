//! Tables for people: relative ages and cells cut to a width.

use super::Printer;

/// `42s ago`, `5m ago`, `3h ago`, `2d ago`; a time a minute or more in the
/// future (a peer's clock is fast) reads `5m ahead`, where `0s ago` would
/// hide the skew; less is jitter between hosts and reads `0s ago`.
pub(super) fn relative(age: i64) -> String {
    if age <= -60 {
        return format!("{} ahead", one_unit(age.saturating_neg()));
    }
    format!("{} ago", one_unit(age.max(0)))
}

/// `42s`, `5m`, `3h`, `2d`: the largest unit, rounded down.
fn one_unit(seconds: i64) -> String {
    match seconds {
        ..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// A length of time in its two largest units, for what lies ahead
/// (`expires in 1h59m`): `relative`'s one unit would round 1h59m down to
/// `1h`.
pub(super) fn span(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (days, hours) = (seconds / 86_400, seconds % 86_400 / 3600);
    let (minutes, rest) = (seconds % 3600 / 60, seconds % 60);
    let parts = [(days, "d"), (hours, "h"), (minutes, "m"), (rest, "s")];
    let Some(first) = parts.iter().position(|&(n, _)| n > 0) else {
        return "0s".to_string();
    };
    let mut text = String::new();
    for (n, unit) in parts[first..].iter().take(2).filter(|&&(n, _)| n > 0) {
        text.push_str(&n.to_string());
        text.push_str(unit);
    }
    text
}

/// Prints rows under a header, each column as wide as its widest cell up to
/// its entry in `max`: a longer cell (a 100 KB regex, a 70,000-character
/// name) is cut and ends with `…`; `--json` prints it whole.
pub(super) fn print_table<const N: usize>(
    header: [&str; N],
    max: [usize; N],
    rows: &[[String; N]],
) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for ((width, cell), max) in widths.iter_mut().zip(row).zip(max) {
            *width = (*width).max(cell.chars().count().min(max));
        }
    }
    let format_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, ((cell, width), max)) in cells.iter().zip(widths).zip(max).enumerate() {
            let cell = truncate(cell, max);
            line.push_str(&cell);
            if i + 1 < N {
                // Padding by hand: `{:<width$}` panics on widths over 65,535.
                let pad = width.saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line.trim_end().to_string()
    };
    Printer::line(&format_row(header.to_vec()));
    for row in rows {
        Printer::line(&format_row(row.iter().map(String::as_str).collect()));
    }
}

/// `cell` within `max` characters: cut to `max - 1` and `…` when longer;
/// line breaks and tabs become spaces so a row stays one line, and other
/// control characters (ESC and the like, which a peer's fault message may
/// carry) become `�`, so nothing in a cell drives the operator's terminal.
fn truncate(cell: &str, max: usize) -> String {
    let flat = |text: &str| -> String {
        text.chars()
            .map(|c| match c {
                '\n' | '\r' | '\t' => ' ',
                c if c.is_control() => '\u{fffd}',
                c => c,
            })
            .collect()
    };
    if cell.char_indices().nth(max).is_none() {
        return flat(cell);
    }
    let keep: String = cell.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", flat(&keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: #18. A peer's fault message must not drive the terminal.
    #[test]
    fn table_cells_carry_no_terminal_escapes() {
        assert_eq!(
            truncate("red \u{1b}[31malert\u{7}\tnow\r\n", 80),
            "red \u{fffd}[31malert\u{fffd} now  "
        );
    }

    #[test]
    fn ages_read_as_relative_times() {
        let cases = [
            (5, "5s ago"),
            (-3, "0s ago"),
            (-59, "0s ago"),
            (-300, "5m ahead"),
            (125, "2m ago"),
            (7200, "2h ago"),
            (200_000, "2d ago"),
        ];
        for (age, want) in cases {
            assert_eq!(relative(age), want);
        }
    }

    #[test]
    fn spans_read_in_their_two_largest_units() {
        let cases = [
            (0, "0s"),
            (-5, "0s"),
            (45, "45s"),
            (192, "3m12s"),
            (3600, "1h"),
            (7199, "1h59m"),
            (86_400 + 60, "1d"),
            (2 * 86_400 + 3 * 3600 + 59, "2d3h"),
        ];
        for (seconds, want) in cases {
            assert_eq!(span(seconds), want, "{seconds}");
        }
    }

    // See: #18
    #[test]
    fn long_cells_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("a\nb", 5), "a b");
        assert_eq!(truncate(&"x".repeat(70_000), 80).chars().count(), 80);
    }
}
