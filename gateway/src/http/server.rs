//! Running the HTTP server: the `serve` command, and serving a built
//! state on a listener with the background jobs until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use std::future::IntoFuture;

use tokio::net::TcpListener;

use crate::config::{Deployment, Settings};
use crate::db::Database;
use crate::jobs;
use crate::startup;
use crate::state::AppState;

/// `chainpay serve`: opens the database (the embedded default when no
/// `DATABASE_URL`), seeds the demo data where asked, serves until SIGTERM.
pub async fn run(settings: Settings, demo: bool) -> anyhow::Result<ExitCode> {
    let shutdown = startup::shutdown_signal();
    if settings.deployment == Deployment::Production {
        let mut problems = settings.production_problems();
        if demo {
            problems.push("--demo seeds demo users whose PINs are public".to_owned());
        }
        if !problems.is_empty() {
            anyhow::bail!(
                "CHAINPAY_ENV=production refuses to start:\n  - {}",
                problems.join("\n  - ")
            );
        }
    }
    let database = Database::open(&settings, true).await?;
    if settings.deployment == Deployment::Production
        && !crate::db::runs_as_app_role(&database.pool).await?
    {
        database.close().await;
        anyhow::bail!(
            "CHAINPAY_ENV=production refuses to start:\n  - the gateway would run as the database's owner, \
             which can switch off the triggers that keep the ledger and the audit log append-only: \
             let DATABASE_URL's user take the role {role} (GRANT {role} TO that user, as a role allowed to grant it)",
            role = crate::db::APP_ROLE
        );
    }
    let seed = demo || database.embedded.is_some();
    let listener = TcpListener::bind(settings.listen_addr).await?;
    let addr = listener.local_addr()?;
    let state = startup::build_state(settings, database.pool.clone()).await?;
    if seed {
        crate::seed::seed_demo(&state.pool, &state.keys.tx_signing).await?;
    }
    tracing::info!(%addr, "ChainPay listening: API http://{addr}/api/v1, docs http://{addr}/docs, console http://{addr}/console/");
    let served = serve(listener, state, shutdown).await;
    database.close().await;
    served?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// How long in-flight requests get to finish after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves (with the background jobs, and the private metrics listener when
/// `CHAINPAY_METRICS_ADDR` is set) until `shutdown` resolves; then stops the
/// jobs at once (each abandons its current pass, which is one transaction
/// and safe to abandon) and gives in-flight requests [`DRAIN_TIMEOUT`].
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _ = state
        .self_url
        .set(format!("http://{}", listener.local_addr()?));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut jobs = jobs::spawn_all(&state, stopped.clone());
    let (pool, sessions) = (state.pool.clone(), state.sessions.clone());
    let listening = stopped.clone();
    jobs.push(tokio::spawn(async move {
        crate::auth::cache::listen(pool, &sessions, listening).await
    }));
    let metrics = match state.settings.metrics_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(%addr, "metrics listening on http://{addr}/metrics");
            let app = super::ops::metrics_router(state.clone());
            Some(tokio::spawn(
                axum::serve(listener, app)
                    .with_graceful_shutdown(until(stopped.clone()))
                    .into_future(),
            ))
        }
        None => None,
    };
    let app = super::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(until(stopped))
            .into_future(),
    );
    shutdown.await;
    let _ = stop.send(true);
    for job in jobs {
        let _ = job.await;
    }
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(served) => served??,
        Err(_) => tracing::warn!(
            "in-flight requests did not finish in {DRAIN_TIMEOUT:?}; stopping anyway"
        ),
    }
    Ok(())
}

/// Resolves once `stopped` turns true.
async fn until(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
