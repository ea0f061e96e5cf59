//! Assembling the application from settings and serving it.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::chain;
use crate::compliance::sanctions;
use crate::config::Settings;
use crate::http;
use crate::jobs;
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
    let mpesa_callback_token = match &settings.mpesa.callback_token {
        Some(token) => token.clone(),
        None => hex::encode(
            crate::secrets::get_or_create(&pool, &keys.master, "mpesa_callback_token").await?,
        ),
    };
    Ok(AppState::new(Parts {
        pool,
        settings,
        keys,
        metrics: Metrics::new()?,
        sealer,
        mpesa_callback_token,
    }))
}

/// Serves (with the background jobs) until `shutdown` resolves, then
/// finishes in-flight requests and stops the jobs.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _ = state
        .self_url
        .set(format!("http://{}", listener.local_addr()?));
    let (stop_jobs, jobs_shutdown) = tokio::sync::watch::channel(false);
    let jobs = jobs::spawn_all(&state, jobs_shutdown);
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_jobs.send(true);
    for job in jobs {
        let _ = job.await;
    }
    served?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
