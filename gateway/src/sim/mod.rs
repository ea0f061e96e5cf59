//! Faithful stand-ins for the services we cannot reach here, served on the
//! gateway's own listener and spoken to over HTTP exactly as the real ones
//! would be (only the base URL differs). Used when no credentials are
//! configured: `/sim/at` for Africa's Talking, `/sim/daraja` for Safaricom.

pub mod africastalking;
pub mod daraja;

use axum::Router;

use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .nest("/sim/at", africastalking::router())
        .nest("/sim/daraja", daraja::router())
}
