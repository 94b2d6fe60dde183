//! Quiet hours of an alerter (SPEC §11), pure: when an alerter delivers
//! nothing.
//!
//! `quiet_hours: {timezone: Europe/Berlin, windows: ["Mon-Fri 22:00-07:00",
//! "Sat-Sun"]}`. A window `DAYS HH:MM-HH:MM` covers [start, end) in the
//! zone, starting on each of DAYS; an end at or before the start is on the
//! next day (the window crosses midnight); `24:00` is the next midnight.
//! `DAYS` alone covers those whole days. DAYS is a day (`Mon` ... `Sun`,
//! any case), a range (`Mon-Fri`; `Fri-Mon` wraps over the weekend) or a
//! comma list of both.
//!
//! Local times are turned into instants with the zone's rules from the IANA
//! database (jiff), never with rules of our own: a start or end that does
//! not exist (in the hour skipped when clocks go forward) is read with the
//! offset before the change (02:30 in Berlin's skipped hour is 03:30
//! summer time); one that happens twice (when they go back) is the first
//! of the two (RFC 5545's and Temporal's `compatible` rule).
//! So on Europe/Berlin's short night `22:00-07:00` lasts 8 hours and on its
//! long night 10.
//!
//! `QuietHours::quiet_until` says whether an instant is quiet and until
//! when (windows that touch or overlap are one quiet time). No clock reads:
//! the instant comes in. The zone is looked up by name once, when the
//! configuration is read (`Deserialize`, so that a bad zone or window is an
//! error naming its key and line); the lookup reads the system's tz
//! database (`/usr/share/zoneinfo`), with a copy built into the binary for
//! hosts that have none.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// Day names, Monday first (jiff's `to_monday_zero_offset`).
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Minutes in a day: `24:00` as an end.
const DAY_MINUTES: u16 = 24 * 60;

/// How many chained windows `quiet_until` follows (two weeks of whole days
/// and more): a configuration quiet all week long stays quiet, and says so
/// with an end two weeks ahead.
const CHAIN: usize = 16;

/// One window: the days it starts on, and its hours (`None`: whole days).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    /// Monday first.
    days: [bool; 7],
    /// Start and end, minutes after local midnight; an end at or before the
    /// start is on the next day.
    hours: Option<(u16, u16)>,
}

impl Window {
    /// Parses `DAYS` or `DAYS HH:MM-HH:MM`.
    ///
    /// # Errors
    /// Why the text is not a window, as a sentence quoting it.
    pub(crate) fn parse(text: &str) -> Result<Window, String> {
        parse_window(text).map_err(|why| format!("window `{text}`: {why}"))
    }

    /// The window that starts on `date`, as instants in `zone`.
    fn on(&self, date: Date, zone: &TimeZone) -> Option<(i64, i64)> {
        let day = usize::try_from(date.weekday().to_monday_zero_offset()).ok()?;
        if !self.days.get(day).copied().unwrap_or(false) {
            return None;
        }
        let (start, end) = self.hours.unwrap_or((0, DAY_MINUTES));
        let end_date = if end <= start || end == DAY_MINUTES {
            date.tomorrow().ok()?
        } else {
            date
        };
        let start = instant(zone, date, start)?;
        let end = instant(zone, end_date, end % DAY_MINUTES)?;
        Some((start, end))
    }
}

/// The instant of `minutes` after midnight on `date` in `zone`
/// (`compatible` for gaps and folds).
fn instant(zone: &TimeZone, date: Date, minutes: u16) -> Option<i64> {
    let hour = i8::try_from(minutes / 60).ok()?;
    let minute = i8::try_from(minutes % 60).ok()?;
    let local: DateTime = date.at(hour, minute, 0, 0);
    zone.to_timestamp(local).ok().map(Timestamp::as_second)
}

