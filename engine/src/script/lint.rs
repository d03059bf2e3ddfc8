//! What can be known about a script without running it, or right after its
//! top level has run: the checks `vprobe check` (and every run, before it
//! attaches) adds to Rhai's own. Each finding is a located [`Diagnostic`]
//! with the closest name where there is one.
//!
//! - the header: unreadable lines, unknown attach points or kernel features
//!   in `requires`, a vprobe too old;
//! - `param("x")` / `params.x` of a parameter the header does not declare;
//! - a builder's result dropped (`p.filter(..);` filters nothing);
//! - an `on_event` callback reading a field its attach point lacks (`e.lenn`);
//! - `total`, `entries`, `print_delta`, `clear`, `.snapshot`, `workload`,
//!   `.start`, `.stop` and trigger conditions naming an aggregation or
//!   workload the script never declares.
//!
//! A check that cannot be sure stays silent: names built at run time are
//! left to the run.

use std::collections::BTreeSet;
use std::fmt;

use rhai::{ASTNode, Expr, FnAccess, FnCallExpr, FnNamespace, Position, Stmt, AST};
use vprobe_probes::{suggest, ProbeDef, CATALOG, GENERIC};

use super::errors::ScriptError;
use super::event::{field_names, NoSuchField};
use super::params::ParamError;
use crate::kernel::FEATURE_NAMES;
use crate::meta::{version_at_least, Meta, ParamKind, Requirement};
use crate::plan::Origin;
use crate::trigger::Trigger;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The script is wrong: `check` fails, `run` refuses it.
    Error,
    /// Probably not what was meant; the script runs.
    Warning,
}

/// One finding about a script, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where.
    pub origin: Origin,
    /// What, in house style.
    pub message: String,
    /// The name probably meant (the `did you mean` of the message), if any.
    pub suggestion: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}: {}", self.origin, self.message),
            Severity::Warning => write!(f, "{}: warning: {}", self.origin, self.message),
        }
    }
}

impl From<ScriptError> for Diagnostic {
    fn from(e: ScriptError) -> Self {
        Diagnostic {
            severity: Severity::Error,
            suggestion: e.suggestion().map(String::from),
            origin: e.origin,
            message: e.message,
        }
    }
}

impl Diagnostic {
    /// The finding as a script error (for callers that stop at the first).
    pub fn into_error(self) -> ScriptError {
        ScriptError {
            origin: self.origin,
            message: self.message,
        }
    }

    fn at(severity: Severity, source: &str, pos: Position, message: String) -> Self {
        let e = ScriptError {
            origin: origin(source, pos),
            message,
        };
        Diagnostic {
            severity,
            ..Diagnostic::from(e)
        }
    }

    fn error(source: &str, pos: Position, message: impl fmt::Display) -> Self {
        Self::at(Severity::Error, source, pos, message.to_string())
    }

    fn warning(source: &str, pos: Position, message: impl fmt::Display) -> Self {
        Self::at(Severity::Warning, source, pos, message.to_string())
    }
}

fn origin(source: &str, pos: Position) -> Origin {
    Origin {
        source: source.to_string(),
        line: pos.line().unwrap_or(0),
        col: pos.position().unwrap_or(0),
    }
}

fn line_start(line: usize) -> Position {
    Position::new(line.try_into().unwrap_or(u16::MAX), 1)
}

/// The header's own problems, and `requires` items this vprobe cannot meet
/// or does not know.
pub(super) fn header(meta: &Meta, source: &str) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = meta
        .problems
        .iter()
        .map(|p| Diagnostic::error(source, line_start(p.line), &p.message))
        .collect();
    let this = env!("CARGO_PKG_VERSION");
    for r in &meta.requires {
        match r {
            Requirement::Vprobe { version, line } if !version_at_least(this, version) => {
                out.push(Diagnostic::error(
                    source,
                    line_start(*line),
                    format!("the script needs vprobe >= {version}; this is vprobe {this}"),
                ))
            }
            Requirement::Vprobe { .. } => {}
            Requirement::Probe { name, line } => {
                if let Some(why) = unknown_probe(name) {
                    out.push(Diagnostic::error(
                        source,
                        line_start(*line),
                        format!("requires: {why}"),
                    ));
                }
            }
            Requirement::Feature { name, line } => {
                if !FEATURE_NAMES.contains(&name.as_str()) {
                    let hint = match suggest(name, FEATURE_NAMES) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "kernel features are {} (as `vprobe doctor` names them), attach points are named like `skb.drop`",
                            FEATURE_NAMES.join(", ")
                        ),
                    };
                    out.push(Diagnostic::error(
                        source,
                        line_start(*line),
                        format!("requires: unknown kernel feature `{name}`; {hint}"),
                    ));
                }
            }
        }
    }
    out
}

