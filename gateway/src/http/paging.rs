//! Cursor pagination shared by every listing: `?limit=&before=`, newest
//! first, where the cursor is the last row's position in its table.

use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;

/// Largest page a client may ask for.
pub const MAX_PAGE: i64 = 200;
const DEFAULT_PAGE: i64 = 50;

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub before: Option<String>,
}

impl PageQuery {
    /// The validated page size.
    pub fn limit(&self) -> Result<i64, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if (1..=MAX_PAGE).contains(&limit) {
            Ok(limit)
        } else {
            Err(ApiError::Validation(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )))
        }
    }

    /// Rows strictly before this position are on the page.
    pub fn before(&self) -> Result<i64, ApiError> {
        match self.before.as_deref() {
            None | Some("") => Ok(i64::MAX),
            Some(cursor) => cursor
                .parse::<i64>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    ApiError::Validation("before is not a cursor this API returned".into())
                }),
        }
    }
}

/// The cursor of the next page: present only when the page was full.
pub fn next_cursor(rows: usize, limit: i64, last_position: Option<i64>) -> Option<String> {
    (rows as i64 == limit)
        .then(|| last_position.map(|p| p.to_string()))
        .flatten()
}