fn parse_window(text: &str) -> Result<Window, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    let (days, hours) = match text.rsplit_once(char::is_whitespace) {
        Some((days, hours))
            if hours.contains(':') || hours.starts_with(|c: char| c.is_ascii_digit()) =>
        {
            (days.trim(), Some(hours))
        }
        _ => (text, None),
    };
    if days.contains(':') {
        return Err("write the days first, then one time range: `Mon-Fri 22:00-07:00`".into());
    }
    let days = parse_days(days)?;
    let hours = hours.map(parse_hours).transpose()?;
    Ok(Window { days, hours })
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err("a day is missing in the list of days".into());
        }
        match item.split_once('-') {
            Some((first, last)) => {
                let first = parse_day(first.trim())?;
                let last = parse_day(last.trim())?;
                let mut day = first;
                loop {
                    days[day] = true;
                    if day == last {
                        break;
                    }
                    day = (day + 1) % 7;
                }
            }
            None => days[parse_day(item)?] = true,
        }
    }
    Ok(days)
}

fn parse_day(text: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|day| day.eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("`{text}` is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn parse_hours(text: &str) -> Result<(u16, u16), String> {
    let Some((start, end)) = text.split_once('-') else {
        return Err(format!("`{text}` is not a time range `HH:MM-HH:MM`"));
    };
    let start = parse_time(start, false)?;
    let end = parse_time(end, true)?;
    if start == end {
        return Err(
            "it starts and ends at the same time (for whole days write the days alone: `Sat-Sun`)"
                .into(),
        );
    }
    Ok((start, end))
}

/// `HH:MM` as minutes after midnight; `24:00` only as an end.
fn parse_time(text: &str, end: bool) -> Result<u16, String> {
    let bad = || format!("`{text}` is not a time `HH:MM` (00:00 to 23:59, or 24:00 as an end)");
    let (hour, minute) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, max_len: usize| {
        !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(hour, 2) || minute.len() != 2 || !digits(minute, 2) {
        return Err(bad());
    }
    let hour: u16 = hour.parse().map_err(|_| bad())?;
    let minute: u16 = minute.parse().map_err(|_| bad())?;
    let minutes = hour * 60 + minute;
    if minute > 59 || minutes > DAY_MINUTES || (minutes == DAY_MINUTES && !end) {
        return Err(bad());
    }
    Ok(minutes)
}

/// An alerter's quiet hours: a zone and its windows.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct QuietHours {
    zone: TimeZone,
    windows: Vec<Window>,
}

impl QuietHours {
    /// Quiet hours in `zone` (an IANA name; `None`: UTC) made of `windows`.
    ///
    /// # Errors
    /// An unknown zone or a bad window, as a sentence quoting it.
    #[cfg(test)]
    pub(crate) fn new(zone: Option<&str>, windows: &[&str]) -> Result<QuietHours, String> {
        Ok(QuietHours {
            zone: zone.map_or(Ok(TimeZone::UTC), lookup_zone)?,
            windows: windows
                .iter()
                .map(|w| Window::parse(w))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The zone's IANA name (`UTC` by default).
    #[must_use]
    pub(crate) fn zone_name(&self) -> &str {
        self.zone.iana_name().unwrap_or("UTC")
    }

    /// Whether `now` (epoch seconds) is inside a window.
    #[must_use]
    pub(crate) fn is_quiet(&self, now: i64) -> bool {
        self.covering_end(now).is_some()
    }

    /// `None` when `now` is outside every window; else the first instant
    /// after it that no window covers (windows that touch or overlap are
    /// followed, up to two weeks of them).
    #[must_use]
    pub(crate) fn quiet_until(&self, now: i64) -> Option<i64> {
        let mut until = self.covering_end(now)?;
        for _ in 0..CHAIN {
            match self.covering_end(until) {
                Some(end) if end > until => until = end,
                _ => break,
            }
        }
        Some(until)
    }

    /// The latest end among the windows that cover `now`.
    fn covering_end(&self, now: i64) -> Option<i64> {
        let at = Timestamp::from_second(now).ok()?;
        let today = self.zone.to_datetime(at).date();
        // A window lasts at most a day (and a DST hour): one covering now
        // started today or yesterday.
        let days = [today.yesterday().ok(), Some(today)];
        self.windows
            .iter()
            .flat_map(|window| {
                days.iter()
                    .flatten()
                    .filter_map(|d| window.on(*d, &self.zone))
            })
            .filter(|(start, end)| *start <= now && now < *end)
            .map(|(_, end)| end)
            .max()
    }
}

/// The zone named `name` in the tz database.
fn lookup_zone(name: &str) -> Result<TimeZone, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("the time zone is empty (an IANA name such as `Europe/Berlin`)".into());
    }
    TimeZone::get(name).map_err(|_| {
        format!("`{name}` is not a time zone of the IANA database (e.g. `Europe/Berlin`, `UTC`)")
    })
}

/// `quiet_hours:` as written: checked where each value is read, so the
/// error carries its key and line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuietHours {
    #[serde(default)]
    timezone: Option<Zone>,
    #[serde(deserialize_with = "windows")]
    windows: Vec<Window>,
}

impl<'de> Deserialize<'de> for QuietHours {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawQuietHours::deserialize(deserializer)?;
        Ok(QuietHours {
            zone: raw.timezone.map_or(TimeZone::UTC, |z| z.0),
            windows: raw.windows,
        })
    }
}