/// Why `name` is not an attach point: a catalog name, or a generic kind
/// with its target (the target is only known on the host that runs it).
fn unknown_probe(name: &str) -> Option<String> {
    if let Some((kind, _)) = name.split_once(':') {
        if GENERIC.iter().any(|g| g.kind == kind) {
            return None;
        }
        return Some(match suggest(kind, GENERIC.iter().map(|g| g.kind)) {
            Some(s) => format!("unknown probe kind `{kind}`; did you mean `{s}`?"),
            None => format!("unknown probe kind `{kind}`"),
        });
    }
    if vprobe_probes::find(name).is_some() {
        return None;
    }
    Some(match suggest(name, CATALOG.iter().map(|p| p.name)) {
        Some(s) => format!("unknown attach point `{name}`; did you mean `{s}`?"),
        None => format!("unknown attach point `{name}` (`vprobe list` lists them)"),
    })
}

/// Findings in the script's statements before it runs: dropped builder
/// results, and parameters read but not declared (or declared, never read).
pub(super) fn statements(ast: &AST, source: &str, meta: &Meta) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (body, last_used) in each_body(ast) {
        dropped(&body, last_used, source, &mut out);
    }
    if meta.is_contract() {
        params(ast, source, meta, &mut out);
    }
    out
}

/// Each body as an AST of its own (the top level; each function), with
/// whether its last statement's value is used (a function's is returned).
fn each_body(ast: &AST) -> Vec<(AST, bool)> {
    let mut out = vec![(ast.clone_statements_only(), false)];
    let names: Vec<(String, usize)> = ast
        .iter_functions()
        .map(|f| (f.name.to_string(), f.params.len()))
        .collect();
    for (name, n) in names {
        out.push((only_function(ast, &name, n), true));
    }
    out
}

/// An AST holding only the function `name` of `params` parameters.
fn only_function(ast: &AST, name: &str, params: usize) -> AST {
    // (`clone_functions_only_filtered` keeps everything when it starts empty)
    let mut only = ast.clone_functions_only();
    only.retain_functions(|_: FnNamespace, _: FnAccess, f: &str, n: usize| {
        f == name && n == params
    });
    only
}

/// Records the statements of a one-body AST from [`each_body`] whose value
/// is a builder's result and is dropped; `last_used`: the last statement's
/// value is the body's. A function's statements are the depth-1 nodes of its
/// walk (Rhai does not export the type of a function's body).
fn dropped(ast: &AST, last_used: bool, source: &str, out: &mut Vec<Diagnostic>) {
    if !ast.statements().is_empty() {
        let stmts: Vec<&Stmt> = ast.statements().iter().collect();
        dropped_in(&stmts, last_used, source, out);
        return;
    }
    let mut n = 0;
    walk(ast, |path| {
        if let [ASTNode::Stmt(_)] = path {
            n += 1;
        }
    });
    let mut i = 0;
    walk(ast, |path| {
        if let [ASTNode::Stmt(s)] = path {
            i += 1;
            dropped_in(&[*s], last_used && i == n, source, out);
        }
    });
}

fn block(b: &rhai::StmtBlock) -> Vec<&Stmt> {
    b.statements().iter().collect()
}

fn dropped_in(stmts: &[&Stmt], last_used: bool, source: &str, out: &mut Vec<Diagnostic>) {
    for (i, s) in stmts.iter().enumerate() {
        let used = last_used && i + 1 == stmts.len();
        if !used {
            if let Some(d) = dropped_builder(s, source) {
                out.push(d);
            }
        }
        match s {
            Stmt::If(fc, _) | Stmt::TryCatch(fc, _) => {
                dropped_in(&block(&fc.body), used, source, out);
                dropped_in(&block(&fc.branch), used, source, out);
            }
            Stmt::While(fc, _) | Stmt::Do(fc, ..) => {
                dropped_in(&block(&fc.body), false, source, out)
            }
            Stmt::For(f, _) => dropped_in(&block(&f.2.body), false, source, out),
            Stmt::Block(b) => dropped_in(&block(b), used, source, out),
            _ => {}
        }
    }
}

