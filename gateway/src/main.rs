use std::process::ExitCode;

use chainpay_gateway::cli::{self, Cli, Command};
use chainpay_gateway::config::Settings;
use chainpay_gateway::telemetry;
use clap::Parser;

/// mimalloc rather than the system allocator: the gateway allocates per
/// request, per row and per SMS, and glibc's malloc cost it about a sixth of
/// its CPU under load (measured with `perf` during the transfers bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("chainpay: configuration error: {error:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    let ran = match cli.command {
        Command::Serve { demo } => chainpay_gateway::http::server::run(settings, demo).await,
        _ => cli::run(cli, settings).await,
    };
    match ran {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("chainpay: {error:#}");
            ExitCode::FAILURE
        }
    }
}
