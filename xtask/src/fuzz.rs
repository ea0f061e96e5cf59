//! The fuzz run: every libFuzzer target in `fuzz/` (cargo fuzz, installed
//! at a pinned version under `~/.cache/chainpay/` when missing, so a
//! cargo-fuzz of your own is left alone and a fresh clone on the same
//! machine does not build it again) for a fixed number of iterations, starting
//! from the committed corpus in `fuzz/corpus/<target>/`. New inputs
//! libFuzzer finds go to `target/fuzz-corpus/<target>/`, so a run never
//! changes the repository; a failing input is kept in
//! `fuzz/artifacts/<target>/` and fails the run. libFuzzer itself is C++,
//! built by `libfuzzer-sys` with the machine's C++ compiler.
//!
//! Sanitizer `none`: the fuzzed code is safe Rust (no `unsafe` in core), so
//! AddressSanitizer would find nothing the Rust runtime does not, and
//! without it every flag cargo fuzz passes is stable — no nightly needed.

use std::process::Command;

use anyhow::Context;

use crate::{cargo, root, run, tool_dir};

const CARGO_FUZZ: &str = "0.13.1";

/// Each target and its iterations: 10–40 s each on the 2-core machine
/// (phone parsing is the slowest code fuzzed, JSON rejection the fastest).
const TARGETS: [(&str, u32); 4] = [
    ("ussd_sessions", 300_000),
    ("daraja_callbacks", 2_000_000),
    ("at_forms", 300_000),
    ("typed_values", 60_000),
];

pub fn run_all() -> anyhow::Result<()> {
    let tools = tool_dir(&format!("cargo-fuzz-{CARGO_FUZZ}"));
    let cargo_fuzz = tools.join("bin/cargo-fuzz");
    let installed = Command::new(&cargo_fuzz)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ)
        });
    if !installed {
        run(cargo()
            .args([
                "install",
                "--locked",
                "cargo-fuzz",
                "--version",
                CARGO_FUZZ,
                "--root",
            ])
            .arg(&tools))?;
    }
    let iterations = match std::env::var("FUZZ_RUNS") {
        Ok(n) => Some(
            n.parse::<u32>()
                .context("FUZZ_RUNS must be a whole number")?,
        ),
        Err(_) => None,
    };
    for (target, runs) in TARGETS {
        let found = root().join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&found)?;
        let seeds = root().join("fuzz/corpus").join(target);
        run(Command::new(&cargo_fuzz)
            .current_dir(root().join("fuzz"))
            .args(["fuzz", "run", "--sanitizer", "none", target])
            .arg(&found)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-runs={}", iterations.unwrap_or(runs)))
            .arg("-max_len=4096")
            .arg("-print_final_stats=1"))?;
    }
    Ok(())
}
