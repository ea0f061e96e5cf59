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
        .routes(routes!(overview))
        .routes(routes!(ledger_check))
        .routes(routes!(fee_bands))
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

/// One currency's completed transfers today (UTC).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DayVolume {
    pub currency: String,
    /// Sum of the amounts, in minor units.
    pub amount: i64,
    pub count: i64,
}

/// What an operator looks at first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    pub users: i64,
    /// Completed movements of today (UTC) by currency, every kind.
    pub volume_today: Vec<DayVolume>,
    pub pending_reversals: i64,
    /// SARs `OPEN` or `UNDER_REVIEW`.
    pub open_sars: i64,
    pub pending_deposits: i64,
    /// Blocks in the chain, genesis included.
    pub chain_height: i64,
    /// Transactions committed and waiting for the next block.
    pub chain_pending: i64,
}

/// The operator's overview: users, today's volume, the work waiting
/// (reversals, SARs, deposits) and the chain. The ledger check and the audit
/// verification are their own (heavier) endpoints.
#[utoipa::path(get, path = "/admin/overview", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Overview), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn overview(State(state): State<AppState>, admin: AdminUser) -> ApiResult<Json<Overview>> {
    // SARs about the caller are not counted for them (no tipping off).
    let counts = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM users) AS "users!",
                  (SELECT count(*) FROM reversal_requests WHERE status = 'PENDING') AS "reversals!",
                  (SELECT count(*) FROM sars WHERE status IN ('OPEN', 'UNDER_REVIEW') AND user_id IS DISTINCT FROM $1) AS "sars!",
                  (SELECT count(*) FROM mpesa_deposits WHERE status = 'PENDING') AS "deposits!",
                  (SELECT count(*) FROM blocks) AS "height!",
                  (SELECT count(*) FROM chain_pending) AS "pending!""#,
        admin.0.user_id
    )
    .fetch_one(&state.pool)
    .await?;
    let volume_today = sqlx::query_as!(
        DayVolume,
        r#"SELECT currency, sum(amount)::bigint AS "amount!", count(*) AS "count!"
           FROM transactions
           WHERE status = 'COMPLETED' AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           GROUP BY currency ORDER BY currency"#
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Overview {
        users: counts.users,
        volume_today,
        pending_reversals: counts.reversals,
        open_sars: counts.sars,
        pending_deposits: counts.deposits,
        chain_height: counts.height,
        chain_pending: counts.pending,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeeBandView {
    /// `send`, `withdraw` or `convert`.
    pub kind: String,
    /// The band applies from this USD-equivalent amount (inclusive).
    pub from_usd_cents: i64,
    /// Fraction of the amount (decimal string).
    pub rate: String,
    pub min_fee_usd_cents: Option<i64>,
    pub max_fee_usd_cents: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeeBands {
    pub bands: Vec<FeeBandView>,
}

/// The fee schedule as stored: tiered bands per kind.
#[utoipa::path(get, path = "/admin/fees", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = FeeBands), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn fee_bands(State(state): State<AppState>, _admin: AdminUser) -> ApiResult<Json<FeeBands>> {
    let bands = sqlx::query!(
        "SELECT kind, from_usd_cents, rate, min_fee_usd_cents, max_fee_usd_cents FROM fee_bands ORDER BY kind, from_usd_cents"
    )
    .fetch_all(&state.pool)
    .await?
    .into_iter()
    .map(|band| FeeBandView {
        kind: band.kind,
        from_usd_cents: band.from_usd_cents,
        rate: band.rate.normalize().to_string(),
        min_fee_usd_cents: band.min_fee_usd_cents,
        max_fee_usd_cents: band.max_fee_usd_cents,
    })
    .collect();
    Ok(Json(FeeBands { bands }))
}
