//! The schema check: schemathesis (from PyPI, pinned, in a venv under
//! `~/.cache/chainpay/`, shared by the clones on a machine) runs every check against the served OpenAPI document of a
//! real `chainpay serve`, signed in once as the demo customer and once as
//! the demo admin, and fails on any failure. Its settings, the values of
//! ChainPay's own formats and the driver live in `xtask/schemathesis/`.

use std::process::Command;

use crate::e2e::with_gateway;
use crate::{root, run, tool_dir};

const SCHEMATHESIS_VERSION: &str = "4.32.5";

pub fn check() -> anyhow::Result<()> {
    let venv = tool_dir(&format!("schemathesis-{SCHEMATHESIS_VERSION}"));
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let installed = Command::new(&python)
        .args([
            "-c",
            &format!("import schemathesis, sys; sys.exit(schemathesis.__version__ != '{SCHEMATHESIS_VERSION}')"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        run(Command::new(&python)
            .args(["-m", "pip", "install", "-q"])
            .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}")))?;
    }
    with_gateway("schema", |base, _| {
        run(Command::new(&python)
            .arg(root().join("xtask/schemathesis/run.py"))
            .arg(base)
            .arg(venv.join("bin/schemathesis")))
    })
}