/// `p.filter(..);` (a new probe, dropped: nothing is filtered) and
/// `probe("..");` (an attach point nothing consumes).
fn dropped_builder(s: &Stmt, source: &str) -> Option<Diagnostic> {
    let last_call = |e: &Expr| -> Option<(String, Position)> {
        let mut e = e;
        loop {
            match e {
                Expr::Dot(b, ..) => e = &b.rhs,
                Expr::MethodCall(c, pos) => return Some((c.name.to_string(), *pos)),
                Expr::FnCall(c, pos) => return Some((c.name.to_string(), *pos)),
                _ => return None,
            }
        }
    };
    let (name, pos, method) = match s {
        Stmt::Expr(e) => {
            let method = matches!(**e, Expr::Dot(..));
            let (n, p) = last_call(e)?;
            (n, p, method)
        }
        Stmt::FnCall(c, pos) => (c.name.to_string(), *pos, false),
        _ => return None,
    };
    match (name.as_str(), method) {
        ("filter", true) => Some(Diagnostic::error(
            source,
            pos,
            "the result of `.filter(..)` is dropped, so nothing is filtered: `.filter` returns a new probe; assign it (`p = p.filter(..)`) or chain the consumer (`.filter(..).count(..)`)",
        )),
        ("probe", false) => Some(Diagnostic::warning(
            source,
            pos,
            "this probe is not used: consume it (`.count(..)`, `.hist(..)`, `.on_event(..)`) or keep it (`let p = probe(..)`)",
        )),
        _ => None,
    }
}

/// Every node of the script and its functions, with the path to it.
fn walk(ast: &AST, mut f: impl FnMut(&[ASTNode])) {
    ast.walk(&mut |path: &[ASTNode]| {
        f(path);
        true
    });
}

/// The call at a node, where it is, and whether it is a method call.
fn call_at<'a>(node: &ASTNode<'a>) -> Option<(&'a FnCallExpr, Position, bool)> {
    match *node {
        ASTNode::Expr(e) => match e {
            Expr::FnCall(c, pos) if !c.is_qualified() => Some((c, *pos, false)),
            Expr::MethodCall(c, pos) => Some((c, *pos, true)),
            _ => None,
        },
        ASTNode::Stmt(Stmt::FnCall(c, pos)) if !c.is_qualified() => Some((c, *pos, false)),
        _ => None,
    }
}

fn string_arg(args: &[Expr], i: usize) -> Option<(&str, Position)> {
    match args.get(i) {
        Some(Expr::StringConstant(s, pos)) => Some((s.as_str(), *pos)),
        _ => None,
    }
}

fn variable(e: &Expr) -> Option<&str> {
    match e {
        Expr::Variable(v, ..) => Some(v.1.as_str()),
        _ => None,
    }
}

fn property(e: &Expr) -> Option<(&str, Position)> {
    match e {
        Expr::Property(p, pos) => Some((p.2.as_str(), *pos)),
        _ => None,
    }
}

