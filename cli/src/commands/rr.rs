//! `vprobe rr`: the TCP_RR client on its own, like `netperf -t TCP_RR`.

use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vprobe_engine::message::with_causes;
use vprobe_engine::output::{rr_text, JsonOutput, Output, Summary};
use vprobe_engine::workload::WorkloadResult;
use vprobe_load::tcp_rr::{self, RrHandle, RrSnapshot, DEFAULT_PORT};
use vprobe_load::LoadError;

use crate::cli::{Format, RrArgs};
use crate::exit::{self, Status};
use crate::say;
use crate::signals::Stop;

/// How often the progress bar is redrawn (and the end looked for).
const TICK: Duration = Duration::from_millis(200);

/// Runs the client and prints its result; exit 1 if a stream failed mid-run.
pub fn run(args: RrArgs) -> anyhow::Result<ExitCode> {
    let target = resolve(&args.server)?;
    let format = args.output.format();
    let mut out = say::data(args.output.file.as_deref())?;
    let o = args.options;
    let planned = o.warmup + o.duration.unwrap_or_default();
    let show_progress = format == Format::Text && io::stderr().is_terminal();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let monotonic_start_ns = vprobe_time::monotonic_ns();
    let started = Instant::now();
    let result = runtime.block_on(async {
        let mut stop = Stop::install()?;
        let handle = tcp_rr::start(target, o, None).map_err(start_error)?;
        let started = Instant::now();
        let progress = show_progress.then(|| progress_bar(planned));
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = stop.recv() => handle.stop(),
                _ = tick.tick() => {
                    if handle.is_finished() {
                        break;
                    }
                    if let Some(p) = &progress {
                        update(p, &handle, started, planned);
                    }
                }
            }
        }
        if let Some(p) = progress {
            p.finish_and_clear();
        }
        anyhow::Ok(handle.join())
    })?;

    match format {
        Format::Text => out.write_all(rr_text(&result).as_bytes())?,
        Format::Json => {
            // the same `summary` line as `vprobe run`'s (one shape per type),
            // with the result under workloads.tcp_rr
            let errors = result.errors.is_empty();
            let summary = Summary::of_workloads(
                started.elapsed().as_secs_f64(),
                monotonic_start_ns,
                [("tcp_rr".to_string(), WorkloadResult::TcpRr(result))].into(),
            );
            JsonOutput::new(&mut out).summary(&summary)?;
            return Ok(if errors {
                ExitCode::SUCCESS
            } else {
                Status::Verdict.into()
            });
        }
    }
    out.flush()?;
    Ok(if result.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        Status::Verdict.into()
    })
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address; the first address
/// the name resolves to.
fn resolve(server: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = server.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = server.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let (host, port) = match server.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|e| exit::usage(format!("invalid port in `{server}`: {e}")))?,
        ),
        None => (server, DEFAULT_PORT),
    };
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{host}`"))?
        .next()
        .with_context(|| format!("`{host}` has no address"))
}

/// A start error, with a hint when nothing listens; an option out of range
/// is a usage error.
fn start_error(e: LoadError) -> anyhow::Error {
    if matches!(e, LoadError::Invalid(_)) {
        return exit::usage(with_causes(&e));
    }
    let refused = matches!(&e, LoadError::Connect { source, .. }
        if source.kind() == io::ErrorKind::ConnectionRefused);
    if refused {
        anyhow::anyhow!("{} (is `vprobe serve` running there?)", with_causes(&e))
    } else {
        e.into()
    }
}

fn progress_bar(planned: Duration) -> ProgressBar {
    let p = ProgressBar::with_draw_target(
        Some(planned.as_millis() as u64),
        ProgressDrawTarget::stderr_with_hz(5),
    );
    p.set_style(
        ProgressStyle::with_template("[{bar:30}] {msg}")
            .expect("constant template")
            .progress_chars("=> "),
    );
    p
}

fn update(p: &ProgressBar, h: &RrHandle, started: Instant, planned: Duration) {
    let s: RrSnapshot = h.snapshot();
    let elapsed = started.elapsed().min(planned);
    p.set_position(elapsed.as_millis() as u64);
    let mut msg = format!(
        "{:.1}s/{:.1}s  {:.0} tx/s",
        elapsed.as_secs_f64(),
        planned.as_secs_f64(),
        s.rate
    );
    match s.phase {
        tcp_rr::RrPhase::WarmingUp => msg.push_str("  (warm-up)"),
        _ => {
            msg.push_str(&format!("  {} tx", s.transactions));
            for t in &s.thresholds {
                let at = vprobe_time::duration::format(Duration::from_micros(t.at_us));
                msg.push_str(&format!("  ≥{at}: {}", t.count));
            }
        }
    }
    if s.errors > 0 {
        msg.push_str(&format!("  {} stream error(s)", s.errors));
    }
    p.set_message(msg);
}
