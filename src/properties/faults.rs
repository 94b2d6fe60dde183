//! Properties of the fault machine: the failure counter, records, the alert plan.

use super::*;

/// One run's raw faults: any mix of levels, escalating or not.
fn gen_run() -> impl Strategy<Value = Vec<RawFault>> {
    prop::collection::vec(
        (severity(), any::<bool>(), "[a-z]{0,6}").prop_map(|(severity, escalates, message)| {
            RawFault {
                name: None,
                severity,
                message,
                escalates,
            }
        }),
        0..4,
    )
}

proptest! {
    // The failure counter over any sequence of runs (SPEC §5): bounded by
    // `retry + 1`; a clean run (no ERROR, no CRITICAL) resets it to 0; a
    // CRITICAL is sticky: the run after one, if it fails, stays CRITICAL;
    // faults are never dropped, renamed or lowered; ` (N of M)` is the only
    // change to a message and N ≤ M = retry + 1.
    #[test]
    fn the_failure_counter_keeps_its_invariants(
        retry in 0u32..20,
        runs in prop::collection::vec(gen_run(), 1..16),
    ) {
        let mut counter = 0u32;
        let mut previous_critical = false;
        for run in runs {
            let failing = crate::fault::is_failing(&run);
            let (next, out) = escalate(retry, counter, run.clone());
            prop_assert!(next <= retry + 1, "counter {} over retry {}", next, retry);
            if !failing {
                prop_assert_eq!(next, 0, "a clean run resets the counter");
            }
            prop_assert_eq!(out.len(), run.len());
            for (before, after) in run.iter().zip(&out) {
                prop_assert_eq!(&before.name, &after.name);
                prop_assert_eq!(before.escalates, after.escalates);
                prop_assert!(after.severity >= before.severity);
                if after.message != before.message {
                    let suffix = after.message.strip_prefix(before.message.as_str()).unwrap_or_default();
                    let want = format!(" ({next} of {})", retry + 1);
                    prop_assert_eq!(suffix, want.as_str());
                }
                if previous_critical && before.severity.is_error() && before.escalates {
                    prop_assert_eq!(after.severity, Severity::CRITICAL, "critical is sticky until a clean run");
                }
                if !before.escalates {
                    prop_assert_eq!(after.severity, before.severity);
                }
            }
            previous_critical = out.iter().any(|f| f.severity.is_critical());
            counter = next;
        }
    }
}

/// A stored fault of check `c` named `c` or `c#N`.
fn gen_stored(now: i64) -> impl Strategy<Value = Fault> {
    (
        prop::option::of("[a-c]"),
        severity(),
        "[a-b]{0,2}",
        0..now,
        any::<bool>(),
        any::<bool>(),
        0u32..5,
    )
        .prop_map(
            move |(name, severity, message, since, triggered, escalates, attempts)| Fault {
                name: crate::fault::full_name("c", name.as_deref()),
                severity,
                message,
                since,
                updated: since,
                triggered,
                escalates,
                attempts,
                monitor_runs: 0,
                storm: false,
                suppressed_by: None,
                held: false,
                flapping: false,
            },
        )
}

