//! The reliability suite, beside the tests: the crash bank
//! (`gateway/benches/crash.rs`) and the soak (`gateway/benches/soak.rs`),
//! run in the dev profile so they reuse the test build instead of
//! compiling a release gateway.

use crate::{cargo, run};

pub fn crash_bank() -> anyhow::Result<()> {
    bench("crash")
}

pub fn soak() -> anyhow::Result<()> {
    bench("soak")
}

fn bench(name: &str) -> anyhow::Result<()> {
    run(cargo().args([
        "bench",
        "-p",
        "chainpay-gateway",
        "--bench",
        name,
        "--profile",
        "dev",
    ]))
}
