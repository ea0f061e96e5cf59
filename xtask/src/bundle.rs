//! Building the console bundle and its stamp.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use sha3::{Digest, Sha3_256};

use crate::{cargo, root, run};

const TARGET: &str = "wasm32-unknown-unknown";
/// The files of `console/dist`, each also stored `.br` and `.gz`.
const FILES: [&str; 5] = [
    "index.html",
    "boot.js",
    "style.css",
    "console.js",
    "console_bg.wasm",
];

fn dist() -> PathBuf {
    root().join("console/dist")
}

/// What the bundle is built from: the console, the core it reuses, the
/// lock file (every dependency's version) and the profile in the root manifest.
fn sources() -> anyhow::Result<Vec<PathBuf>> {
    let root = root();
    let mut files = vec![
        root.join("Cargo.lock"),
        root.join("Cargo.toml"),
        root.join("console/Cargo.toml"),
        root.join("core/Cargo.toml"),
    ];
    for dir in ["console/src", "console/static", "core/src"] {
        collect(&root.join(dir), &mut files)?;
    }
    files.sort();
    Ok(files)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// SHA3-256 over every source's path (relative) and bytes.
fn sources_hash() -> anyhow::Result<String> {
    let root = root();
    let mut hasher = Sha3_256::new();
    for file in sources()? {
        let relative = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        hasher.update(relative.as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(&file)?);
        hasher.update([0]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Fails when the committed bundle was built from other sources.
pub fn check() -> anyhow::Result<()> {
    let stamp = std::fs::read_to_string(dist().join("STAMP"))
        .context("console/dist/STAMP is missing: run `cargo xtask console`")?;
    let recorded = stamp
        .lines()
        .find_map(|l| l.strip_prefix("sources "))
        .unwrap_or_default();
    let current = sources_hash()?;
    anyhow::ensure!(
        recorded == current,
        "the committed console bundle is stale (built from {recorded}, sources are {current}): run `cargo xtask console` and commit console/dist"
    );
    println!(
        "console bundle is up to date with its sources ({})",
        &current[..16]
    );
    Ok(())
}

pub fn build() -> anyhow::Result<()> {
    ensure_target()?;
    let bindgen = ensure_wasm_bindgen()?;
    let root = root();
    // Paths of this machine are kept out of the wasm, so every checkout builds the same bundle.
    let home = std::env::var("CARGO_HOME")
        .or_else(|_| std::env::var("HOME").map(|h| format!("{h}/.cargo")))
        .unwrap_or_default();
    let remap = format!(
        "--remap-path-prefix={}=/chainpay --remap-path-prefix={home}=/cargo",
        root.display()
    );
    run(cargo()
        .args([
            "build",
            "-p",
            "chainpay-console",
            "--target",
            TARGET,
            "--profile",
            "wasm-release",
        ])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", remap))?;
    let wasm = root.join(format!(
        "target/{TARGET}/wasm-release/chainpay-console.wasm"
    ));
    let out = dist();
    std::fs::create_dir_all(&out)?;
    run(Command::new(bindgen)
        .args([
            "--target",
            "web",
            "--no-typescript",
            "--remove-name-section",
            "--remove-producers-section",
        ])
        .args(["--out-name", "console", "--out-dir"])
        .arg(&out)
        .arg(&wasm))?;
    optimise(&out.join("console_bg.wasm"));
    for file in ["index.html", "boot.js", "style.css"] {
        std::fs::copy(root.join("console/static").join(file), out.join(file))?;
    }
    compress_all(&out)?;
    let mut stamp = std::fs::File::create(out.join("STAMP"))?;
    writeln!(stamp, "sources {}", sources_hash()?)?;
    writeln!(stamp, "wasm-bindgen {}", locked_version("wasm-bindgen")?)?;
    report(&out)
}

/// `rustup target add wasm32-unknown-unknown` unless it is installed.
fn ensure_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    Ok(())
}

/// The version of `package` in Cargo.lock.
fn locked_version(package: &str) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))?;
    let marker = format!("name = \"{package}\"\nversion = \"");
    let start = lock
        .find(&marker)
        .with_context(|| format!("{package} is not in Cargo.lock"))?
        + marker.len();
    Ok(lock[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// A `wasm-bindgen` at exactly the locked version: the CLI and the library
/// must agree on their schema. Installed with cargo when missing (without
/// `--locked`: its own lock names a crate version the registry lacks).
fn ensure_wasm_bindgen() -> anyhow::Result<PathBuf> {
    let version = locked_version("wasm-bindgen")?;
    let found = Command::new("wasm-bindgen").arg("--version").output();
    if let Ok(output) = found {
        if String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .nth(1)
            == Some(version.as_str())
        {
            return Ok(PathBuf::from("wasm-bindgen"));
        }
    }
    println!("installing wasm-bindgen-cli {version} ...");
    run(cargo().args(["install", "wasm-bindgen-cli", "--version", &version]))?;
    Ok(PathBuf::from("wasm-bindgen"))
}

/// The oldest binaryen whose `wasm-opt` keeps wasm-bindgen's externref
/// table intact. Debian 12's binaryen 108 emits a module that fails in the
/// browser (`WebAssembly.Table.set(): Argument 1 is invalid for table`),
/// measured here; run before wasm-bindgen, it hides the function table
/// wasm-bindgen needs.
const WASM_OPT_MIN: u32 = 117;

/// `wasm-opt -Oz` when a recent enough binaryen is installed; otherwise the
/// bundle is wasm-bindgen's output (already built with `opt-level = "z"`,
/// LTO and one codegen unit), with a note saying why.
fn optimise(wasm: &Path) {
    let version = Command::new("wasm-opt")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace()
                .nth(2)
                .and_then(|v| v.parse::<u32>().ok())
        });
    match version {
        None => return println!("note: wasm-opt (binaryen) is not installed; the bundle is not size-optimised further"),
        Some(v) if v < WASM_OPT_MIN => {
            return println!("note: wasm-opt {v} breaks today's wasm (needs {WASM_OPT_MIN}+); keeping wasm-bindgen's output")
        }
        Some(_) => {}
    }
    let features = [
        "--enable-bulk-memory",
        "--enable-nontrapping-float-to-int",
        "--enable-sign-ext",
        "--enable-mutable-globals",
        "--enable-reference-types",
        "--enable-multivalue",
    ];
    let optimised = wasm.with_extension("opt.wasm");
    let result = Command::new("wasm-opt")
        .arg("-Oz")
        .args(features)
        .arg(wasm)
        .arg("-o")
        .arg(&optimised)
        .status();
    match result {
        Ok(status) if status.success() => {
            let _ = std::fs::rename(&optimised, wasm);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(&optimised);
            println!("note: wasm-opt could not optimise this wasm; keeping wasm-bindgen's output");
        }
        Err(error) => {
            println!("note: wasm-opt did not run ({error}); keeping wasm-bindgen's output")
        }
    }
}

/// Stores each file `.br` (brotli, best) and `.gz` (gzip, best) beside it.
fn compress_all(dir: &Path) -> anyhow::Result<()> {
    for file in FILES {
        let bytes = std::fs::read(dir.join(file))?;
        let mut br = Vec::new();
        let params = brotli::enc::BrotliEncoderParams {
            quality: 11,
            lgwin: 22,
            ..Default::default()
        };
        brotli::BrotliCompress(&mut bytes.as_slice(), &mut br, &params)?;
        std::fs::write(dir.join(format!("{file}.br")), br)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes)?;
        std::fs::write(dir.join(format!("{file}.gz")), gz.finish()?)?;
    }
    Ok(())
}

fn report(dir: &Path) -> anyhow::Result<()> {
    let size = |name: &str| {
        std::fs::metadata(dir.join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let (raw, br): (u64, u64) = FILES
        .iter()
        .map(|f| (size(f), size(&format!("{f}.br"))))
        .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    println!(
        "console bundle in {}: {raw} bytes, {br} bytes brotli (wasm {} → {})",
        dir.display(),
        size("console_bg.wasm"),
        size("console_bg.wasm.br")
    );
    Ok(())
}