proptest! {
    // `records` keeps `since` of a fault that goes on, starts a new one at
    // `now`, keeps `triggered` only while the message is unchanged, keeps
    // `updated` only while the record is the same, and stores one record
    // per name (the worse of two with one name).
    #[test]
    fn records_keep_since_and_one_record_per_name(
        previous in prop::collection::vec(gen_stored(1_000), 0..5),
        faults in prop::collection::vec(
            (prop::option::of("[a-c]"), severity(), "[a-b]{0,2}", any::<bool>()).prop_map(
                |(name, severity, message, escalates)| RawFault { name, severity, message, escalates },
            ),
            0..6,
        ),
        counter in 0u32..5,
    ) {
        let now = 2_000;
        let previous: BTreeMap<String, Fault> =
            previous.into_iter().map(|f| (f.name.clone(), f)).collect();
        let out = records("c", faults.clone(), counter, 0, &previous, now);
        prop_assert!(out.len() <= faults.len());
        let names: BTreeSet<&str> = out.iter().map(|f| f.name.as_str()).collect();
        prop_assert_eq!(names.len(), out.len(), "one record per name");
        for record in &out {
            prop_assert_eq!(record.attempts, counter);
            let worst = faults
                .iter()
                .filter(|f| crate::fault::full_name("c", f.name.as_deref()) == record.name)
                .map(|f| f.severity)
                .max();
            prop_assert_eq!(Some(record.severity), worst);
            if let Some(old) = previous.get(&record.name) {
                prop_assert_eq!(record.since, old.since, "since is kept");
                prop_assert_eq!(record.triggered, old.triggered && crate::fault::same_alert(&old.message, &record.message));
                prop_assert_eq!(record.updated == old.updated, old.same_record(record));
            } else {
                prop_assert_eq!(record.since, now);
                prop_assert!(!record.triggered);
            }
        }
    }

    // The alert plan never triggers a squelched fault, this agent's own
    // fault or one below CRITICAL; it triggers each untriggered CRITICAL
    // otherwise; it clears `triggered` on squelched faults; it never both
    // triggers and resolves one name.
    #[test]
    fn the_plan_never_triggers_a_squelched_fault(
        stored in prop::collection::vec(
            (prop::sample::select(vec!["a", "b", "c", "me"]), prop::option::of("[x-z]"), severity(), any::<bool>()),
            0..10,
        ),
        squelch in prop::collection::btree_set("[a-c](#[x-z])?", 0..4),
        opened in prop::collection::btree_set("[a-c](#[x-z])?", 0..4),
        retry in prop::collection::btree_set("[a-c](#[x-z])?", 0..3),
        ran in prop::collection::hash_set("[a-c]", 0..3),
        alive in prop::collection::hash_set("[a-c]", 0..3),
    ) {
        let mut faults: BTreeMap<String, Fault> = stored
            .into_iter()
            .map(|(check, name, severity, triggered)| {
                let name = crate::fault::full_name(check, name.as_deref());
                (name.clone(), Fault {
                    name,
                    severity,
                    message: "m".into(),
                    since: 0,
                    updated: 0,
                    triggered,
                    escalates: true,
                    attempts: 0,
                    monitor_runs: 0,
                    storm: false,
                    suppressed_by: None,
                    held: false,
                    flapping: false,
                })
            })
            .collect();
        let before = faults.clone();
        let squelched = |name: &str| squelch.contains(name);
        let tick = Tick {
            agent: "me",
            ran: &ran,
            alive: &alive,
            opened: &opened,
            retry_resolves: &retry,
            squelched: &squelched,
            flapping: &|_: &str| false,
        };
        let actions = crate::fault::plan(&mut faults, &tick);
        let mut triggered = BTreeSet::new();
        let mut resolved = BTreeSet::new();
        for action in &actions {
            match action {
                Action::Trigger { name, .. } => {
                    prop_assert!(!squelch.contains(name), "squelched {} triggered", name);
                    prop_assert!(!name.starts_with("me#"));
                    let fault = &before[name];
                    prop_assert!(fault.severity.is_critical() && !fault.triggered);
                    prop_assert!(triggered.insert(name.clone()), "{} triggered twice", name);
                }
                Action::Resolve { name } => {
                    prop_assert!(resolved.insert(name.clone()), "{} resolved twice", name);
                }
            }
        }
        prop_assert!(triggered.is_disjoint(&resolved));
        for (name, fault) in &before {
            let wanted = fault.severity.is_critical()
                && !fault.triggered
                && !squelch.contains(name)
                && !name.starts_with("me#");
            prop_assert_eq!(triggered.contains(name), wanted, "{}", name);
            if squelch.contains(name) && !name.starts_with("me#") && fault.severity.is_critical() {
                prop_assert!(!faults[name].triggered, "squelched {} stays triggered", name);
            }
        }
    }
}
