//! Faithful stand-ins for the services we cannot reach here, served on the
//! gateway's own listener and spoken to over HTTP exactly as the real ones
//! would be (only the base URL differs). Used when no credentials are
//! configured: `/sim/at` for Africa's Talking, `/sim/daraja` for Safaricom.

pub mod africastalking;
pub mod daraja;
pub mod daraja_enquiries;

use axum::Router;

use crate::config::{MpesaEnv, Settings};
use crate::state::AppState;

/// The simulators these settings call for: none when real credentials are
/// configured, so a production gateway exposes no simulator endpoint.
pub fn router(settings: &Settings) -> Router<AppState> {
    let mut router = Router::new();
    if settings.africastalking.is_none() {
        router = router.nest("/sim/at", africastalking::router());
    }
    if settings.mpesa.env == MpesaEnv::Simulator {
        router = router.nest("/sim/daraja", daraja::router());
    }
    router
}
