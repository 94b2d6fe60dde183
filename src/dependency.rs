//! Dependencies between checks (SPEC §11 `depends_on`), pure.
//!
//! Owns what a `depends_on` name means and what a failing dependency does
//! to its dependents: `resolve` turns the names each check wrote into full
//! check names (`KEY` of the same file, `STEM/KEY`, this agent's own
//! `//AGENT/STEM/KEY`, or an absolute `//...` name judged over the fleet)
//! and finds the configuration errors (a name no check on this agent has,
//! a cycle); `decide` says which dependency, if any, suppresses a check's
//! faults after a tick. No I/O: the agent (`agent::dependencies`) reads the
//! fleet's notices for the absolute names, orders the tick's runs and
//! stores the decision in `Fault::suppressed_by`.

use std::collections::HashMap;
use std::fmt;

/// One check as the resolver sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Declared<'a> {
    /// The check's full name.
    pub name: &'a str,
    /// The stem of the file it comes from (`KEY` resolves there).
    pub stem: &'a str,
    /// Its `depends_on` names as written.
    pub depends_on: &'a [String],
}

/// A dependency, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// A check of this agent (full name), judged on its result in the same
    /// tick: the dependent runs after it.
    Local(String),
    /// An absolute name (`//...`, not this agent's `//AGENT/...`), judged
    /// on what live agents stored before the tick (and on this agent's own
    /// faults, when it runs that check too).
    Absolute(String),
}

impl Target {
    /// The full check name.
    #[must_use]
    pub(crate) fn name(&self) -> &str {
        match self {
            Target::Local(name) | Target::Absolute(name) => name,
        }
    }
}

/// Why a check's `depends_on` is a configuration error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A relative name (or this agent's own `//AGENT/...`) that no check
    /// on this agent has.
    Unknown(String),
    /// The check depends on itself through `checks` checks; `path` shows
    /// their full names from the check on (at most `CYCLE_SHOWN`), then
    /// the check again.
    Cycle { path: Vec<String>, checks: usize },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unknown(written) => write!(
                f,
                "no check `{written}` on this agent (a relative name is `KEY` of the same file or `STEM/KEY`; an absolute one starts with `//`)"
            ),
            Problem::Cycle { path, checks } => {
                let mut shown: Vec<String> = path.iter().map(|name| format!("`{name}`")).collect();
                if *checks + 1 > path.len() {
                    let more = checks + 1 - path.len();
                    shown.insert(path.len() - 1, format!("... ({more} more)"));
                }
                write!(f, "a dependency cycle: {}", shown.join(" -> "))
            }
        }
    }
}

