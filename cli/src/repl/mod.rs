//! `vprobe repl`: an interactive session on a live host. Attach a probe,
//! watch counts move, refine a filter, detach, try another layer — all in one
//! engine session, one Rhai scope.
//!
//! Three threads, because the engine's `Script` and `Session` are not `Send`
//! (Rc) while reedline's `read_line` blocks its thread until a line is done:
//!
//! - main: a tokio current-thread runtime that owns the engine's [`Live`]
//!   session and `select!`s over typed inputs, [`Live::step`] (timers, ring
//!   buffers) and signals. It handles an input, then answers the editor.
//! - editor: reedline with the completer, highlighter, validator and prompt of
//!   this folder. It sends each accepted input to main and waits for the
//!   answer before the next prompt, so inputs never overlap. Its helpers read
//!   what they need of the session from [`Known`], which main refreshes after
//!   each input.
//! - printer ([`sink`]): everything main prints goes through one channel to a
//!   thread that hands it to reedline's external printer (printed above the
//!   line being edited, never inside it) and to stdout once the editor is gone.
//!
//! The session ends on Ctrl-D, `:quit`, `exit()` from the script, SIGTERM,
//! SIGHUP or the terminal going away (reading it fails: EOF or EIO on a
//! hung-up pty): main stops the editor (reedline's break signal, so the
//! terminal is restored by reedline itself), then ends the `Live` session —
//! `on_end` callbacks, the summary — and everything is detached and the
//! session's lab taken down. Main waits for the editor and the printer only
//! so long ([`THREAD_END`]): a thread stuck on a dead or stalled terminal is
//! left to end with the process, never waited for.
//!
//! Ctrl-C is a key to the editor (raw mode): it clears the line and tells
//! main, which stops the running workloads. A SIGINT (Ctrl-C while main
//! handles an input, outside raw mode) does the same.

mod colon;
mod completer;
mod highlighter;
mod input;
mod lexer;
mod prompt;
mod sink;
mod validator;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use reedline::{
    default_emacs_keybindings, ColumnarMenu, EditCommand, Emacs, ExternalPrinter,
    FileBackedHistory, KeyCode, KeyModifiers, MenuBuilder, Reedline, ReedlineEvent, ReedlineMenu,
    Signal,
};
use tokio::signal::unix::SignalKind;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use vprobe_engine::live::Live;
use vprobe_engine::output::TextOutput;
use vprobe_engine::probes::ProbeDef;
use vprobe_engine::script::{Script, REPL_SOURCE};
use vprobe_engine::session::SessionOptions;
use vprobe_engine::symbols::Symbols;
use vprobe_lab::Lab;

use input::Flow;
use sink::Sink;

use crate::signals::handle;

/// What the editor's helpers know of the session; main refreshes it after
/// each input.
#[derive(Debug, Default)]
pub struct Known {
    /// Probe instances attached.
    pub attached: usize,
    /// Names of the aggregations being fed.
    pub aggregations: Vec<String>,
    /// Variables in the script's scope, with the probe each holds, if any.
    pub variables: Vec<(String, Option<&'static ProbeDef>)>,
    /// Drop reason names of this kernel.
    pub reasons: Vec<String>,
    /// `:detach` ids (`1`, `t1`) with what each is.
    pub targets: Vec<(String, String)>,
    /// Attach points with an instance attached.
    pub attached_probes: Vec<String>,
}

/// [`Known`], shared between main and the editor's helpers.
pub type Shared = Arc<Mutex<Known>>;

/// Locks `known`; a helper that panicked cannot leave it half-written in a
/// way that matters, so a poisoned lock is used as is.
pub fn lock(known: &Shared) -> MutexGuard<'_, Known> {
    known.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long the session's end waits for the editor and printer threads.
const THREAD_END: Duration = Duration::from_secs(1);

/// From the editor to main.
enum Input {
    /// An accepted input (one or more lines).
    Line(String),
    /// Ctrl-C (the editor has cleared the line).
    Interrupt,
    /// Ctrl-D on an empty line.
    Eof,
    /// The terminal is gone (hung up): the session ends as on SIGHUP.
    Gone,
    /// The terminal failed.
    Failed(String),
}

/// From main to the editor, after an input.
enum Answer {
    /// Show the next prompt.
    Ready,
}

/// The session as the commands see it.
pub struct Repl<'a> {
    live: Live<'a>,
    sink: Sink,
    known: Shared,
    /// Every input that was accepted, in order, for `:save`.
    accepted: Vec<input::Accepted>,
    /// Attach points whose fallback reasons were shown (once a session).
    fallbacks_told: std::collections::HashSet<String>,
    /// The lab of `:lab up`, shared with `live`; taken down with the session.
    lab: Option<Rc<Lab>>,
}

