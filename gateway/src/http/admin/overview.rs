//! Operator overview: system statistics and the ledger check.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiResult, Problem};
use crate::http::session::AdminUser;
use crate::http::AppState;
use crate::ledger::check::{self, LedgerReport};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(ledger_check))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CurrencyStats {
    pub currency: String,
    /// Sum of all customer wallets.
    pub customer_balances: i64,
    /// Sum of completed transfer amounts.
    pub transfer_volume: i64,
    /// Fees earned (fee revenue accounts).
    pub fee_revenue: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    pub users: i64,
    pub suspended_users: i64,
    pub kyc_pending: i64,
    pub transactions: i64,
    pub transactions_24h: i64,
    pub currencies: Vec<CurrencyStats>,
}

/// System overview.
#[utoipa::path(get, path = "/admin/stats", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Stats), (status = 403, body = Problem)))]
async fn stats(State(state): State<AppState>, _admin: AdminUser) -> ApiResult<Json<Stats>> {
    let counts = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM users) AS "users!",
                  (SELECT count(*) FROM users WHERE suspended) AS "suspended!",
                  (SELECT count(*) FROM users WHERE kyc_status = 'PENDING') AS "kyc_pending!",
                  (SELECT count(*) FROM transactions) AS "transactions!",
                  (SELECT count(*) FROM transactions WHERE created_at > now() - interval '24 hours') AS "recent!""#
    )
    .fetch_one(&state.pool)
    .await?;
    let currencies = sqlx::query_as!(
        CurrencyStats,
        r#"SELECT c.code AS currency,
                  coalesce((SELECT sum(balance) FROM accounts WHERE kind = 'wallet' AND currency = c.code), 0)::bigint AS "customer_balances!",
                  coalesce((SELECT sum(amount) FROM transactions WHERE tx_type = 'transfer' AND status = 'COMPLETED' AND currency = c.code), 0)::bigint AS "transfer_volume!",
                  coalesce((SELECT sum(balance) FROM accounts WHERE kind = 'fee_revenue' AND currency = c.code), 0)::bigint AS "fee_revenue!"
           FROM currencies c ORDER BY c.code"#
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Stats {
        users: counts.users,
        suspended_users: counts.suspended,
        kyc_pending: counts.kyc_pending,
        transactions: counts.transactions,
        transactions_24h: counts.recent,
        currencies,
    }))
}

/// Prove the books balance: every account equals the sum of its postings,
/// every entry and every currency sums to zero.
#[utoipa::path(get, path = "/admin/ledger/check", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = LedgerReport), (status = 403, body = Problem)))]
async fn ledger_check(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> ApiResult<Json<LedgerReport>> {
    Ok(Json(check::check(&state.pool).await?))
}
