//! The crate's import layering (STYLE §8, `src/lib.rs`'s layout doc), held
//! by a scan of the sources.
//!
//! Layers, top to bottom: Face → Agent → Checks and Backends → Core → Base.
//! A file may use its own layer and the layers below; no backend folder uses
//! another; no two top-level modules use each other, directly or through
//! others. Test code (`#[cfg(test)]` items) is left out: a unit test may
//! build whatever it needs. The scan reads `crate::MODULE` paths, which is
//! how every file in `src/` names another module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first; every top-level module of `src/` is in one.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "Base",
        &[
            "error", "env", "host", "process", "program", "retry", "limits", "aws", "http_url",
        ],
    ),
    (
        "Core",
        &[
            "fault",
            "notice",
            "thresholds",
            "perfdata",
            "severity",
            "squelch",
            "history",
            "meta",
            "storm",
            "history",
            "quiet",
            "flap",
            "renotify",
            "dependency",
        ],
    ),
    (
        "Checks and backends",
        &["checks", "db", "alerters", "sinks"],
    ),
    ("Agent", &["agent", "config", "scheduler", "signals"]),
    ("Face", &["cli", "telemetry", "web", "main", "lib"]),
];

/// Backend folders, which never use one another.
const BACKENDS: &[&str] = &["checks", "db", "alerters", "sinks"];

fn rank(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn layer_name(module: &str) -> &'static str {
    rank(module).map_or("no layer", |r| LAYERS[r].0)
}

/// The top-level module a file of `src/` belongs to.
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix("src").unwrap_or(path);
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// The text without `//` comments and without items under `#[cfg(test)]`.
fn without_tests(text: &str) -> String {
    let text: String = text
        .lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let brace = after.find('{');
        let semicolon = after.find(';');
        match (brace, semicolon) {
            (Some(b), Some(s)) if s < b => rest = &after[s + 1..],
            (Some(b), _) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (i, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            (None, Some(s)) => rest = &after[s + 1..],
            (None, None) => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// The top-level modules a text names as `crate::MODULE`, including each
/// module of a group (`use crate::{env, process::Output};`).
fn used_modules(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        // Skip identifiers that merely end in `crate` (`my_crate::`).
        let glued = text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if glued {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            used.extend(group_heads(group));
        } else {
            used.insert(identifier(rest));
        }
    }
    used.remove("");
    used
}

/// The leading identifier of `text`.
fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segment of each item of a `{...}` group, given the text
/// after its opening brace; nested groups belong to their item.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut item_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && !c.is_whitespace() => {
                heads.push(identifier(&group[i..]));
                item_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// The modules `lib.rs` declares under `#[cfg(test)]` (property tests and
/// the like): they are test code, like `#[cfg(test)]` items, so they have
/// no layer and the scan leaves them out. The attribute may stand on the
/// line before the `mod` or on the same line.
fn test_only_modules(lib: &str) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    let mut under_cfg_test = false;
    for line in lib
        .lines()
        .map(|line| line.split("//").next().unwrap_or("").trim())
    {
        let (cfg_test, rest) = match line.strip_prefix("#[cfg(test)]") {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        under_cfg_test |= cfg_test;
        if rest.is_empty() {
            continue;
        }
        if let Some(declaration) = rest.strip_suffix(';')
            && let Some((_, name)) = declaration.rsplit_once("mod ")
            && under_cfg_test
        {
            modules.insert(name.trim().to_string());
        }
        // Another attribute keeps the `#[cfg(test)]` for the item below it.
        under_cfg_test &= rest.starts_with("#[");
    }
    modules
}

fn lib_rs() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Module → the modules it uses, and every rule a `use` breaks.
fn scan() -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let test_only = test_only_modules(&lib_rs());
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut broken = Vec::new();
    for file in files {
        let relative = file.strip_prefix(root).unwrap().to_path_buf();
        let me = module_of(&relative);
        if test_only.contains(&me) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let Some(my_rank) = rank(&me) else {
            broken.push(format!(
                "{}: module `{me}` has no layer",
                relative.display()
            ));
            continue;
        };
        for other in used_modules(&without_tests(&text)) {
            if other == me {
                continue;
            }
            let Some(other_rank) = rank(&other) else {
                broken.push(format!(
                    "{}: uses `{other}`, which has no layer",
                    relative.display()
                ));
                continue;
            };
            if other_rank > my_rank {
                broken.push(format!(
                    "{} ({}) uses `{other}` ({}), a higher layer",
                    relative.display(),
                    layer_name(&me),
                    layer_name(&other)
                ));
            }
            if BACKENDS.contains(&me.as_str()) && BACKENDS.contains(&other.as_str()) {
                broken.push(format!(
                    "{} uses `{other}`: backend folders do not use one another",
                    relative.display()
                ));
            }
            graph.entry(me.clone()).or_default().insert(other);
        }
    }
    (graph, broken)
}

/// Whether `to` is reachable from `from`.
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(module) = stack.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_module_uses_a_higher_layer_or_another_backend() {
    let (_, broken) = scan();
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn no_two_modules_use_each_other() {
    let (graph, _) = scan();
    let cycles: Vec<String> = graph
        .iter()
        .flat_map(|(module, uses)| {
            uses.iter()
                .filter(|other| reaches(&graph, other, module))
                .map(move |other| format!("{module} -> {other} -> ... -> {module}"))
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_scan_sees_uses_and_skips_test_code() {
    let text = "use crate::db::Fault;\n// crate::agent\n#[cfg(test)]\nmod tests {\n    use crate::cli;\n    fn f() { {} }\n}\nfn g() -> crate::severity::Severity { todo!() }\n";
    let used: Vec<String> = used_modules(&without_tests(text)).into_iter().collect();
    assert_eq!(used, ["db", "severity"]);
}

#[test]
fn the_scan_sees_every_module_of_a_grouped_use() {
    let text = "use crate::{env, process::{self, Output},\n    agent::Mode};\nuse my_crate::cli;\n";
    let used: Vec<String> = used_modules(text).into_iter().collect();
    assert_eq!(used, ["agent", "env", "process"]);
}

// See: #18
#[test]
fn the_scan_skips_modules_declared_for_tests_only() {
    let lib = "mod fault;\n#[cfg(test)]\nmod properties;\n#[cfg(test)] mod inline;\n#[cfg(test)]\n#[allow(dead_code)]\npub(crate) mod helpers;\n#[cfg(test)]\nfn f() {}\nmod after;\npub mod cli; // #[cfg(test)]\n";
    let skipped: Vec<String> = test_only_modules(lib).into_iter().collect();
    assert_eq!(skipped, ["helpers", "inline", "properties"]);
}

#[test]
fn every_module_in_lib_rs_has_a_layer() {
    let lib = lib_rs();
    let test_only = test_only_modules(&lib);
    let unplaced: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.trim().strip_suffix(';'))
        .filter_map(|line| line.rsplit_once("mod ").map(|(_, name)| name))
        .filter(|name| rank(name).is_none() && !test_only.contains(*name))
        .collect();
    assert!(unplaced.is_empty(), "modules with no layer: {unplaced:?}");
}
