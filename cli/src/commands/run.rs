//! `vprobe run FILE` and `vprobe -e SCRIPT`.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use vprobe_engine::library::ScriptFile;
use vprobe_engine::metrics::MetricsOptions;
use vprobe_engine::output::svg;
use vprobe_engine::output::{JsonOutput, Output, Summary, TextOutput};
use vprobe_engine::plan::{CaptureTarget, WorkloadKind};
use vprobe_engine::run::{run, PlanCheck, ProgressFn, Refused, RunOptions, WorkloadProgress};
use vprobe_engine::script::{Plan, Script};
use vprobe_engine::session::{SessionError, SessionOptions};
use vprobe_engine::symbols::Symbols;
use vprobe_lab::Lab;

use crate::cli::{Allow, Format, RunArgs};
use crate::exit::Status;
use crate::say::{self, Suspending};
use crate::signals::Stop;

/// Runs a script given by name or file.
pub fn file(what: &str, args: RunArgs) -> anyhow::Result<ExitCode> {
    let file = super::find_script(what)?;
    script(file.source_name(), &file.text, Some(&file), args)
}

/// Runs a one-line script.
pub fn expr(text: &str, args: RunArgs) -> anyhow::Result<ExitCode> {
    script("<expr>", text, None, args)
}

fn script(
    name: &str,
    text: &str,
    file: Option<&ScriptFile>,
    mut args: RunArgs,
) -> anyhow::Result<ExitCode> {
    // The kernel's BTF parses on another core while the script compiles.
    if vprobe_engine::kernel::privileges().sufficient() {
        vprobe_engine::session::preload_btf();
    }
    let symbols = Rc::new(Symbols::load(true));
    let params = std::mem::take(&mut args.params);
    let options = super::options(file, params, args.allow.contains(&Allow::Exec));
    // The script's contract (its `-p` values) is checked before anything
    // else, privileges included: a typo is the same mistake as root or not.
    let mut script = Script::compile(name, text, symbols.clone(), options)?;
    // Before the kernel is touched: where the data and the plot go (a bad
    // path is a usage error now, not a failure after the whole run).
    let data = say::data(args.output.file.as_deref())?;
    let plot = args.plot.as_deref().map(PlotFile::create).transpose()?;
    // Then privileges: the one error most users will meet.
    let privileges = vprobe_engine::kernel::privileges();
    if !privileges.sufficient() {
        return Err(vprobe_engine::Error::from(SessionError::Privileges(privileges)).into());
    }
    // The lab lives as long as the run: built once the script compiled, torn
    // down when this returns (its namespaces die with the process anyway).
    let lab = args.lab.as_ref().map(Lab::up).transpose()?.map(Rc::new);
    if let Some(lab) = &lab {
        say::note(format_args!("lab {} up", lab.spec()));
        for g in lab.guests() {
            say::note(format_args!(
                "  {} {}/{} on {} (netns {})",
                g.name, g.addr, g.prefix, g.dev, g.netns_inode
            ));
        }
    }
    let format = args.output.format();
    // Progress bars on a terminal's stderr; data and notes are written
    // around them, so no stale copy of a bar stays behind.
    let bars = (format == Format::Text && io::stderr().is_terminal())
        .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4)));
    let data = Suspending::new(data, bars.clone());
    let mut output: Box<dyn Output> = match format {
        Format::Text => Box::new(TextOutput::with_notes(
            data,
            Box::new(Suspending::new(io::stderr(), bars.clone())),
            say::verbosity(),
        )),
        Format::Json => Box::new(JsonOutput::new(data)),
    };
    let check: Option<PlanCheck> = plot.as_ref().map(|p| {
        let path = p.path.display().to_string();
        Box::new(move |plan: &Plan| {
            let has_rr = plan
                .workloads
                .iter()
                .any(|w| matches!(w.kind, WorkloadKind::TcpRr(_)));
            if has_rr {
                Ok(())
            } else {
                Err(Refused(format!(
                    "--plot {path}: the plot is of a tcp_rr workload's latencies, and this run has none (add tcp_rr(..) to the script, or leave out --plot)"
                )))
            }
        }) as PlanCheck
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // From here on SIGINT, SIGTERM and SIGHUP end the run with its summary:
    // one that comes while the session attaches ends it once attached.
    let mut stop = {
        let _runtime = runtime.enter();
        Stop::install()?
    };
    let options = RunOptions {
        duration: args.duration,
        session: SessionOptions {
            disable: args.disable,
            reader_nice: args.reader_nice,
            ..SessionOptions::default()
        },
        lab: lab.clone(),
        progress: bars.map(|b| Box::new(progress_bar(b)) as ProgressFn),
        workloads: args.loads,
        warn: Some(Box::new(|w: &str| say::warn(w))),
        check,
        metrics: args.metrics.map(|listen| MetricsOptions {
            listen,
            series_limit: args.metrics_series_limit,
        }),
        capture: args.capture.clone().map(|path| CaptureTarget {
            path,
            snaplen: args.snaplen,
        }),
        stop_requests: Some(stop.requests()),
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
    if say::verbosity() == vprobe_engine::output::Verbosity::Verbose {
        say::note(vprobe_engine::session::btf_use());
    }
    if let Some(plot) = plot {
        plot.write(&summary, name)?;
    }
    let failed = summary.lost.callback_errors;
    if failed > 0 {
        say::warn(format_args!(
            "{failed} callback error{}: the script's results are incomplete",
            if failed == 1 { "" } else { "s" }
        ));
        return Ok(Status::Script.into());
    }
    // exit() takes only 0, 1 and 10-125: the engine refuses others
    Ok(ExitCode::from(
        u8::try_from(code).unwrap_or(Status::Failed as u8),
    ))
}

/// The `--plot` file: created before the run, removed again if nothing is
/// drawn into it.
struct PlotFile {
    path: PathBuf,
    file: Option<File>,
}

impl PlotFile {
    fn create(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            file: Some(say::create(path)?),
        })
    }

    fn write(mut self, summary: &Summary, name: &str) -> anyhow::Result<()> {
        let plot = svg::plot_of(summary, name).with_context(|| {
            format!(
                "nothing to plot into {}: the run had no tcp_rr workload",
                self.path.display()
            )
        })?;
        let svg = svg::render_svg(&plot)
            .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", self.path.display()))?;
        let mut file = self.file.take().expect("written once");
        file.write_all(svg.as_bytes())
            .and_then(|()| file.flush())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        say::note(format_args!("plot written to {}", self.path.display()));
        Ok(())
    }
}

impl Drop for PlotFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A progress line on stderr for each running tcp_rr (a terminal only).
fn progress_bar(bars: MultiProgress) -> impl FnMut(&[WorkloadProgress]) {
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
