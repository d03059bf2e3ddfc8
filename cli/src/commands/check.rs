//! `vprobe check FILE`: validate without root and without attaching.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;

use vprobe_engine::script::{Options, Script};
use vprobe_engine::symbols::Symbols;

/// Compiles and plans the script; prints what it would attach.
pub fn run(path: &Path, params: Vec<(String, String)>) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::exit::usage(format!("cannot read {}: {e}", path.display())))?;
    // kallsyms names are readable without root (addresses are not): enough to check symbols
    let symbols = Rc::new(Symbols::load(true));
    let name = path.display().to_string();
    let mut script = Script::compile(
        &name,
        &text,
        symbols,
        Options {
            params: params.into_iter().collect(),
            // checking runs nothing; `vprobe run` asks for --allow exec itself
            allow_exec: true,
        },
    )?;
    let plan = script.plan()?;
    let mut out = crate::say::data(None)?;
    writeln!(
        out,
        "{name}: ok ({} probe instance{}, {} timer{}, {} end callback{})",
        plan.requests.len(),
        plural(plan.requests.len()),
        plan.timers.len(),
        plural(plan.timers.len()),
        plan.on_end.len(),
        plural(plan.on_end.len())
    )
    .and_then(|()| out.flush())?;
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
