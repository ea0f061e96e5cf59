//! One business as an operator (or its owner) looks it over: its latest
//! payments and refunds, its webhook endpoints with their latest
//! deliveries, and its API keys by prefix and last use.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::keys::{self, KeyView};
use super::{payments, view, MerchantView, PaymentView};
use crate::error::Error;

/// How many of the latest payments, refunds and deliveries are shown.
const LATEST: i64 = 50;

/// A webhook endpoint, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EndpointView {
    pub webhook_id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    /// `ACTIVE` or `DISABLED` (failing for days).
    pub status: String,
    /// Since when every delivery has failed, if they do.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered: i64,
    pub pending: i64,
    pub failed: i64,
}

/// A delivery, with the endpoint it went to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EndpointDelivery {
    pub delivery_id: i64,
    pub webhook_id: Uuid,
    pub url: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A refund the business made.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefundView {
    pub tx_id: Uuid,
    pub payment_id: Uuid,
    pub amount: i64,
    pub currency: String,
    /// `owner:<id>` or `key:<id>`.
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MerchantDetail {
    pub merchant: MerchantView,
    pub payments: Vec<PaymentView>,
    pub refunds: Vec<RefundView>,
    pub endpoints: Vec<EndpointView>,
    pub deliveries: Vec<EndpointDelivery>,
    pub keys: Vec<KeyView>,
}

pub async fn detail(conn: &mut PgConnection, id: Uuid) -> Result<MerchantDetail, Error> {
    let merchant = view(conn, id).await?;
    let payments = payments(conn, id, (None, None), i64::MAX, LATEST)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let refunds = sqlx::query_as!(
        RefundView,
        "SELECT r.tx_id, r.payment_tx_id AS payment_id, r.amount, p.currency, r.requested_by, r.created_at
         FROM merchant_refunds r JOIN merchant_payments p ON p.tx_id = r.payment_tx_id
         WHERE p.merchant_id = $1 ORDER BY r.created_at DESC LIMIT $2",
        id,
        LATEST
    )
    .fetch_all(&mut *conn)
    .await?;
    let deliveries = sqlx::query_as!(
        EndpointDelivery,
        "SELECT d.id AS delivery_id, d.webhook_id, w.url, d.event_id, e.type AS event_type, d.status, d.attempts,
                d.last_status_code, d.last_error, d.created_at, d.delivered_at
         FROM webhook_deliveries d JOIN merchant_webhooks w ON w.id = d.webhook_id JOIN webhook_events e ON e.id = d.event_id
         WHERE w.merchant_id = $1 ORDER BY d.id DESC LIMIT $2",
        id,
        LATEST
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(MerchantDetail {
        merchant,
        payments,
        refunds,
        endpoints: endpoints(conn, id).await?,
        deliveries,
        keys: keys::of_merchant(conn, id).await?,
    })
}

/// A business's webhook endpoints, newest first, with delivery counts.
pub async fn endpoints(
    conn: &mut PgConnection,
    merchant_id: Uuid,
) -> Result<Vec<EndpointView>, Error> {
    Ok(sqlx::query_as!(
        EndpointView,
        r#"SELECT w.id AS webhook_id, w.url, w.events, w.status, w.failing_since, w.created_at,
                  count(d.id) FILTER (WHERE d.status = 'DELIVERED') AS "delivered!",
                  count(d.id) FILTER (WHERE d.status = 'PENDING') AS "pending!",
                  count(d.id) FILTER (WHERE d.status = 'FAILED') AS "failed!"
           FROM merchant_webhooks w LEFT JOIN webhook_deliveries d ON d.webhook_id = w.id
           WHERE w.merchant_id = $1 GROUP BY w.id ORDER BY w.created_at DESC"#,
        merchant_id
    )
    .fetch_all(conn)
    .await?)
}
