//! The reliability suite, beside the tests: the crash bank
//! (`gateway/benches/crash.rs`), run in the dev profile so it reuses the
//! test build instead of compiling a release gateway.

use crate::{cargo, run};

pub fn crash_bank() -> anyhow::Result<()> {
    run(cargo().args([
        "bench",
        "-p",
        "chainpay-gateway",
        "--bench",
        "crash",
        "--profile",
        "dev",
    ]))
}
