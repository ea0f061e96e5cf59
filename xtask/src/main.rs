//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `console` builds the operators' console from source — installing the
//!   `wasm32-unknown-unknown` target and `wasm-bindgen-cli` at exactly the
//!   version in `Cargo.lock` when missing — into `console/dist/`, which is
//!   committed and embedded by the gateway; it writes `console/dist/STAMP`,
//!   a hash of everything the bundle is built from.
//! - `console --check` fails when `STAMP` does not match the sources, i.e.
//!   the committed bundle is stale.
//! - `test` runs the whole test suite: every Rust test, then the console's
//!   browser tests in headless Chromium against a real gateway, then the
//!   schema check, then the fuzz targets, then the crash bank (see
//!   `reliability.rs`).
//! - `crash` runs only the crash bank (`CRASH_SECONDS`, default 60).
//! - `soak` runs the soak, a mixed load watched for growth
//!   (`SOAK_SECONDS`, default 600); not part of `test`.
//! - `schema` runs only the schema check (schemathesis; see `schema.rs`).
//! - `fuzz` runs only the fuzz targets (cargo fuzz; see `fuzz.rs`;
//!   `FUZZ_RUNS` overrides each target's iterations).

mod bundle;
mod e2e;
mod fuzz;
mod reliability;
mod schema;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["console"] => bundle::build(),
        ["console", "--check"] => bundle::check(),
        ["test"] => e2e::test_all(),
        ["e2e"] => e2e::browser_tests(),
        ["crash"] => reliability::crash_bank(),
        ["schema"] => schema::check(),
        ["fuzz"] => fuzz::run_all(),
        ["soak"] => reliability::soak(),
        _ => {
            eprintln!(
                "usage: cargo xtask console [--check] | test | e2e | crash | schema | fuzz | soak"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Where a pinned tool the tasks install is kept: `~/.cache/chainpay/<name>`,
/// so every clone on a machine shares one build of it (under `target/`
/// when there is no home).
fn tool_dir(name: &str) -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/chainpay").join(name),
        None => root().join("target").join(name),
    }
}

/// `cargo`, as the one running this task.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs `command`, failing with its name when it fails.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command.status()?;
    anyhow::ensure!(status.success(), "{command:?} failed with {status}");
    Ok(())
}
