//! What the REPL does with an input: a Rhai line (evaluated into the
//! session) or a `:` command ([`ColonCommand`]).

use std::fmt::Write as _;
use std::path::Path;
use std::rc::Rc;

use nu_ansi_term::Color;
use vprobe_engine::live::{Applied, TimerId};
use vprobe_engine::message::with_causes;
use vprobe_engine::plan::{Consumer, Origin};
use vprobe_engine::probes::{ProbeDef, CATALOG};
use vprobe_engine::script::{API, REPL_SOURCE};
use vprobe_engine::session::{InstanceId, SessionError};
use vprobe_lab::{Lab, LabSpec};

use super::colon::{ColonCommand, LabAction};
use super::lexer::{tokenize, Kind};
use super::Repl;

/// Whether the session goes on after an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Next prompt.
    Continue,
    /// End the session.
    Quit,
}

const KEYS: &str = "keys:
  Tab                    complete attach points, fields, aggregations, functions, commands
  Enter                  run; open brackets or strings continue on the next line
  Alt-Enter              a line break
  Up, Down, Ctrl-R       history
  Ctrl-C                 stop the running workloads; with none running, clear the line
  Ctrl-D, :quit          end the session: the summary, then everything is detached";

/// The ids `:probes` shows and `:detach` takes.
pub fn instance_label(id: InstanceId) -> String {
    (id.0 + 1).to_string()
}

/// The id of a timer as `:probes` shows it.
pub fn timer_label(id: TimerId) -> String {
    format!("t{}", id.0 + 1)
}

fn error_text(message: &str) -> String {
    format!("{} {message}", Color::Red.bold().paint("error:"))
}

/// `text` as one statement of a script: a `;` after its last token unless
/// it has one (a trailing comment stays last).
pub fn as_statement(text: &str) -> String {
    let text = text.trim_end();
    let last = tokenize(text).into_iter().rev().find(|t| t.is_code());
    match last {
        None => text.to_string(),
        Some(t) if t.kind == Kind::Punct(';') => text.to_string(),
        Some(t) => format!("{};{}", &text[..t.span.end], &text[t.span.end..]),
    }
}

/// An accepted input and what it added to the session, for `:save`.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The input as saved.
    pub text: String,
    /// What it attached, armed and registered.
    pub applied: Applied,
}

impl Accepted {
    /// Whether the input belongs in a saved script: what it attached or
    /// armed is still there, or (when it attached and armed nothing) it
    /// defines something later inputs may use or registers something that
    /// lasts (`on_end`, a trigger, a workload). Echoes, prints and queries
    /// are left out, and so is whatever was detached.
    fn lasts(
        &self,
        attached: &dyn Fn(InstanceId) -> bool,
        armed: &dyn Fn(TimerId) -> bool,
    ) -> bool {
        let a = &self.applied;
        if !a.instances.is_empty() || !a.timers.is_empty() {
            return a.instances.iter().any(|&i| attached(i)) || a.timers.iter().any(|&t| armed(t));
        }
        a.on_end > 0 || a.triggers > 0 || !a.workloads.is_empty() || defines(&self.text)
    }
}

/// Whether code defines something: `let`, `const`, `fn`, `import`, or an
/// assignment (`x = …`, `m.a += 1`; not `==`, `!=`, `<=`, `>=`, `=>`).
fn defines(text: &str) -> bool {
    let tokens: Vec<_> = tokenize(text).into_iter().filter(|t| t.is_code()).collect();
    tokens.iter().enumerate().any(|(i, t)| match t.kind {
        Kind::Ident => matches!(t.text(text), "let" | "const" | "fn" | "import"),
        Kind::Punct('=') => {
            let joined_before = i.checked_sub(1).map(|j| &tokens[j]).is_some_and(|b| {
                b.span.end == t.span.start && matches!(b.kind, Kind::Punct('=' | '!' | '<' | '>'))
            });
            let joined_after = tokens.get(i + 1).is_some_and(|a| {
                a.span.start == t.span.end && matches!(a.kind, Kind::Punct('=' | '>'))
            });
            !joined_before && !joined_after
        }
        _ => false,
    })
}

/// The script `:save` writes: the inputs that still count, in order.
pub fn script_text<'a>(inputs: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("//! about: saved from a vprobe repl session\n");
    for a in inputs {
        out.push_str(&as_statement(a));
        out.push('\n');
    }
    out
}

