//! `vprobe`: the command line and the REPL around vprobe-engine.

mod cli;
mod commands;
mod repl;
mod signals;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use vprobe_engine::message::with_causes;

use cli::{Cli, Command, LabCommand, ScriptsCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "vprobe: {}", with_causes(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match (cli.command, cli.expr) {
        (Some(Command::Run { script, help, run }), _) => match (script, help) {
            (Some(script), true) => commands::scripts::show(&script, cli::Format::Text, true),
            (None, _) => {
                use clap::CommandFactory;
                let mut cmd = Cli::command();
                if let Some(run) = cmd.find_subcommand_mut("run") {
                    run.print_long_help()?;
                }
                Ok(ExitCode::SUCCESS)
            }
            (Some(script), false) => commands::run::file(&script, run),
        },
        (None, Some(expr)) => commands::run::expr(&expr, cli.run),
        (
            Some(Command::Check {
                script,
                params,
                format,
            }),
            _,
        ) => commands::check::run(&script, params, format),
        (Some(Command::Scripts { command, format }), _) => match command {
            None => commands::scripts::list(format),
            Some(ScriptsCommand::Show { script, format }) => {
                commands::scripts::show(&script, format, false)
            }
        },
        (
            Some(Command::Test {
                targets,
                filter,
                strict,
            }),
            _,
        ) => commands::test::run(&targets, filter.as_deref(), strict),
        (Some(Command::List { pattern, json }), _) => commands::list::run(pattern.as_deref(), json),
        (Some(Command::Doctor { json }), _) => commands::doctor::run(json),
        (Some(Command::Lab { command }), _) => match command {
            LabCommand::Up {
                spec,
                name,
                detach,
                notify_ready,
            } => commands::lab::up(&spec, name, detach, notify_ready),
            LabCommand::Down { name, all } => commands::lab::down(name.as_deref(), all),
            LabCommand::Status { json } => commands::lab::status(json),
        },
        (Some(Command::Serve { bind }), _) => commands::serve::run(bind),
        (Some(Command::Rr(args)), _) => commands::rr::run(args),
        (
            Some(Command::Repl {
                script,
                params,
                disable,
                allow,
            }),
            _,
        ) => repl::run(repl::ReplOptions {
            script,
            params,
            disable,
            allow_exec: allow.contains(&cli::Allow::Exec),
        }),
        // on a terminal, no arguments: the interactive session
        (None, None) if repl::on_terminal() => repl::run(repl::ReplOptions {
            script: None,
            params: Vec::new(),
            disable: Vec::new(),
            allow_exec: false,
        }),
        (None, None) => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(ExitCode::from(2))
        }
    }
}

/// A closed stdout (`vprobe … | head`) is a normal end.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<vprobe_engine::Error>()
                .is_some_and(vprobe_engine::run::is_broken_pipe)
    })
}
