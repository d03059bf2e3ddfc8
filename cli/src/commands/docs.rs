//! `vprobe completions SHELL` and `vprobe man`: both generated from the clap
//! definition, so they cannot drift from the real flags.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_mangen::roff::{roman, Roff};
use clap_mangen::Man;

use crate::cli::Cli;
use crate::exit::Status;
use crate::say;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    // rendered into memory first: the generators panic on a write error
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "vprobe", &mut script);
    let mut out = say::data(None)?;
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page, or writes one page per command into `dir`.
pub fn man(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    match dir {
        None => {
            let page = page(&cmd, true)?;
            let mut out = say::data(None)?;
            out.write_all(&page)?;
            out.flush()?;
        }
        Some(dir) => write_pages(&cmd, "", dir)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `vprobe.1`, then `vprobe-run.1`, `vprobe-lab-up.1`, … (visible commands only).
fn write_pages(cmd: &clap::Command, prefix: &str, dir: &Path) -> anyhow::Result<()> {
    let name = format!("{prefix}{}", cmd.get_name());
    let mut named = cmd.clone().display_name(name.clone());
    named.build();
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page(&named, prefix.is_empty())?)
        .map_err(|e| crate::exit::usage(format!("cannot write {}: {e}", path.display())))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, &format!("{name}-"), dir)?;
    }
    Ok(())
}

/// One page: clap_mangen's sections, with EXIT STATUS in place of the
/// `--help` epilogue on the main page.
fn page(cmd: &clap::Command, main: bool) -> anyhow::Result<Vec<u8>> {
    let man = Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    if main {
        let mut roff = Roff::new();
        roff.control("SH", ["EXIT STATUS"]);
        for (code, what) in Status::MEANINGS {
            roff.control("TP", []).text([roman(*code)]);
            roff.text([roman(*what)]);
        }
        roff.control("SH", ["SEE ALSO"]);
        roff.text([roman(
            "The README of the vprobe repository: the tour, the script API, the seed case, labs.",
        )]);
        roff.to_writer(&mut out)?;
    } else if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        man.render_extra_section(&mut out)?;
    }
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(ascii_roff(&String::from_utf8_lossy(&out)).into_bytes())
}

/// Non-ASCII characters (`→`, `…`, `µ`) as roff's `\[uXXXX]` escapes:
/// man's troff warns about raw ones and may print them wrong.
fn ascii_roff(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    out
}