/// A zone read from its IANA name.
struct Zone(TimeZone);

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ZoneVisitor;
        impl Visitor<'_> for ZoneVisitor {
            type Value = Zone;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an IANA time zone name such as `Europe/Berlin`")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Zone, E> {
                lookup_zone(name).map(Zone).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(ZoneVisitor)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WindowVisitor;
        impl Visitor<'_> for WindowVisitor {
            type Value = Window;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a window such as `Mon-Fri 22:00-07:00` or `Sat-Sun`")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Window, E> {
                Window::parse(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(WindowVisitor)
    }
}

/// `windows:`: at least one window (an empty list would be quiet hours
/// that are never quiet, surely not what was meant). Checked in the
/// visitor, so the error has its line.
fn windows<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Window>, D::Error> {
    struct Windows;
    impl<'de> Visitor<'de> for Windows {
        type Value = Vec<Window>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of windows such as `[\"Mon-Fri 22:00-07:00\", \"Sat-Sun\"]`")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Window>, A::Error> {
            let mut windows = Vec::new();
            while let Some(window) = seq.next_element()? {
                windows.push(window);
            }
            if windows.is_empty() {
                return Err(de::Error::custom(
                    "no window: list at least one, such as `Mon-Fri 22:00-07:00`",
                ));
            }
            Ok(windows)
        }
    }
    deserializer.deserialize_seq(Windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch seconds of a UTC date and time.
    fn utc(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_second()
    }

    fn hours(zone: &str, windows: &[&str]) -> QuietHours {
        QuietHours::new(Some(zone), windows).unwrap()
    }

    /// A window's text, its days (Monday first) and its hours.
    type ParseCase<'a> = (&'a str, [bool; 7], Option<(u16, u16)>);

    #[test]
    fn windows_parse_days_ranges_lists_and_hours() {
        let all = [true; 7];
        let cases: [ParseCase; 7] = [
            (
                "Sat-Sun",
                [false, false, false, false, false, true, true],
                None,
            ),
            (
                "Mon-Fri 22:00-07:00",
                [true, true, true, true, true, false, false],
                Some((1320, 420)),
            ),
            (
                "mon,wed , fri 9:30-17:00",
                [true, false, true, false, true, false, false],
                Some((570, 1020)),
            ),
            (
                "Fri-Mon",
                [true, false, false, false, true, true, true],
                None,
            ),
            ("Mon-Sun 00:00-24:00", all, Some((0, 1440))),
            (
                "Sun 23:00-24:00",
                [false, false, false, false, false, false, true],
                Some((1380, 1440)),
            ),
            (
                "Tue-Tue",
                [false, true, false, false, false, false, false],
                None,
            ),
        ];
        for (text, days, hours) in cases {
            assert_eq!(Window::parse(text), Ok(Window { days, hours }), "{text}");
        }
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        let cases = [
            ("", "window ``: it is empty"),
            (
                "Mon-Fry",
                "window `Mon-Fry`: `Fry` is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)",
            ),
            (
                "Monday",
                "window `Monday`: `Monday` is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)",
            ),
            (
                "Mon,,Tue",
                "window `Mon,,Tue`: a day is missing in the list of days",
            ),
            (
                "Mon 22:00",
                "window `Mon 22:00`: `22:00` is not a time range `HH:MM-HH:MM`",
            ),
            (
                "Mon 25:00-07:00",
                "window `Mon 25:00-07:00`: `25:00` is not a time `HH:MM` (00:00 to 23:59, or 24:00 as an end)",
            ),
            (
                "Mon 22:60-07:00",
                "window `Mon 22:60-07:00`: `22:60` is not a time `HH:MM` (00:00 to 23:59, or 24:00 as an end)",
            ),
            (
                "Mon 24:00-07:00",
                "window `Mon 24:00-07:00`: `24:00` is not a time `HH:MM` (00:00 to 23:59, or 24:00 as an end)",
            ),
            (
                "Mon 7-9",
                "window `Mon 7-9`: `7` is not a time `HH:MM` (00:00 to 23:59, or 24:00 as an end)",
            ),
            (
                "Mon 07:00-07:00",
                "window `Mon 07:00-07:00`: it starts and ends at the same time (for whole days write the days alone: `Sat-Sun`)",
            ),
            (
                "22:00-07:00",
                "window `22:00-07:00`: write the days first, then one time range: `Mon-Fri 22:00-07:00`",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Window::parse(text), Err(want.to_owned()), "{text:?}");
        }
    }

    #[test]
    fn an_unknown_zone_is_refused_and_utc_is_the_default() {
        assert_eq!(
            QuietHours::new(Some("Europe/Berlinn"), &["Sat"]).unwrap_err(),
            "`Europe/Berlinn` is not a time zone of the IANA database (e.g. `Europe/Berlin`, `UTC`)"
        );
        assert_eq!(QuietHours::new(None, &["Sat"]).unwrap().zone_name(), "UTC");
        assert_eq!(
            hours("Europe/Berlin", &["Sat"]).zone_name(),
            "Europe/Berlin"
        );
    }

    /// (what, quiet hours, instant in UTC, quiet until (UTC) or None)
    type Case<'a> = (&'a str, &'a QuietHours, &'a str, Option<&'a str>);

    fn check_cases(cases: &[Case<'_>]) {
        for (what, quiet, at, until) in cases {
            let at = utc(at);
            assert_eq!(quiet.quiet_until(at), until.map(utc), "{what}");
            assert_eq!(quiet.is_quiet(at), until.is_some(), "{what}");
        }
    }

    /// Berlin's clocks: CET (+01) in winter, CEST (+02) in summer; in 2026
    /// they go forward on Sunday 29 March at 02:00 (to 03:00), the last
    /// Sunday of the month.
    #[test]
    fn berlin_windows_follow_its_clocks_going_forward() {
        let night = hours("Europe/Berlin", &["Sat-Sun 22:00-07:00"]);
        let early = hours("Europe/Berlin", &["Sun 01:00-02:30"]);
        let sunday = hours("Europe/Berlin", &["Sun"]);
        let cases: Vec<Case> = vec![
            // March: the night from Saturday to Sunday is one hour shorter.
            (
                "saturday 21:59 CET is not quiet",
                &night,
                "2026-03-28T20:59:00Z",
                None,
            ),
            (
                "saturday 22:00 CET starts it",
                &night,
                "2026-03-28T21:00:00Z",
                Some("2026-03-29T05:00:00Z"),
            ),
            (
                "sunday 01:59 CET is quiet",
                &night,
                "2026-03-29T00:59:00Z",
                Some("2026-03-29T05:00:00Z"),
            ),
            (
                "sunday 03:00 CEST, right after the jump, is quiet",
                &night,
                "2026-03-29T01:00:00Z",
                Some("2026-03-29T05:00:00Z"),
            ),
            (
                "sunday 06:59 CEST is the last quiet minute",
                &night,
                "2026-03-29T04:59:00Z",
                Some("2026-03-29T05:00:00Z"),
            ),
            (
                "sunday 07:00 CEST ends it (8 hours after 22:00 CET)",
                &night,
                "2026-03-29T05:00:00Z",
                None,
            ),
            // A window ending in the skipped hour ends when the clocks jump.
            (
                "02:30 does not exist: read as 02:30 CET, 03:30 CEST",
                &early,
                "2026-03-29T00:59:00Z",
                Some("2026-03-29T01:30:00Z"),
            ),
            (
                "03:29 CEST is still in it",
                &early,
                "2026-03-29T01:29:00Z",
                Some("2026-03-29T01:30:00Z"),
            ),
            (
                "03:30 CEST is after it",
                &early,
                "2026-03-29T01:30:00Z",
                None,
            ),
            // A whole day in March is 23 hours long.
            (
                "sunday 00:00 CET starts the whole day",
                &sunday,
                "2026-03-28T23:00:00Z",
                Some("2026-03-29T22:00:00Z"),
            ),
            (
                "sunday 23:59 CEST is still sunday",
                &sunday,
                "2026-03-29T21:59:00Z",
                Some("2026-03-29T22:00:00Z"),
            ),
            (
                "monday 00:00 CEST is not",
                &sunday,
                "2026-03-29T22:00:00Z",
                None,
            ),
        ];
        check_cases(&cases);
    }

    /// Berlin's clocks go back on Sunday 25 October 2026 at 03:00 (to
    /// 02:00), the last Sunday of the month.
    #[test]
    fn berlin_windows_follow_its_clocks_going_back() {
        let night = hours("Europe/Berlin", &["Sat-Sun 22:00-07:00"]);
        let fold = hours("Europe/Berlin", &["Sun 02:30-04:00"]);
        let sunday = hours("Europe/Berlin", &["Sun"]);
        let cases: Vec<Case> = vec![
            // October: the night from Saturday to Sunday is one hour longer.
            (
                "saturday 22:00 CEST starts it",
                &night,
                "2026-10-24T20:00:00Z",
                Some("2026-10-25T06:00:00Z"),
            ),
            (
                "the first 02:30 (CEST) is quiet",
                &night,
                "2026-10-25T00:30:00Z",
                Some("2026-10-25T06:00:00Z"),
            ),
            (
                "the second 02:30 (CET) is quiet",
                &night,
                "2026-10-25T01:30:00Z",
                Some("2026-10-25T06:00:00Z"),
            ),
            (
                "sunday 06:59 CET is the last quiet minute",
                &night,
                "2026-10-25T05:59:00Z",
                Some("2026-10-25T06:00:00Z"),
            ),
            (
                "sunday 07:00 CET ends it (10 hours after 22:00 CEST)",
                &night,
                "2026-10-25T06:00:00Z",
                None,
            ),
            // A start that happens twice is the first of the two.
            (
                "the first 02:30 (CEST) starts the fold window",
                &fold,
                "2026-10-25T00:30:00Z",
                Some("2026-10-25T03:00:00Z"),
            ),
            (
                "02:29 CEST is before it",
                &fold,
                "2026-10-25T00:29:00Z",
                None,
            ),
            // A whole day in October is 25 hours long.
            (
                "sunday 00:00 CEST starts the whole day",
                &sunday,
                "2026-10-24T22:00:00Z",
                Some("2026-10-25T23:00:00Z"),
            ),
            (
                "sunday 23:59 CET is still sunday",
                &sunday,
                "2026-10-25T22:59:00Z",
                Some("2026-10-25T23:00:00Z"),
            ),
            (
                "saturday 23:59 CEST is not",
                &sunday,
                "2026-10-24T21:59:00Z",
                None,
            ),
        ];
        check_cases(&cases);
    }

    #[test]
    fn touching_windows_are_one_quiet_time() {
        let week = hours("UTC", &["Mon-Fri 22:00-07:00", "Sat-Sun"]);
        // 2026-12-04 is a Friday.
        let cases = [
            ("friday 21:59 is not quiet", "2026-12-04T21:59:00Z", None),
            (
                "friday night runs into the weekend",
                "2026-12-04T22:00:00Z",
                Some("2026-12-07T00:00:00Z"),
            ),
            (
                "saturday noon",
                "2026-12-05T12:00:00Z",
                Some("2026-12-07T00:00:00Z"),
            ),
            (
                "sunday 23:59",
                "2026-12-06T23:59:00Z",
                Some("2026-12-07T00:00:00Z"),
            ),
            (
                "monday 00:00 is not quiet: no window starts on sunday night",
                "2026-12-07T00:00:00Z",
                None,
            ),
            (
                "monday 22:00 starts monday night",
                "2026-12-07T22:00:00Z",
                Some("2026-12-08T07:00:00Z"),
            ),
            (
                "tuesday 06:59",
                "2026-12-08T06:59:00Z",
                Some("2026-12-08T07:00:00Z"),
            ),
            ("tuesday 07:00 is not quiet", "2026-12-08T07:00:00Z", None),
        ];
        for (what, at, until) in cases {
            assert_eq!(week.quiet_until(utc(at)), until.map(utc), "{what}");
        }
        let always = hours("UTC", &["Mon-Sun"]);
        let now = utc("2026-12-02T15:00:00Z");
        assert!(
            always
                .quiet_until(now)
                .is_some_and(|end| end >= now + 14 * 86_400)
        );
    }

    #[test]
    fn a_window_crossing_midnight_belongs_to_its_start_day() {
        // Friday nights only: the early hours of Saturday are quiet, those
        // of Friday are not (they belong to Thursday's night).
        let friday = hours("UTC", &["Fri 22:00-07:00"]);
        assert!(friday.is_quiet(utc("2026-12-05T03:00:00Z")));
        assert!(!friday.is_quiet(utc("2026-12-04T03:00:00Z")));
        assert!(!friday.is_quiet(utc("2026-12-04T12:00:00Z")));
    }

    #[test]
    fn quiet_hours_read_from_yaml_name_the_key_and_line() {
        let good: QuietHours =
            serde_yaml::from_str("timezone: Europe/Berlin\nwindows: [\"Mon-Fri 22:00-07:00\"]\n")
                .unwrap();
        assert_eq!(good, hours("Europe/Berlin", &["Mon-Fri 22:00-07:00"]));
        let cases = [
            (
                "timezone: Mars/Olympus\nwindows: [Sat]\n",
                "timezone: `Mars/Olympus` is not a time zone of the IANA database (e.g. `Europe/Berlin`, `UTC`) at line 1 column 11",
            ),
            (
                "windows:\n  - Sat\n  - Mon 9:00-8\n",
                "windows[1]: window `Mon 9:00-8`: `8` is not a time `HH:MM` (00:00 to 23:59, or 24:00 as an end) at line 3 column 5",
            ),
            (
                "windows: []\n",
                "windows: no window: list at least one, such as `Mon-Fri 22:00-07:00` at line 1 column 10",
            ),
        ];
        for (yaml, want) in cases {
            let error = serde_yaml::from_str::<QuietHours>(yaml).unwrap_err();
            assert_eq!(error.to_string(), want, "{yaml}");
        }
    }
}
