//! Nothing of vprobe's stays in the kernel after it ends, however it ends:
//! its `--duration`, `exit()` in the script, SIGINT, SIGTERM or SIGKILL.
//!
//! "Its" programs are the `vp_` programs that appeared while the session ran,
//! its maps those programs use, its links those attached to them; all must be
//! gone within a few seconds (the kernel frees them asynchronously). Any
//! other `vp_` program left at the end is reported too, unless it was
//! already there before the session (someone else's vprobe).

use std::collections::BTreeSet;

use nix::sys::signal::Signal;

use crate::support::kernel::{vp_programs, Kernel, RELEASE_LIMIT};
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
    let before: BTreeSet<u64> = vp_programs().into_iter().map(|(id, _)| id).collect();
    if !before.is_empty() {
        eprintln!("note: vp_ programs loaded before the test (another vprobe?): {before:?}");
    }
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

    let ours = Kernel::new_since(&before);
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

    let mut left = Kernel::default();
    let gone = util::poll_until(RELEASE_LIMIT, || {
        left = Kernel::remaining(&ours, &before);
        left.is_empty()
    });
    assert!(
        gone,
        "{RELEASE_LIMIT:?} after vprobe ended ({end:?}) the kernel still holds {left:?}\n{}",
        done.describe()
    );
}

#[test]
fn nothing_left_after_duration() {
    leaves_nothing("leftovers::nothing_left_after_duration", End::Duration);
}

#[test]
fn nothing_left_after_script_exit() {
    leaves_nothing("leftovers::nothing_left_after_script_exit", End::ScriptExit);
}

#[test]
fn nothing_left_after_sigint() {
    leaves_nothing(
        "leftovers::nothing_left_after_sigint",
        End::Signal(Signal::SIGINT),
    );
}

#[test]
fn nothing_left_after_sigterm() {
    leaves_nothing(
        "leftovers::nothing_left_after_sigterm",
        End::Signal(Signal::SIGTERM),
    );
}

#[test]
fn nothing_left_after_sigkill() {
    leaves_nothing(
        "leftovers::nothing_left_after_sigkill",
        End::Signal(Signal::SIGKILL),
    );
}
