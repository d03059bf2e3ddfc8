//! `vprobe run FILE` and `vprobe -e SCRIPT`.

use std::io::{self, BufWriter};
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::Context;
use vprobe_engine::lab::Lab;
use vprobe_engine::output::{JsonOutput, Output, TextOutput};
use vprobe_engine::run::{run, RunOptions};
use vprobe_engine::script::{Options, Script};
use vprobe_engine::session::SessionOptions;
use vprobe_engine::symbols::Symbols;

use crate::cli::{Allow, Format, RunArgs};

/// Runs a script file.
pub fn file(path: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    script(&path.display().to_string(), &text, args)
}

/// Runs a one-line script.
pub fn expr(text: &str, args: RunArgs) -> anyhow::Result<ExitCode> {
    script("<expr>", text, args)
}

fn script(name: &str, text: &str, args: RunArgs) -> anyhow::Result<ExitCode> {
    // Check privileges before anything else: the one error most users will meet.
    let privileges = vprobe_engine::session::privileges();
    if !privileges.sufficient() {
        anyhow::bail!(privileges.missing());
    }
    let symbols = Rc::new(Symbols::load(true));
    let options = Options {
        params: args.params.into_iter().collect(),
        allow_exec: args.allow.contains(&Allow::Exec),
    };
    let mut script = Script::compile(name, text, symbols.clone(), options)?;
    // The lab lives as long as the run: built once the script compiled, torn
    // down when this returns (its namespaces die with the process anyway).
    let lab = args.lab.as_ref().map(Lab::up).transpose()?;
    if let Some(lab) = &lab {
        eprintln!("vprobe: lab {} up", lab.spec());
        for g in lab.guests() {
            eprintln!(
                "  {} {}/{} on {} (netns {})",
                g.name, g.addr, g.prefix, g.dev, g.netns_inode
            );
        }
    }
    let stdout = io::stdout().lock();
    let mut output: Box<dyn Output> = match args.format {
        Format::Text => Box::new(TextOutput::new(BufWriter::new(stdout))),
        Format::Json => Box::new(JsonOutput::new(BufWriter::new(stdout))),
    };
    let options = RunOptions {
        duration: args.duration,
        session: SessionOptions {
            disable: args.disable,
            ..SessionOptions::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(run(&mut script, name, output.as_mut(), symbols, options))?;
    drop(lab);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
