//! The YAML examples of README.md and docs/*.md stay valid, as
//! `examples.rs` keeps examples/ valid: every fenced `yaml` block is
//! validated by the real binary (`cimaa validate`). The convention
//! (CONTRIBUTING.md, "Docs and their YAML blocks"): a block whose top-level
//! keys are all agent sections is an agent configuration, any other block a
//! check file, and a block marked `yaml fragment` is not validated. See: #19
//!
//! And the docs stand alone: every relative link of README.md,
//! CONTRIBUTING.md and docs/*.md leads to a file of the repository (and a
//! heading of it), none sends the reader outside, and no editing comment is
//! left in them. See: #22

use std::fmt;
use std::path::{Path, PathBuf};

use crate::util::{Env, stderr, stdout};

/// Top-level keys of the agent configuration; a block made only of these is
/// an agent configuration.
const AGENT_SECTIONS: [&str; 8] = [
    "agent", "database", "alerter", "alerters", "metrics", "alerting", "squelch", "web",
];

/// Added to an agent-configuration block that does not show them: `agent`
/// and `alerter` are required, and the docs often show one section at a time.
const DEFAULT_SECTIONS: [(&str, &str); 2] = [
    ("agent", "agent:\n  name: docs\n  directory: checks.d\n"),
    ("alerter", "alerter:\n  type: file\n  path: alerts.jsonl\n"),
];

/// The error an agent configuration may give on the test machine: its check
/// directory (`/etc/cimaa/checks.d`) belongs to a real host.
const MISSING_DIRECTORY: &str = "error: cannot read check directory";

/// Where the docs' check files find Nagios plugins on a real host (Debian's
/// monitoring-plugins). The test machine need not have them: a block's
/// plugins there are replaced by stubs, so `validate` (which reports a
/// missing program) judges the check file, not the machine.
const NAGIOS_PLUGINS: &str = "/usr/lib/nagios/plugins/";

/// One fenced YAML block.
struct Block {
    /// The Markdown file, relative to the repository, and the fence's line.
    file: PathBuf,
    line: usize,
    /// Marked `yaml fragment`: shown, not validated.
    fragment: bool,
    /// The info string after `yaml`, when it is not a known marker.
    unknown_marker: Option<String>,
    text: String,
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The fenced blocks of `markdown` whose info string starts with `yaml`.
fn yaml_blocks(file: &Path, markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    // (fence, block being collected: None for a block of another language)
    let mut open: Option<(String, Option<Block>)> = None;
    let mut closing = false;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                let Some(fence_len) = fence(trimmed) else {
                    continue;
                };
                let (fence, info) = trimmed.split_at(fence_len);
                let mut words = info.split_whitespace();
                let block = (words.next() == Some("yaml")).then(|| {
                    let marker: Vec<&str> = words.collect();
                    Block {
                        file: file.to_path_buf(),
                        line: index + 1,
                        fragment: marker == ["fragment"],
                        unknown_marker: (!marker.is_empty() && marker != ["fragment"])
                            .then(|| marker.join(" ")),
                        text: String::new(),
                    }
                });
                open = Some((fence.to_string(), block));
            }
            Some((fence, block)) => {
                if trimmed.trim_end() == fence.as_str() {
                    closing = true;
                } else if let Some(block) = block {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
        }
        if std::mem::take(&mut closing)
            && let Some((_, Some(block))) = open.take()
        {
            blocks.push(block);
        }
    }
    assert!(
        open.is_none(),
        "{}: a fenced block is never closed",
        file.display()
    );
    blocks
}

/// The length of the fence a line opens with (three or more backticks).
fn fence(line: &str) -> Option<usize> {
    let len = line.len() - line.trim_start_matches('`').len();
    (len >= 3).then_some(len)
}

/// The keys of the block's top-level mapping.
fn top_level_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with([' ', '\t', '#', '-']) && !l.trim().is_empty())
        .filter_map(|l| l.split_once(':').map(|(key, _)| key.trim()))
        .map(|key| key.trim_matches(['"', '\'']).to_string())
        .collect()
}

#[derive(Debug, PartialEq)]
enum Kind {
    AgentConfig,
    CheckFile,
}

fn kind(text: &str) -> Kind {
    let keys = top_level_keys(text);
    if !keys.is_empty() && keys.iter().all(|k| AGENT_SECTIONS.contains(&k.as_str())) {
        Kind::AgentConfig
    } else {
        Kind::CheckFile
    }
}

