//! `vprobe serve`: the TCP_RR server on its own, like netperf's netserver.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use vprobe_load::tcp_rr::serve;

use crate::signals::Stop;

/// Serves until SIGINT or SIGTERM, then closes every connection and exits 0.
pub fn run(bind: SocketAddr) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stats = runtime.block_on(async {
        // Before listening, so a signal right after the "listening" line is ours.
        let mut stop = Stop::install()?;
        let server = serve(bind, None)?;
        let mut out = io::stdout().lock();
        writeln!(
            out,
            "vprobe serve: listening on {} (Ctrl-C to end)",
            server.local_addr()
        )?;
        out.flush()?;
        drop(out);
        stop.recv().await;
        anyhow::Ok(server.join())
    })?;
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    writeln!(
        io::stdout(),
        "served {} connection{}, {} transaction{}{}",
        stats.connections,
        plural(stats.connections),
        stats.transactions,
        plural(stats.transactions),
        if stats.errors > 0 {
            format!(
                ", {} connection error{}",
                stats.errors,
                plural(stats.errors)
            )
        } else {
            String::new()
        }
    )?;
    Ok(ExitCode::SUCCESS)
}
