//! `vprobe`: the command line and the REPL around vprobe-engine.

mod cli;
mod commands;
mod exit;
mod repl;
mod say;
mod signals;

use std::process::ExitCode;

use clap::Parser;
use vprobe_engine::message::with_causes;
use vprobe_engine::output::Verbosity;

use cli::{Cli, Command, LabCommand, ScriptsCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    say::set_verbosity(match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    });
    match run(cli) {
        Ok(code) => code,
        // a closed stdout (`vprobe … | head`) is a normal end
        Err(e) if exit::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            say::warn(with_causes(e.as_ref()));
            exit::status_of(&e).into()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // -q and -v go anywhere; -e and the run options only without a subcommand
    if cli.command.is_some() && (cli.expr.is_some() || cli.run.any_given()) {
        return Err(exit::usage(
            "-e SCRIPT and the run options before a subcommand go without one: `vprobe -e SCRIPT -d 5s`, or `vprobe run FILE -d 5s`",
        ));
    }
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
        (Some(Command::List { pattern, output }), _) => {
            commands::list::run(pattern.as_deref(), &output)
        }
        (Some(Command::Doctor { output }), _) => commands::doctor::run(&output),
        (Some(Command::Lab { command }), _) => match command {
            LabCommand::Up {
                spec,
                name,
                detach,
                notify_ready,
            } => commands::lab::up(&spec, name, detach, notify_ready),
            LabCommand::Down { name, all } => commands::lab::down(name.as_deref(), all),
            LabCommand::Status { output } => commands::lab::status(&output),
        },
        (Some(Command::Serve { bind }), _) => commands::serve::run(bind),
        (Some(Command::Rr(args)), _) => commands::rr::run(args),
        (Some(Command::Completions { shell }), _) => commands::docs::completions(shell),
        (Some(Command::Man { dir }), _) => commands::docs::man(dir.as_deref()),
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
            let help = Cli::command().render_help();
            Err(exit::usage(format!(
                "nothing to do: name a subcommand or -e SCRIPT\n\n{help}"
            )))
        }
    }
}