/// `param("x")`, `param("x", d)` and `params.x` against the header.
fn params(ast: &AST, source: &str, meta: &Meta, out: &mut Vec<Diagnostic>) {
    let mut read: BTreeSet<String> = BTreeSet::new();
    let mut whole_map = false;
    // as `param(..)` says it when run, so that the two read as one
    let undeclared = |name: &str| ParamError::Undeclared {
        name: name.to_string(),
        suggestion: suggest(name, meta.params.iter().map(|p| p.name.as_str())).map(String::from),
    };
    walk(ast, |path| {
        let Some(node) = path.last() else {
            return;
        };
        if let Some((c, pos, false)) = call_at(node).filter(|(c, ..)| c.name == "param") {
            {
                let Some((name, _)) = string_arg(&c.args, 0) else {
                    // a name computed at run time: any declared one may be read
                    whole_map = true;
                    return;
                };
                read.insert(name.to_string());
                let Some(decl) = meta.param(name) else {
                    out.push(Diagnostic::error(source, pos, undeclared(name)));
                    return;
                };
                let here = match c.args.get(1) {
                    Some(Expr::StringConstant(s, _)) => Some(s.to_string()),
                    Some(Expr::IntegerConstant(n, _)) => Some(n.to_string()),
                    Some(Expr::BoolConstant(b, _)) => Some(b.to_string()),
                    _ => None,
                };
                let same = |a: &str, b: &str| match decl.kind {
                    ParamKind::Integer => a.parse::<i64>().ok() == b.parse::<i64>().ok(),
                    _ => a == b,
                };
                if let (Some(here), Some(d)) = (here, &decl.default) {
                    if !same(&here, d) {
                        out.push(Diagnostic::warning(
                            source,
                            pos,
                            format!("parameter `{name}`: the header's default `{d}` is used, not `{here}`"),
                        ));
                    }
                }
            }
            return;
        }
        let ASTNode::Expr(e) = node else {
            return;
        };
        match e {
            Expr::Dot(b, ..) if variable(&b.lhs) == Some("params") => match property(&b.rhs) {
                Some((name, pos)) => {
                    read.insert(name.to_string());
                    if meta.param(name).is_none() {
                        out.push(Diagnostic::error(source, pos, undeclared(name)));
                    }
                }
                None => whole_map = true,
            },
            Expr::Variable(..) if variable(e) == Some("params") => {
                // `params` used other than as `params.x` (passed on, indexed)
                let parent_is_dot = matches!(
                    path.iter().rev().nth(1),
                    Some(ASTNode::Expr(Expr::Dot(b, ..))) if variable(&b.lhs) == Some("params") && property(&b.rhs).is_some()
                );
                if !parent_is_dot {
                    whole_map = true;
                }
            }
            _ => {}
        }
    });
    if whole_map {
        return;
    }
    for p in &meta.params {
        if !read.contains(&p.name) {
            out.push(Diagnostic::warning(
                source,
                line_start(p.line),
                format!(
                    "parameter `{}` is declared but never read (`param(\"{}\")`)",
                    p.name, p.name
                ),
            ));
        }
    }
}

/// What the script declared, for [`names`].
pub(super) struct Declared<'a> {
    /// Aggregations its top level declared.
    pub aggregations: Vec<&'a str>,
    /// Workloads its top level declared.
    pub workloads: Vec<&'a str>,
    /// Its triggers.
    pub triggers: &'a [Trigger],
}

