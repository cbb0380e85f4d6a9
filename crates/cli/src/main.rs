//! `tributary`: the command-line entry point. Thin: parse flags, load the project, call the
//! library crates, print, and map outcomes to exit codes (0 ok, 1 a task failed, 2 invalid
//! configuration or usage).

mod alerting;
mod args;
mod commands;
mod models;
mod output;
mod progress;
mod project;
mod serve;
mod signals;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, Command, LogFormat};

fn init_logging(format: LogFormat, verbose: u8) {
    // In text mode a failed table is reported once, in the run summary; JSON logs carry the
    // `tributary::load` error events instead.
    const OURS_INFO: &str = "warn,tributary=info,tributary_core=info,tributary_connectors=info,tributary_lake=info,tributary_orchestrator=info,tributary_ingest=info,tributary_server=info,tributary_alerts=info";
    let default = match (format, verbose) {
        (_, 0) if format == LogFormat::Json => OURS_INFO,
        (_, 0) => "warn,tributary::load=off",
        (_, 1) => OURS_INFO,
        _ => "debug",
    };
    let filter = std::env::var("TRIBUTARY_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server's log is its only output: `serve` logs what it does (fires, runs) by default.
    let verbose = match cli.command {
        Command::Serve { .. } => cli.verbose.max(1),
        _ => cli.verbose,
    };
    init_logging(cli.log_format, verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let progress = cli.log_format == LogFormat::Text;
    let result = runtime.block_on(commands::dispatch(
        cli.command,
        project::ProjectRef {
            dir: cli.project,
            target: cli.target.filter(|t| !t.is_empty()),
        },
        progress,
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.error);
            for cause in f.error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(f.code)
        }
    }
}
