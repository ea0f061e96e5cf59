//! Operator endpoints (role `admin`; anyone else gets 403 `forbidden`).

mod agents;
mod audit;
mod channels;
mod compliance;
mod corrections;
mod fx;
mod merchants;
mod overview;
mod payouts;
mod reconciliation;
mod users;

use std::ops::RangeInclusive;

use utoipa_axum::router::OpenApiRouter;

use super::error::{ApiError, ApiResult};
use super::AppState;

/// An operator's note, trimmed, of `min` to `max` characters with no
/// control characters other than line breaks; kept in the audit trail.
pub(super) fn note(raw: &str, min: usize, max: usize) -> ApiResult<String> {
    let note = raw.trim();
    let count = note.chars().count();
    let clean = note
        .chars()
        .all(|c| !c.is_control() || c == '\n' || c == '\r');
    if count < min || count > max || !clean {
        return Err(ApiError::Validation(format!(
            "note must be {min} to {max} characters, without control characters"
        )));
    }
    Ok(note.to_owned())
}

/// A decision's optional note: up to 500 characters, none when blank.
pub(super) fn decision_note(raw: &str) -> ApiResult<Option<String>> {
    let note = note(raw, 0, 500)?;
    Ok((!note.is_empty()).then_some(note))
}

/// An M-Pesa receipt as an operator typed it: trimmed, `lengths` letters
/// and digits, upper-cased as M-Pesa writes it; `None` if it is not one.
pub(super) fn mpesa_receipt(raw: &str, lengths: RangeInclusive<usize>) -> Option<String> {
    let receipt = raw.trim();
    (lengths.contains(&receipt.len()) && receipt.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| receipt.to_ascii_uppercase())
}

pub use users::UserSummary;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(overview::router())
        .merge(users::router())
        .merge(compliance::router())
        .merge(audit::router())
        .merge(fx::router())
        .merge(channels::router())
        .merge(agents::router())
        .merge(reconciliation::router())
        .merge(payouts::router())
        .merge(corrections::router())
        .merge(merchants::router())
}
