//! A check file through `cimaa validate` (the public way in): no panic,
//! whatever the file holds. The agent file is fixed; the fuzzed bytes are
//! the one check file of its directory.
#![no_main]

use std::sync::OnceLock;

use clap_free::run_validate;
use libfuzzer_sys::fuzz_target;

mod clap_free {
    use std::path::{Path, PathBuf};

    use cimaa::cli::{Cli, Command, Global};

    /// `cimaa -c AGENT validate`, in process.
    pub fn run_validate(config: &Path) {
        let cli = Cli {
            global: Global {
                config: PathBuf::from(config),
            },
            command: Command::Validate {
                healthchecks: false,
            },
        };
        // Exit 0 or 2 (a broken check) are both answers; a panic is not.
        let _ = cimaa::cli::run(cli);
    }
}

/// The temporary directory: agent.yaml and checks/.
fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("checks")).expect("checks directory");
        std::fs::write(
            dir.path().join("agent.yaml"),
            "agent:\n  name: fuzz\n  directory: checks\n  base_interval: 1\ndatabase:\n  type: memory\nalerter:\n  type: file\n  path: /dev/null\n",
        )
        .expect("agent.yaml");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    std::fs::write(dir.path().join("checks/fuzz.yaml"), data).expect("check file");
    run_validate(&dir.path().join("agent.yaml"));
});
