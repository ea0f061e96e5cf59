//! The embedded default database: a private PostgreSQL cluster under
//! `CHAINPAY_DATA_DIR`, made with the machine's own `initdb`/`pg_ctl`.
//!
//! It listens on a Unix socket inside its data directory only (no TCP), and
//! the directory is private to the cluster's owner, so nothing else on the
//! machine can reach it. PostgreSQL refuses to run as root, so when ChainPay
//! runs as root the cluster runs as the `postgres` system user.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid, User};
use sqlx::postgres::PgConnectOptions;
use tokio::process::Command;

/// Superuser the cluster is created with; only reachable over the private socket.
const SUPERUSER: &str = "chainpay";
/// Longest Unix socket path Linux accepts (`sun_path` is 108 bytes with NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Options that differ between a real deployment and the throw-away test cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterOptions {
    /// Turn off fsync and synchronous commit: only for test clusters whose
    /// contents do not matter after a crash.
    pub durability_off: bool,
}

#[derive(Debug)]
pub struct EmbeddedPostgres {
    cluster_dir: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<(Uid, Gid)>,
    started_here: bool,
    /// Held for as long as this process owns the cluster: the owner is the
    /// one that stops it, and only one process owns it at a time (the lock
    /// goes with the process, however it ends).
    owner: Option<Flock<fs::File>>,
}

/// The directory holding `initdb` and `pg_ctl`: from `PATH`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian/Ubuntu keep them there).
pub fn find_binaries() -> anyhow::Result<PathBuf> {
    find_binaries_in(std::env::var_os("PATH"), Path::new("/usr/lib/postgresql"))
}

fn find_binaries_in(
    path: Option<std::ffi::OsString>,
    versioned_root: &Path,
) -> anyhow::Result<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = path {
        if let Some(dir) = std::env::split_paths(&path).find(|dir| has_tools(dir)) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(versioned_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, dir)) => Ok(dir),
        None => bail!(
            "PostgreSQL is not installed: ChainPay's embedded database needs `initdb` and `pg_ctl` \
             (on PATH or under /usr/lib/postgresql/*/bin). Install them (Debian/Ubuntu: \
             `apt-get install postgresql`) or point DATABASE_URL at an existing PostgreSQL."
        ),
    }
}

