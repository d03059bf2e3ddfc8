//! `vprobe run FILE` and `vprobe -e SCRIPT`.

use std::io::{self, BufWriter, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use vprobe_engine::output::svg;
use vprobe_engine::output::{JsonOutput, Output, TextOutput};
use vprobe_engine::plan::CaptureTarget;
use vprobe_engine::run::{run, ProgressFn, RunOptions, WorkloadProgress};
use vprobe_engine::script::{Options, Script};
use vprobe_engine::session::SessionOptions;
use vprobe_engine::symbols::Symbols;
use vprobe_lab::Lab;

use crate::cli::{Allow, Format, RunArgs};
use crate::signals::Stop;

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
    let privileges = vprobe_engine::kernel::privileges();
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
    let lab = args.lab.as_ref().map(Lab::up).transpose()?.map(Rc::new);
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
    let progress: Option<ProgressFn> = if args.format == Format::Text && io::stderr().is_terminal()
    {
        Some(Box::new(progress_bar()))
    } else {
        None
    };
    let options = RunOptions {
        duration: args.duration,
        session: SessionOptions {
            disable: args.disable,
            ..SessionOptions::default()
        },
        lab: lab.clone(),
        progress,
        capture: args.capture.clone().map(|path| CaptureTarget {
            path,
            snaplen: args.snaplen,
        }),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // From here on SIGINT and SIGTERM end the run with its summary: one that
    // comes while the session attaches ends it once attached.
    let mut stop = {
        let _runtime = runtime.enter();
        Stop::install()?
    };
    let (code, summary) = runtime.block_on(run(
        &mut script,
        name,
        output.as_mut(),
        symbols,
        options,
        stop.recv(),
    ))?;
    drop(output);
    drop(lab);
    if let Some(path) = &args.plot {
        let plot = svg::plot_of(&summary, name).with_context(|| {
            format!(
                "nothing to plot into {}: the run had no tcp_rr workload",
                path.display()
            )
        })?;
        svg::write_svg(path, &plot)?;
        eprintln!("vprobe: plot written to {}", path.display());
    }
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// A progress line on stderr for each running tcp_rr (a terminal only).
fn progress_bar() -> impl FnMut(&[WorkloadProgress]) {
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    let mut shown: Vec<(String, ProgressBar)> = Vec::new();
    move |now: &[WorkloadProgress]| {
        if now.is_empty() {
            for (_, b) in shown.drain(..) {
                b.finish_and_clear();
            }
            return;
        }
        for p in now {
            let i = match shown.iter().position(|(n, _)| *n == p.name) {
                Some(i) => i,
                None => {
                    let b = bars.add(ProgressBar::new(p.planned.as_millis() as u64));
                    b.set_style(
                        ProgressStyle::with_template("{prefix} [{bar:30}] {msg}")
                            .expect("constant template")
                            .progress_chars("=> "),
                    );
                    b.set_prefix(p.name.clone());
                    shown.push((p.name.clone(), b));
                    shown.len() - 1
                }
            };
            let b = &shown[i].1;
            b.set_position(p.elapsed.as_millis() as u64);
            b.set_message(format!(
                "{:.1}s/{:.1}s  {} tx",
                p.elapsed.as_secs_f64(),
                p.planned.as_secs_f64(),
                p.transactions
            ));
        }
    }
}
