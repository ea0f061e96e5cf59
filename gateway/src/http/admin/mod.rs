//! Operator endpoints (role `admin`; anyone else gets 403 `forbidden`).

mod audit;
mod channels;
mod compliance;
mod fx;
mod overview;
mod users;

use utoipa_axum::router::OpenApiRouter;

use super::AppState;

pub use users::UserSummary;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(overview::router())
        .merge(users::router())
        .merge(compliance::router())
        .merge(audit::router())
        .merge(fx::router())
        .merge(channels::router())
}