/// Validates one block with the real binary; `Err` says what is wrong.
fn validate(block: &Block) -> Result<(), String> {
    if let Some(marker) = &block.unknown_marker {
        return Err(format!(
            "unknown marker `yaml {marker}` (only `yaml fragment` is known)"
        ));
    }
    match kind(&block.text) {
        Kind::AgentConfig => validate_agent_config(&block.text),
        Kind::CheckFile => validate_check_file(&block.text),
    }
}

fn validate_agent_config(text: &str) -> Result<(), String> {
    let env = Env::bare();
    std::fs::create_dir_all(env.path("checks.d")).unwrap();
    let keys = top_level_keys(text);
    let mut config = text.to_string();
    for (section, default) in DEFAULT_SECTIONS {
        if !keys.iter().any(|k| k == section) {
            config.push_str(default);
        }
    }
    env.write("agent.yaml", &config);
    let vars: Vec<(String, String)> = crate::util::variables(text)
        .into_iter()
        .map(|name| {
            let value = if name.ends_with("URL") {
                "http://127.0.0.1:9/dummy"
            } else {
                "dummy"
            };
            (name, value.to_string())
        })
        .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = env.cimaa_with_env(&["validate"], &vars);
    let err = stderr(&output);
    let only_missing_directory = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .all(|l| l.starts_with(MISSING_DIRECTORY));
    if output.status.success() || (output.status.code() == Some(2) && only_missing_directory) {
        Ok(())
    } else {
        Err(format!("as an agent configuration: {err}"))
    }
}

fn validate_check_file(text: &str) -> Result<(), String> {
    let env = Env::new();
    let text = stub_nagios_plugins(&env, text);
    env.write_check("docs.yaml", &text);
    let output = env.cimaa(&["validate"]);
    // The plugins a block names (`check_disk`) belong to a real host, as
    // `/etc/cimaa/checks.d` does: their absence is not the block's fault.
    let only_missing_programs = stderr(&output).lines().all(|l| {
        l.contains("]: program `") && l.contains("` not found") || l.ends_with(" check(s)")
    });
    if output.status.success() && stdout(&output).starts_with("ok:")
        || output.status.code() == Some(2) && only_missing_programs
    {
        Ok(())
    } else {
        Err(format!(
            "as a check file: {}{}",
            stdout(&output),
            stderr(&output)
        ))
    }
}

/// `text` with each plugin under `NAGIOS_PLUGINS` replaced by an executable
/// stub of the same name in the test agent's folder.
fn stub_nagios_plugins(env: &Env, text: &str) -> String {
    let stubs = env.path("nagios-plugins");
    std::fs::create_dir_all(&stubs).unwrap();
    for (at, _) in text.match_indices(NAGIOS_PLUGINS) {
        let rest = &text[at + NAGIOS_PLUGINS.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || "_-.".contains(*c))
            .collect();
        if !name.is_empty() {
            env.script(&format!("nagios-plugins/{name}"), "echo OK");
        }
    }
    text.replace(NAGIOS_PLUGINS, &format!("{}/", stubs.display()))
}

/// README.md and every docs/*.md, relative to the repository.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
        .collect();
    files.sort();
    files.insert(0, PathBuf::from("README.md"));
    files
}