/// Whether `name` is absolute for `agent`: `//...` but not the agent's own
/// `//AGENT/...` name space.
fn is_absolute(agent: &str, name: &str) -> bool {
    name.starts_with("//")
        && !name
            .strip_prefix("//")
            .and_then(|rest| rest.strip_prefix(agent))
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Each check's dependencies, or why they are a configuration error; in
/// the order of `checks`. Names are deduplicated, in the order written.
///
/// A relative `KEY` is first looked up in the check's own file
/// (`//AGENT/STEM/KEY`), then, when it has a `/`, as `STEM/KEY`
/// (`//AGENT/STEM/KEY` of another file). A cycle is found among the checks
/// whose names all resolved (a check with an unknown name runs without
/// dependencies, as a configuration error); every check on a cycle gets
/// the error, a check that only depends on one does not. Linear in the
/// number of checks and names.
#[must_use]
pub(crate) fn resolve(agent: &str, checks: &[Declared<'_>]) -> Vec<Result<Vec<Target>, Problem>> {
    let index: HashMap<&str, usize> = checks
        .iter()
        .enumerate()
        .map(|(i, check)| (check.name, i))
        .collect();
    let mut resolved: Vec<Result<Vec<Target>, Problem>> = checks
        .iter()
        .map(|check| {
            let mut targets: Vec<Target> = Vec::new();
            for written in check.depends_on {
                let target = resolve_one(agent, check.stem, written, &|n| index.contains_key(n))?;
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
            Ok(targets)
        })
        .collect();
    // Edges between checks of this agent (an absolute name this agent
    // runs too counts: its own faults suppress).
    let edges: Vec<Vec<usize>> = resolved
        .iter()
        .map(|targets| match targets {
            Ok(targets) => targets
                .iter()
                .filter_map(|t| index.get(t.name()).copied())
                .collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    for component in cyclic_components(&edges) {
        let members: std::collections::HashSet<usize> = component.iter().copied().collect();
        // One cycle per component, shown from each member on it; a member
        // off it gets its own shortest cycle, searched only in a small
        // component (each search costs the component's size).
        let first = cycle_through(component[0], &edges, &members);
        let ring = &first[..first.len() - 1];
        let on_ring: HashMap<usize, usize> =
            ring.iter().enumerate().map(|(at, &i)| (i, at)).collect();
        for &member in &component {
            // (the first checks of the cycle from `member` on, its length)
            let (head, length): (Vec<usize>, usize) = if let Some(&at) = on_ring.get(&member) {
                // Only the part shown is built: a ring of 50,000 checks
                // must not cost 50,000² steps.
                let head = ring[at..].iter().chain(&ring[..at]).take(CYCLE_SHOWN);
                (head.copied().collect(), ring.len())
            } else {
                let own = if component.len() <= SEARCHED_COMPONENT {
                    cycle_through(member, &edges, &members)
                } else {
                    first.clone()
                };
                let length = own.len() - 1;
                (
                    own.into_iter().take(length.min(CYCLE_SHOWN)).collect(),
                    length,
                )
            };
            let closing = if on_ring.contains_key(&member) || component.len() <= SEARCHED_COMPONENT
            {
                member
            } else {
                head.first().copied().unwrap_or(member)
            };
            let shown = head
                .iter()
                .chain(std::iter::once(&closing))
                .map(|&i| checks[i].name.to_owned())
                .collect();
            resolved[member] = Err(Problem::Cycle {
                path: shown,
                checks: length,
            });
        }
    }
    resolved
}

/// Most checks of a cycle its message names.
const CYCLE_SHOWN: usize = 10;

/// Largest cycle component in which each check's own shortest cycle is
/// searched for its message.
const SEARCHED_COMPONENT: usize = 64;

/// One written name, resolved against the checks that `exists`.
fn resolve_one(
    agent: &str,
    stem: &str,
    written: &str,
    exists: &dyn Fn(&str) -> bool,
) -> Result<Target, Problem> {
    if is_absolute(agent, written) {
        return Ok(Target::Absolute(written.to_owned()));
    }
    if written.starts_with("//") {
        return if exists(written) {
            Ok(Target::Local(written.to_owned()))
        } else {
            Err(Problem::Unknown(written.to_owned()))
        };
    }
    let same_file = format!("//{agent}/{stem}/{written}");
    if exists(&same_file) {
        return Ok(Target::Local(same_file));
    }
    let other_file = format!("//{agent}/{written}");
    if written.contains('/') && exists(&other_file) {
        return Ok(Target::Local(other_file));
    }
    Err(Problem::Unknown(written.to_owned()))
}

/// The strongly connected components that hold a cycle (more than one
/// check, or one that depends on itself), by Tarjan's algorithm without
/// recursion (a chain of 50,000 checks must not overflow the stack).
fn cyclic_components(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let mut order = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut next = 0;
    let mut found = Vec::new();
    for root in 0..n {
        if order[root] != UNSEEN {
            continue;
        }
        // (node, index of its next edge to follow)
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        order[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(node, at)) = work.last() {
            if let Some(&to) = edges[node].get(at) {
                if let Some(top) = work.last_mut() {
                    top.1 += 1;
                }
                if order[to] == UNSEEN {
                    order[to] = next;
                    low[to] = next;
                    next += 1;
                    stack.push(to);
                    on_stack[to] = true;
                    work.push((to, 0));
                } else if on_stack[to] {
                    low[node] = low[node].min(order[to]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == order[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 || edges[node].contains(&node) {
                    component.sort_unstable();
                    found.push(component);
                }
            }
        }
    }
    found
}

/// A shortest way from `start` back to itself within `members` (breadth
/// first), `start` first and last.
fn cycle_through(
    start: usize,
    edges: &[Vec<usize>],
    members: &std::collections::HashSet<usize>,
) -> Vec<usize> {
    let mut came_from: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &to in &edges[node] {
            if !members.contains(&to) {
                continue;
            }
            if to == start {
                let mut path = Vec::new();
                let mut at = node;
                while at != start {
                    path.push(at);
                    // Every node queued but `start` has a predecessor.
                    let Some(&from) = came_from.get(&at) else {
                        break;
                    };
                    at = from;
                }
                path.push(start);
                path.reverse();
                path.push(start);
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(entry) = came_from.entry(to) {
                entry.insert(node);
                queue.push_back(to);
            }
        }
    }
    vec![start, start]
}

/// Which dependency suppresses a check's faults after this tick (SPEC §11).
///
/// `failing`: the check's dependencies failing now (an ERROR or CRITICAL
/// fault), in the order written (and `AGENT#dns` for a probe whose host
/// the resolver could not answer). The dependency that suppressed it
/// before stays named while it still fails (no churn between two failing
/// ones); else the first failing one is named. With none failing, the
/// suppression ends only at a run of the check (`ran`): its faults were
/// found while the dependency failed, so they are triggered only once a
/// run shows them still critical.
#[must_use]
pub(crate) fn decide(previous: Option<&str>, ran: bool, failing: &[&str]) -> Option<String> {
    if let Some(previous) = previous
        && failing.contains(&previous)
    {
        return Some(previous.to_owned());
    }
    if let Some(first) = failing.first() {
        return Some((*first).to_owned());
    }
    if ran {
        None
    } else {
        previous.map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What, the names written, what they resolve to.
    type ResolveCase<'a> = (&'a str, Vec<&'a str>, Result<Vec<Target>, Problem>);
    /// What, the checks (name, depends_on), each one's error.
    type Case<'a> = (&'a str, Vec<(&'a str, Vec<&'a str>)>, Vec<Option<&'a str>>);
    /// What, previous, ran, failing, the decision.
    type DecideCase<'a> = (
        &'a str,
        Option<&'a str>,
        bool,
        Vec<&'a str>,
        Option<&'a str>,
    );

    fn declared<'a>(name: &'a str, stem: &'a str, depends_on: &'a [String]) -> Declared<'a> {
        Declared {
            name,
            stem,
            depends_on,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Resolves one check `//web1/app/x` with `written` among the checks
    /// `//web1/app/y`, `//web1/net/gw`, `//web1/net/a/b`, `//fleet`.
    fn one(written: &[&str]) -> Result<Vec<Target>, Problem> {
        let written = names(written);
        let none: Vec<String> = Vec::new();
        let checks = [
            declared("//web1/app/x", "app", &written),
            declared("//web1/app/y", "app", &none),
            declared("//web1/net/gw", "net", &none),
            declared("//web1/net/a/b", "net", &none),
            declared("//fleet", "net", &none),
        ];
        resolve("web1", &checks).remove(0)
    }

    #[test]
    fn names_resolve_as_spec_section_11_says() {
        let local = |n: &str| Target::Local(n.to_owned());
        let absolute = |n: &str| Target::Absolute(n.to_owned());
        let unknown = |n: &str| Err(Problem::Unknown(n.to_owned()));
        let cases: Vec<ResolveCase> = vec![
            (
                "KEY of the same file",
                vec!["y"],
                Ok(vec![local("//web1/app/y")]),
            ),
            ("STEM/KEY", vec!["net/gw"], Ok(vec![local("//web1/net/gw")])),
            (
                "STEM/KEY whose key has a slash",
                vec!["net/a/b"],
                Ok(vec![local("//web1/net/a/b")]),
            ),
            (
                "this agent's own full name",
                vec!["//web1/net/gw"],
                Ok(vec![local("//web1/net/gw")]),
            ),
            (
                "an absolute name this agent runs too",
                vec!["//fleet"],
                Ok(vec![absolute("//fleet")]),
            ),
            (
                "an absolute name only other agents run",
                vec!["//db/primary"],
                Ok(vec![absolute("//db/primary")]),
            ),
            (
                "another agent's relative check is absolute",
                vec!["//web2/net/gw"],
                Ok(vec![absolute("//web2/net/gw")]),
            ),
            (
                "a key of another file alone is unknown",
                vec!["gw"],
                unknown("gw"),
            ),
            ("no such file", vec!["dns/gw"], unknown("dns/gw")),
            (
                "this agent's own name space must exist",
                vec!["//web1/net/nope"],
                unknown("//web1/net/nope"),
            ),
            (
                "the first unknown name is the error",
                vec!["y", "nope", "worse"],
                unknown("nope"),
            ),
            (
                "a name written twice counts once",
                vec!["y", "//web1/app/y", "net/gw"],
                Ok(vec![local("//web1/app/y"), local("//web1/net/gw")]),
            ),
        ];
        for (what, written, want) in cases {
            assert_eq!(one(&written), want, "{what}");
        }
    }

    /// Resolves checks given as (name, depends_on) in file `f` of `web1`
    /// and shows each one's error, if any.
    fn problems(graph: &[(&str, Vec<&str>)]) -> Vec<Option<String>> {
        let written: Vec<Vec<String>> = graph.iter().map(|(_, deps)| names(deps)).collect();
        let checks: Vec<Declared> = graph
            .iter()
            .zip(&written)
            .map(|((name, _), deps)| declared(name, "f", deps))
            .collect();
        resolve("web1", &checks)
            .into_iter()
            .map(|r| r.err().map(|p| p.to_string()))
            .collect()
    }

    #[test]
    fn cycles_are_errors_of_every_check_on_them_only() {
        let a = "//web1/f/a";
        let b = "//web1/f/b";
        let c = "//web1/f/c";
        let cases: Vec<Case> = vec![
            (
                "a chain has no cycle",
                vec![(a, vec!["b"]), (b, vec!["c"]), (c, vec![])],
                vec![None, None, None],
            ),
            (
                "a check that depends on itself",
                vec![(a, vec!["a"]), (b, vec!["a"])],
                vec![
                    Some("a dependency cycle: `//web1/f/a` -> `//web1/f/a`"),
                    None,
                ],
            ),
            (
                "two checks on a cycle, one that depends on it",
                vec![(a, vec!["b"]), (b, vec!["a"]), (c, vec!["a"])],
                vec![
                    Some("a dependency cycle: `//web1/f/a` -> `//web1/f/b` -> `//web1/f/a`"),
                    Some("a dependency cycle: `//web1/f/b` -> `//web1/f/a` -> `//web1/f/b`"),
                    None,
                ],
            ),
            (
                "three on a cycle",
                vec![(a, vec!["b"]), (b, vec!["c"]), (c, vec!["a"])],
                vec![
                    Some(
                        "a dependency cycle: `//web1/f/a` -> `//web1/f/b` -> `//web1/f/c` -> `//web1/f/a`",
                    ),
                    Some(
                        "a dependency cycle: `//web1/f/b` -> `//web1/f/c` -> `//web1/f/a` -> `//web1/f/b`",
                    ),
                    Some(
                        "a dependency cycle: `//web1/f/c` -> `//web1/f/a` -> `//web1/f/b` -> `//web1/f/c`",
                    ),
                ],
            ),
            (
                "an absolute check this agent runs closes a cycle",
                vec![("//web", vec!["a"]), (a, vec!["//web"])],
                vec![
                    Some("a dependency cycle: `//web` -> `//web1/f/a` -> `//web`"),
                    Some("a dependency cycle: `//web1/f/a` -> `//web` -> `//web1/f/a`"),
                ],
            ),
            (
                "a check with an unknown name breaks no cycle of its own",
                vec![(a, vec!["b", "nope"]), (b, vec!["a"])],
                vec![
                    Some(
                        "no check `nope` on this agent (a relative name is `KEY` of the same file or `STEM/KEY`; an absolute one starts with `//`)",
                    ),
                    None,
                ],
            ),
        ];
        for (what, graph, want) in cases {
            let want: Vec<Option<String>> =
                want.into_iter().map(|w| w.map(str::to_owned)).collect();
            assert_eq!(problems(&graph), want, "{what}");
        }
    }

    #[test]
    fn a_long_chain_resolves_without_deep_recursion() {
        let n = 50_000;
        let names: Vec<String> = (0..n).map(|i| format!("//web1/f/c{i}")).collect();
        let written: Vec<Vec<String>> = (0..n)
            .map(|i| {
                if i + 1 < n {
                    vec![format!("c{}", i + 1)]
                } else {
                    vec!["c0".to_owned()]
                }
            })
            .collect();
        let checks: Vec<Declared> = names
            .iter()
            .zip(&written)
            .map(|(name, deps)| declared(name, "f", deps))
            .collect();
        let resolved = resolve("web1", &checks);
        // The last one closes the ring: every check is on the cycle.
        assert!(resolved.iter().all(Result::is_err));
        let shown = resolved[3].as_ref().unwrap_err().to_string();
        assert_eq!(
            shown,
            "a dependency cycle: `//web1/f/c3` -> `//web1/f/c4` -> `//web1/f/c5` -> `//web1/f/c6` -> `//web1/f/c7` -> `//web1/f/c8` -> `//web1/f/c9` -> `//web1/f/c10` -> `//web1/f/c11` -> `//web1/f/c12` -> ... (49990 more) -> `//web1/f/c3`"
        );
    }

    #[test]
    fn the_suppression_decision() {
        let gw = "//web1/net/gw";
        let dns = "web1#dns";
        let cases: Vec<DecideCase> = vec![
            ("nothing fails", None, true, vec![], None),
            (
                "a failing dependency suppresses",
                None,
                true,
                vec![gw],
                Some(gw),
            ),
            (
                "it suppresses also when the check did not run",
                None,
                false,
                vec![gw],
                Some(gw),
            ),
            (
                "the first failing one in the order written",
                None,
                true,
                vec![gw, dns],
                Some(gw),
            ),
            (
                "the one named before stays while it fails",
                Some(dns),
                true,
                vec![gw, dns],
                Some(dns),
            ),
            (
                "another one takes over when it cleared",
                Some(dns),
                true,
                vec![gw],
                Some(gw),
            ),
            (
                "released at the check's next run",
                Some(gw),
                true,
                vec![],
                None,
            ),
            (
                "kept until the check runs again",
                Some(gw),
                false,
                vec![],
                Some(gw),
            ),
        ];
        for (what, previous, ran, failing, want) in cases {
            assert_eq!(decide(previous, ran, &failing).as_deref(), want, "{what}");
        }
    }
}
