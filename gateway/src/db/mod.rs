//! Opening the one place ChainPay keeps state: PostgreSQL.

pub mod binary_copy;
pub mod embedded;
pub mod pgbouncer;
pub mod replica;

use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres};

use crate::config::Settings;
use crate::error::Error;
pub use embedded::{ClusterOptions, EmbeddedPostgres};

/// Name of the application database inside the embedded cluster.
const EMBEDDED_DATABASE: &str = "chainpay";

/// Migrations compiled into the binary, applied on every start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// An open, migrated database, and the embedded cluster behind it if any.
pub struct Database {
    pub pool: PgPool,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// `DATABASE_URL` when set (creating its database if missing), otherwise
    /// the embedded default; migrations are applied either way. A server
    /// (`exclusive`) must own the embedded cluster: a second `serve` on the
    /// same data directory refuses to share it; a one-shot command may
    /// attach to a cluster another process owns.
    pub async fn open(settings: &Settings, exclusive: bool) -> anyhow::Result<Self> {
        let (options, embedded) = match &settings.database_url {
            Some(url) => {
                let options = PgConnectOptions::from_str(url)
                    .context("DATABASE_URL is not a valid PostgreSQL URL")?;
                (options, None)
            }
            None => {
                let cluster =
                    EmbeddedPostgres::ensure_running(&settings.data_dir, ClusterOptions::default())
                        .await?;
                if exclusive && !cluster.owned() {
                    let pid = EmbeddedPostgres::owner_pid(&settings.data_dir).map_or_else(
                        || "another process".to_owned(),
                        |pid| format!("process {pid}"),
                    );
                    anyhow::bail!(
                        "the embedded database in CHAINPAY_DATA_DIR {} is in use by {pid}; \
                         stop it first, or give this instance its own CHAINPAY_DATA_DIR or a shared DATABASE_URL",
                        settings.data_dir.display()
                    );
                }
                (cluster.connect_options(EMBEDDED_DATABASE), Some(cluster))
            }
        };
        create_database_if_missing(&options).await?;
        migrate(&options).await?;
        let pool = connect_pool(options, settings.db_pool_size).await?;
        Ok(Self { pool, embedded })
    }

    /// Closes the pool and stops the embedded cluster if this process started it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(cluster) = self.embedded.filter(EmbeddedPostgres::started_here) {
            if let Err(error) = cluster.stop().await {
                tracing::warn!(%error, "embedded PostgreSQL did not stop cleanly");
            }
        }
    }
}

/// `BEGIN` for a transaction whose statements are written for index
/// look-ups whatever their arguments (a batch of transfers, an SMS claim):
/// they run on the plans PostgreSQL prepared once instead of being planned
/// again on every run (planning a batch's sender and window reads cost more
/// than running them).
pub const BEGIN_ON_PREPARED_PLANS: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";

/// The restricted role the gateway's queries run as (see the
/// `application_role` migration).
pub const APP_ROLE: &str = "chainpay_app";

/// Applies the migrations as the connecting (owner) user, on a connection of
/// its own so the pool never runs as the owner.
pub async fn migrate(options: &PgConnectOptions) -> anyhow::Result<()> {
    let mut conn = options
        .connect()
        .await
        .context("connecting to PostgreSQL")?;
    MIGRATOR
        .run(&mut conn)
        .await
        .context("applying database migrations")?;
    conn.close().await?;
    Ok(())
}

/// The application's pool: every connection switches to [`APP_ROLE`] when
/// the login user may, so the running gateway cannot alter append-only
/// tables whatever it is asked to do.
pub async fn connect_pool(
    options: PgConnectOptions,
    max_connections: u32,
) -> anyhow::Result<PgPool> {
    let mut probe = options
        .connect()
        .await
        .context("connecting to PostgreSQL")?;
    let can_switch = may_take_app_role(&mut probe).await?;
    probe.close().await?;
    if !can_switch {
        tracing::warn!(
            role = APP_ROLE,
            "cannot switch to the restricted application role; running as the login user"
        );
    }
    pool_options(max_connections, Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if can_switch {
                    take_app_role(conn).await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL")
}

/// A connection idle for longer than this is pinged before it is handed
/// out; one used more recently is not.
const TEST_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// When a connection of this process was last found lost, in milliseconds
/// since the Unix epoch.
static LOST_AT_MS: AtomicI64 = AtomicI64::new(0);

/// For this long after a connection is found lost, every connection is
/// pinged before it is handed out: a restart of PostgreSQL ends them all,
/// and the first request to meet one should be the only one to fail.
const PING_ALL_AFTER_LOSS: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn lost_lately() -> bool {
    let since = now_ms().saturating_sub(LOST_AT_MS.load(Ordering::Relaxed));
    since < i64::try_from(PING_ALL_AFTER_LOSS.as_millis()).unwrap_or(i64::MAX)
}

/// Whether `error` says the connection is gone (closed, reset, ended by
/// the server's shutdown or an administrator): the statement may not have
/// run, and another connection may do better.
pub(crate) fn is_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        other => other
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
    }
}

