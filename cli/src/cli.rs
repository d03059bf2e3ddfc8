//! The command line. The doc comments are the `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vprobe_engine::probes::MechanismKind;
use vprobe_lab::LabSpec;
use vprobe_load::tcp_rr::RrOptions;

/// Diagnose packet loss and latency in Linux network virtualization: precompiled
/// eBPF attach points driven by Rhai scripts.
#[derive(Debug, Parser)]
#[command(
    name = "vprobe",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Run a one-line script instead of a file.
    #[arg(short = 'e', long = "expr", value_name = "SCRIPT")]
    pub expr: Option<String>,

    /// Options for `-e`.
    #[command(flatten)]
    pub run: RunArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a script until --duration, exit() in the script, Ctrl-C or SIGTERM.
    Run {
        /// The script (.rhai).
        script: PathBuf,
        /// Run options.
        #[command(flatten)]
        run: RunArgs,
    },
    /// Validate a script (syntax, probes, fields, filter types) without root and without attaching.
    Check {
        /// The script (.rhai).
        script: PathBuf,
        /// Script parameters, as for `run`.
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
    },
    /// List attach points, their fields, and whether this kernel supports them.
    List {
        /// Only attach points whose name contains this; a generic name
        /// (tracepoint:net:net_dev_queue, kprobe:FUNC) lists that one with its fields.
        pattern: Option<String>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Interactive session: attach probes, watch counts, refine filters, detach, all without
    /// restarting (also `vprobe` alone on a terminal).
    Repl {
        /// A script to run into the session first.
        script: Option<PathBuf>,
        /// Script parameter (repeatable); read in scripts with param("key", default).
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Do not use this attach mechanism; the next one is tried.
        #[arg(long = "disable-mechanism", value_enum, value_name = "KIND")]
        disable: Vec<MechanismKind>,
        /// Let lines do more than observe: `exec` runs external commands.
        #[arg(long, value_enum, value_name = "WHAT")]
        allow: Vec<Allow>,
    },
    /// Report the kernel's capabilities: BTF, tp_btf, fentry, kprobes, ring buffer, privileges.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build, list and take down disposable labs: network namespaces owned by a vprobe process.
    #[command(after_help = crate::commands::lab::knobs_help())]
    Lab {
        /// What to do.
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Answer `vprobe rr` clients (what netserver is to netperf) until Ctrl-C or SIGTERM.
    ///
    /// One thread per connection; each request is answered with a response of
    /// the size the client asked for. Needs no privileges.
    Serve {
        /// Address to listen on (port 0: any free port; the one chosen is printed).
        #[arg(short, long, value_name = "ADDR:PORT", default_value = DEFAULT_BIND)]
        bind: SocketAddr,
    },
    /// Measure TCP request/response rate and latency against `vprobe serve`,
    /// with netperf TCP_RR semantics.
    ///
    /// Each stream is one TCP connection (TCP_NODELAY) doing synchronous
    /// transactions: send the request, read the whole response, repeat. Every
    /// transaction's latency is recorded. Ends after --duration, or on Ctrl-C or
    /// SIGTERM with the result so far. Exits 1 if a stream failed during the run,
    /// 2 if it could not start (e.g. nothing listens).
    Rr(RrArgs),
}

/// `vprobe lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build a lab and hold it until Ctrl-C, SIGTERM or `vprobe lab down`.
    #[command(after_help = crate::commands::lab::knobs_help())]
    Up {
        /// TOPOLOGY[:knob=value,…], e.g. `macvtap`, `macvtap:qlen=64`, `bridge`, `veth`.
        #[arg(value_name = "TOPOLOGY[:KNOBS]", value_parser = parse_lab)]
        spec: LabSpec,
        /// Name of the lab (default: its topology); letters, digits, `-` and `_`.
        #[arg(long)]
        name: Option<String>,
        /// Return once the lab is up, leaving a holder process in the background.
        #[arg(long)]
        detach: bool,
        /// (internal) the holder of `--detach`: say READY on stdout, then close it.
        #[arg(long, hide = true)]
        notify_ready: bool,
    },
    /// Take a lab down: stop its holder process (SIGTERM) and wait for it.
    Down {
        /// The lab (default: the only one up).
        name: Option<String>,
        /// Every lab that is up.
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
    /// List the labs that are up; forget those whose holder is gone.
    Status {
        /// Print a JSON array of the labs' state.
        #[arg(long)]
        json: bool,
    },
}

/// `vprobe serve`'s default address: every IPv4 address, netperf's port + 1.
pub const DEFAULT_BIND: &str = "0.0.0.0:12866";

/// Options of `vprobe rr`.
#[derive(Debug, Args)]
pub struct RrArgs {
    /// The server: HOST, HOST:PORT, [IPV6]:PORT (default port 12866).
    #[arg(value_name = "HOST[:PORT]")]
    pub server: String,

    /// Streams, sizes, duration, thresholds: the load crate's options, one
    /// flag each.
    #[command(flatten)]
    pub options: RrOptions,

    /// Output format: text (with a progress bar on a terminal) or one JSON line.
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned tables and histograms.
    #[default]
    Text,
    /// JSON Lines, one object per line with a `type`.
    Json,
}

/// Options of a run.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Stop after this long: 500ms, 12s, 2m.
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = vprobe_time::duration::parse)]
    pub duration: Option<std::time::Duration>,

    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Script parameter (repeatable); read in scripts with param("key", default).
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// Do not use this attach mechanism; the next one is tried.
    #[arg(long = "disable-mechanism", value_enum, value_name = "KIND")]
    pub disable: Vec<MechanismKind>,

    /// Let the script do more than observe: `exec` runs external commands.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub allow: Vec<Allow>,

    /// Build a lab for the run and take it down after: TOPOLOGY[:knob=value,…]
    /// (`vprobe lab --help` lists topologies and knobs).
    #[arg(long, value_name = "TOPOLOGY[:KNOBS]", value_parser = parse_lab)]
    pub lab: Option<LabSpec>,

    /// After the run, draw the latency histogram of its tcp_rr workload (log-scale
    /// counts) above a timeline of slow transactions and of the script's
    /// `timeline` report (e.g. drops) into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Also write the packet of every event of the script's attach points that
    /// can capture (skb.drop, macvtap.drop, tun.drop, tcp.retransmit, dev.rx,
    /// dev.queue, sock.rcvqueue_full), with the same filters, to this pcapng
    /// file: the drop reason, location and ring state in each packet's comment.
    #[arg(long, value_name = "FILE.pcapng")]
    pub capture: Option<PathBuf>,

    /// Bytes kept of each captured packet (--capture), from its link header.
    #[arg(long, value_name = "BYTES", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=2048))]
    pub snaplen: u32,
}

/// What a script may do beyond observing (`--allow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Allow {
    /// Run external commands with `exec(..)`.
    Exec,
}

fn parse_lab(s: &str) -> Result<LabSpec, String> {
    LabSpec::parse(s).map_err(|e| e.to_string())
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}
