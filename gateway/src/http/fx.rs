//! Exchange rates and conversion quotes.

use axum::extract::State;
use axum::Json;
use chainpay_core::{Amount, CurrencyCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::ApiQuery;
use super::session::MaybeAuthUser;
use super::AppState;
use crate::movements::conversion::{self, Quote};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(rates))
        .routes(routes!(quote))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PairRate {
    /// `BASE/QUOTE`, e.g. `USD/KES`: quote-currency units per base unit.
    pub pair: String,
    pub mid: String,
    /// What one unit of the base currency converts into.
    pub bid: String,
    /// What one unit of the base currency costs in the quote currency.
    pub ask: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Rates {
    pub rates: Vec<PairRate>,
}

/// Mid, bid and ask of every currency pair, derived from the USD legs.
#[utoipa::path(get, path = "/fx/rates", tag = "fx", responses((status = 200, body = Rates)))]
async fn rates(State(state): State<AppState>) -> ApiResult<Json<Rates>> {
    let rules = state.rules.get(&state.pool).await?;
    let updated = sqlx::query!("SELECT currency, updated_at FROM fx_rates")
        .fetch_all(&state.pool)
        .await?;
    let updated_at = |currency: &str| {
        updated
            .iter()
            .find(|row| row.currency == currency)
            .map_or_else(Utc::now, |row| row.updated_at)
    };
    let currencies: Vec<&str> = rules.rates.currencies().collect();
    let mut rates = Vec::new();
    for base in &currencies {
        for quote in &currencies {
            if base == quote {
                continue;
            }
            let pair = rules
                .rates
                .pair(base, quote)
                .map_err(|e| ApiError::Internal(e.into()))?;
            rates.push(PairRate {
                pair: format!("{base}/{quote}"),
                mid: pair.mid.to_string(),
                bid: pair.bid.to_string(),
                ask: pair.ask.to_string(),
                updated_at: updated_at(base).max(updated_at(quote)),
            });
        }
    }
    Ok(Json(Rates { rates }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuoteQuery {
    /// Source currency.
    #[param(format = "currency")]
    pub from: String,
    /// Target currency.
    #[param(format = "currency")]
    pub to: String,
    /// In minor units of `from`.
    #[param(format = "minor-units")]
    pub amount: i64,
}

/// A conversion price. With a bearer token it is locked for the caller for
/// 30 seconds (`quote_id`, `expires_at`); without one it is an indicative
/// price (`indicative: true`) and nothing is stored. `converted_amount` is
/// exactly what the target wallet receives; `fee` is charged in the source
/// currency on top of `amount`.
#[utoipa::path(get, path = "/fx/quote", tag = "fx", params(QuoteQuery),
    responses((status = 200, body = Quote), (status = 400, description = "validation_error", body = Problem)))]
async fn quote(
    State(state): State<AppState>,
    MaybeAuthUser(user): MaybeAuthUser,
    ApiQuery(query): ApiQuery<QuoteQuery>,
) -> ApiResult<Json<Quote>> {
    let from =
        CurrencyCode::parse(&query.from).map_err(|e| ApiError::Validation(format!("from: {e}")))?;
    let to =
        CurrencyCode::parse(&query.to).map_err(|e| ApiError::Validation(format!("to: {e}")))?;
    let amount =
        Amount::new(query.amount).map_err(|e| ApiError::Validation(format!("amount: {e}")))?;
    let quote = match user {
        Some(user) => conversion::quote(&state, user.user_id, from, to, amount).await?,
        None => conversion::indicative(&state, from, to, amount).await?,
    };
    Ok(Json(quote))
}
