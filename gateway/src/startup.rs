//! Assembling the application state from settings, and the shutdown signal.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

use crate::chain;
use crate::compliance::sanctions;
use crate::config::Settings;
use crate::db;
use crate::metrics::Metrics;
use crate::secrets::ServerKeys;
use crate::state::{AppState, Parts};

/// Loads the server keys, brings reference data up to date (the sanctions
/// list) and builds the shared state for a migrated database.
pub async fn build_state(settings: Settings, pool: PgPool) -> anyhow::Result<AppState> {
    let keys = ServerKeys::load(&settings, &pool).await?;
    sanctions::import_sdn(&pool, sanctions::BUNDLED_SDN_SAMPLE).await?;
    if let Some(path) = &settings.sanctions_csv {
        let data = std::fs::read(path)
            .with_context(|| format!("reading CHAINPAY_SANCTIONS_CSV {}", path.display()))?;
        let added = sanctions::import_sdn(&pool, &data).await?;
        tracing::info!(path = %path.display(), added, "loaded sanctions list");
    }
    let sealer = chain::authority::load_or_enroll(&pool, &keys.master, &settings.node_name).await?;
    chain::seal::ensure_genesis(&pool, &sealer).await?;
    warn_if_simulated(&settings);
    let mpesa_callback_token = match &settings.mpesa.callback_token {
        Some(token) => token.clone(),
        None => hex::encode(
            crate::secrets::get_or_create(&pool, &keys.master, "mpesa_callback_token").await?,
        ),
    };
    let reads = match &settings.database_read_url {
        Some(url) => db::replica::ReadPool::with_replica(
            pool.clone(),
            PgConnectOptions::from_str(url)
                .context("DATABASE_READ_URL is not a valid PostgreSQL URL")?,
            settings.db_pool_size,
            Duration::from_millis(u64::from(settings.read_max_lag_ms)),
        ),
        None => db::replica::ReadPool::primary_only(pool.clone()),
    };
    Ok(AppState::new(Parts {
        pool,
        reads,
        settings,
        keys,
        metrics: Metrics::new()?,
        sealer,
        mpesa_callback_token,
    }))
}

/// Resolves on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered now, not when first awaited: a SIGTERM that arrives while
    // the server is starting (it may already answer /healthz) is caught and
    // ends it gracefully instead of killing it.
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let wait = |stream: std::io::Result<tokio::signal::unix::Signal>| async move {
            match stream {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for a shutdown signal");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = wait(terminate) => {},
            () = wait(interrupt) => {},
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    }
}

/// Says loudly, at every start, what is not real.
fn warn_if_simulated(settings: &Settings) {
    if settings.mpesa.env == crate::config::MpesaEnv::Simulator {
        tracing::warn!("M-PESA IS SIMULATED: deposits and withdrawals go to the built-in Daraja simulator, not Safaricom (set MPESA_CONSUMER_KEY and MPESA_CONSUMER_SECRET)");
    }
    if settings.africastalking.is_none() {
        tracing::warn!("SMS IS SIMULATED: messages go to the built-in Africa's Talking simulator, not to phones (set AT_USERNAME and AT_API_KEY)");
    }
    if settings.at_webhook_token.is_none() {
        tracing::warn!("AT_WEBHOOK_TOKEN is unset: anyone who can reach /api/v1/ussd and /api/v1/sms/* can act as any phone");
    }
}
