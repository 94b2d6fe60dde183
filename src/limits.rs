//! Process limits: open files.
//!
//! A tick of many probes holds one socket per probe in flight (and idle
//! keep-alive connections), so the agent raises its soft RLIMIT_NOFILE to
//! the hard limit at start (SPEC §2) and keeps `max_concurrency` within what
//! that limit allows. The arithmetic is pure; only `raise_open_files` calls
//! the system.

/// Descriptors kept for everything but in-flight checks (database, logs,
/// the runtime, idle pooled connections).
const RESERVE: u64 = 64;

/// Raises the soft open-file limit to the hard limit.
///
/// # Errors
/// When the limit cannot be read or set.
pub(crate) fn raise_open_files() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The concurrency that fits `open_files`: a check in flight may hold two
/// descriptors (a socket, or a plugin's two pipes), plus `RESERVE`.
#[must_use]
pub(crate) fn fitting_concurrency(wanted: usize, open_files: u64) -> usize {
    let fits = usize::try_from(open_files.saturating_sub(RESERVE) / 2).unwrap_or(usize::MAX);
    wanted.min(fits).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_stays_within_the_open_file_limit() {
        assert_eq!(fitting_concurrency(256, 1_048_576), 256);
        assert_eq!(fitting_concurrency(256, 1024), 256);
        assert_eq!(fitting_concurrency(50_000, 20_000), 9_968);
        assert_eq!(fitting_concurrency(256, 10), 1);
    }
}