/// Where an engine error points, when it says.
fn origin_of(e: &vprobe_engine::Error) -> Option<&Origin> {
    match e {
        vprobe_engine::Error::Script(s) => Some(&s.origin),
        vprobe_engine::Error::Session(
            SessionError::Request { origin, .. }
            | SessionError::Filter { origin, .. }
            | SessionError::Tables { origin, .. }
            | SessionError::Unavailable { origin, .. },
        ) => Some(origin),
        _ => None,
    }
}

/// The error as the REPL shows it: the offending line of `text` with a caret
/// under the error's column, then the message.
pub fn render_error(source: &str, text: &str, e: &vprobe_engine::Error) -> String {
    let message = e.to_string();
    let Some(o) = origin_of(e).filter(|o| o.source == source && o.line > 0) else {
        return error_text(&message);
    };
    let Some(bad) = text.lines().nth(o.line - 1) else {
        return error_text(&message);
    };
    let short = message.strip_prefix(&format!("{o}: ")).unwrap_or(&message);
    // one-line input: the caret says where; otherwise keep the line number
    let message = if text.lines().count() > 1 || source != REPL_SOURCE {
        format!("{}:{}: {short}", o.source, o.line)
    } else {
        short.to_string()
    };
    let mut out = format!("  {}\n", bad.replace('\t', " "));
    if o.col > 0 {
        let _ = writeln!(out, "  {}^", " ".repeat(o.col - 1));
    }
    out.push_str(&error_text(&message));
    out
}

