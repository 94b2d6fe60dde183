//! Alert storms (SPEC §10), pure: more triggers in one tick through one
//! alerter than `alerting.storm_threshold` become one `AGENT#storm` alert.
//!
//! `decide` takes one alerter route's facts for this tick (the open storm,
//! its members, this tick's new triggers) and says which triggers go out on
//! their own, which join the storm (stored `storm: true`, never triggered on
//! their own) and what the storm fault sends: opened, re-sent with a changed
//! count (at most once per `RESEND_INTERVALS` base intervals, measured from
//! the storm fault's `updated`), retried after a failed send, or resolved
//! once none of its members is critical. Members that clear send nothing.
//! No I/O, no clock: `agent/storm.rs` gathers the facts and applies the
//! decision. `listing` is shared with the meta-check's `inactive-agents`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Most names a storm's (or `inactive-agents`') message lists.
pub(crate) const LISTED: usize = 10;

/// A storm's changed count is re-sent at most once per this many base
/// intervals.
pub(crate) const RESEND_INTERVALS: f64 = 10.0;

/// The storm fault of an alerter route: `AGENT#storm` for the default
/// alerter, `AGENT#storm-NAME` for the named alerter NAME.
#[must_use]
pub(crate) fn fault_name(agent: &str, route: Option<&str>) -> String {
    match route {
        None => format!("{agent}#storm"),
        Some(alerter) => format!("{agent}#storm-{alerter}"),
    }
}

/// The alerter route a storm fault stands for: `None` for the default
/// alerter, else the named alerter's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StormRoute(pub Option<String>);

/// The alerter route of `agent`'s storm fault `name`; `None` when `name` is
/// not a storm fault of `agent`.
#[must_use]
pub(crate) fn route_of(agent: &str, name: &str) -> Option<StormRoute> {
    let rest = name.strip_prefix(agent)?.strip_prefix("#storm")?;
    if rest.is_empty() {
        return Some(StormRoute(None));
    }
    let alerter = rest.strip_prefix('-').filter(|a| !a.is_empty())?;
    Some(StormRoute(Some(alerter.to_owned())))
}

/// `NAME, NAME, ... and K more`: at most `LISTED` names, sorted; ` and K
/// more` only when names were left out.
#[must_use]
pub(crate) fn listing<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut sorted: Vec<&str> = names.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let more = sorted.len().saturating_sub(LISTED);
    let mut text = sorted[..sorted.len().min(LISTED)].join(", ");
    if more > 0 {
        let _ = write!(text, " and {more} more");
    }
    text
}

/// A storm's message: `N new critical faults: NAME, ... and K more`.
#[must_use]
pub(crate) fn message(members: &BTreeSet<String>) -> String {
    format!(
        "{} new critical faults: {}",
        members.len(),
        listing(members.iter().map(String::as_str))
    )
}

/// The count a storm message was sent with; `None` for another message.
fn count_of(message: &str) -> Option<usize> {
    message
        .split_once(" new critical faults: ")
        .and_then(|(count, _)| count.parse().ok())
}

/// The stored storm fault of a route while its storm is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Storm {
    /// When the storm opened.
    pub since: i64,
    /// The message last sent (or to send).
    pub message: String,
    /// When it was last sent: the re-send interval counts from here.
    pub updated: i64,
    /// The alerter accepted `message`.
    pub triggered: bool,
}

/// What one alerter route looks like this tick.
#[derive(Clone, Debug, Default)]
pub(crate) struct Route {
    /// The open storm, if any.
    pub storm: Option<Storm>,
    /// The storm's trigger may be open at the receiver (a resolve is due
    /// when it closes).
    pub sent: bool,
    /// Critical faults stored with `storm: true` on this route.
    pub members: BTreeSet<String>,
    /// This tick's triggers of new critical faults on this route.
    pub triggers: BTreeSet<String>,
    /// A squelch matches the storm fault's name: nothing is sent for it.
    pub muted: bool,
}

/// `alerting.storm_threshold` and the base interval.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    /// More triggers than this in one tick open a storm; 0: storms are off.
    pub threshold: usize,
    pub base_interval: f64,
}

