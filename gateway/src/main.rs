use std::process::ExitCode;

use chainpay_gateway::cli::{self, Cli, Command};
use chainpay_gateway::config::Settings;
use chainpay_gateway::telemetry;
use clap::Parser;

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
