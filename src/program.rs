//! Finding the program a command line runs, as `cimaa validate` reports it
//! for command checks (SPEC §16: a check that calls a missing plugin is a
//! deploy mistake that should fail the deploy, not a fault nobody is paged
//! for) and `validate --healthchecks` for command alerters: one rule for both.
//!
//! A command runs with `/bin/sh -c` in its check file's folder (SPEC §4).
//! When the command line starts with a plain word (SPEC §4's word
//! characters: letters, digits and `-_./=:,+%@`) that is neither a
//! `NAME=value` assignment nor a shell keyword or builtin, that word is the
//! program: a word with a `/` is a path relative to the check file's folder
//! (or absolute), any other word is looked up in `PATH` as the shell does.
//! A command that starts with anything else (quotes, `$`, a subshell, ...)
//! is not judged: only the shell knows what it runs.
//!
//! The lookup reads the file system and nothing else; the `PATH` value is an
//! argument, so tests need not change the process's environment. It cannot
//! know which user the agent runs as, so "executable" means "has an execute
//! permission bit".

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// dash's search path when `PATH` is not set.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Words a shell runs without looking for a program: POSIX keywords,
/// dash's builtins, and bash's keywords (a host's `/bin/sh` may be bash).
/// Those made of other characters than the plain ones (`[`, `{`, `!`) never
/// get this far.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "alias", "bg", "break", "case", "cd", "command", "continue", "do", "done", "echo",
    "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc", "fg", "fi", "for",
    "function", "getopts", "hash", "if", "in", "jobs", "kill", "local", "printf", "pwd", "read",
    "readonly", "return", "select", "set", "shift", "test", "then", "time", "times", "trap",
    "true", "type", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
];

/// Why a command's program cannot run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Named by a path, and nothing is there.
    Missing { program: String, path: PathBuf },
    /// Looked up in `PATH` and found in none of its folders.
    NotInPath { program: String, dirs: String },
    /// The file is there but has no execute permission bit.
    NotExecutable { program: String, path: PathBuf },
    /// The path names a directory.
    Directory { program: String, path: PathBuf },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { program, path } => {
                write!(
                    f,
                    "program `{program}` not found (no file `{}`)",
                    path.display()
                )
            }
            Problem::NotInPath { program, dirs } => {
                write!(f, "program `{program}` not found in PATH ({dirs})")
            }
            Problem::NotExecutable { program, path } => write!(
                f,
                "program `{program}` is not executable (`{}` has no execute permission)",
                path.display()
            ),
            Problem::Directory { program, path } => write!(
                f,
                "program `{program}` is a directory (`{}`), not a program",
                path.display()
            ),
        }
    }
}

/// The program `command` starts with, when a plain word names one.
#[must_use]
pub(crate) fn program_of(command: &str) -> Option<&str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+%@".contains(c);
    let line = command.trim_start_matches([' ', '\t', '\n']);
    let word = line.split([' ', '\t', '\n']).next().unwrap_or_default();
    if word.is_empty() || !word.chars().all(plain) || SHELL_WORDS.contains(&word) {
        return None;
    }
    // `NAME=value` sets a variable for the next word: what runs is not
    // this word, and following it is the shell's business.
    if let Some((name, _)) = word.split_once('=')
        && !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    Some(word)
}

/// The words of a command line with no shell syntax at all (SPEC §4),
/// which may run without the shell: only words of plain characters
/// separated by spaces, the first of them a program (not a `NAME=value`
/// assignment, a shell keyword or a builtin, which the shell runs itself).
/// A tab, a newline (but a final one), a quote, `$`, a backquote, a glob, a redirection, a
/// pipe, `;`, `&`, `~`, `#`, a parenthesis or a brace: `None`, the shell
/// runs it.
#[must_use]
pub(crate) fn plain_words(command: &str) -> Option<Vec<&str>> {
    // The newline that ends a YAML block scalar ends the shell's line too.
    let command = command.trim_end_matches('\n');
    let plain = |c: char| c == ' ' || c.is_ascii_alphanumeric() || "-_./=:,+%@".contains(c);
    if !command.chars().all(plain) {
        return None;
    }
    program_of(command)?;
    Some(command.split(' ').filter(|word| !word.is_empty()).collect())
}

/// Checks that the program `command` starts with can run from `folder`
/// (the check file's folder) with the search path `path_var` (`None`: not
/// set). A command that does not start with a plain program word passes.
///
/// # Errors
/// The program is missing, not executable or a directory.
pub(crate) fn check(command: &str, folder: &Path, path_var: Option<&OsStr>) -> Result<(), Problem> {
    match program_of(command) {
        None => Ok(()),
        Some(program) => locate(program, folder, path_var).map(drop),
    }
}