impl EmbeddedPostgres {
    /// Starts the cluster in `data_dir/pg` (creating it on first use), or
    /// attaches to it when another process already started it.
    pub async fn ensure_running(data_dir: &Path, options: ClusterOptions) -> anyhow::Result<Self> {
        let bin_dir = find_binaries()?;
        fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create CHAINPAY_DATA_DIR {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        // Others may traverse (to reach the cluster's socket) but not list it.
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o711))?;
        let cluster_dir = data_dir.join("pg");
        let socket_path = cluster_dir.join(".s.PGSQL.5432");
        if socket_path.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "CHAINPAY_DATA_DIR {} is too deep for a Unix socket path; choose a shorter directory",
                data_dir.display()
            );
        }
        let run_as = postgres_user_if_root()?;
        let mut cluster = Self {
            cluster_dir,
            bin_dir,
            run_as,
            started_here: false,
            owner: None,
        };

        // One process at a time decides whether to create or start the cluster.
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join("cluster.lock"))?;
        let _lock = tokio::task::spawn_blocking(move || {
            Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, errno)| errno)
        })
        .await??;

        if !cluster.cluster_dir.join("PG_VERSION").exists() {
            cluster.init(options).await?;
        }
        cluster.owner = take_ownership(&data_dir)?;
        let running = cluster.is_running().await?;
        if !running && cluster.owner.is_none() {
            bail!("the embedded PostgreSQL in {} is owned by another ChainPay process but not running; try again", data_dir.display());
        }
        if !running {
            cluster.start().await?;
        }
        // The owner stops the cluster on the way out, even one a process
        // that died left running.
        cluster.started_here = cluster.owner.is_some();
        Ok(cluster)
    }

    /// Whether this process owns the cluster (no other live process does).
    pub fn owned(&self) -> bool {
        self.owner.is_some()
    }

    /// The process id written by the current owner, for error messages.
    pub fn owner_pid(data_dir: &Path) -> Option<u32> {
        fs::read_to_string(data_dir.join("owner.lock"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Connection options for `database` over the private socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.cluster_dir)
            .username(SUPERUSER)
            .database(database)
    }

    /// Whether this process started the cluster (and so should stop it).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    async fn init(&self, options: ClusterOptions) -> anyhow::Result<()> {
        fs::create_dir_all(&self.cluster_dir)?;
        fs::set_permissions(&self.cluster_dir, fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::chown(&self.cluster_dir, Some(uid), Some(gid))?;
            self.check_reachable_by_owner().await?;
        }
        tracing::info!(dir = %self.cluster_dir.display(), "creating embedded PostgreSQL cluster");
        let cluster_dir = self.cluster_dir.to_string_lossy().into_owned();
        self.run(
            "initdb",
            &[
                "-D",
                &cluster_dir,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )
        .await?;
        // Socket only, inside the data directory.
        let mut conf = format!(
            "\n# ChainPay embedded default\nlisten_addresses = ''\nunix_socket_directories = '{cluster_dir}'\nmax_connections = 200\n"
        );
        if options.durability_off {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let conf_path = self.cluster_dir.join("postgresql.conf");
        let mut existing = fs::read_to_string(&conf_path)?;
        existing.push_str(&conf);
        fs::write(&conf_path, existing)?;
        Ok(())
    }

    async fn is_running(&self) -> anyhow::Result<bool> {
        let status = self
            .command("pg_ctl")
            .args(["status", "-D"])
            .arg(&self.cluster_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await?;
        Ok(status.success())
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub async fn start(&self) -> anyhow::Result<()> {
        tracing::info!(dir = %self.cluster_dir.display(), "starting embedded PostgreSQL");
        let cluster_dir = self.cluster_dir.to_string_lossy().into_owned();
        let log = self
            .cluster_dir
            .join("postgres.log")
            .to_string_lossy()
            .into_owned();
        self.run(
            "pg_ctl",
            &["start", "-w", "-t", "60", "-D", &cluster_dir, "-l", &log],
        )
        .await
    }

    /// Fast shutdown: open transactions are rolled back, committed data is safe.
    pub async fn stop(&self) -> anyhow::Result<()> {
        tracing::info!(dir = %self.cluster_dir.display(), "stopping embedded PostgreSQL");
        let cluster_dir = self.cluster_dir.to_string_lossy().into_owned();
        self.run("pg_ctl", &["stop", "-m", "fast", "-w", "-D", &cluster_dir])
            .await
    }

    /// Immediate shutdown, as a power cut would leave it: no checkpoint,
    /// every open transaction lost; the next start recovers from the WAL.
    /// For the reliability suite, which proves nothing committed is lost.
    pub async fn crash(&self) -> anyhow::Result<()> {
        let cluster_dir = self.cluster_dir.to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &["stop", "-m", "immediate", "-w", "-D", &cluster_dir],
        )
        .await
    }

    /// The cluster's directory, which is also its socket directory.
    pub fn socket_dir(&self) -> &Path {
        &self.cluster_dir
    }

    fn command(&self, tool: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(tool));
        command.current_dir(&self.cluster_dir).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        command
    }

    async fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let output = self
            .command(tool)
            .args(args)
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.bin_dir.join(tool).display()))?;
        if !output.status.success() {
            bail!(
                "{tool} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.cluster_dir.join("postgres.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "\npostgres.log:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        }
    }

    /// As root the cluster runs as `postgres`, which must be able to walk
    /// down to the data directory; say so plainly instead of letting initdb
    /// fail with a bare "permission denied".
    async fn check_reachable_by_owner(&self) -> anyhow::Result<()> {
        let mut probe = self.command("initdb");
        let reachable = probe
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map(|status| status.success())
            .unwrap_or(false);
        if !reachable {
            bail!(
                "the `postgres` system user cannot reach {}; as root, put CHAINPAY_DATA_DIR \
                 somewhere every user can traverse (e.g. /var/lib/chainpay) or set DATABASE_URL",
                self.cluster_dir.display()
            );
        }
        Ok(())
    }
}

/// Takes the ownership lock of the cluster in `data_dir` if no live process
/// holds it, and writes our pid into it.
fn take_ownership(data_dir: &Path) -> anyhow::Result<Option<Flock<fs::File>>> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(data_dir.join("owner.lock"))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            use std::io::{Seek, Write};
            lock.set_len(0)?;
            lock.seek(std::io::SeekFrom::Start(0))?;
            write!(lock, "{}", std::process::id())?;
            Ok(Some(lock))
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(errno.into()),
    }
}

/// The `postgres` account to run the cluster as, when we are root.
pub(crate) fn postgres_user_if_root() -> anyhow::Result<Option<(Uid, Gid)>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres")? {
        Some(user) => Ok(Some((user.uid, user.gid))),
        None => bail!(
            "running as root, the embedded PostgreSQL must run as the `postgres` system user, \
             which does not exist; create it (it comes with Debian's postgresql package) or set DATABASE_URL"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_postgresql_the_error_says_how_to_install_it_or_use_database_url() {
        let empty = std::env::temp_dir().join(format!("chainpay-no-pg-{}", std::process::id()));
        fs::create_dir_all(&empty).unwrap();
        let error = find_binaries_in(Some(empty.clone().into_os_string()), &empty)
            .unwrap_err()
            .to_string();
        assert!(error.contains("apt-get install postgresql"), "{error}");
        assert!(error.contains("DATABASE_URL"), "{error}");
    }

    #[test]
    fn the_newest_versioned_install_is_preferred() {
        let root =
            std::env::temp_dir().join(format!("chainpay-pg-versions-{}", std::process::id()));
        for version in ["9", "15", "13"] {
            let bin = root.join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("initdb"), "").unwrap();
            fs::write(bin.join("pg_ctl"), "").unwrap();
        }
        assert_eq!(
            find_binaries_in(None, &root).unwrap(),
            root.join("15").join("bin")
        );
    }
}
