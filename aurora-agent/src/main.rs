//! `aurora`: parses the command line, sets up logging, dispatches. Nothing else lives here.
use std::io::IsTerminal;
use std::process::ExitCode;

use aurora_agent::cli::{self, Cli, Command, PolicyCommand, RulesCommand};
use aurora_agent::commands;
use clap::FromArgMatches as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

fn init_logging(verbose: u8) {
    // The NATS client logs every reconnect attempt at info: our sink reports outages itself.
    let default = match verbose {
        0 => "info,async_nats=warn",
        1 => "debug,async_nats=info",
        _ => "trace",
    };
    // `AURORA_LOG` takes `target=level` directives (`Targets`, not `EnvFilter`: EnvFilter's
    // span/field matchers pull in regex's full-DFA builder, which then also compiled every
    // rule's wildcard regex into a dense DFA — half of rule loading).
    let given = std::env::var("AURORA_LOG").ok();
    let (filter, bad): (Targets, _) = match given.as_deref().map(str::parse::<Targets>) {
        Some(Ok(t)) => (t, None),
        other => (
            default.parse().unwrap_or_default(),
            other.and_then(Result::err),
        ),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .init();
    if let (Some(spec), Some(e)) = (given, bad) {
        tracing::warn!("AURORA_LOG={spec:?} ignored ({e}); using {default:?}");
    }
}

fn main() -> ExitCode {
    // Parsed from `cli::command()`, the definition that shows each flag's default in --help.
    let cli = match cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let verbose = match &cli.command {
        Some(Command::Record(a)) => a.global.verbose,
        Some(Command::Replay(a)) => a.global.verbose,
        Some(Command::Consume(a)) => a.global.verbose,
        Some(Command::Isolate(a)) => a.global.verbose,
        Some(Command::Unisolate(a)) => a.global.verbose,
        Some(Command::LoadSensors { verbose }) => *verbose,
        Some(Command::Fleet { command }) => command.verbose(),
        _ => cli.run.global.verbose,
    };
    init_logging(verbose);
    let result = match cli.command {
        Some(Command::Record(args)) => commands::record::run(*args).map(|()| ExitCode::SUCCESS),
        Some(Command::Rules {
            command: RulesCommand::Check(args),
        }) => commands::rules_check::run(args).map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Some(Command::Replay(args)) => commands::replay::run(*args).map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Some(Command::Consume(args)) => commands::consume::run(*args).map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Some(Command::Policy {
            command: PolicyCommand::Check { files },
        }) => commands::respond::policy_check(&files).map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Some(Command::Isolate(args)) => {
            commands::respond::isolate(&args).map(|()| ExitCode::SUCCESS)
        }
        Some(Command::Unisolate(args)) => {
            commands::respond::unisolate(&args).map(|()| ExitCode::SUCCESS)
        }
        Some(Command::Console(args)) => commands::console::run(*args).map(|()| ExitCode::SUCCESS),
        Some(Command::Fleet { command }) => commands::fleet::run(command).map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Some(Command::LoadSensors { .. }) => {
            aurora_agent::sources::ebpf::loader::serve().map(|()| ExitCode::SUCCESS)
        }
        Some(Command::GenerateAssets { dir }) => {
            commands::assets::run(&dir).map(|()| ExitCode::SUCCESS)
        }
        None => commands::run::run(cli.run).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        // `aurora rules check | head`: a closed pipe is the reader's choice, not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("aurora: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