/// The file the shell would run for the plain word `program` from
/// `folder` with the search path `path_var` (`None`: not set): a word with
/// a `/` is a path from `folder`; any other word is looked up in the search
/// path, whose relative entries are relative to `folder` too.
///
/// # Errors
/// The program is missing, not executable or a directory.
pub(crate) fn locate(
    program: &str,
    folder: &Path,
    path_var: Option<&OsStr>,
) -> Result<PathBuf, Problem> {
    if program.contains('/') {
        // `components` drops the `.` of `./plugin` from the path shown.
        let path: PathBuf = folder.join(program).components().collect();
        return match std::fs::metadata(&path) {
            Err(_) => Err(Problem::Missing {
                program: program.to_string(),
                path,
            }),
            Ok(meta) => judge(program, path, &meta),
        };
    }
    let dirs = path_var.map_or_else(
        || DEFAULT_PATH.to_string(),
        |p| p.to_string_lossy().into_owned(),
    );
    // As the shell does: the first executable file wins; a folder of the
    // search path that holds a non-executable one is remembered, so the
    // message says why the program does not run rather than "not found".
    let mut first_problem = None;
    for dir in dirs.split(':') {
        // An empty entry is the current folder (the check file's).
        let path = folder.join(dir).join(program);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        match judge(program, path, &meta) {
            Ok(path) => return Ok(path),
            Err(problem) => {
                first_problem.get_or_insert(problem);
            }
        }
    }
    Err(first_problem.unwrap_or(Problem::NotInPath {
        program: program.to_string(),
        dirs,
    }))
}

/// The file the shell runs for the word `program` (no `/`) found through
/// the search path `path_var` (`None`: not set): the first executable file
/// in its folders. `None` when there is none, or when a folder searched
/// before it is relative (empty: the current folder), which only the shell
/// should judge.
#[must_use]
pub(crate) fn search(program: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let dirs = path_var.map_or_else(
        || DEFAULT_PATH.to_string(),
        |p| p.to_string_lossy().into_owned(),
    );
    for dir in dirs.split(':') {
        if !dir.starts_with('/') {
            return None;
        }
        let path = Path::new(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&path)
            && let Ok(path) = judge(program, path, &meta)
        {
            return Some(path);
        }
    }
    None
}

