//! Reads that tolerate a little lag, on a streaming replica while it keeps
//! up.
//!
//! `DATABASE_READ_URL` names a hot standby of the primary's database. Its
//! pool connects lazily, so a replica that is down never stops a gateway
//! from starting. A job measures it every second ([`ReadPool::check`]):
//! reads go to it only while it is a standby, holds the same ledger as the
//! primary (the same genesis block), and is at most `CHAINPAY_READ_MAX_LAG_MS`
//! behind; otherwise they go to the primary. A replica that stalls, is
//! paused or goes away stops serving reads within a measurement of passing
//! that bound.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

use super::take_app_role_if_allowed;

/// Where lag-tolerant reads go.
pub struct ReadPool {
    primary: PgPool,
    replica: Option<Replica>,
}

struct Replica {
    pool: PgPool,
    max_lag: Duration,
    /// Whether the last measurement let it serve reads.
    serving: AtomicBool,
}

impl ReadPool {
    /// Every read on the primary.
    pub fn primary_only(primary: PgPool) -> Self {
        Self {
            primary,
            replica: None,
        }
    }

    /// Reads on the replica at `options` once a measurement has found it
    /// fit (until then, and whenever it is not, on the primary).
    pub fn with_replica(
        primary: PgPool,
        options: PgConnectOptions,
        max_connections: u32,
        max_lag: Duration,
    ) -> Self {
        let pool = super::pool_options(max_connections, Duration::from_secs(5))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // As on the primary: the restricted role where the login may take it.
                    take_app_role_if_allowed(conn).await
                })
            })
            .connect_lazy_with(options);
        Self {
            primary,
            replica: Some(Replica {
                pool,
                max_lag,
                serving: AtomicBool::new(false),
            }),
        }
    }

    /// The pool for a read that tolerates a little lag now.
    pub fn get(&self) -> &PgPool {
        match &self.replica {
            Some(replica) if replica.serving.load(Ordering::Relaxed) => &replica.pool,
            _ => &self.primary,
        }
    }

    /// Whether reads go to the replica now.
    pub fn on_replica(&self) -> bool {
        self.replica
            .as_ref()
            .is_some_and(|replica| replica.serving.load(Ordering::Relaxed))
    }

    /// Measures the replica and decides whether it may serve reads; an
    /// error (it is unreachable, not a standby of this ledger) means it may
    /// not, and is returned for the log.
    pub async fn check(&self) -> anyhow::Result<()> {
        let Some(replica) = &self.replica else {
            return Ok(());
        };
        let measured = lag(&self.primary, &replica.pool).await;
        let fit = matches!(&measured, Ok(lag) if *lag <= replica.max_lag);
        if replica.serving.swap(fit, Ordering::Relaxed) != fit {
            tracing::warn!(serving = fit, lag = ?measured.as_ref().ok(), "read replica");
        }
        measured.map(drop)
    }
}

/// How long the replica may take to say how far behind it is.
const REPLICA_PATIENCE: Duration = Duration::from_secs(5);

/// How far the replica is behind the primary, after checking it is a
/// standby holding the same chain.
async fn lag(primary: &PgPool, replica: &PgPool) -> anyhow::Result<Duration> {
    let genesis = "SELECT block_hash FROM blocks WHERE block_index = 0";
    let ours: Option<String> = sqlx::query_scalar(genesis).fetch_optional(primary).await?;
    let state = sqlx::query_as(
        "SELECT pg_is_in_recovery(),
                CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
                     ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8,
                (SELECT block_hash FROM blocks WHERE block_index = 0)",
    )
    .fetch_one(replica);
    // A replica that does not answer (gone silent) is unfit as surely as one
    // that refuses; the job would drop this pass only after a minute.
    let row: (bool, Option<f64>, Option<String>) = tokio::time::timeout(REPLICA_PATIENCE, state)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {REPLICA_PATIENCE:?}"))?
        .context("reading the replica's state")?;
    let (standby, behind_s, theirs) = row;
    anyhow::ensure!(standby, "DATABASE_READ_URL is not a standby");
    anyhow::ensure!(
        ours.is_some() && theirs == ours,
        "DATABASE_READ_URL holds another ledger (its genesis block differs)"
    );
    // No replayed transaction to date from yet: as far behind as can be.
    let behind_s = behind_s.unwrap_or(f64::MAX);
    Ok(Duration::try_from_secs_f64(behind_s.max(0.0)).unwrap_or(Duration::MAX))
}
