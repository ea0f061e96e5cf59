//! The fuzz run: every libFuzzer target in `fuzz/` (cargo fuzz, installed
//! at a pinned version when missing) for a fixed number of iterations,
//! starting from the committed corpus in `fuzz/corpus/<target>/`. New
//! inputs libFuzzer finds go to `target/fuzz-corpus/<target>/`, so a run
//! never changes the repository; a failing input is kept in
//! `fuzz/artifacts/<target>/` and fails the run.
//!
//! Sanitizer `none`: the fuzzed code is safe Rust (no `unsafe` in core), so
//! AddressSanitizer would find nothing the Rust runtime does not, and
//! without it every flag cargo fuzz passes is stable — no nightly needed.

use crate::{cargo, root, run};

const CARGO_FUZZ: &str = "0.13.1";

/// Each target and its iterations: 10–30 s each on the 2-core machine
/// (phone parsing is the slowest code fuzzed, JSON rejection the fastest).
const TARGETS: [(&str, u32); 4] = [
    ("ussd_sessions", 300_000),
    ("daraja_callbacks", 2_000_000),
    ("at_forms", 300_000),
    ("typed_values", 60_000),
];

pub fn run_all() -> anyhow::Result<()> {
    let installed = cargo().args(["fuzz", "--version"]).output().is_ok_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ)
    });
    if !installed {
        run(cargo().args(["install", "--locked", "cargo-fuzz", "--version", CARGO_FUZZ]))?;
    }
    let iterations: Option<u32> = std::env::var("FUZZ_RUNS").ok().and_then(|n| n.parse().ok());
    for (target, runs) in TARGETS {
        let found = root().join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&found)?;
        let seeds = root().join("fuzz/corpus").join(target);
        run(cargo()
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