/// Whether an existing file at `path` can run.
fn judge(program: &str, path: PathBuf, meta: &std::fs::Metadata) -> Result<PathBuf, Problem> {
    let program = program.to_string();
    if meta.is_dir() {
        return Err(Problem::Directory { program, path });
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(Problem::NotExecutable { program, path });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, "#!/bin/sh\necho OK\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn the_program_is_the_first_plain_word() {
        let cases = [
            ("check_disk -w 20%", Some("check_disk")),
            ("  ./plugins/load.sh", Some("./plugins/load.sh")),
            (
                "/usr/lib/nagios/plugins/check_load -w 5",
                Some("/usr/lib/nagios/plugins/check_load"),
            ),
            ("\tcheck_x\targ", Some("check_x")),
            ("check_x > /dev/null", Some("check_x")),
            ("./a=b.sh", Some("./a=b.sh")),
            ("=x", Some("=x")),
            ("LANG=C check_x", None),
            ("_X1=2 check_x", None),
            ("echo 'OK'", None),
            ("exec ./plugin", None),
            ("test -f /x", None),
            (": nothing", None),
            ("if true; then echo; fi", None),
            ("[ -f /x ]", None),
            ("\"quoted prog\" arg", None),
            ("$PLUGIN arg", None),
            ("~/bin/check", None),
            ("(cd /tmp && ls)", None),
            ("check_x;echo", None),
            ("", None),
            ("   ", None),
        ];
        for (command, want) in cases {
            assert_eq!(program_of(command), want, "{command:?}");
        }
    }

    /// SPEC §4: what runs without the shell (its words) and what counts as
    /// shell syntax (`None`: `/bin/sh -c` runs it).
    #[test]
    fn only_plain_words_run_without_the_shell() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("check_dummy 0 OK", Some(&["check_dummy", "0", "OK"])),
            (
                "  ./plugins/load.sh  -w 5,4,3 -c 10%  ",
                Some(&["./plugins/load.sh", "-w", "5,4,3", "-c", "10%"]),
            ),
            ("/usr/lib/nagios/plugins/check_http -H a.b -u /x?y", None),
            (
                "check_x --url=http://h:80/p user@host +1",
                Some(&["check_x", "--url=http://h:80/p", "user@host", "+1"]),
            ),
            ("check_x a=b", Some(&["check_x", "a=b"])),
            ("check_x 'quoted'", None),
            ("check_x \"quoted\"", None),
            ("check_x $HOME", None),
            ("check_x `date`", None),
            ("check_x *", None),
            ("check_x ?", None),
            ("check_x [ab]", None),
            ("check_x > /dev/null", None),
            ("check_x < /dev/null", None),
            ("check_x | cat", None),
            ("check_x; echo", None),
            ("check_x & wait", None),
            ("check_x && true", None),
            ("check_x ~/file", None),
            ("~/bin/check_x", None),
            ("LANG=C check_x", None),
            ("check_x # comment", None),
            ("check_x\necho", None),
            ("check_x -v\n", Some(&["check_x", "-v"])),
            ("check_x\targ", None),
            ("(check_x)", None),
            ("{ check_x; }", None),
            ("check_x a\\ b", None),
            ("check_x é", None),
            ("echo OK", None),
            ("exec ./plugin", None),
            ("test -f /x", None),
            ("", None),
            ("   ", None),
        ];
        for (command, want) in cases {
            assert_eq!(plain_words(command).as_deref(), *want, "{command:?}");
        }
    }

    #[test]
    fn a_relative_path_is_found_from_the_check_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        file(dir.path(), "plugins/ok.sh", 0o755);
        assert_eq!(check("./plugins/ok.sh -v", dir.path(), None), Ok(()));
        assert_eq!(check("plugins/ok.sh", dir.path(), None), Ok(()));
    }

    #[test]
    fn an_absolute_path_is_taken_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let ok = file(dir.path(), "ok.sh", 0o700);
        let elsewhere = tempfile::tempdir().unwrap();
        let command = format!("{} arg", ok.display());
        assert_eq!(check(&command, elsewhere.path(), None), Ok(()));
    }

    #[test]
    fn a_missing_path_is_named_with_where_it_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let got = check("./gone.sh", dir.path(), None).unwrap_err();
        let path = dir.path().join("gone.sh");
        assert_eq!(
            got,
            Problem::Missing {
                program: "./gone.sh".into(),
                path: path.clone()
            }
        );
        assert_eq!(
            got.to_string(),
            format!(
                "program `./gone.sh` not found (no file `{}`)",
                path.display()
            )
        );
    }

    #[test]
    fn a_file_without_execute_permission_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "plain.sh", 0o644);
        let got = check("./plain.sh", dir.path(), None).unwrap_err();
        assert_eq!(
            got.to_string(),
            format!(
                "program `./plain.sh` is not executable (`{}` has no execute permission)",
                dir.path().join("plain.sh").display()
            )
        );
        assert!(path.exists());
    }

    #[test]
    fn a_directory_is_not_a_program() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        let got = check("./plugins", dir.path(), None).unwrap_err();
        assert!(matches!(got, Problem::Directory { .. }), "{got:?}");
    }

    #[test]
    fn a_plain_name_is_looked_up_in_path() {
        let bin = tempfile::tempdir().unwrap();
        file(bin.path(), "check_mine", 0o755);
        let folder = tempfile::tempdir().unwrap();
        let path_var = format!("/nonexistent-cimaa:{}", bin.path().display());
        assert_eq!(
            check(
                "check_mine -w 1",
                folder.path(),
                Some(OsStr::new(&path_var))
            ),
            Ok(())
        );
    }

    #[test]
    fn a_plain_name_missing_from_path_names_the_path() {
        let folder = tempfile::tempdir().unwrap();
        let got = check("check_nothing", folder.path(), Some(OsStr::new("/a:/b"))).unwrap_err();
        assert_eq!(
            got.to_string(),
            "program `check_nothing` not found in PATH (/a:/b)"
        );
    }

    #[test]
    fn an_unset_path_is_the_shells_default() {
        let folder = tempfile::tempdir().unwrap();
        let got = check("check_nothing_22", folder.path(), None).unwrap_err();
        assert_eq!(
            got,
            Problem::NotInPath {
                program: "check_nothing_22".into(),
                dirs: DEFAULT_PATH.into()
            }
        );
    }

    #[test]
    fn the_first_executable_in_path_wins_over_a_non_executable_one() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        file(first.path(), "check_two", 0o644);
        file(second.path(), "check_two", 0o755);
        let folder = tempfile::tempdir().unwrap();
        let path_var = format!("{}:{}", first.path().display(), second.path().display());
        assert_eq!(
            check("check_two", folder.path(), Some(OsStr::new(&path_var))),
            Ok(())
        );
    }

    #[test]
    fn only_a_non_executable_one_in_path_says_so() {
        let bin = tempfile::tempdir().unwrap();
        let path = file(bin.path(), "check_plain", 0o600);
        let folder = tempfile::tempdir().unwrap();
        let path_var = bin.path().display().to_string();
        let got = check("check_plain", folder.path(), Some(OsStr::new(&path_var))).unwrap_err();
        assert_eq!(
            got,
            Problem::NotExecutable {
                program: "check_plain".into(),
                path
            }
        );
    }

    #[test]
    fn relative_and_empty_path_entries_are_the_check_files_folder() {
        let folder = tempfile::tempdir().unwrap();
        file(folder.path(), "here_plugin", 0o755);
        file(folder.path(), "bin/there_plugin", 0o755);
        for (command, path_var) in [("here_plugin", ":/nonexistent"), ("there_plugin", "bin")] {
            assert_eq!(
                check(command, folder.path(), Some(OsStr::new(path_var))),
                Ok(()),
                "{command} with PATH={path_var}"
            );
        }
    }

    #[test]
    fn commands_starting_with_shell_syntax_or_builtins_are_not_judged() {
        let folder = tempfile::tempdir().unwrap();
        for command in [
            "echo OK",
            "\"./missing.sh\"",
            "X=1 ./missing.sh",
            "exec ./missing.sh",
        ] {
            assert_eq!(
                check(command, folder.path(), Some(OsStr::new(""))),
                Ok(()),
                "{command}"
            );
        }
    }
}
