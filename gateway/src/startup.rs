//! Assembling the application from settings and serving it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::auth::jwt::JwtKeys;
use crate::config::Settings;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::secrets::ServerKeys;

/// Loads the server keys and builds the shared state for a migrated database.
pub async fn build_state(settings: Settings, pool: PgPool) -> anyhow::Result<AppState> {
    let keys = ServerKeys::load(&settings, &pool).await?;
    let jwt = JwtKeys::new(&keys.jwt_secret);
    Ok(AppState {
        pool,
        settings: Arc::new(settings),
        keys: Arc::new(keys),
        jwt: Arc::new(jwt),
        metrics: Arc::new(Metrics::new()?),
    })
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
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
