//! Operator endpoints for the rate book: the USD legs and the spread.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chainpay_core::CurrencyCode;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{AuditEvent, Outcome};
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::ApiJson;
use crate::http::session::AdminUser;
use crate::http::AppState;
use crate::rate_book::{self, Change, Proposal, Subject};
use crate::rules::parse_decimal;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_rates, put_rates))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsdLeg {
    pub currency: String,
    /// Units of the currency one US dollar buys (decimal string).
    pub usd_mid: String,
    /// `admin`, `simulated` or `seed`.
    pub source: String,
    pub updated_at: DateTime<Utc>,
    /// Minor-unit digits of the currency (2 for KES: 10000 is KES 100.00).
    pub exponent: i16,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RateBookView {
    /// Total bid/ask spread as a fraction (`0.015` = 1.5 %).
    pub spread: String,
    pub quote_ttl_seconds: i32,
    pub legs: Vec<UsdLeg>,
    /// Changes one admin asked for, waiting for a second admin to set the
    /// same value.
    pub proposals: Vec<Proposal>,
}

async fn rate_book(state: &AppState) -> ApiResult<RateBookView> {
    let settings = sqlx::query!("SELECT spread, quote_ttl_seconds FROM fx_settings")
        .fetch_one(&state.pool)
        .await?;
    let legs = sqlx::query!(
        "SELECT r.currency, r.usd_mid, r.source, r.updated_at, c.exponent
         FROM fx_rates r JOIN currencies c ON c.code = r.currency ORDER BY r.currency"
    )
    .fetch_all(&state.pool)
    .await?
    .into_iter()
    .map(|row| UsdLeg {
        currency: row.currency,
        usd_mid: row.usd_mid.normalize().to_string(),
        source: row.source,
        updated_at: row.updated_at,
        exponent: row.exponent,
    })
    .collect();
    Ok(RateBookView {
        spread: settings.spread.normalize().to_string(),
        quote_ttl_seconds: settings.quote_ttl_seconds,
        legs,
        proposals: rate_book::proposals(&mut *state.pool.acquire().await?).await?,
    })
}

/// The rate book as stored.
#[utoipa::path(get, path = "/admin/fx/rates", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = RateBookView), (status = 403, body = Problem)))]
async fn get_rates(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> ApiResult<Json<RateBookView>> {
    Ok(Json(rate_book(&state).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetLeg {
    pub currency: String,
    /// Units of the currency one US dollar buys, e.g. `"129.50"`.
    pub usd_mid: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetRates {
    #[serde(default)]
    pub rates: Vec<SetLeg>,
    /// New total spread, e.g. `"0.015"`.
    pub spread: Option<String>,
}

/// Set USD legs and/or the spread, with four eyes: one admin's change waits
/// (202, listed in `proposals`) until a second admin sets the same value
/// within 15 minutes, and is then in force (200). Quotes already given keep
/// their rates.
#[utoipa::path(put, path = "/admin/fx/rates", tag = "admin", security(("bearer" = [])), request_body = SetRates,
    responses((status = 200, description = "every change agreed with another admin's and in force", body = RateBookView),
              (status = 202, description = "a change waits for a second admin to set the same value; any agreed is in force", body = RateBookView),
              (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn put_rates(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiJson(body): ApiJson<SetRates>,
) -> ApiResult<(StatusCode, Json<RateBookView>)> {
    let mut changes: Vec<(Subject, Decimal)> = parse_legs(&body.rates)?
        .into_iter()
        .map(|(currency, mid)| (Subject::Leg(currency), mid))
        .collect();
    if let Some(spread) = parse_spread(body.spread.as_deref())? {
        changes.push((Subject::Spread, spread));
    }
    if changes.is_empty() {
        return Err(ApiError::Validation(
            "nothing to change: give rates and/or spread".into(),
        ));
    }
    let mut tx = state.pool.begin().await?;
    let (mut decided, mut waiting) = (Vec::new(), false);
    for (subject, value) in &changes {
        let change = rate_book::propose(&mut tx, admin.0.user_id, subject, *value).await?;
        let (outcome, proposed_by) = match change {
            Change::Agreed { proposed_by } => ("agreed", Some(proposed_by)),
            Change::Proposed => ("proposed", None),
        };
        waiting |= change == Change::Proposed;
        decided.push(json!({"subject": subject.key(), "value": value.to_string(),
                            "outcome": outcome, "proposed_by": proposed_by}));
    }
    AuditEvent::new("config.fx_rates", Outcome::Success)
        .actor(admin.0.user_id)
        .detail(json!({ "changes": decided }))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    state.rules.invalidate().await;
    let status = if waiting {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(rate_book(&state).await?)))
}

/// Each leg as a positive decimal of at most 10 places; USD is 1. In
/// currency order (legs are locked in that order), each currency once.
fn parse_legs(rates: &[SetLeg]) -> ApiResult<Vec<(String, Decimal)>> {
    let mut legs = Vec::with_capacity(rates.len());
    for leg in rates {
        let currency =
            CurrencyCode::parse(&leg.currency).map_err(|e| ApiError::Validation(e.to_string()))?;
        let mid = parse_decimal(&leg.usd_mid)
            .filter(|mid| {
                *mid > Decimal::ZERO
                    && mid.scale() <= 10
                    && *mid < Decimal::from(100_000_000_000_000i64)
            })
            .ok_or_else(|| {
                ApiError::Validation(format!("usd_mid of {currency} must be a positive decimal"))
            })?;
        if currency.as_str() == "USD" && mid != Decimal::ONE {
            return Err(ApiError::Validation(
                "the USD leg is 1 by definition".into(),
            ));
        }
        legs.push((currency.to_string(), mid));
    }
    legs.sort();
    if legs.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err(ApiError::Validation("each currency at most once".into()));
    }
    Ok(legs)
}

fn parse_spread(raw: Option<&str>) -> ApiResult<Option<Decimal>> {
    raw.map(|raw| {
        parse_decimal(raw)
            .filter(|s| *s >= Decimal::ZERO && *s < Decimal::new(5, 1) && s.scale() <= 6)
            .ok_or_else(|| {
                ApiError::Validation("spread must be a decimal from 0 to below 0.5".into())
            })
    })
    .transpose()
}
