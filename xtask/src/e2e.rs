//! The whole test suite: every Rust test, then the console's browser tests
//! (`console/e2e/run.mjs`, playwright-core driving Debian's headless
//! Chromium) against a real `chainpay serve` on its own embedded database.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{cargo, root, run};

const CHROMIUM: &str = "/usr/bin/chromium";

pub fn test_all() -> anyhow::Result<()> {
    // The scaling tests run a gateway through PgBouncer.
    ensure_debian_package("/usr/sbin/pgbouncer", "pgbouncer")?;
    stage("Rust tests (cargo test --workspace)");
    run(cargo().args(["test", "--workspace"]))?;
    stage("browser tests");
    browser_tests()?;
    stage("schema check");
    crate::schema::check()?;
    stage("fuzz targets");
    crate::fuzz::run_all()?;
    stage("crash bank");
    crate::reliability::crash_bank()?;
    stage("done");
    Ok(())
}

/// Announces a stage of the suite with the time of day (UTC), so a log
/// shows where a run's time went.
fn stage(name: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m, s) = (now / 3600 % 24, now / 60 % 60, now % 60);
    println!("\n== {name} ({h:02}:{m:02}:{s:02})");
}

pub fn browser_tests() -> anyhow::Result<()> {
    ensure_chromium()?;
    let e2e = root().join("console/e2e");
    if !e2e.join("node_modules/playwright-core").exists() {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&e2e))?;
    }
    with_gateway("e2e", |base, data_dir| {
        let screenshots = root().join("target/console-screenshots");
        run(Command::new("node")
            .arg("run.mjs")
            .current_dir(&e2e)
            .env("BASE_URL", base)
            .env("CHAINPAY_BIN", root().join("target/debug/chainpay"))
            .env("CHAINPAY_DATA_DIR", data_dir)
            .env("CHROMIUM", CHROMIUM)
            .env("MPESA_CALLBACK_TOKEN", CALLBACK_TOKEN)
            .env("SCREENSHOTS", &screenshots))
    })
}

/// The token in Daraja's callback URLs, known to the browser tests so they
/// can post a result as Daraja does.
const CALLBACK_TOKEN: &str = "e2e-daraja-callback-token-0123456789abcdef";

/// Builds the gateway, runs `chainpay serve` with demo data on its own
/// embedded database (rate limits off) and calls `task` with its base URL
/// and data directory; stops it and removes the data afterwards.
pub fn with_gateway(
    name: &str,
    task: impl FnOnce(&str, &Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    run(cargo().args(["build", "-p", "chainpay-gateway", "--bin", "chainpay"]))?;
    let data_dir = std::env::temp_dir().join(format!("chainpay-{name}-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(root().join("target/debug/chainpay"))
        .arg("serve")
        .env("CHAINPAY_DATA_DIR", &data_dir)
        .env("CHAINPAY_ADDR", format!("127.0.0.1:{port}"))
        .env("CHAINPAY_AUTH_RATE_LIMIT", "0")
        .env("CHAINPAY_RATE_LIMIT", "0")
        .env("MPESA_CALLBACK_TOKEN", CALLBACK_TOKEN)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .spawn()
        .context("starting chainpay serve")?;
    let outcome = wait_ready(&base, &mut server).and_then(|()| task(&base, &data_dir));
    stop(&mut server);
    let _ = std::fs::remove_dir_all(&data_dir);
    outcome
}

/// Debian's Chromium, installed with apt when we may (as root, as CI runs).
fn ensure_chromium() -> anyhow::Result<()> {
    ensure_debian_package(CHROMIUM, "chromium")
}

/// Installs Debian's `package` when `binary` is missing (as root; anyone
/// else is told the command).
fn ensure_debian_package(binary: &str, package: &str) -> anyhow::Result<()> {
    if Path::new(binary).exists() {
        return Ok(());
    }
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    anyhow::ensure!(
        root_user,
        "the tests need Debian's {package}: `sudo apt-get install {package}`"
    );
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Polls `/readyz` (with a deadline) while checking the server is alive.
fn wait_ready(base: &str, server: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let address = base.trim_start_matches("http://").to_owned();
    while Instant::now() < deadline {
        if let Some(status) = server.try_wait()? {
            anyhow::bail!("chainpay serve exited early with {status}");
        }
        if ready(&address) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!("chainpay serve did not become ready at {base}")
}

/// A bare HTTP/1.1 GET of `/readyz` (no HTTP client needed for one probe).
fn ready(address: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

fn stop(server: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
}
