//! Cursor pagination shared by every listing: `?limit=&before=`, newest
//! first, where the cursor is the last row's position in its table.

use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;

/// Largest page a client may ask for.
pub const MAX_PAGE: i64 = 200;
const DEFAULT_PAGE: i64 = 50;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(format = "page-size")]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(format = "cursor")]
    pub before: Option<String>,
}

impl PageQuery {
    /// The validated page size.
    pub fn limit(&self) -> Result<i64, ApiError> {
        page_size(self.limit)
    }

    /// Rows strictly before this position are on the page.
    pub fn before(&self) -> Result<i64, ApiError> {
        parse_cursor(self.before.as_deref())
    }
}

/// A page size from 1 to [`MAX_PAGE`]; the default when absent.
pub fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::Validation(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )))
    }
}

/// A cursor is a row position: up to 18 digits, no leading zero (as the
/// document's `cursor` format says); none or empty means the newest page.
fn parse_cursor(cursor: Option<&str>) -> Result<i64, ApiError> {
    let refused = || ApiError::Validation("before is not a cursor this API returned".into());
    match cursor {
        None | Some("") => Ok(i64::MAX),
        Some(c)
            if c.len() <= 18 && !c.starts_with('0') && c.bytes().all(|b| b.is_ascii_digit()) =>
        {
            c.parse().map_err(|_| refused())
        }
        Some(_) => Err(refused()),
    }
}

/// The cursor of the next page: present only when the page was full.
pub fn next_cursor(rows: usize, limit: i64, last_position: Option<i64>) -> Option<String> {
    (rows as i64 == limit)
        .then(|| last_position.map(|p| p.to_string()))
        .flatten()
}
