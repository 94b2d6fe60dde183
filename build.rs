//! Build script: the commit and date `cimaa --version` prints (SPEC §16).
//!
//! Sets `CIMAA_COMMIT` (the short commit of HEAD, `unknown` outside git)
//! and `CIMAA_COMMIT_DATE` (that commit's date, `YYYY-MM-DD`; outside git
//! the date of `SOURCE_DATE_EPOCH`, else of the build). Reruns when HEAD
//! moves (the files HEAD and the branch it names), not on every build.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let (commit, date) = match git(&["log", "-1", "--format=%h %cs"]) {
        Some(line) => {
            watch_head();
            let mut parts = line.split_whitespace();
            let commit = parts.next().unwrap_or("unknown").to_owned();
            let date = parts.next().map_or_else(build_date, str::to_owned);
            (commit, date)
        }
        None => ("unknown".to_owned(), build_date()),
    };
    println!("cargo:rustc-env=CIMAA_COMMIT={commit}");
    println!("cargo:rustc-env=CIMAA_COMMIT_DATE={date}");
}

/// The trimmed output of a successful `git ARGS` in the package directory.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(env_dir())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}

fn env_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// Asks cargo to rerun when HEAD moves: HEAD itself (a checkout), the
/// branch file it names (a commit) and packed-refs (a `git gc`). Only files
/// that exist: cargo reruns on every build for a missing one.
fn watch_head() {
    let mut files = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        files.push(branch);
    }
    for file in files {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &file])
            && PathBuf::from(&path).is_file()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// `YYYY-MM-DD` (UTC) of `SOURCE_DATE_EPOCH`, else of now.
fn build_date() -> String {
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
        });
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