/// Whether `error` says the database is out of reach for now: the link
/// broke or went unanswered, no connection was to be had in time, or the
/// server is shutting down, starting or full. Asking again shortly may
/// succeed. (A protocol error, or `08P01` as PgBouncer sends for its own
/// configuration, may be for good, so neither is counted.)
pub fn unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        other => other
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| {
                (code.starts_with("08") && code != "08P01")
                    || ["57P01", "57P02", "57P03", "53300"].contains(&code.as_ref())
            }),
    }
}

/// Notes `error` if [it says the connection is gone](is_lost), so the
/// pools ping every connection for a while.
pub(crate) fn note_if_lost(error: &sqlx::Error) {
    if is_lost(error) {
        LOST_AT_MS.store(now_ms(), Ordering::Relaxed);
    }
}

/// How long a connection may take to answer the ping that shows it is still
/// in step with its server, on its way back to the pool or out of it. Past
/// it, the connection is closed without a goodbye and its place in the pool
/// is free again.
///
/// A server that goes silent without resetting the link (a failover, a
/// dropped NAT mapping, a host gone) leaves every read waiting until the
/// kernel gives up on the socket (README, Reliability). sqlx's
/// own ping on release has no bound (sqlx-core 0.8.6; its PR #4363 is still
/// open), and each release waiting on it keeps a place in the pool: once
/// they all wait, every request is refused until they end. So this bounded
/// ping comes first, and sqlx's follows on a connection that answered a
/// moment ago (one more round trip per release). On the way out, a
/// connection that does not answer costs a request this long, not the whole
/// acquire timeout.
pub const PING_PATIENCE: Duration = Duration::from_secs(2);

/// Pings `conn` for at most [`PING_PATIENCE`]; an error (a timeout is one)
/// is [noted](note_if_lost), and closes the connection without a goodbye.
async fn answers(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    tokio::time::timeout(PING_PATIENCE, conn.ping())
        .await
        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()))
        .inspect_err(note_if_lost)
}

/// Options every pool of the gateway shares. sqlx pings a connection when
/// it is released (always, after a [bounded](PING_PATIENCE) ping here) and, by
/// default, again when it is acquired: one more round trip before every
/// transaction, on top of the eight a posting batch makes. Here only a
/// connection that has sat idle for more than [`TEST_WHEN_IDLE_FOR`] is
/// pinged on acquire (a restarted server or a dropped link is found there
/// and the connection replaced); one released sooner answered its release
/// ping within that second. For a while after any connection is found lost,
/// every one is pinged.
pub(crate) fn pool_options(max_connections: u32, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .after_release(|conn, _meta| Box::pin(async move { answers(conn).await.map(|()| true) }))
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > TEST_WHEN_IDLE_FOR || lost_lately() {
                    answers(conn).await?;
                }
                Ok(true)
            })
        })
}