/// What the storm fault sends this tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Send {
    /// Trigger `AGENT#storm` with this message.
    Trigger(String),
    /// Resolve `AGENT#storm`.
    Resolve,
}

/// The decision for one route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Triggers sent on their own.
    pub individual: Vec<String>,
    /// Triggers that join the storm: stored `storm: true`, `triggered: false`.
    pub joined: Vec<String>,
    /// Faults that leave a storm whose record is lost while storms are off:
    /// stored `storm: false` and triggered on their own.
    pub released: Vec<String>,
    /// The storm fault after this tick; `None`: no storm (a stored one is
    /// removed).
    pub storm: Option<Storm>,
    pub send: Option<Send>,
}

/// Decides one route's storm for this tick at `now`.
///
/// - No storm open: more than `threshold` triggers (threshold > 0) open one
///   with all of them; fewer go out on their own. Members without a storm
///   (its record was lost) open it again, with this tick's triggers.
/// - A storm open: this tick's triggers join it. When no member is left it
///   closes, with one resolve if its trigger may be open. Otherwise it sends
///   its current message when the last send failed, or when the count
///   changed and the last send is `RESEND_INTERVALS` base intervals old.
/// - Threshold 0: no storm opens and none is joined; one still open (from
///   before a configuration change) resolves when its members clear, and
///   members of a lost one are released (triggered on their own).
/// - Muted (the storm fault is squelched): the same, but nothing is sent.
#[must_use]
pub(crate) fn decide(route: &Route, rules: Rules, now: i64) -> Decision {
    let on = rules.threshold > 0;
    let triggers: Vec<String> = route.triggers.iter().cloned().collect();
    let mut decision = Decision::default();
    let Some(storm) = &route.storm else {
        let lost = !route.members.is_empty();
        if on && (lost || triggers.len() > rules.threshold) {
            let mut members = route.members.clone();
            members.extend(triggers.iter().cloned());
            let message = message(&members);
            decision.joined = triggers;
            decision.send = (!route.muted).then(|| Send::Trigger(message.clone()));
            decision.storm = Some(Storm {
                since: now,
                message,
                updated: now,
                triggered: false,
            });
        } else {
            decision.individual = triggers;
            decision.released = route.members.iter().cloned().collect();
        }
        return decision;
    };
    let mut members = route.members.clone();
    if on {
        members.extend(triggers.iter().cloned());
        decision.joined = triggers;
    } else {
        decision.individual = triggers;
    }
    if members.is_empty() {
        decision.send = (route.sent || storm.triggered).then_some(Send::Resolve);
        return decision;
    }
    let current = message(&members);
    let mut next = storm.clone();
    #[expect(
        clippy::cast_precision_loss,
        reason = "ages in seconds are far below 2^52"
    )]
    let resend_due = (now - storm.updated) as f64 >= RESEND_INTERVALS * rules.base_interval;
    let changed = count_of(&storm.message) != Some(members.len());
    if route.muted {
        next.message = current;
        next.triggered = false;
    } else if !storm.triggered || (changed && resend_due) {
        next.message.clone_from(&current);
        next.updated = now;
        next.triggered = false;
        decision.send = Some(Send::Trigger(current));
    }
    decision.storm = Some(next);
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        threshold: 10,
        base_interval: 60.0,
    };

    fn names(prefix: &str, count: usize) -> BTreeSet<String> {
        (0..count).map(|i| format!("{prefix}{i:02}")).collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn open(message: &str, updated: i64, triggered: bool) -> Storm {
        Storm {
            since: 100,
            message: message.into(),
            updated,
            triggered,
        }
    }

    fn strings(set: &BTreeSet<String>) -> Vec<String> {
        set.iter().cloned().collect()
    }

    #[test]
    fn storm_fault_names_carry_the_alerter_route() {
        assert_eq!(fault_name("web1", None), "web1#storm");
        assert_eq!(fault_name("web1", Some("pager")), "web1#storm-pager");
        let cases = [
            ("web1#storm", Some(StormRoute(None))),
            (
                "web1#storm-pager",
                Some(StormRoute(Some("pager".to_owned()))),
            ),
            ("web1#storm-", None),
            ("web1#stormy", None),
            ("web1#alerts", None),
            ("web2#storm", None),
            ("//web1/app/storm", None),
        ];
        for (name, want) in cases {
            assert_eq!(route_of("web1", name), want, "{name}");
        }
    }

    #[test]
    fn listings_name_at_most_ten_sorted_and_count_the_rest() {
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["b", "a"], "a, b"),
            (vec!["x"], "x"),
            (
                vec!["j", "i", "h", "g", "f", "e", "d", "c", "b", "a"],
                "a, b, c, d, e, f, g, h, i, j",
            ),
            (
                vec!["k", "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"],
                "a, b, c, d, e, f, g, h, i, j and 1 more",
            ),
        ];
        for (given, want) in cases {
            assert_eq!(listing(given.iter().copied()), want, "{given:?}");
        }
        assert_eq!(
            message(&names("//w/a/c", 15)),
            "15 new critical faults: //w/a/c00, //w/a/c01, //w/a/c02, //w/a/c03, //w/a/c04, \
             //w/a/c05, //w/a/c06, //w/a/c07, //w/a/c08, //w/a/c09 and 5 more"
        );
    }

    /// What a case gives: (individual, joined, released, the storm's
    /// message, updated and triggered, what it sends).
    type Shown = (
        usize,
        usize,
        usize,
        Option<(String, i64, bool)>,
        Option<Send>,
    );

    fn summary(d: &Decision) -> Shown {
        (
            d.individual.len(),
            d.joined.len(),
            d.released.len(),
            d.storm
                .as_ref()
                .map(|s| (s.message.clone(), s.updated, s.triggered)),
            d.send.clone(),
        )
    }

    /// What, the route's facts, the rules, now, and what `decide` gives.
    type Case<'a> = (&'a str, Route, Rules, i64, Shown);

    fn check(cases: Vec<Case<'_>>) {
        for (what, route, rules, now, want) in cases {
            assert_eq!(summary(&decide(&route, rules, now)), want, "{what}");
        }
    }

    fn quiet(triggers: BTreeSet<String>) -> Route {
        Route {
            triggers,
            ..Route::default()
        }
    }

    const OFF: Rules = Rules {
        threshold: 0,
        base_interval: 60.0,
    };

    #[test]
    fn storms_open_above_the_threshold() {
        let eleven = message(&names("f", 11));
        check(vec![
            (
                "exactly the threshold goes out on its own",
                quiet(names("f", 10)),
                RULES,
                200,
                (10, 0, 0, None, None),
            ),
            (
                "one more than the threshold opens a storm",
                quiet(names("f", 11)),
                RULES,
                200,
                (
                    0,
                    11,
                    0,
                    Some((eleven.clone(), 200, false)),
                    Some(Send::Trigger(eleven.clone())),
                ),
            ),
            (
                "threshold 0 is off: fifteen go out on their own",
                quiet(names("f", 15)),
                OFF,
                200,
                (15, 0, 0, None, None),
            ),
            (
                "members whose storm record was lost open it again",
                Route {
                    storm: None,
                    sent: false,
                    members: names("f", 11),
                    triggers: BTreeSet::new(),
                    muted: false,
                },
                RULES,
                300,
                (
                    0,
                    0,
                    0,
                    Some((eleven.clone(), 300, false)),
                    Some(Send::Trigger(eleven.clone())),
                ),
            ),
            (
                "members whose storm record was lost are released when storms are off",
                Route {
                    storm: None,
                    sent: false,
                    members: names("f", 11),
                    triggers: BTreeSet::new(),
                    muted: false,
                },
                OFF,
                300,
                (0, 0, 11, None, None),
            ),
            (
                "a squelched storm opens and stores its members but sends nothing",
                Route {
                    muted: true,
                    ..quiet(names("f", 11))
                },
                RULES,
                200,
                (0, 11, 0, Some((eleven.clone(), 200, false)), None),
            ),
        ]);
    }

    #[test]
    fn open_storms_are_joined_re_sent_and_resolved() {
        let eleven = message(&names("f", 11));
        let twelve = message(&names("f", 12));
        let ten_sent = message(&names("f", 10));
        let none = BTreeSet::new;
        // The storm opened at 200 with eleven faults; `sent`: whether its
        // trigger was delivered.
        let opened = |sent: bool, members, triggers| Route {
            storm: Some(open(&eleven, 200, sent)),
            sent,
            members,
            triggers,
            muted: false,
        };
        check(vec![
            (
                "a later fault joins the open storm; the count waits for the re-send interval",
                opened(true, names("f", 11), set(&["g"])),
                RULES,
                260,
                (0, 1, 0, Some((eleven.clone(), 200, true)), None),
            ),
            (
                "a changed count is re-sent once ten base intervals passed",
                opened(true, names("f", 12), none()),
                RULES,
                800,
                (
                    0,
                    0,
                    0,
                    Some((twelve.clone(), 800, false)),
                    Some(Send::Trigger(twelve.clone())),
                ),
            ),
            (
                "an unchanged count is never re-sent",
                opened(true, names("f", 11), none()),
                RULES,
                5000,
                (0, 0, 0, Some((eleven.clone(), 200, true)), None),
            ),
            (
                "members that clear send nothing while others stay critical",
                opened(true, names("f", 10), none()),
                RULES,
                300,
                (0, 0, 0, Some((eleven.clone(), 200, true)), None),
            ),
            (
                "a failed send is retried at once with the current count",
                opened(false, names("f", 10), none()),
                RULES,
                260,
                (
                    0,
                    0,
                    0,
                    Some((ten_sent.clone(), 260, false)),
                    Some(Send::Trigger(ten_sent.clone())),
                ),
            ),
            (
                "the storm resolves once when no member is critical",
                opened(true, none(), none()),
                RULES,
                300,
                (0, 0, 0, None, Some(Send::Resolve)),
            ),
            (
                "a storm never sent closes without a resolve",
                opened(false, none(), none()),
                RULES,
                300,
                (0, 0, 0, None, None),
            ),
            (
                "with threshold 0 an open storm takes no one but still resolves",
                opened(true, none(), set(&["g"])),
                OFF,
                300,
                (1, 0, 0, None, Some(Send::Resolve)),
            ),
        ]);
    }

    #[test]
    fn two_routes_are_decided_apart() {
        // Eleven faults through the default alerter storm; five through
        // `pager` go out on their own, in the same tick.
        let default = Route {
            triggers: names("d", 11),
            ..Route::default()
        };
        let pager = Route {
            triggers: names("p", 5),
            ..Route::default()
        };
        let d = decide(&default, RULES, 200);
        let p = decide(&pager, RULES, 200);
        assert_eq!(d.joined, strings(&names("d", 11)));
        assert!(
            matches!(d.send, Some(Send::Trigger(ref m)) if m.starts_with("11 new critical faults: d00, "))
        );
        assert_eq!(
            (p.individual, p.storm, p.send),
            (strings(&names("p", 5)), None, None)
        );
    }

    #[test]
    fn a_storm_joined_later_counts_every_member() {
        let first = decide(
            &Route {
                triggers: names("f", 11),
                ..Route::default()
            },
            RULES,
            200,
        );
        let mut storm = first.storm.clone().unwrap();
        storm.triggered = true;
        // Three more go critical ten base intervals later: they join and the
        // new count is re-sent.
        let mut members = names("f", 11);
        let later = Route {
            storm: Some(storm),
            sent: true,
            members: members.clone(),
            triggers: set(&["g1", "g2", "g3"]),
            muted: false,
        };
        let second = decide(&later, RULES, 800);
        members.extend(set(&["g1", "g2", "g3"]));
        assert_eq!(second.joined, ["g1", "g2", "g3"]);
        assert_eq!(second.send, Some(Send::Trigger(message(&members))));
        assert!(message(&members).starts_with("14 new critical faults: "));
    }
}