/// References to aggregations and workloads the script never declares.
/// Names declared under a condition the top level did not take count too
/// (they are found in the text); a script that names any at run time is
/// not judged.
pub(super) fn names(ast: &AST, source: &str, declared: &Declared) -> Vec<Diagnostic> {
    let mut aggs: BTreeSet<String> = declared
        .aggregations
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut workloads: BTreeSet<String> =
        declared.workloads.iter().map(|s| s.to_string()).collect();
    let (mut aggs_known, mut workloads_known) = (true, true);
    // what the text declares, wherever it is
    walk(ast, |path| {
        let Some((c, _, method)) = path.last().and_then(call_at) else {
            return;
        };
        match (c.name.as_str(), method) {
            ("count" | "hist" | "lhist", true) => match string_arg(&c.args, 0) {
                Some((n, _)) => {
                    aggs.insert(n.to_string());
                }
                None => aggs_known = false,
            },
            ("tcp_rr" | "exec", false) => match workload_name(&c.name, &c.args) {
                Some(n) => {
                    workloads.insert(n);
                }
                None => workloads_known = false,
            },
            _ => {}
        }
    });
    let mut out = Vec::new();
    let unknown = |kind: &str, name: &str, known: &BTreeSet<String>, call: &str| {
        let hint = match suggest(name, known.iter().map(String::as_str)) {
            Some(s) => format!("; did you mean `{s}`?"),
            None if known.is_empty() => format!("; the script declares no {kind}"),
            None => format!(
                " (the script's {kind}s are {})",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!("{call}: no {kind} named `{name}`{hint}")
    };
    walk(ast, |path| {
        let Some((c, _, is_method)) = path.last().and_then(call_at) else {
            return;
        };
        let (call, args) = (c.name.as_str(), &c.args);
        let kind = match (call, is_method) {
            ("total" | "entries" | "print_delta", false) => "aggregation",
            ("clear", false) if args.len() == 1 => "aggregation",
            ("snapshot", true) => "aggregation",
            ("workload", false) => "workload",
            ("start" | "stop", true) => "workload",
            _ => return,
        };
        let Some((name, pos)) = string_arg(args, 0) else {
            return;
        };
        let (known, sure) = match kind {
            "aggregation" => (&aggs, aggs_known),
            _ => (&workloads, workloads_known),
        };
        if sure && !known.contains(name) {
            let shown = if is_method {
                format!(".{call}")
            } else {
                call.to_string()
            };
            out.push(Diagnostic::error(
                source,
                pos,
                unknown(kind, name, known, &shown),
            ));
        }
    });
    for t in declared.triggers {
        let c = &t.condition;
        let at = |d: Diagnostic| Diagnostic {
            origin: t.origin.clone(),
            ..d
        };
        if let Some(a) = c.aggregation() {
            if aggs_known && !aggs.contains(a) {
                let call = format!("trigger(\"{c}\")");
                out.push(at(Diagnostic::error(
                    source,
                    Position::NONE,
                    unknown("aggregation", a, &aggs, &call),
                )));
            }
        }
        if let Some(w) = c.workload() {
            if workloads_known && !workloads.contains(w) {
                let call = format!("trigger(\"{c}\")");
                out.push(at(Diagnostic::error(
                    source,
                    Position::NONE,
                    unknown("workload", w, &workloads, &call),
                )));
            }
        }
    }
    out
}

/// The name `tcp_rr(#{name: ..})` or `exec(#{name: .., cmd: [..]})` gives
/// its workload, when the text says it.
fn workload_name(call: &str, args: &[Expr]) -> Option<String> {
    /// A literal options map: written out, or folded into a constant.
    enum Opts<'a> {
        Written(&'a [(rhai::Ident, Expr)]),
        Constant(rhai::Map),
    }
    let opts = match args.first() {
        None => return (call == "tcp_rr").then(|| "rr".into()),
        Some(Expr::Map(m, _)) => Opts::Written(&m.0),
        Some(Expr::DynamicConstant(d, _)) => Opts::Constant(d.clone().try_cast::<rhai::Map>()?),
        Some(_) => return None,
    };
    // a string option, Some(None) when present but not a literal string
    let get = |k: &str| -> Option<Option<String>> {
        match &opts {
            Opts::Written(m) => m.iter().find(|(id, _)| id.name == k).map(|(_, v)| match v {
                Expr::StringConstant(s, _) => Some(s.to_string()),
                Expr::Array(items, _) => match items.first() {
                    Some(Expr::StringConstant(s, _)) => Some(s.to_string()),
                    _ => None,
                },
                Expr::DynamicConstant(d, _) => first_string(d),
                _ => None,
            }),
            Opts::Constant(m) => m.get(k).map(first_string),
        }
    };
    match (get("name"), call) {
        (Some(name), _) => name,
        (None, "tcp_rr") => Some("rr".into()),
        // exec's default name is its program
        (None, _) => get("cmd").flatten(),
    }
}

/// A string, or an array's first string.
fn first_string(d: &rhai::Dynamic) -> Option<String> {
    if d.is_string() {
        return Some(d.to_string());
    }
    let a = d.clone().into_array().ok()?;
    a.first().filter(|x| x.is_string()).map(|x| x.to_string())
}

/// An `on_event` callback: its function and the attach point whose events it gets.
pub(super) struct EventCallback<'a> {
    /// The function's name (`anon$..` for a closure).
    pub function: &'a str,
    /// Values curried into it before the event (a closure's captures).
    pub curried: usize,
    /// Where it was registered.
    pub source: &'a str,
    /// The attach point.
    pub probe: &'static ProbeDef,
}

/// A callback's function alone, and the name of its event parameter; `None`
/// when it is not one of the script's functions.
fn callback_body(lib: &AST, cb: &EventCallback) -> Option<(AST, String)> {
    let wanted = cb.curried + 1;
    let def = lib
        .iter_functions()
        .find(|f| f.name == cb.function && f.params.len() == wanted)?;
    let param = def.params[cb.curried].to_string();
    Some((only_function(lib, cb.function, wanted), param))
}

/// Whether a body declares a variable of the event parameter's name (it is
/// then read as written: which `e` a line means is not followed).
fn rebinds(body: &AST, param: &str) -> bool {
    let mut rebound = false;
    walk(body, |path| {
        if let Some(ASTNode::Stmt(Stmt::Var(v, ..))) = path.last() {
            rebound |= v.0.name == param;
        }
    });
    rebound
}

/// Fields an `on_event` callback reads from its event parameter that the
/// attach point does not have. Fields the callback sets itself count.
pub(super) fn event_fields(lib: &AST, callbacks: &[EventCallback]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: BTreeSet<(String, usize, &'static str)> = BTreeSet::new();
    for cb in callbacks {
        let Some((only, param)) = callback_body(lib, cb) else {
            continue;
        };
        if rebinds(&only, &param) {
            continue;
        }
        // a body that sets fields is read as written
        let mut set: BTreeSet<String> = BTreeSet::new();
        walk(&only, |path| {
            if let Some(ASTNode::Stmt(Stmt::Assignment(a))) = path.last() {
                if let Some(f) = event_access(&a.1.lhs, &param) {
                    set.insert(f.0.to_string());
                }
            }
        });
        let mut known: Vec<&str> = field_names(cb.probe).collect();
        known.extend(set.iter().map(String::as_str));
        walk(&only, |path| {
            let Some(ASTNode::Expr(e)) = path.last() else {
                return;
            };
            let Some((field, pos)) = event_access(e, &param) else {
                return;
            };
            if known.contains(&field) {
                return;
            }
            let key = (field.to_string(), pos.line().unwrap_or(0), cb.probe.name);
            if seen.insert(key) {
                let err = NoSuchField::new(cb.probe.name, field, known.iter().copied());
                out.push(Diagnostic::error(cb.source, pos, err));
            }
        });
    }
    out
}

/// The fields of its attach point an `on_event` callback can read, when its
/// text says so: every use of the event parameter is `e.field` or
/// `e["field"]`. `None` when the event goes anywhere else (`emit(e)`,
/// `print(e)`, `e.to_map()`, `e[name]`, a closure that captures it, another
/// function) or the callback is not one of the script's functions: then it
/// may read any field. The kernel then records only these fields.
pub(super) fn event_reads(lib: &AST, cb: &EventCallback) -> Option<BTreeSet<&'static str>> {
    let (only, param) = callback_body(lib, cb)?;
    if rebinds(&only, &param) {
        return None;
    }
    let mut reads = BTreeSet::new();
    let mut whole = false;
    walk(&only, |path| {
        let Some(ASTNode::Expr(e)) = path.last() else {
            return;
        };
        if variable(e) != Some(param.as_str()) {
            return;
        }
        // the parameter is read through the expression around it, or escapes
        let field = match path.len().checked_sub(2).map(|i| &path[i]) {
            Some(ASTNode::Expr(p)) => event_access(p, &param).map(|(f, _)| f),
            _ => None,
        };
        match field {
            // what the callback set itself, and meta keys, are not the record's
            Some(f) => reads.extend(cb.probe.field(f).map(|d| d.name)),
            None => whole = true,
        }
    });
    (!whole).then_some(reads)
}

/// `e.field` or `e["field"]`: the field and where it is written.
fn event_access<'a>(e: &'a Expr, param: &str) -> Option<(&'a str, Position)> {
    match e {
        Expr::Dot(b, ..) if variable(&b.lhs) == Some(param) => property(&b.rhs).or_else(|| {
            // `e.field.more` / `e.field[0]`: the first link is the field
            match &b.rhs {
                Expr::Dot(inner, ..) | Expr::Index(inner, ..) => property(&inner.lhs),
                _ => None,
            }
        }),
        Expr::Index(b, ..) if variable(&b.lhs) == Some(param) => {
            string_arg(std::slice::from_ref(&b.rhs), 0)
        }
        _ => None,
    }
}