/// How a transaction whose `COMMIT` got no answer ended, asked by its id
/// (`pg_current_xact_id()`) on another connection: `Some(true)` committed,
/// `Some(false)` aborted (a server that crashed before the commit was
/// durable counts it aborted once it is back). While it is still in progress
/// (the commit on its way to disk or a standby, or the server not yet aware
/// that the client has gone) the question is asked again every 20 ms; `None`
/// when no answer came by `until`. A look for the transaction's rows could
/// not tell "not yet" from "never". (After a crash the same id may have
/// gone to another transaction: a caller confirms "committed" by its rows.)
pub async fn transaction_outcome(
    pool: &PgPool,
    xid: i64,
    until: tokio::time::Instant,
) -> Option<bool> {
    let mut conn = live_connection(pool, until).await.ok()?;
    loop {
        let status = tokio::time::timeout_at(
            until,
            sqlx::query_scalar!("SELECT pg_xact_status($1::text::xid8)", xid.to_string())
                .fetch_one(&mut *conn),
        )
        .await
        .ok()?
        .ok()??;
        match status.as_str() {
            "committed" => return Some(true),
            "aborted" => return Some(false),
            _ if tokio::time::Instant::now() >= until => return None,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A pooled connection that answered a ping just now, for writes that must
/// not be lost and questions that must be answered despite a connection the
/// server dropped while this request was away (the record of an outside
/// call already made, whether a failed commit took effect: a restart of
/// PostgreSQL breaks every pooled connection, and one used in the last
/// second is handed out unpinged). A connection that does not answer is
/// closed and another taken at once; while none can be had, again every
/// 100 ms, until `until`.
pub async fn live_connection(
    pool: &PgPool,
    until: tokio::time::Instant,
) -> sqlx::Result<PoolConnection<Postgres>> {
    let timed_out = |_| sqlx::Error::PoolTimedOut;
    loop {
        match tokio::time::timeout_at(until, pool.acquire())
            .await
            .map_err(timed_out)?
        {
            Ok(mut conn) => match tokio::time::timeout_at(until, conn.ping()).await {
                Ok(Ok(())) => return Ok(conn),
                Ok(Err(error)) => {
                    note_if_lost(&error);
                    conn.close_on_drop();
                }
                Err(_) => conn.close_on_drop(),
            },
            Err(sqlx::Error::PoolClosed) => return Err(sqlx::Error::PoolClosed),
            // None to give (the server is down): asked again shortly.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
        if tokio::time::Instant::now() >= until {
            return Err(sqlx::Error::PoolTimedOut);
        }
    }
}

/// How long [`write_surely`] keeps trying while connections are found lost
/// (a restart of PostgreSQL, a dropped link).
pub const WRITE_PATIENCE: Duration = Duration::from_secs(10);

/// Runs `write` on a [live connection](live_connection), and again on
/// another while it meets a lost one and [`WRITE_PATIENCE`] lasts; any other
/// failure is returned at once. For the record of something already done
/// outside the database (Safaricom accepted a prompt or a payout), which a
/// connection dropped meanwhile must not lose: `write` must be safe to
/// repeat, since a lost commit may have taken effect. The caller runs this
/// in a task of its own when a hung-up client must not cancel it.
pub async fn write_surely<T, F>(
    pool: &PgPool,
    what: &str,
    write: impl FnMut(PoolConnection<Postgres>) -> F,
) -> Result<T, Error>
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    write_surely_within(pool, what, WRITE_PATIENCE, write).await
}

/// [`write_surely`] with its patience given. An attempt is bounded by it
/// too, since one can wait on a row lock still held by the server's end of
/// a dropped link until the server notices: its connection waits for locks
/// no longer than the patience left (`lock_timeout`) and is closed after
/// the attempt instead of going back to the pool with that setting, and an
/// attempt still unanswered when the patience ends is given up. Either way
/// the failure is returned and the jobs that recover unrecorded answers
/// take it from there.
pub async fn write_surely_within<T, F>(
    pool: &PgPool,
    what: &str,
    patience: Duration,
    mut write: impl FnMut(PoolConnection<Postgres>) -> F,
) -> Result<T, Error>
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    let until = tokio::time::Instant::now() + patience;
    loop {
        let attempt = async {
            let mut conn = live_connection(pool, until).await?;
            conn.close_on_drop();
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            sqlx::query(&format!("SET lock_timeout = {}", left.as_millis().max(1)))
                .execute(&mut *conn)
                .await?;
            write(conn).await
        };
        let error = match tokio::time::timeout_at(until, attempt).await {
            Ok(Ok(written)) => return Ok(written),
            Ok(Err(error)) => error,
            Err(_) => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "{what}: not written within {patience:?}"
                )))
            }
        };
        if !error.is_lost_connection() || tokio::time::Instant::now() >= until {
            return Err(error);
        }
        tracing::warn!(%error, "{what}: connection lost; trying another");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `pool`'s connections run as [`APP_ROLE`] (their login user could
/// switch to it), not as the tables' owner.
pub async fn runs_as_app_role(pool: &PgPool) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT current_user = $1")
        .bind(APP_ROLE)
        .fetch_one(pool)
        .await
}

/// Whether the login user of `conn` may switch to [`APP_ROLE`].
pub(crate) async fn may_take_app_role(conn: &mut sqlx::PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AND pg_has_role(current_user, $1, 'MEMBER')",
    )
    .bind(APP_ROLE)
    .fetch_one(conn)
    .await
}

/// Switches `conn` to [`APP_ROLE`] when its login user may (each connection
/// of a pool that probes per connection, as the replica's does).
pub(crate) async fn take_app_role_if_allowed(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    if may_take_app_role(conn).await? {
        take_app_role(conn).await?;
    }
    Ok(())
}

/// Switches `conn` to [`APP_ROLE`] for the rest of its life.
pub(crate) async fn take_app_role(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("SET ROLE chainpay_app").execute(conn).await?;
    Ok(())
}

/// Creates the target database through the `postgres` maintenance database
/// when it does not exist yet. Two instances racing here is harmless.
pub async fn create_database_if_missing(options: &PgConnectOptions) -> anyhow::Result<()> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    if name == "postgres" {
        return Ok(());
    }
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("connecting to PostgreSQL's maintenance database `postgres`")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).context(format!("creating database {name}")),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Whether `value` holds a NUL character (`\u0000`) in a key or a string,
/// which PostgreSQL can neither store in `jsonb` nor in `text`.
pub fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

/// `value` as PostgreSQL `jsonb` can store it: each NUL character, in a key
/// or a string, becomes U+FFFD. Only for keeping a copy of what arrived.
pub fn jsonb_safe(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let clean = |text: String| {
        if text.contains('\0') {
            text.replace('\0', "\u{FFFD}")
        } else {
            text
        }
    };
    match value {
        Value::String(text) => Value::String(clean(text)),
        Value::Array(items) => Value::Array(items.into_iter().map(jsonb_safe).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (clean(key), jsonb_safe(value)))
                .collect(),
        ),
        other => other,
    }
}