impl Repl<'_> {
    /// Handles one accepted input from the editor.
    pub fn input(&mut self, text: &str) -> Flow {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Flow::Continue;
        }
        if trimmed.starts_with(':') {
            return self.command(trimmed);
        }
        self.eval(REPL_SOURCE, text, None);
        self.flow()
    }

    fn flow(&self) -> Flow {
        if self.live.exit_code().is_some() {
            Flow::Quit
        } else {
            Flow::Continue
        }
    }

    /// Evaluates `text` into the session; remembers it for `:save` when it
    /// succeeds (as `saved` when given). False when it failed.
    pub fn eval(&mut self, source: &str, text: &str, saved: Option<String>) -> bool {
        match self.live.eval(source, text) {
            Ok((value, applied)) => {
                self.accepted.push(Accepted {
                    text: saved.unwrap_or_else(|| text.to_string()),
                    applied: applied.clone(),
                });
                self.describe(&applied);
                if let Some(v) = value {
                    self.sink.line(format!("=> {v}"));
                }
                true
            }
            Err(e) => {
                self.sink.line(render_error(source, text, &e));
                false
            }
        }
    }

    /// Says what a line attached and armed; why an attach point fell back
    /// only the first time it does in the session.
    fn describe(&mut self, applied: &Applied) {
        for id in &applied.instances {
            let Some(info) = self.live.probe_info(*id) else {
                continue;
            };
            let mut s = format!(
                "attached {} [{}] via {} → {}",
                info.name,
                instance_label(*id),
                info.mechanism,
                info.feeds
            );
            if self.fallbacks_told.insert(info.name.clone()) {
                for f in &info.fallbacks {
                    let _ = write!(s, "\n  fell back: {f}");
                }
            }
            self.sink.line(s);
        }
        for id in &applied.timers {
            if let Some((_, t)) = self.live.timers().find(|(i, _)| i == id) {
                self.sink.line(format!(
                    "every {} [{}]",
                    vprobe_time::duration::format(t.period),
                    timer_label(*id)
                ));
            }
        }
    }

    fn command(&mut self, line: &str) -> Flow {
        let (command, arg) = match ColonCommand::parse(line) {
            Ok(c) => c,
            Err(e) => {
                self.sink.line(error_text(&e.to_string()));
                return Flow::Continue;
            }
        };
        match command {
            ColonCommand::Help => self.help(arg),
            ColonCommand::Probes => self.probes(),
            ColonCommand::List => self.list(arg),
            ColonCommand::Detach => self.detach(arg),
            ColonCommand::Maps => self.maps(),
            ColonCommand::Clear => self.clear(arg),
            ColonCommand::Load => return self.load(arg),
            ColonCommand::Save => self.save(arg),
            ColonCommand::Lab => self.lab(arg),
            ColonCommand::Quit => return Flow::Quit,
        }
        Flow::Continue
    }

    fn help(&self, topic: &str) {
        let mut s = String::new();
        if topic.is_empty() {
            s.push_str("commands:\n");
            for c in ColonCommand::ALL {
                let _ = writeln!(
                    s,
                    "  {:22} {}",
                    format!("{} {}", c.name(), c.args()),
                    c.about()
                );
            }
            s.push_str("script API (every `vprobe run` function works here):\n");
            for f in API {
                let _ = writeln!(s, "  {:22} {}", f.name, f.about);
            }
            s.push_str("attach points: :list [pattern]; more on one thing: :help TOPIC (a command, function or attach point)\n");
            s.push_str(KEYS);
            self.sink.line(s);
            return;
        }
        let bare = topic.trim_start_matches(':');
        if let Some(c) = ColonCommand::ALL.into_iter().find(|c| c.topic() == bare) {
            let mut s = format!("{} {}\n  {}", c.name(), c.args(), c.about());
            if c == ColonCommand::Lab {
                s.push_str("\n\n");
                s.push_str(&vprobe_lab::knobs_help());
            }
            self.sink.line(s);
        } else if let Some(f) = API.iter().find(|f| f.name == bare) {
            self.sink.line(format!("{}\n  {}", f.usage, f.about));
        } else if let Some(p) = vprobe_engine::probes::find(bare) {
            self.sink.line(describe_probe(p, true));
        } else {
            self.sink.line(error_text(&format!(
                "no help on `{topic}`; topics are commands, API functions and attach points (:help lists them)"
            )));
        }
    }

    fn probes(&self) {
        let mut rows: Vec<[String; 6]> = Vec::new();
        for (id, inst) in self.live.session().instances() {
            let req = &inst.request;
            let filters: Vec<String> = req
                .filters
                .iter()
                .map(|f| {
                    let vals: Vec<String> = f.values.iter().map(ToString::to_string).collect();
                    match vals.as_slice() {
                        [one] => format!("{}={one}", f.field.name),
                        many => format!("{}=[{}]", f.field.name, many.join(",")),
                    }
                })
                .collect();
            let (feeds, count) = match &req.consumer {
                Consumer::Events { .. } => (
                    "on_event".to_string(),
                    format!("{} events", self.live.events_delivered(id).unwrap_or(0)),
                ),
                c => {
                    let n = match self.live.instance_snapshot(id) {
                        Ok(Some(s)) => s.total().to_string(),
                        Ok(None) => "0".into(),
                        Err(e) => format!("? ({e})"),
                    };
                    (c.agg_name().unwrap_or_default().to_string(), n)
                }
            };
            rows.push([
                instance_label(id),
                inst.probe().name.to_string(),
                inst.mechanism.label(),
                feeds,
                if filters.is_empty() {
                    "-".into()
                } else {
                    filters.join(" ")
                },
                count,
            ]);
        }
        for (id, t) in self.live.timers() {
            rows.push([
                timer_label(id),
                "every".into(),
                vprobe_time::duration::format(t.period),
                "timer".into(),
                "-".into(),
                String::new(),
            ]);
        }
        if rows.is_empty() {
            self.sink
                .line("nothing attached; try: probe(\"skb.drop\").count(\"drops\", [\"reason\"])");
            return;
        }
        let header = ["id", "probe", "mechanism", "feeds", "filters", "count"];
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut s = String::new();
        let row = |s: &mut String, cells: &[&str]| {
            let line: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:w$}"))
                .collect();
            let _ = writeln!(s, "{}", line.join("  ").trim_end());
        };
        row(&mut s, &header);
        for r in &rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            row(&mut s, &cells);
        }
        let lost = self.live.lost();
        if lost.events != 0 || lost.map_full != 0 || lost.callback_errors != 0 {
            let _ = writeln!(
                s,
                "lost: events={} map_full={} callback_errors={}",
                lost.events, lost.map_full, lost.callback_errors
            );
        }
        self.sink.line(s.trim_end());
    }

    fn list(&self, pattern: &str) {
        let matching: Vec<&ProbeDef> = CATALOG
            .iter()
            .filter(|p| p.name.contains(pattern))
            .collect();
        match matching.as_slice() {
            [] => self
                .sink
                .line(error_text(&format!("no attach point matches `{pattern}`"))),
            [one] => self.sink.line(describe_probe(one, true)),
            many => {
                let s: Vec<String> = many.iter().map(|p| describe_probe(p, false)).collect();
                self.sink.line(s.join("\n"));
            }
        }
    }

    fn detach(&mut self, target: &str) {
        let mut instances: Vec<InstanceId> = Vec::new();
        let mut timers: Vec<TimerId> = Vec::new();
        if target == "all" {
            instances = self.live.session().instances().map(|(id, _)| id).collect();
            timers = self.live.timers().map(|(id, _)| id).collect();
        } else if let Some(t) = self
            .live
            .timers()
            .find(|(id, _)| timer_label(*id) == target)
        {
            timers.push(t.0);
        } else {
            instances = self
                .live
                .session()
                .instances()
                .filter(|(id, inst)| {
                    instance_label(*id) == target
                        || inst.probe().name == target
                        || inst.request.consumer.agg_name() == Some(target)
                })
                .map(|(id, _)| id)
                .collect();
        }
        if instances.is_empty() && timers.is_empty() {
            let msg = if target == "all" {
                "nothing is attached".to_string()
            } else {
                format!("nothing attached matches `{target}`; :probes lists ids, probes and aggregations")
            };
            self.sink.line(error_text(&msg));
            return;
        }
        let mut done = Vec::new();
        for id in instances {
            let name = self
                .live
                .session()
                .instances()
                .find(|(i, _)| *i == id)
                .map(|(_, inst)| inst.probe().name)
                .unwrap_or("?");
            let label = format!("{name} [{}]", instance_label(id));
            if self.live.detach(id) {
                done.push(label);
            }
        }
        for id in timers {
            if self.live.stop_timer(id) {
                done.push(format!("timer [{}]", timer_label(id)));
            }
        }
        self.sink.line(format!("detached {}", done.join(", ")));
    }

    fn maps(&mut self) {
        let names = self.live.aggregation_names();
        if names.is_empty() {
            self.sink.line("no aggregations");
            return;
        }
        for n in names {
            let r = self.live.snapshot(&n).and_then(|snap| match snap {
                Some(snap) => Ok(self.live.output().aggregation(&snap, false)?),
                None => Ok(()),
            });
            if let Err(e) = r {
                self.sink.line(error_text(&format!("reading `{n}`: {e}")));
            }
        }
    }

    fn clear(&mut self, name: &str) {
        match self.live.clear(name) {
            Ok(true) => self.sink.line(format!("cleared @{name}")),
            Ok(false) => self.sink.line(error_text(&format!(
                "no aggregation named `{name}`; :maps lists them"
            ))),
            Err(e) => self.sink.line(error_text(&e.to_string())),
        }
    }

    /// `:load NAME|FILE`: a script found as `vprobe run` finds it.
    fn load(&mut self, what: &str) -> Flow {
        let file = match crate::commands::find_script(what) {
            Ok(f) => f,
            Err(e) => {
                self.sink.line(error_text(&with_causes(e.as_ref())));
                return Flow::Continue;
            }
        };
        let name = file.source_name().to_string();
        let saved = format!("// :load {what}\n{}", file.text.trim_end());
        if self.eval(&name, &file.text, Some(saved)) {
            self.sink.line(format!("loaded {name}"));
        }
        self.flow()
    }

    fn save(&self, path: &str) {
        let attached: Vec<InstanceId> = self.live.session().instances().map(|(id, _)| id).collect();
        let armed: Vec<TimerId> = self.live.timers().map(|(id, _)| id).collect();
        let kept: Vec<&str> = self
            .accepted
            .iter()
            .filter(|a| a.lasts(&|i| attached.contains(&i), &|t| armed.contains(&t)))
            .map(|a| a.text.as_str())
            .collect();
        let left_out = self.accepted.len() - kept.len();
        let (n, text) = (kept.len(), script_text(kept));
        match std::fs::write(Path::new(path), text) {
            Ok(()) => self.sink.line(format!(
                "saved {n} input{} to {path}{}",
                if n == 1 { "" } else { "s" },
                match left_out {
                    0 => String::new(),
                    k => format!(" ({k} left out: detached, or nothing that lasts)"),
                }
            )),
            Err(e) => self
                .sink
                .line(error_text(&format!("cannot write {path}: {e}"))),
        }
    }

    /// `:lab [up [SPEC]|down|status]`.
    fn lab(&mut self, arg: &str) {
        match LabAction::parse(arg) {
            Some(LabAction::Status) => self.lab_status(),
            Some(LabAction::Up(spec)) => self.lab_up(spec),
            Some(LabAction::Down) => self.lab_down(),
            None => self.sink.line(error_text(&format!(
                "`:lab {arg}`: use :lab up [TOPOLOGY[:knob=value,…]], :lab down or :lab (:help lab)"
            ))),
        }
    }

    fn lab_status(&self) {
        match &self.lab {
            Some(lab) => self.sink.line(describe_lab(lab, "is up")),
            None => self
                .sink
                .line("no lab is up; :lab up [TOPOLOGY[:knob=value,…]] builds one (:help lab)"),
        }
    }

    fn lab_up(&mut self, text: &str) {
        if let Some(lab) = &self.lab {
            self.sink.line(error_text(&format!(
                "a lab is already up ({}); :lab down takes it down first",
                lab.spec()
            )));
            return;
        }
        let built = LabSpec::parse(text).and_then(|spec| Lab::up(&spec));
        match built {
            Ok(lab) => {
                let lab = Rc::new(lab);
                self.live.set_lab(Some(lab.clone()));
                self.sink.line(describe_lab(&lab, "up"));
                self.lab = Some(lab);
            }
            Err(e) => self.sink.line(error_text(&with_causes(&e))),
        }
    }

    fn lab_down(&mut self) {
        let Some(lab) = self.lab.take() else {
            self.sink
                .line(error_text("no lab is up; :lab up [TOPOLOGY] builds one"));
            return;
        };
        // stops what runs across it first (reported as it ends)
        self.live.set_lab(None);
        let spec = lab.spec().to_string();
        drop(lab);
        self.sink.line(format!("lab {spec} down"));
    }

    /// Ctrl-C: stops the running workloads (their results follow as they
    /// end); false when none ran.
    pub fn interrupt(&mut self) -> bool {
        let n = self.live.stop_workloads();
        if n > 0 {
            self.sink.line(format!(
                "stopped {n} workload{}",
                if n == 1 { "" } else { "s" }
            ));
        }
        n > 0
    }
}

