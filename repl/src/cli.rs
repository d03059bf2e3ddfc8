//! The command line. The doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
        /// Only attach points whose name contains this.
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
        /// Do not use this attach mechanism (tp_btf, tracepoint); the next one is tried.
        #[arg(long = "disable-mechanism", value_name = "KIND")]
        disable: Vec<String>,
    },
    /// Report the kernel's capabilities: BTF, tp_btf, fentry, kprobes, ring buffer, privileges.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
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
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,

    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Script parameter (repeatable); read in scripts with param("key", default).
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// Do not use this attach mechanism (tp_btf, tracepoint); the next one is tried.
    #[arg(long = "disable-mechanism", value_name = "KIND")]
    pub disable: Vec<String>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    vprobe_engine::duration::parse(s)
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}