impl Repl<'_> {
    /// Tells the editor's helpers what changed.
    fn refresh(&self) {
        let mut k = lock(&self.known);
        k.attached = self.live.session().instances().count();
        k.aggregations = self.live.aggregation_names();
        k.variables = self.live.script().variables();
        k.targets = self
            .live
            .session()
            .instances()
            .map(|(id, inst)| (input::instance_label(id), inst.probe().name.to_string()))
            .chain(self.live.timers().map(|(id, t)| {
                (
                    input::timer_label(id),
                    format!("every {}", vprobe_time::duration::format(t.period)),
                )
            }))
            .collect();
        let mut probes: Vec<String> = self
            .live
            .session()
            .instances()
            .map(|(_, i)| i.probe().name.to_string())
            .collect();
        probes.sort();
        probes.dedup();
        k.attached_probes = probes;
    }
}

/// Options of `vprobe repl`.
pub struct ReplOptions {
    /// A script to run into the session first: a name or a file.
    pub script: Option<String>,
    /// `-p key=value`.
    pub params: Vec<(String, String)>,
    /// Mechanisms not to use.
    pub disable: Vec<vprobe_engine::probes::MechanismKind>,
    /// `--allow exec`: lines may run external commands.
    pub allow_exec: bool,
}

/// The history file: `$VPROBE_HISTORY` (empty: none), else
/// `$XDG_STATE_HOME/vprobe/history`, else `~/.local/state/vprobe/history`.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VPROBE_HISTORY") {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    Some(state.join("vprobe").join("history"))
}

