//! PgBouncer in front of a PostgreSQL server: how the tests and the
//! transfers bench show ChainPay working through a connection pooler
//! (Debian's `pgbouncer`, 1.18), as a deployment of several gateways would
//! run it.
//!
//! It pools in **session** mode. Transaction pooling hands each transaction
//! to whichever server connection is free, and PgBouncer 1.18 does not carry
//! prepared statements across them; sqlx names a prepared statement for every
//! query it caches (`sqlx_s_N`) and, even with `persistent(false)`, parses an
//! unnamed statement and binds it in two separate round trips, which a
//! statement outside `BEGIN … COMMIT` may see land on two different servers.
//! The auth cache's `LISTEN` needs one server connection for its lifetime too.
//! Session pooling keeps all of that correct; what it costs is that each
//! gateway connection holds a server connection while it is open, so the
//! pooler caps and shares connections between instances (`default_pool_size`
//! per database and user) rather than multiplexing transactions, and every
//! round trip takes one more hop (measured in `docs/scaling.md`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::embedded::postgres_user_if_root;

/// The port PgBouncer's socket is named for (it listens on no TCP port).
const PORT: u16 = 6432;

/// A running PgBouncer; stopped (and its directory removed) when dropped.
pub struct PgBouncer {
    child: std::process::Child,
    user: String,
    dir: PathBuf,
}

impl PgBouncer {
    /// Starts `pgbouncer` with its files and its only socket in `dir`
    /// (private to its owner: no TCP, so nobody else on the machine reaches
    /// the server through it), in session mode, passing every database
    /// through to the server behind `upstream` as `upstream`'s user, with at
    /// most `pool_size` server connections per database.
    pub async fn start(
        dir: &Path,
        upstream: &PgConnectOptions,
        pool_size: u32,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let user = upstream.get_username().to_owned();
        let host = match upstream.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => upstream.get_host().to_owned(),
        };
        let dir = dir.canonicalize()?;
        let config = format!(
            "[databases]\n* = host={host} port={upstream_port} user={user}\n\n\
             [pgbouncer]\nlisten_addr =\nlisten_port = {PORT}\nunix_socket_dir = {socket}\n\
             auth_type = trust\nauth_file = {auth}\npool_mode = session\n\
             default_pool_size = {pool_size}\nmax_client_conn = 1000\n\
             server_reset_query = DISCARD ALL\n\
             ignore_startup_parameters = extra_float_digits\nadmin_users = {user}\n\
             logfile = {log}\npidfile = {pid}\n",
            upstream_port = upstream.get_port(),
            socket = dir.display(),
            auth = dir.join("users.txt").display(),
            log = dir.join("pgbouncer.log").display(),
            pid = dir.join("pgbouncer.pid").display(),
        );
        std::fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n"))?;
        std::fs::write(dir.join("pgbouncer.ini"), config)?;
        let mut command = std::process::Command::new(binary());
        command
            .arg(dir.join("pgbouncer.ini"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // PgBouncer refuses to run as root, as PostgreSQL does.
        if let Some((uid, gid)) = postgres_user_if_root()? {
            for path in [
                dir.clone(),
                dir.join("users.txt"),
                dir.join("pgbouncer.ini"),
            ] {
                nix::unistd::chown(&path, Some(uid), Some(gid))?;
            }
            use std::os::unix::process::CommandExt;
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        let child = command
            .spawn()
            .context("starting pgbouncer (Debian: `apt-get install pgbouncer`)")?;
        let mut bouncer = Self { child, user, dir };
        bouncer.wait_ready(Duration::from_secs(30)).await?;
        Ok(bouncer)
    }

    /// Connection options for `database` through the pooler.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.dir)
            .port(PORT)
            .username(&self.user)
            .database(database)
    }

    /// `DATABASE_URL` for `database` through the pooler.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}@localhost:{PORT}/{database}?host={}",
            self.user,
            self.dir.display()
        )
    }

    /// Server connections the pooler holds open to `database` now, read
    /// from its admin console (`SHOW SERVERS`).
    pub async fn server_connections(&self, database: &str) -> anyhow::Result<usize> {
        use sqlx::Row;
        let mut admin = self.connect_options("pgbouncer").connect().await?;
        // The admin console speaks only the simple query protocol.
        let rows = sqlx::raw_sql("SHOW SERVERS").fetch_all(&mut admin).await?;
        admin.close().await?;
        let to_database = rows
            .iter()
            .filter(|row| row.try_get::<String, _>("database").ok().as_deref() == Some(database))
            .count();
        Ok(to_database)
    }

    async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let error = match self.connect_options("postgres").connect().await {
                Ok(conn) => return Ok(conn.close().await?),
                Err(error) => error,
            };
            let exited = self.child.try_wait()?;
            if exited.is_some() || Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default();
                anyhow::bail!("pgbouncer did not accept connections ({exited:?}): {error}\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Debian's `pgbouncer`, which is outside an ordinary user's `PATH`.
fn binary() -> PathBuf {
    let debian = Path::new("/usr/sbin/pgbouncer");
    match debian.exists() {
        true => debian.to_owned(),
        false => PathBuf::from("pgbouncer"),
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // SIGKILL: clients may still be connected, and newer PgBouncers wait
        // for them on SIGTERM.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
