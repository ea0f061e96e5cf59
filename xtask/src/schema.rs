//! The schema check: schemathesis (from PyPI, pinned, in a venv under
//! `target/`) runs every check against the served OpenAPI document of a
//! real `chainpay serve`, signed in once as the demo customer and once as
//! the demo admin, and fails on any failure. Its settings, the values of
//! ChainPay's own formats and the driver live in `xtask/schemathesis/`.

use std::process::Command;

use crate::e2e::with_gateway;
use crate::{root, run};

const SCHEMATHESIS: &str = "schemathesis==4.32.5";

pub fn check() -> anyhow::Result<()> {
    let venv = root().join("target/schemathesis-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let installed = Command::new(&python)
        .args([
            "-c",
            "import schemathesis, sys; sys.exit(schemathesis.__version__ != '4.32.5')",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        run(Command::new(&python).args(["-m", "pip", "install", "-q", SCHEMATHESIS]))?;
    }
    with_gateway("schema", |base, _| {
        run(Command::new(&python)
            .arg(root().join("xtask/schemathesis/run.py"))
            .arg(base)
            .arg(venv.join("bin/schemathesis")))
    })
}