/// The lab as `:lab` shows it: its spec, each namespace with its devices (a
/// guest with its address), how to enter it.
fn describe_lab(lab: &Lab, state: &str) -> String {
    let mut s = format!("lab {} {state}", lab.spec());
    for ns in lab.namespaces() {
        let what = match lab.guest(ns.name()) {
            Some(g) => format!("{} {}/{}", g.dev, g.addr, g.prefix),
            None => lab
                .devices()
                .iter()
                .filter(|d| d.namespace == ns.name())
                .map(|d| format!("{} ({})", d.name, d.kind))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = write!(s, "\n  {:8} netns {:<11} {what}", ns.name(), ns.inode());
    }
    s.push_str(
        "\n  lab() describes it; tcp_rr(#{streams: 4, duration: \"5s\"}) runs guest-a → guest-b",
    );
    s
}

/// An attach point for `:list` and `:help`: with every field's description
/// when `long`.
fn describe_probe(p: &ProbeDef, long: bool) -> String {
    let mut s = format!("{}  ({})  {}\n", p.name, p.subsystem, p.about);
    let mechs: Vec<String> = p.mechanisms.iter().map(|m| m.label()).collect();
    let _ = write!(s, "  mechanisms: {}", mechs.join(", "));
    if long {
        let w = p.fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for f in p.fields {
            let mut can = Vec::new();
            if f.filter {
                can.push("filter");
            }
            if f.key {
                can.push("key");
            }
            if f.kind.is_quantity() {
                can.push("hist");
            }
            let _ = write!(s, "\n  {:w$}  {:15}  {}", f.name, can.join(","), f.about);
        }
    } else {
        let names: Vec<&str> = p.fields.iter().map(|f| f.name).collect();
        let _ = write!(s, "\n  fields: {}", names.join(" "));
    }
    if !p.unseen.is_empty() {
        let _ = write!(s, "\n  not seen: {}", p.unseen);
    }
    s
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use vprobe_engine::script::{Options, Script, ScriptError};
    use vprobe_engine::symbols::Symbols;

    use super::*;

    #[test]
    fn statements_end_with_one_semicolon() {
        assert_eq!(as_statement("let x = 1"), "let x = 1;");
        assert_eq!(as_statement("let x = 1;  "), "let x = 1;");
        assert_eq!(as_statement("x + 1 // note"), "x + 1; // note");
        assert_eq!(as_statement("fn f() { 1 }"), "fn f() { 1 };");
        assert_eq!(as_statement("// only a comment"), "// only a comment");
    }

    // Regression: `:save` wrote a transcript: echoes, prints, and the probes
    // and timers detached since.
    #[test]
    fn save_keeps_what_is_still_attached_or_defined() {
        let input = |text: &str, instances: &[u64], timers: &[u64]| Accepted {
            text: text.into(),
            applied: Applied {
                instances: instances.iter().map(|&i| InstanceId(i)).collect(),
                timers: timers.iter().map(|&t| TimerId(t)).collect(),
                ..Applied::default()
            },
        };
        let attached = |i: InstanceId| i == InstanceId(2);
        let armed = |t: TimerId| t == TimerId(7);
        let keeps = |a: &Accepted| a.lasts(&attached, &armed);
        assert!(keeps(&input(r#"let d = probe("skb.drop")"#, &[], &[])));
        assert!(!keeps(&input(r#"d.count("gone", [])"#, &[1], &[])));
        assert!(keeps(&input(r#"d.count("here", [])"#, &[2], &[])));
        assert!(keeps(&input("every(\"1s\", || print(1))", &[], &[7])));
        assert!(!keeps(&input("every(\"1s\", || print(2))", &[], &[3])));
        assert!(keeps(&input("fn twice(x) { x * 2 }", &[], &[])));
        assert!(keeps(&input("m.a += 1", &[], &[])));
        for echo in [
            "z + 1",
            "print(total(\"here\"))",
            "x == 1",
            "a != b",
            "\"a = b\"",
        ] {
            assert!(!keeps(&input(echo, &[], &[])), "{echo}");
        }
        let on_end = Accepted {
            applied: Applied {
                on_end: 1,
                ..Applied::default()
            },
            ..input("on_end(|| print(1))", &[], &[])
        };
        assert!(keeps(&on_end));
    }

    #[test]
    fn saved_sessions_are_scripts_that_check() {
        // inputs as a user types them: no semicolons, blocks, comments, a file
        let accepted: Vec<String> = [
            r#"let d = probe("skb.drop").filter("dev", "vA")"#,
            r#"d.count("drops", ["reason"])"#,
            "fn twice(x) { x * 2 }",
            "if true { print(twice(2)) }",
            "let m = #{a: 1}",
            "every(\"1s\", || {\n  print_delta(\"drops\")\n})",
            "\"a string\" // echoed",
            "// :load f.rhai\nprobe(\"tcp.retransmit\").count(\"retx\");\nlet z = 1",
            "z + 1",
        ]
        .map(String::from)
        .to_vec();
        let text = script_text(accepted.iter().map(String::as_str));
        let symbols = Rc::new(Symbols::from_parts(None, vec![(80, "FULL_RING".into())]));
        let mut s = Script::compile("saved.rhai", &text, symbols, Options::default())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let plan = s.plan().unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(plan.requests.len(), 2, "{text}");
        assert_eq!(plan.timers.len(), 1);
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // CSI: ESC [ ... final letter
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn errors_point_at_their_column() {
        let e = ScriptError {
            origin: Origin {
                source: REPL_SOURCE.into(),
                line: 1,
                col: 7,
            },
            message: "unknown probe `skb.dorp`; did you mean `skb.drop`?".into(),
        };
        let out = render_error(REPL_SOURCE, "probe(\"skb.dorp\")", &e.into());
        let plain = strip_ansi(&out);
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines[0], "  probe(\"skb.dorp\")");
        assert_eq!(lines[1], "        ^");
        assert!(
            lines[2].ends_with("error: unknown probe `skb.dorp`; did you mean `skb.drop`?"),
            "{plain}"
        );
        // an error elsewhere (a file) keeps its location
        let e = ScriptError {
            origin: Origin {
                source: "f.rhai".into(),
                line: 2,
                col: 1,
            },
            message: "boom".into(),
        };
        let out = render_error(REPL_SOURCE, "x", &e.into());
        assert!(out.ends_with("f.rhai:2:1: boom"), "{out}");
    }
}