#[test]
fn every_yaml_block_of_the_readme_and_docs_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = markdown_files(root);
    assert!(files.len() > 1, "no docs/*.md found");
    let mut checked = (0, 0);
    let mut failures = Vec::new();
    for file in &files {
        let markdown = std::fs::read_to_string(root.join(file)).unwrap();
        for block in yaml_blocks(file, &markdown) {
            if block.fragment {
                continue;
            }
            match kind(&block.text) {
                Kind::AgentConfig => checked.0 += 1,
                Kind::CheckFile => checked.1 += 1,
            }
            if let Err(e) = validate(&block) {
                failures.push(format!("{block}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} YAML block(s) of the docs are not valid:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Guards the extraction itself: the docs show both kinds.
    assert!(
        checked.0 > 0 && checked.1 > 0,
        "validated {} agent configuration(s) and {} check file(s)",
        checked.0,
        checked.1
    );
}

const SAMPLE: &str = "\
# Sample

```yaml
agent:
  base_intervl: 5
```

```sh
echo not yaml
```

```yaml
disk:
  comand: check_disk
```

```yaml fragment
  timeout: 10
```

```yaml
metrics:
  type: log
```

```yaml
disk:
  command: check_disk -w 20%
```

```yaml excerpt
x: 1
```
";

#[test]
fn blocks_are_found_classified_and_broken_ones_fail() {
    let blocks = yaml_blocks(Path::new("SAMPLE.md"), SAMPLE);
    let summary: Vec<(usize, bool, Option<Kind>, bool)> = blocks
        .iter()
        .map(|b| {
            let kind = (!b.fragment).then(|| kind(&b.text));
            let valid = !b.fragment && validate(b).is_ok();
            (b.line, b.fragment, kind, valid)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, false, Some(Kind::AgentConfig), false), // typo in `agent`
            (12, false, Some(Kind::CheckFile), false),  // typo in a check
            (17, true, None, false),                    // fragment: skipped
            (21, false, Some(Kind::AgentConfig), true), // one section, alerter added
            (26, false, Some(Kind::CheckFile), true),
            (31, false, Some(Kind::CheckFile), false), // unknown marker
        ]
    );
    let err = validate(&blocks[0]).unwrap_err();
    assert!(err.contains("unknown field `base_intervl`"), "{err}");
    let err = validate(&blocks[1]).unwrap_err();
    assert!(err.contains("comand"), "{err}");
}

/// The Markdown a user reads: README.md, CONTRIBUTING.md and docs/*.md.
fn user_docs(root: &Path) -> Vec<PathBuf> {
    let mut files = markdown_files(root);
    files.push(PathBuf::from("CONTRIBUTING.md"));
    files
}

/// The lines of `markdown` outside fenced blocks, with their numbers.
fn prose_lines(markdown: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (index, line) in markdown.lines().enumerate() {
        if fence(line.trim_start()).is_some() {
            fenced = !fenced;
        } else if !fenced {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// The anchor GitHub gives a heading: lower case, punctuation dropped,
/// spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings.
fn anchors(markdown: &str) -> Vec<String> {
    prose_lines(markdown)
        .into_iter()
        .filter(|(_, l)| l.starts_with('#'))
        .map(|(_, l)| anchor(l.trim_start_matches('#')))
        .collect()
}

/// The targets of the inline links `[text](target)` of a line.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .collect()
}

/// What is wrong with one link of `file`, if anything.
fn broken_link(root: &Path, file: &Path, target: &str) -> Option<String> {
    if target.starts_with("https://") || target.starts_with("http://") {
        return None;
    }
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let linked = if path.is_empty() {
        root.join(file)
    } else {
        root.join(file).parent().unwrap().join(path)
    };
    let Ok(linked) = linked.canonicalize() else {
        return Some(format!("`{target}`: no such file in the repository"));
    };
    if !linked.starts_with(root.canonicalize().unwrap()) {
        return Some(format!("`{target}` leads outside the repository"));
    }
    if fragment.is_empty() {
        return None;
    }
    let markdown = std::fs::read_to_string(&linked).unwrap_or_default();
    (!anchors(&markdown).iter().any(|a| a == fragment))
        .then(|| format!("`{target}`: no heading `#{fragment}` there"))
}

#[test]
fn every_link_of_the_docs_leads_to_a_heading_of_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut links = 0;
    let mut broken = Vec::new();
    for file in user_docs(root) {
        let markdown = std::fs::read_to_string(root.join(&file)).unwrap();
        for (line, text) in prose_lines(&markdown) {
            for target in link_targets(text) {
                links += 1;
                if let Some(why) = broken_link(root, &file, target) {
                    broken.push(format!("{}:{line}: {why}", file.display()));
                }
            }
        }
    }
    assert!(links > 10, "only {links} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Text that sends a user to files they do not have (the developers'
/// workspace around the repository), or an editing note left in the source.
const OUTSIDE_OR_STRAY: [&str; 4] = ["../shared", "/work/", "SPEC.md", "<!--"];

#[test]
fn the_docs_send_no_reader_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for file in user_docs(root) {
        let markdown = std::fs::read_to_string(root.join(&file)).unwrap();
        for (index, line) in markdown.lines().enumerate() {
            if OUTSIDE_OR_STRAY.iter().any(|text| line.contains(text)) {
                found.push(format!("{}:{}: {line}", file.display(), index + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the docs must stand alone (no `../shared`, `SPEC.md` or editing comments):\n{}",
        found.join("\n")
    );
}

#[test]
fn links_to_missing_files_headings_and_outside_files_are_broken() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = Path::new("README.md");
    assert_eq!(broken_link(root, readme, "docs/fleet.md"), None);
    assert_eq!(
        broken_link(
            root,
            readme,
            "docs/checks.md#network-probes-http-tcp-socket"
        ),
        None
    );
    assert_eq!(broken_link(root, readme, "#install"), None);
    for target in [
        "docs/nosuch.md",
        "docs/fleet.md#nosuch",
        "../shared/SPEC.md",
        "#nosuch",
    ] {
        assert!(
            broken_link(root, readme, target).is_some(),
            "`{target}` passed"
        );
    }
}
