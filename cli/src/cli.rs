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
    after_help = crate::exit::Status::help(),
)]
pub struct Cli {
    /// Say nothing but data and errors (no "attached …", no lab or workload notes).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more: why each preferred attach mechanism did not work here.
    #[arg(short, long, global = true)]
    pub verbose: bool,

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
    ///
    /// SCRIPT is a file (with a `/`, or an existing FILE.rhai) or a script's
    /// name, found in $VPROBE_PATH, the user's folder
    /// (~/.local/share/vprobe/scripts), the system's
    /// (/usr/share/vprobe/scripts) or among the built-in scripts: `vprobe
    /// scripts` lists them. `vprobe run SCRIPT --help` shows the script's
    /// parameters and what it needs.
    #[command(disable_help_flag = true)]
    Run {
        /// The script: a name (`macvtap_drops`) or a file (.rhai).
        #[arg(value_name = "SCRIPT", required_unless_present = "help")]
        script: Option<String>,
        /// Print help; with SCRIPT, the script's about text, parameters and attach points.
        #[arg(short = 'h', long = "help")]
        help: bool,
        /// Run options.
        #[command(flatten)]
        run: RunArgs,
    },
    /// Validate a script (header, syntax, probes, fields, filter types, names, parameters)
    /// without root and without attaching.
    Check {
        /// The script: a name or a file (.rhai), as for `run`.
        #[arg(value_name = "SCRIPT")]
        script: String,
        /// Script parameters, as for `run`.
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Output format: text (errors and warnings on stderr), or a JSON array of findings
        /// (file, line, column, severity, message, suggestion) on stdout.
        #[arg(short = 'f', long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List the scripts and modules vprobe can find: name, version, about, where
    /// each comes from and what it shadows.
    Scripts {
        /// What to do (default: list).
        #[command(subcommand)]
        command: Option<ScriptsCommand>,
        /// Output format.
        #[arg(short = 'f', long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run script tests: `.test` files of cases (NAME, RUN, EXPECT, AFTER, ...).
    ///
    /// Each TARGET is a .test file, a folder (every .test file under it), or a
    /// script's name or file (its tests/NAME.test). Exits 1 when a case fails.
    Test {
        /// Test files, folders, or scripts.
        #[arg(value_name = "TARGET", required = true)]
        targets: Vec<String>,
        /// Only the cases whose name contains this.
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        /// A case that needs root fails, instead of being skipped, when not run as root.
        #[arg(long)]
        strict: bool,
    },
    /// List attach points, their fields, and whether this kernel supports them.
    List {
        /// Only attach points whose name contains this, or matches it as a glob
        /// (`skb.*`); a generic name (tracepoint:net:net_dev_queue, kprobe:FUNC)
        /// lists that one with its fields, and a glob over one
        /// (`tracepoint:net:*`, `kprobe:tcp_*`) every tracepoint or kernel
        /// function it matches.
        pattern: Option<String>,
        /// Output format (text, or a JSON array) and file.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Interactive session: attach probes, watch counts, refine filters, detach, all without
    /// restarting (also `vprobe` alone on a terminal).
    Repl {
        /// A script to run into the session first: a name or a file, as for `run`.
        #[arg(value_name = "SCRIPT")]
        script: Option<String>,
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
        /// Output format and file.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Build, list and take down disposable labs: network namespaces owned by a vprobe process.
    #[command(after_help = vprobe_lab::knobs_help())]
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
    /// 5 if it could not start (e.g. nothing listens).
    Rr(RrArgs),
    /// Print a completion script for a shell: `vprobe completions bash >
    /// /etc/bash_completion.d/vprobe` (zsh: a `_vprobe` file in $fpath).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `vprobe man | man -l -`; with --dir, write
    /// vprobe.1 and one page per subcommand (vprobe-run.1, …) there.
    Man {
        /// Write the pages into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `vprobe scripts` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScriptsCommand {
    /// A script's about text, parameters (type, default, doc), what it requires,
    /// and the attach points it uses with whether this kernel has them.
    Show {
        /// The script: a name or a file.
        #[arg(value_name = "SCRIPT")]
        script: String,
        /// Output format.
        #[arg(short = 'f', long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// `vprobe lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build a lab and hold it until Ctrl-C, SIGTERM or `vprobe lab down`.
    #[command(after_help = vprobe_lab::knobs_help())]
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
        /// Output format (text, or a JSON array of the labs' state) and file.
        #[command(flatten)]
        output: OutputArgs,
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

    /// Output format (text with a progress bar on a terminal, or one JSON
    /// line) and file.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Where data goes and in what format; notes go to stderr.
#[derive(Debug, Args, Default, Clone)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// The same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// Write the data (what would go to stdout) to this file instead.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl OutputArgs {
    /// The format asked for, `--json` included.
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }
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

    /// Output format and file.
    #[command(flatten)]
    pub output: OutputArgs,

    /// Script parameter (repeatable); read in scripts with param("key", default).
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// Do not use this attach mechanism; the next one is tried.
    #[arg(long = "disable-mechanism", value_enum, value_name = "KIND")]
    pub disable: Vec<MechanismKind>,

    /// Nice value of the thread that hands events to on_event callbacks and
    /// capture files, while there are any: on a host whose CPUs are busy with
    /// many threads it keeps up (it only uses what the events need). 0 leaves
    /// it as it is; lowering it needs CAP_SYS_NICE.
    #[arg(long, value_name = "NICE", default_value_t = vprobe_engine::live::READER_NICE,
          allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub reader_nice: i32,

    /// Let the script do more than observe: `exec` runs external commands.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub allow: Vec<Allow>,

    /// Build a lab for the run and take it down after: TOPOLOGY[:knob=value,…]
    /// (`vprobe lab --help` lists topologies and knobs).
    #[arg(long, value_name = "TOPOLOGY[:KNOBS]", value_parser = parse_lab)]
    pub lab: Option<LabSpec>,

    /// Run a load beside the script (repeatable): `tcp_rr[:OPTION=VALUE,…]` with the
    /// options of tcp_rr(#{..}), e.g. `tcp_rr:streams=16,duration=5s`; in a lab it runs
    /// between the lab's guests. Without --duration the run ends with it.
    #[arg(long = "load", value_name = "WORKLOAD", value_parser = parse_load)]
    pub loads: Vec<vprobe_engine::plan::WorkloadSpec>,

    /// Serve the live aggregations at http://ADDR:PORT/metrics for Prometheus
    /// (text format or OpenMetrics) while the run lasts; port 0 picks a free
    /// port (the start line says which). Maps are read when scraped.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// Series each aggregation exports at most at --metrics; the first keys
    /// seen stay, the events of the others are counted in
    /// vprobe_series_overflow_total.
    #[arg(long, value_name = "N", requires = "metrics",
          default_value_t = vprobe_engine::metrics::DEFAULT_SERIES_LIMIT)]
    pub metrics_series_limit: usize,

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

impl RunArgs {
    /// Whether any option was given (they belong to `-e` or `run`).
    pub fn any_given(&self) -> bool {
        let o = &self.output;
        self.duration.is_some()
            || o.format != Format::Text
            || o.json
            || o.file.is_some()
            || !self.params.is_empty()
            || !self.disable.is_empty()
            || !self.allow.is_empty()
            || self.lab.is_some()
            || self.plot.is_some()
    }
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

fn parse_load(s: &str) -> Result<vprobe_engine::plan::WorkloadSpec, String> {
    vprobe_engine::script::load_spec(s).map_err(|e| e.why)
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}
