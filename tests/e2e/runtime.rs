//! The `.test` suites, run by `vprobe test`: the command users run on their
//! own scripts' tests (the format: cli/src/commands/test/case.rs and the
//! README's "Writing, testing and sharing scripts"), so the project's suites
//! exercise it too.
//!
//! - `tests/runtime/*.test`: vprobe's runtime suites, in bpftrace's manner;
//! - `scripts/tests/*.test`: each shipped script's own tests, in the labs.
//!
//! `VPROBE_RUNTIME_FILTER=text` runs only the cases whose name contains
//! `text`. Under `VPROBE_REQUIRE_ROOT=1` a case that needs root fails
//! instead of being skipped (`--strict`).

use std::time::Duration;

use crate::support::util;

/// Runs `vprobe test` on a folder of the repository and fails with its
/// report when a case fails.
fn suite(folder: &str) {
    let dir = util::repo_root().join(folder);
    let dir = dir.to_str().expect("a UTF-8 path");
    let filter = std::env::var("VPROBE_RUNTIME_FILTER").ok();
    let mut args = vec!["test", dir];
    if let Some(f) = &filter {
        args.extend(["--filter", f.as_str()]);
    }
    if util::skips_are_failures() {
        args.push("--strict");
    }
    let _k = util::kernel_lock();
    let run = util::vprobe(&args, Duration::from_secs(1800));
    eprintln!("{}", run.stdout);
    if filter.is_some() && run.stderr.contains("no test cases") {
        return;
    }
    run.assert_no_panic();
    assert!(run.status.success(), "{}", run.describe());
    assert!(
        run.stdout.contains(" passed, 0 failed"),
        "{}",
        run.describe()
    );
}

#[test]
fn runtime_suites() {
    suite("tests/runtime");
}

#[test]
fn shipped_scripts_pass_their_own_tests() {
    suite("scripts/tests");
}
