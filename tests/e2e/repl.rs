//! The REPL driven as a person would: the real binary in a real terminal
//! (tmux), keys typed, the screen read back.
//!
//! Each test runs its own tmux server on a private socket, killed on drop
//! (which hangs up on vprobe, so it ends and detaches even when a test fails);
//! a vprobe still running a moment later is killed there.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::support::host::{assert_gone, assert_lab_shape, Footprint};
use crate::support::kernel::{assert_released, Kernel};
use crate::support::labs::{MacvtapLab, MACVTAP};
use crate::support::util::{self, TempDir, VPROBE};

/// How long the screen may take to show what a test waits for.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long vprobe may take to end once its terminal is gone or it is signalled.
const END_LIMIT: Duration = Duration::from_secs(2);

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Clone, Copy, Debug)]
struct Proc {
    pid: i32,
    start: u64,
}

/// `/proc/PID/stat` of `pid`: (state, ppid, comm, start time).
fn stat(pid: i32) -> Option<(char, i32, String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // after the comm: state (field 3), ppid (4), … starttime (22)
    let state = rest.first()?.chars().next()?;
    Some((
        state,
        rest.get(1)?.parse().ok()?,
        comm,
        rest.get(19)?.parse().ok()?,
    ))
}

impl Proc {
    /// Whether it still runs (a zombie has ended).
    fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|(state, _, _, start)| start == self.start && state != 'Z')
    }

    /// Waits (at most `limit`) until it has ended.
    fn ended_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// What it does now, for a failure message.
    fn describe(&self) -> String {
        let threads = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .map(|d| {
                d.flatten()
                    .filter_map(|t| {
                        let tid = t.file_name().to_string_lossy().into_owned();
                        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                        let wchan =
                            std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
                        let st = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                        let state = st
                            .rfind(')')
                            .and_then(|i| st[i + 1..].split_whitespace().next().map(String::from));
                        Some(format!(
                            "{tid} {} {} {wchan}",
                            comm.trim(),
                            state.unwrap_or_default()
                        ))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        format!("pid {} threads: {threads}", self.pid)
    }
}

/// A terminal (a tmux pane) running `vprobe` with some arguments.
struct Term {
    socket: PathBuf,
    /// The vprobe process, once looked up.
    vprobe: Cell<Option<Proc>>,
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
        let term = Term {
            socket,
            vprobe: Cell::new(None),
        };
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

    /// Waits (at most `limit`) for a line containing `needle`.
    fn wait_within(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.screen().lines().find(|l| l.contains(needle)) {
                return Some(l.to_string());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The vprobe the pane's shell runs (a child of the pane's process).
    fn find_vprobe(&self) -> Option<Proc> {
        if let Some(p) = self.vprobe.get() {
            return Some(p);
        }
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["display-message", "-p", "#{pane_pid}"])
            .output()
            .ok()?;
        let pane: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        let found = std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find_map(|pid| match stat(pid) {
                Some((_, ppid, comm, start)) if ppid == pane && comm == "vprobe" => {
                    Some(Proc { pid, start })
                }
                _ => None,
            })?;
        self.vprobe.set(Some(found));
        Some(found)
    }

    /// The vprobe process; waits for it to start.
    fn vprobe(&self) -> Proc {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            if let Some(p) = self.find_vprobe() {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "no vprobe process in the terminal within {SCREEN_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the terminal: the pty closes, vprobe's reads see it hung up.
    fn kill_server(&self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let vprobe = self.find_vprobe();
        self.kill_server();
        // never leave a vprobe behind, whatever the test did
        if let Some(p) = vprobe {
            if !p.ended_within(END_LIMIT + Duration::from_secs(1)) {
                eprintln!("vprobe outlived its terminal; killing it: {}", p.describe());
                let _ = signal::kill(Pid::from_raw(p.pid), Signal::SIGKILL);
            }
        }
    }
}

/// The namespace inodes `:lab up` listed (`  guest-a  netns 4026532318  …`)
/// after the line starting with `header`.
fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn lab_inodes(screen: &str, header: &str) -> Vec<u64> {
    screen
        .lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "netns");
            words.next()?;
            words.next()?.parse().ok()
        })
        .collect()
}

fn assert_tmux() {
    assert!(
        has_tmux(),
        "the REPL tests need tmux (apt-get install tmux)"
    );
}

fn has_tmux() -> bool {
    Command::new("tmux").arg("-V").output().is_ok()
}

#[test]
fn a_session_attaches_counts_completes_detaches_and_saves() {
    if !util::root_or_skip("repl::a_session_attaches_counts_completes_detaches_and_saves") {
        return;
    }
    assert_tmux();
    let _k = util::kernel_lock();
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
    let ours = Kernel::of(term.vprobe().pid as u32);
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

    // :save writes what still counts: the definition and the attached
    // count, not the echo, the print or the failed line
    let saved = dir.path().join("session.rhai");
    term.enter(&format!(":save {}", saved.display()));
    term.wait_for(&format!(
        "saved 2 inputs to {} (2 left out: detached, or nothing that lasts)",
        saved.display()
    ));

    term.enter(":detach drops");
    term.wait_for("detached skb.drop [1]");
    term.wait_line("with the prompt of a session with nothing attached", |l| {
        l.trim_end() == "vprobe>"
    });
    // once detached, the count is left out too
    let after = dir.path().join("detached.rhai");
    term.enter(&format!(":save {}", after.display()));
    term.wait_for(&format!("saved 1 input to {}", after.display()));
    term.enter(":quit");
    term.wait_for("[exit 0]");

    assert_released("after :quit", &ours);

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
    let text = std::fs::read_to_string(&after).expect("the session saved after :detach");
    assert!(
        text.contains("let d = probe") && !text.contains("count"),
        "{text}"
    );

    let hist = std::fs::read_to_string(&history).expect("the history file");
    assert!(
        hist.contains(":probes") && hist.contains("print(\"drops\")"),
        "{hist}"
    );
}

/// `:load` finds scripts as `vprobe run` does, and a file with a field its
/// events lack is refused before it attaches anything.
#[test]
fn load_takes_a_script_by_name_and_refuses_a_misspelled_field() {
    if !util::root_or_skip("repl::load_takes_a_script_by_name_and_refuses_a_misspelled_field") {
        return;
    }
    assert_tmux();
    let _k = util::kernel_lock();
    let dir = TempDir::new("repl-load");
    let history = dir.path().join("history");
    let bad = dir.write(
        "bad.rhai",
        "// a typo\nprobe(\"skb.drop\").on_event(|e| print(e.lenn));\n",
    );
    let term = Term::start(dir.path(), "repl", 200, &history);
    term.wait_for("vprobe> ");
    term.enter(&format!(":load {}", bad.display()));
    let err = term.wait_for("events have no field `lenn`; did you mean `len`?");
    assert!(err.contains("bad.rhai:2:"), "{err}");
    term.enter(":load drops_by_reason");
    term.wait_for("loaded built-in:drops_by_reason.rhai");
    term.wait_for("vprobe[1]> ");
    term.enter(":quit");
    term.wait_for("[exit 0]");
}

#[test]
fn a_long_line_stays_intact_while_timers_print() {
    if !util::root_or_skip("repl::a_long_line_stays_intact_while_timers_print") {
        return;
    }
    assert_tmux();
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

/// The transactions of a `workload NAME ended: N transactions …` line.
fn transactions(line: &str) -> u64 {
    line.split("ended: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no transaction count in {line:?}"))
}

/// A terminal that answers a cursor-position query late (after crossterm's
/// 2 s) leaves the reply queued. Seen on a loaded CI machine: every later
/// query then read the reply before its own, and each message printed above
/// the prompt was painted over by the prompt. An unsolicited reply is what a
/// late one looks like to the editor.
#[test]
fn a_late_cursor_position_reply_does_not_shift_the_output() {
    if !util::root_or_skip("repl::a_late_cursor_position_reply_does_not_shift_the_output") {
        return;
    }
    assert_tmux();
    let dir = TempDir::new("repl-late-reply");
    let term = Term::start(dir.path(), "repl", 120, &dir.path().join("history"));
    term.wait_for("vprobe> ");
    term.run(r#"print("one")"#);
    // a reply naming row 2: taken for an answer, the prompt would go there
    term.type_text("\x1b[2;1R");
    std::thread::sleep(Duration::from_millis(300));
    term.run(r#"print("two")"#);
    term.run(r#"print("three")"#);
    let screen = term.screen();
    let lines: Vec<&str> = screen
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .skip(1) // the banner
        .collect();
    assert_eq!(
        lines,
        [
            r#"vprobe> print("one")"#,
            "one",
            r#"vprobe> print("two")"#,
            "two",
            r#"vprobe> print("three")"#,
            "three",
            "vprobe>",
        ],
        "{screen}"
    );
    term.press("C-d");
    term.wait_for("[exit 0]");
}

#[test]
fn lab_up_runs_tcp_rr_across_it_and_lab_down_leaves_nothing() {
    if !util::root_or_skip("repl::lab_up_runs_tcp_rr_across_it_and_lab_down_leaves_nothing") {
        return;
    }
    assert_tmux();
    let _k = util::kernel_lock();
    let dir = TempDir::new("repl-lab");
    let term = Term::start(dir.path(), "repl", 160, &dir.path().join("history"));
    term.wait_for("vprobe> ");
    term.run(":lab");
    term.wait_for("no lab is up");

    term.run(":lab up");
    let header = "lab macvtap:qlen=64,queues=1,batch=64,stall=30ms/1s,background=3000,cpu=any up";
    term.wait_for(header);
    let inodes = lab_inodes(&term.screen(), header);
    assert_eq!(
        inodes.len(),
        4,
        "host-a, host-b, guest-a, guest-b:\n{}",
        term.screen()
    );
    let ours = Footprint::of(term.vprobe().pid as u32);
    assert_lab_shape(":lab up", &ours, 4, 2);
    assert_eq!(ours.inodes(), sorted(inodes), "{}", term.screen());
    term.run(":lab up veth");
    term.wait_for("error: a lab is already up (macvtap:");

    // a line after :lab up sees the lab, and tcp_rr needs no target in it
    term.run("lab().guests[1].addr");
    term.wait_for("=> 192.0.2.2");
    term.enter(r#"tcp_rr(#{streams: 2, duration: "1s"})"#);
    let ended = term.wait_for("workload rr ended: ");
    assert!(
        transactions(&ended) > 0 && !ended.contains("error"),
        "{ended}"
    );
    term.run(r#"workload("rr").transactions"#);
    let tx = term.wait_line("with the transactions", |l| {
        l.starts_with("=> ") && l.trim_end()[3..].parse::<u64>().is_ok()
    });
    assert_eq!(tx.trim_end(), format!("=> {}", transactions(&ended)));

    // down with a workload running across it: the workload ends first, cleanly
    term.run(r#"tcp_rr(#{name: "cut", streams: 1, duration: "60s"})"#);
    term.run(":lab down");
    term.wait_for(
        "lab macvtap:qlen=64,queues=1,batch=64,stall=30ms/1s,background=3000,cpu=any down",
    );
    let cut = term.wait_for("workload cut ended: ");
    assert!(transactions(&cut) > 0 && !cut.contains("error"), "{cut}");
    // gone (namespaces, devices, the built-in server) while the session goes on
    assert_gone("after :lab down", &ours);
    term.run(":lab down");
    term.wait_for("error: no lab is up");

    // another lab, on the same addresses: its own server answers
    term.run(":lab up veth");
    term.wait_for("lab veth up");
    let inodes = lab_inodes(&term.screen(), "lab veth up");
    assert_eq!(inodes.len(), 2, "{}", term.screen());
    let ours = Footprint::of(term.vprobe().pid as u32);
    assert_lab_shape(":lab up veth", &ours, 2, 0);
    assert_eq!(ours.inodes(), sorted(inodes), "{}", term.screen());
    term.enter(r#"tcp_rr(#{name: "again", streams: 1, duration: "500ms"})"#);
    let again = term.wait_for("workload again ended: ");
    assert!(
        transactions(&again) > 0 && !again.contains("error"),
        "{again}"
    );
    term.enter(":quit");
    term.wait_for("[exit 0]");
    term.wait_for("lab veth down");
    assert_gone("after :quit", &ours);
}

#[test]
fn ctrl_c_stops_running_workloads_else_clears_the_line() {
    if !util::root_or_skip("repl::ctrl_c_stops_running_workloads_else_clears_the_line") {
        return;
    }
    assert_tmux();
    let _k = util::kernel_lock();
    let dir = TempDir::new("repl-ctrl-c");
    let term = Term::start(dir.path(), "repl", 160, &dir.path().join("history"));
    term.wait_for("vprobe> ");
    term.run(":lab up veth");
    let header = "lab veth up";
    term.wait_for(header);
    let inodes = lab_inodes(&term.screen(), header);
    assert_eq!(inodes.len(), 2, "{}", term.screen());
    let ours = Footprint::of(term.vprobe().pid as u32);
    assert_lab_shape(":lab up veth", &ours, 2, 0);
    assert_eq!(ours.inodes(), sorted(inodes), "{}", term.screen());

    term.run(r#"tcp_rr(#{streams: 2, duration: "60s"})"#);
    std::thread::sleep(Duration::from_millis(500));
    // a half-typed line is cleared too
    term.type_text("print(");
    term.press("C-c");
    let pressed = Instant::now();
    let ended = term.wait_within("workload rr ended: ", END_LIMIT);
    assert!(
        ended.is_some(),
        "no `workload rr ended` within {END_LIMIT:?} of Ctrl-C:\n{}",
        term.screen()
    );
    eprintln!("Ctrl-C → workload ended in {:?}", pressed.elapsed());
    assert_eq!(term.count("stopped 1 workload"), 1, "{}", term.screen());
    assert!(transactions(&ended.unwrap()) > 0);
    term.wait_line("with an empty prompt", |l| l.trim_end() == "vprobe>");

    // nothing runs: Ctrl-C only clears the line
    term.type_text("let x = 1");
    term.press("C-c");
    term.wait_line("with an empty prompt after the cleared line", |l| {
        l.trim_end() == "vprobe> let x = 1"
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(term.edited_line(), "vprobe>", "{}", term.screen());
    assert_eq!(term.count("stopped "), 1, "{}", term.screen());

    term.press("C-d");
    term.wait_for("[exit 0]");
    term.wait_for("lab veth down");
    assert_gone("after Ctrl-D", &ours);
}

/// Regression: with the terminal gone (its pty hung up), reads return EOF at
/// once, forever; crossterm read again at once and the REPL's editor thread
/// spun at 100% CPU, and main waited for it, ignoring SIGTERM: tmux servers
/// killed under test runs left such vprobe processes behind.
#[test]
fn the_session_ends_and_takes_its_lab_down_when_the_terminal_goes_away() {
    if !util::root_or_skip(
        "repl::the_session_ends_and_takes_its_lab_down_when_the_terminal_goes_away",
    ) {
        return;
    }
    assert_tmux();
    let _k = util::kernel_lock();
    let dir = TempDir::new("repl-hangup");
    let term = Term::start(dir.path(), "repl", 160, &dir.path().join("history"));
    term.wait_for("vprobe> ");
    term.run(":lab up veth");
    term.wait_for("lab veth up");
    let inodes = lab_inodes(&term.screen(), "lab veth up");
    let ours = Footprint::of(term.vprobe().pid as u32);
    assert_lab_shape(":lab up veth", &ours, 2, 0);
    assert_eq!(ours.inodes(), sorted(inodes), "{}", term.screen());
    term.run(r#"tcp_rr(#{streams: 1, duration: "60s"})"#);
    term.run(r#"every("100ms", || {})"#);
    let vprobe = term.vprobe();

    let killed = Instant::now();
    term.kill_server();
    assert!(
        vprobe.ended_within(END_LIMIT),
        "vprobe still runs {END_LIMIT:?} after its terminal went away: {}",
        vprobe.describe()
    );
    eprintln!("terminal gone → vprobe ended in {:?}", killed.elapsed());
    assert_gone("after the terminal went away", &ours);
}

/// SIGTERM and SIGHUP end the session as `:quit` does: the summary, every
/// probe detached, the lab down.
fn ends_on(sig: Signal, test: &str) {
    if !util::root_or_skip(test) {
        return;
    }
    assert_tmux();
    let _k = util::kernel_lock();
    let dir = TempDir::new("repl-signal");
    let term = Term::start(dir.path(), "repl", 160, &dir.path().join("history"));
    term.wait_for("vprobe> ");
    term.run(":lab up veth");
    term.wait_for("lab veth up");
    let inodes = lab_inodes(&term.screen(), "lab veth up");
    let ours = Footprint::of(term.vprobe().pid as u32);
    assert_lab_shape(":lab up veth", &ours, 2, 0);
    assert_eq!(ours.inodes(), sorted(inodes), "{}", term.screen());
    term.run(r#"probe("skb.drop").count("drops")"#);
    term.wait_for("attached skb.drop [1]");
    let loaded = Kernel::of(term.vprobe().pid as u32);
    assert!(loaded.programs() >= 1, "{loaded:?}");
    term.run(r#"tcp_rr(#{streams: 1, duration: "60s"})"#);
    let vprobe = term.vprobe();

    let sent = Instant::now();
    signal::kill(Pid::from_raw(vprobe.pid), sig).unwrap();
    assert!(
        vprobe.ended_within(END_LIMIT),
        "vprobe still runs {END_LIMIT:?} after {sig}: {}",
        vprobe.describe()
    );
    eprintln!("{sig} → vprobe ended in {:?}", sent.elapsed());
    term.wait_for("[exit 0]");
    let screen = term.screen();
    for want in ["workload rr:", "detached 1 probe", "lab veth down"] {
        assert!(screen.contains(want), "no `{want}` after {sig}:\n{screen}");
    }
    assert_gone(&format!("after {sig}"), &ours);
    assert_released(&format!("after {sig}"), &loaded);
}

#[test]
fn sigterm_ends_the_session_with_its_summary_and_leaves_nothing() {
    ends_on(
        Signal::SIGTERM,
        "repl::sigterm_ends_the_session_with_its_summary_and_leaves_nothing",
    );
}

#[test]
fn sighup_ends_the_session_with_its_summary_and_leaves_nothing() {
    ends_on(
        Signal::SIGHUP,
        "repl::sighup_ends_the_session_with_its_summary_and_leaves_nothing",
    );
}
