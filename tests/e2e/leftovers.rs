//! Nothing of vprobe's stays in the kernel after it ends, however it ends:
//! its `--duration`, `exit()` in the script, SIGINT, SIGTERM or SIGKILL.
//!
//! "Its" programs, maps and links are those among the session's own fds
//! while it runs (and the maps its programs use); all must be gone within a
//! few seconds (the kernel frees them asynchronously). What other processes
//! load meanwhile is not looked at.

use nix::sys::signal::Signal;

use crate::support::kernel::{assert_released, Kernel};
use crate::support::util::{self, Session};

/// A script that loads programs of several kinds and maps of every kind:
/// per-CPU counters, a histogram, and a ring buffer for `on_event`.
const SCRIPT: &str = r#"probe("skb.drop").count("drops", ["reason"]);
probe("dev.xmit").hist("sizes", "len");
probe("tcp.retransmit").on_event(|e| print(e.dport));"#;

#[derive(Clone, Copy, Debug)]
enum End {
    Duration,
    ScriptExit,
    Signal(Signal),
}

fn leaves_nothing(test: &str, end: End) {
    if !util::root_or_skip(test) {
        return;
    }
    let _k = util::kernel_lock();
    let script = match end {
        End::ScriptExit => format!("{SCRIPT}\nevery(\"1s\", || exit());"),
        _ => SCRIPT.to_string(),
    };
    let duration = match end {
        End::Duration => "2s",
        _ => "60s",
    };
    let mut s = Session::spawn(&["-e", &script, "--format", "json", "--duration", duration]);
    s.wait_start();

    let ours = Kernel::of(s.pid().as_raw() as u32);
    eprintln!("{test}: while running: {ours:?}");
    assert!(
        ours.programs() >= 3,
        "expected the session's vp_ programs (3 probes) to be loaded: {ours:?}"
    );

    match end {
        End::Duration | End::ScriptExit => {}
        End::Signal(sig) => s.signal(sig),
    }
    let done = s.finish();
    match end {
        End::Signal(Signal::SIGKILL) => {}
        _ => {
            done.assert_success();
            done.summary();
        }
    }

    assert_released(
        &format!("after vprobe ended ({end:?})\n{}", done.describe()),
        &ours,
    );
}

#[test]
fn duration_leaves_nothing() {
    leaves_nothing("leftovers::duration_leaves_nothing", End::Duration);
}

#[test]
fn script_exit_leaves_nothing() {
    leaves_nothing("leftovers::script_exit_leaves_nothing", End::ScriptExit);
}

#[test]
fn sigint_leaves_nothing() {
    leaves_nothing(
        "leftovers::sigint_leaves_nothing",
        End::Signal(Signal::SIGINT),
    );
}

#[test]
fn sigterm_leaves_nothing() {
    leaves_nothing(
        "leftovers::sigterm_leaves_nothing",
        End::Signal(Signal::SIGTERM),
    );
}

#[test]
fn sigkill_leaves_nothing() {
    leaves_nothing(
        "leftovers::sigkill_leaves_nothing",
        End::Signal(Signal::SIGKILL),
    );
}
