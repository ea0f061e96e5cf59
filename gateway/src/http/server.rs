//! Running the HTTP server: the `serve` command, and serving a built
//! state on a listener with the background jobs until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::config::Settings;
use crate::db::Database;
use crate::jobs;
use crate::startup;
use crate::state::AppState;

/// `chainpay serve`: opens the database (the embedded default when no
/// `DATABASE_URL`), seeds the demo data where asked, serves until SIGTERM.
pub async fn run(settings: Settings, demo: bool) -> anyhow::Result<ExitCode> {
    let database = Database::open(&settings).await?;
    let seed = demo || database.embedded.is_some();
    let listener = TcpListener::bind(settings.listen_addr).await?;
    let addr = listener.local_addr()?;
    let state = startup::build_state(settings, database.pool.clone()).await?;
    if seed {
        crate::seed::seed_demo(&state.pool, &state.keys.tx_signing).await?;
    }
    tracing::info!(%addr, "ChainPay listening: API http://{addr}/api/v1, docs http://{addr}/docs, console http://{addr}/console/");
    let served = serve(listener, state, startup::shutdown_signal()).await;
    database.close().await;
    served?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
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
    let app = super::router(state).into_make_service_with_connect_info::<SocketAddr>();
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
