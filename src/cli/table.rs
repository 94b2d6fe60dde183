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

/// Prints rows under a header, each column as wide as its widest cell up to
/// its entry in `max`: a longer cell (a 100 KB regex, a 70,000-character
/// name) is cut and ends with `…`; `--json` prints it whole.
pub(super) fn print_table<const N: usize>(
    header: [&str; N],
    max: [usize; N],
    rows: &[[String; N]],
) {
    print_aligned(Some(header), max, rows);
}

/// Prints rows as `print_table` does, without a header: for output read
/// one line per item (`squelch --dry-run`).
pub(super) fn print_rows<const N: usize>(max: [usize; N], rows: &[[String; N]]) {
    print_aligned(None, max, rows);
}

fn print_aligned<const N: usize>(header: Option<[&str; N]>, max: [usize; N], rows: &[[String; N]]) {
    let mut widths = header.map_or([0; N], |header| header.map(|h| h.chars().count()));
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
    if let Some(header) = header {
        Printer::line(&format_row(header.to_vec()));
    }
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
}
