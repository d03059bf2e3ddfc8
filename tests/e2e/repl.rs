//! The REPL driven as a person would: the real binary in a real terminal
//! (tmux), keys typed, the screen read back.
//!
//! Each test runs its own tmux server on a private socket, killed on drop
//! (which hangs up on vprobe, so it ends and detaches even when a test fails).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::labs::{MacvtapLab, MACVTAP};
use crate::leftovers::{vp_programs, Kernel, RELEASE_LIMIT};
use crate::util::{self, TempDir, VPROBE};

/// How long the screen may take to show what a test waits for.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(20);

/// A terminal (a tmux pane) running `vprobe` with some arguments.
struct Term {
    socket: PathBuf,
}

impl Term {
    /// Starts `vprobe ARGS` in a `cols`×40 terminal, with `VPROBE_HISTORY` set.
    /// When vprobe ends, the pane shows `[exit N]` and stays.
    fn start(dir: &Path, args: &str, cols: u16, history: &Path) -> Term {
        let socket = dir.join("tmux.sock");
        let cmd = format!(
            "VPROBE_HISTORY={} {VPROBE} {args}; echo \"[exit $?]\"; sleep 600",
            history.display()
        );
        let term = Term { socket };
        term.tmux(&[
            "new-session",
            "-d",
            "-x",
            &cols.to_string(),
            "-y",
            "40",
            "sh",
            "-c",
            &cmd,
        ]);
        term
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e} (is tmux installed?)"));
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` as it is.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
    }

    /// Presses keys by tmux name: `Enter`, `Tab`, `C-d`.
    fn press(&self, key: &str) {
        self.tmux(&["send-keys", key]);
    }

    /// Types `text` and presses Enter.
    fn enter(&self, text: &str) {
        self.type_text(text);
        self.press("Enter");
    }

    /// The whole screen and its scrollback, wrapped lines joined.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-10000"])
    }

    /// Waits until the screen has a line for which `want` holds; returns it.
    fn wait_line(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen();
            if let Some(l) = screen.lines().find(|l| want(l)) {
                return l.to_string();
            }
            if Instant::now() >= deadline {
                panic!("no line {what} within {SCREEN_TIMEOUT:?}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a line containing `needle`.
    fn wait_for(&self, needle: &str) -> String {
        self.wait_line(&format!("with `{needle}`"), |l| l.contains(needle))
    }

    /// The last line that is not empty: the one being edited.
    fn edited_line(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim_end()
            .to_string()
    }

    /// Runs `text` and waits for the next prompt.
    fn run(&self, text: &str) {
        let prompts = || {
            self.screen()
                .lines()
                .filter(|l| l.starts_with("vprobe> ") || l.starts_with("vprobe["))
                .count()
        };
        let before = prompts();
        self.enter(text);
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        while prompts() <= before {
            assert!(
                Instant::now() < deadline,
                "no prompt after `{text}` within {SCREEN_TIMEOUT:?}; screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many times `needle` is on the screen and in its scrollback.
    fn count(&self, needle: &str) -> usize {
        self.screen().matches(needle).count()
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn has_tmux() -> bool {
    Command::new("tmux").arg("-V").output().is_ok()
}

#[test]
fn a_session_attaches_counts_completes_detaches_and_saves() {
    if !util::root_or_skip("repl::a_session_attaches_counts_completes_detaches_and_saves") {
        return;
    }
    assert!(
        has_tmux(),
        "the REPL tests need tmux (apt-get install tmux)"
    );
    let _k = util::kernel_lock();
    let before: BTreeSet<u64> = vp_programs().into_iter().map(|(id, _)| id).collect();
    let lab = MacvtapLab::new(16);
    let dir = TempDir::new("repl");
    let history = dir.path().join("history");
    let term = Term::start(dir.path(), "repl", 200, &history);
    term.wait_for("vprobe> ");

    // a probe name completed with Tab inside the string
    term.type_text("let d = probe(\"skb.dr");
    term.press("Tab");
    term.wait_line("with the completed probe name", |l| {
        l.trim_end() == "vprobe> let d = probe(\"skb.drop\""
    });
    term.run(&format!(
        r#").filter("netns", "{}").filter("reason", "FULL_RING")"#,
        lab.b.name()
    ));
    term.enter("d");
    term.wait_for("=> probe(\"skb.drop\").filter(\"netns\"");

    // a failing line points at the error and changes nothing
    term.enter(r#"d.count("drops", ["nope"])"#);
    term.wait_for("has no field `nope`");
    assert!(
        term.screen().contains("\n  ^\n") || term.screen().contains("  ^"),
        "a caret under the error:\n{}",
        term.screen()
    );
    term.enter(r#"d.count("drops")"#);
    let attached = term.wait_for("attached skb.drop [1] via ");
    assert!(attached.contains("→ drops"), "{attached}");
    term.wait_for("vprobe[1]> ");
    let ours = Kernel::new_since(&before);
    assert!(ours.programs() >= 1, "a vp_ program is loaded: {ours:?}");

    // drops in the test's namespace, counted in the kernel, printed on request
    let dropped_before = lab.rx_dropped();
    let sent = lab.flood(200, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    let dropped = lab.rx_dropped() - dropped_before;
    assert!(dropped > 0, "the lab dropped nothing ({sent} frames sent)");
    term.enter(r#"print("drops")"#);
    let printed = term.wait_for("@drops: ");
    assert_eq!(
        printed.trim(),
        format!("@drops: {dropped}"),
        "vprobe's count against {MACVTAP}'s rx_dropped\n{}",
        term.screen()
    );
    term.enter(":probes");
    let row = term.wait_line("of :probes for skb.drop", |l| {
        l.starts_with("1 ") && l.contains("skb.drop")
    });
    assert!(
        row.contains("tp_btf/kfree_skb") || row.contains("tracepoint/"),
        "{row}"
    );
    assert!(row.trim_end().ends_with(&dropped.to_string()), "{row}");

    term.enter(":detach drops");
    term.wait_for("detached skb.drop [1]");
    term.wait_line("with the prompt of a session with nothing attached", |l| {
        l.trim_end() == "vprobe>"
    });

    let saved = dir.path().join("session.rhai");
    term.enter(&format!(":save {}", saved.display()));
    term.wait_for(&format!("saved 4 inputs to {}", saved.display()));
    term.enter(":quit");
    term.wait_for("[exit 0]");

    let mut left = Kernel::default();
    let gone = util::poll_until(RELEASE_LIMIT, || {
        left = Kernel::remaining(&ours, &before);
        left.is_empty()
    });
    assert!(gone, "after :quit the kernel still holds {left:?}");

    let text = std::fs::read_to_string(&saved).expect("the saved session");
    assert!(!text.contains("nope"), "a failed line was saved:\n{text}");
    let check = util::vprobe(&["check", &saved.display().to_string()], SCREEN_TIMEOUT);
    check.assert_no_panic();
    assert!(check.status.success(), "{}\n{text}", check.describe());
    assert!(
        check.stdout.contains("ok (1 probe instance"),
        "{}",
        check.describe()
    );

    let hist = std::fs::read_to_string(&history).expect("the history file");
    assert!(
        hist.contains(":probes") && hist.contains("print(\"drops\")"),
        "{hist}"
    );
}

#[test]
fn a_long_line_stays_intact_while_timers_print() {
    if !util::root_or_skip("repl::a_long_line_stays_intact_while_timers_print") {
        return;
    }
    assert!(
        has_tmux(),
        "the REPL tests need tmux (apt-get install tmux)"
    );
    let dir = TempDir::new("repl-long");
    // 100 columns: the line wraps over two rows while the ticks scroll above it
    let term = Term::start(dir.path(), "repl", 100, &dir.path().join("history"));
    term.wait_for("vprobe> ");
    term.enter("let n = 0; every(\"100ms\", || { n += 1; print(`tick ${n}`) })");
    term.wait_for("tick 3");

    let text: String = (0..150)
        .map(|i| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789 -_+"[i * 7 % 40]))
        .collect();
    let typed = format!("\"{text}\"");
    let ticks_before = term.count("tick ");
    let started = Instant::now();
    // Fast, but one key at a time and slower where the line reaches the
    // margin and wraps: a tick then must find the prompt's first row (a
    // 100-column row holds the 8-column prompt and 92 typed characters).
    let mut i = 0;
    while i < typed.len() {
        let near_wrap = (86..100).contains(&i);
        let n = if near_wrap { 1 } else { 5 };
        let end = (i + n).min(typed.len());
        term.type_text(&typed[i..end]);
        i = end;
        std::thread::sleep(Duration::from_millis(if near_wrap { 120 } else { 20 }));
    }
    // let the last keys arrive and a few more ticks print under them
    std::thread::sleep(Duration::from_millis(350));
    let ticks = term.count("tick ") - ticks_before;
    assert!(
        ticks as u128 >= started.elapsed().as_millis() / 100 / 2,
        "the timer printed only {ticks} times in {:?} of typing",
        started.elapsed()
    );
    assert_eq!(
        term.edited_line(),
        format!("vprobe> {typed}"),
        "{}",
        term.screen()
    );
    // and no stale copy of a part of it among the ticks above
    let screen = term.screen();
    let above: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.starts_with("every 100ms"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let (edited, ticks_only) = above.split_last().expect("lines after the timer");
    assert!(edited.starts_with("vprobe> "), "{screen}");
    assert!(
        ticks_only.iter().all(|l| l.starts_with("tick ")),
        "only ticks above the line being edited:\n{screen}"
    );

    term.press("Enter");
    let echoed = term.wait_line("echoing the string", |l| l.starts_with("=> "));
    assert_eq!(echoed.trim_end(), format!("=> {text}"));
    term.press("C-d");
    term.wait_for("[exit 0]");
}