/// Whether stdin and stdout are a terminal (the REPL needs one).
pub fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Runs the interactive session until it ends; the exit status is the
/// script's `exit(code)`, else 0.
pub fn run(opts: ReplOptions) -> anyhow::Result<ExitCode> {
    if !on_terminal() {
        anyhow::bail!(
            "the REPL needs a terminal on stdin and stdout; for scripts use `vprobe run FILE` or `vprobe -e SCRIPT`"
        );
    }
    let privileges = vprobe_engine::kernel::privileges();
    if !privileges.sufficient() {
        anyhow::bail!(privileges.missing());
    }
    // the kernel's BTF parses on another core while the REPL starts
    if vprobe_engine::kernel::privileges().sufficient() {
        vprobe_engine::session::preload_btf();
    }
    let symbols = Rc::new(Symbols::load(true));
    let file = opts
        .script
        .as_deref()
        .map(crate::commands::find_script)
        .transpose()?;
    let (name, text) = match &file {
        Some(f) => (f.source_name().to_string(), f.text.clone()),
        None => (REPL_SOURCE.to_string(), String::new()),
    };
    let mut script = Script::compile(
        &name,
        &text,
        symbols.clone(),
        crate::commands::options(file.as_ref(), opts.params, opts.allow_exec),
    )?;
    let plan = script.plan()?;
    for w in script.warnings() {
        eprintln!("vprobe: {w}");
    }

    let printer = ExternalPrinter::<String>::new(0);
    let (sink, printer_thread) = Sink::start(printer.sender())?;
    let mut output = TextOutput::new(sink.writer());
    let known: Shared = Arc::new(Mutex::new(Known {
        reasons: symbols.reason_names().map(String::from).collect(),
        ..Known::default()
    }));
    let result = (|| {
        let mut live = Live::new(
            &mut script,
            &mut output,
            symbols,
            SessionOptions {
                disable: opts.disable,
                ..SessionOptions::default()
            },
        )?;
        let applied = live.apply(plan)?;
        live.apply_actions()?;
        let repl = Repl {
            live,
            sink: sink.clone(),
            known: known.clone(),
            accepted: if text.trim().is_empty() {
                Vec::new()
            } else {
                vec![input::Accepted {
                    text: format!("// {name}\n{}", text.trim_end()),
                    applied: applied.clone(),
                }]
            },
            lab: None,
            fallbacks_told: Default::default(),
        };
        repl.sink.line(format!(
            "vprobe {} — :help for help, Tab completes, Ctrl-D ends the session",
            env!("CARGO_PKG_VERSION")
        ));
        if !applied.instances.is_empty() || !applied.timers.is_empty() {
            repl.sink.line(format!("loaded {name}"));
        }
        repl.refresh();
        session(repl, printer)
    })();
    drop(output);
    drop(sink);
    if !join_within(printer_thread, THREAD_END) {
        eprintln!("vprobe: the terminal takes no output; the rest is dropped");
    }
    let code = result?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Runs the editor beside the engine until the session ends, then ends it.
fn session(mut repl: Repl<'_>, printer: ExternalPrinter<String>) -> anyhow::Result<i32> {
    let (inputs_tx, mut inputs) = unbounded_channel();
    let (answers, answers_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let editor = {
        let (known, stop, sink) = (repl.known.clone(), stop.clone(), repl.sink.clone());
        std::thread::Builder::new()
            .name("vprobe-editor".into())
            .spawn(move || edit(printer, known, inputs_tx, answers_rx, stop, sink))?
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(drive(&mut repl, &mut inputs, &answers));
    // the editor ends (and gives the terminal back) before anything else is printed
    stop.store(true, Ordering::Relaxed);
    drop(answers);
    let editor_ended = join_within(editor, THREAD_END);
    drop(runtime);
    let attached = repl.live.session().instances().count();
    let lab = repl.lab.take();
    // workloads stop (and report) before the lab they run across goes down
    let finished = repl.live.finish();
    if attached > 0 {
        repl.sink.line(format!(
            "detached {attached} probe{}",
            if attached == 1 { "" } else { "s" }
        ));
    }
    if let Some(lab) = lab {
        let spec = lab.spec().to_string();
        drop(lab);
        repl.sink.line(format!("lab {spec} down"));
    }
    if !editor_ended {
        repl.sink
            .line("the terminal does not answer: its editor was left as it was");
    }
    let code = finished?;
    result?;
    Ok(code)
}

/// Joins `thread` if it ends within `limit`; false if it did not (it is left
/// to end with the process).
fn join_within(thread: std::thread::JoinHandle<()>, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while !thread.is_finished() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = thread.join();
    true
}

/// The engine's loop: inputs, the session's own events, signals.
async fn drive(
    repl: &mut Repl<'_>,
    inputs: &mut UnboundedReceiver<Input>,
    answers: &mpsc::Sender<Answer>,
) -> anyhow::Result<()> {
    let mut sigint = handle(SignalKind::interrupt(), "SIGINT")?;
    let mut sigterm = handle(SignalKind::terminate(), "SIGTERM")?;
    let mut sighup = handle(SignalKind::hangup(), "SIGHUP")?;
    while repl.live.exit_code().is_none() {
        tokio::select! {
            biased;
            _ = sigterm.recv() => break,
            _ = sighup.recv() => break,
            // The editor reads Ctrl-C as a key (raw mode) and sends
            // Input::Interrupt; a SIGINT comes only while main handles an
            // input (the terminal is not raw then) and means the same.
            s = sigint.recv() => match s {
                Some(()) => {
                    repl.interrupt();
                }
                // no signal driver any more: nothing can stop the session cleanly
                None => break,
            },
            input = inputs.recv() => match input {
                Some(Input::Line(text)) => {
                    let flow = repl.input(&text);
                    repl.refresh();
                    if flow == Flow::Quit {
                        break;
                    }
                    let _ = answers.send(Answer::Ready);
                }
                Some(Input::Interrupt) => {
                    repl.interrupt();
                }
                Some(Input::Failed(e)) => anyhow::bail!("terminal: {e}"),
                Some(Input::Eof | Input::Gone) | None => break,
            },
            r = repl.live.step() => r?,
        }
    }
    Ok(())
}

/// The editor thread: reads inputs until Ctrl-D, a failure or `stop`.
fn edit(
    printer: ExternalPrinter<String>,
    known: Shared,
    inputs: UnboundedSender<Input>,
    answers: mpsc::Receiver<Answer>,
    stop: Arc<AtomicBool>,
    sink: Sink,
) {
    let mut keys = default_emacs_keybindings();
    keys.add_binding(
        KeyModifiers::NONE,
        KeyCode::Tab,
        ReedlineEvent::UntilFound(vec![
            ReedlineEvent::Menu("completion".into()),
            ReedlineEvent::MenuNext,
        ]),
    );
    keys.add_binding(
        KeyModifiers::ALT,
        KeyCode::Enter,
        ReedlineEvent::Edit(vec![EditCommand::InsertNewline]),
    );
    let colors = highlighter::colors_wanted(std::env::var_os("NO_COLOR").as_deref());
    let mut editor = Reedline::create()
        .with_edit_mode(Box::new(Emacs::new(keys)))
        .with_completer(Box::new(completer::ReplCompleter::new(known.clone())))
        .with_menu(ReedlineMenu::EngineCompleter(Box::new(
            ColumnarMenu::default().with_name("completion"),
        )))
        .with_quick_completions(true)
        .with_partial_completions(true)
        .with_highlighter(Box::new(highlighter::ReplHighlighter { colors }))
        .with_ansi_colors(colors)
        .with_validator(Box::new(validator::ReplValidator))
        .with_external_printer(printer)
        .with_break_signal(stop);
    if let Some(path) = history_path() {
        match FileBackedHistory::with_file(10_000, path.clone()) {
            Ok(h) => editor = editor.with_history(Box::new(h)),
            Err(e) => sink.line(format!(
                "history off: cannot use {}: {e}",
                Path::new(&path).display()
            )),
        }
    }
    let prompt = prompt::ReplPrompt::new(known);
    loop {
        match editor.read_line(&prompt) {
            Ok(Signal::Success(line)) => {
                if inputs.send(Input::Line(line)).is_err() {
                    break;
                }
                match answers.recv() {
                    // the input's output goes before the next prompt
                    Ok(Answer::Ready) => sink.settle(Duration::from_millis(200)),
                    Err(_) => break,
                }
            }
            // reedline has cleared the line; main stops the workloads, if any
            Ok(Signal::CtrlC) => {
                if inputs.send(Input::Interrupt).is_err() {
                    break;
                }
            }
            Ok(Signal::CtrlD) => {
                let _ = inputs.send(Input::Eof);
                break;
            }
            Ok(Signal::ExternalBreak(_)) => break,
            Ok(_) => {}
            // never read again after an error: a terminal that is gone fails
            // every read at once
            Err(e) => {
                let _ = inputs.send(if terminal_gone(&e) {
                    Input::Gone
                } else {
                    Input::Failed(e.to_string())
                });
                break;
            }
        }
    }
}

/// Whether a terminal error means the terminal is gone: a hung-up pty reads
/// as EOF and fails everything else with EIO; its device is gone (ENXIO).
fn terminal_gone(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.kind() == std::io::ErrorKind::UnexpectedEof
        || e.raw_os_error().is_some_and(|n| {
            [Errno::EIO, Errno::ENXIO, Errno::ENOTTY, Errno::EBADF]
                .iter()
                .any(|x| *x as i32 == n)
        })
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    use super::terminal_gone;

    #[test]
    fn a_hung_up_terminal_is_gone_other_errors_are_failures() {
        assert!(terminal_gone(&Error::new(ErrorKind::UnexpectedEof, "eof")));
        assert!(terminal_gone(&Error::from_raw_os_error(nix::libc::EIO)));
        assert!(terminal_gone(&Error::from_raw_os_error(nix::libc::ENXIO)));
        assert!(!terminal_gone(&Error::from_raw_os_error(nix::libc::EINVAL)));
        assert!(!terminal_gone(&Error::other("no cursor position")));
    }
}
