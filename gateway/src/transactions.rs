//! Reading transactions back as the API shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

/// A transaction as clients see it (the contract's shape).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TxView {
    pub tx_id: Uuid,
    #[serde(rename = "type")]
    pub tx_type: String,
    pub status: String,
    /// Minor units of `currency`.
    pub amount: i64,
    /// Charged to the sender on top of `amount`, in `currency`.
    pub fee: i64,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    /// HMAC-SHA3-256 of the canonical transaction bytes, by the server.
    pub signature: String,
    /// Conversions: the currency received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_currency: Option<String>,
    /// Conversions: exactly what the target wallet received, in its minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converted_amount: Option<i64>,
    /// Conversions: target units per source unit, as applied (decimal string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Chain block holding this transaction, once sealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_index: Option<i64>,
    #[serde(skip)]
    pub from_user_id: Option<Uuid>,
    #[serde(skip)]
    pub to_user_id: Option<Uuid>,
    #[serde(skip)]
    pub seq: i64,
}

impl TxView {
    /// A movement just posted, as its response shows it (no block yet).
    pub fn posted(
        movement: &crate::ledger::post::Movement,
        signature: String,
        from_phone: Option<String>,
        to_phone: Option<String>,
    ) -> Self {
        let facts = &movement.facts;
        let conversion = facts.conversion.as_ref();
        Self {
            tx_id: facts.tx_id,
            tx_type: facts.tx_type.as_str().to_owned(),
            status: movement.status.as_str().to_owned(),
            amount: facts.amount_minor,
            fee: facts.fee_minor,
            currency: facts.currency.clone(),
            from_phone,
            to_phone,
            note: movement.note.clone(),
            created_at: facts.created_at,
            signature,
            to_currency: conversion.map(|leg| leg.to_currency.clone()),
            converted_amount: conversion.map(|leg| leg.converted_minor),
            rate: conversion.map(|leg| leg.rate.clone()),
            block_index: None,
            from_user_id: facts.from_user_id,
            to_user_id: facts.to_user_id,
            seq: 0,
        }
    }
}

/// One transaction by id.
pub async fn find(pool: &PgPool, tx_id: Uuid) -> sqlx::Result<Option<TxView>> {
    sqlx::query_as!(
        TxView,
        r#"
        SELECT t.seq, t.tx_id, t.tx_type, t.status, t.amount, t.fee, t.currency,
               fu.phone AS "from_phone?", tu.phone AS "to_phone?", t.note, t.created_at, t.signature,
               t.to_currency, t.converted_amount, trim_scale(t.rate)::text AS rate,
               e.block_index AS "block_index?", t.from_user_id, t.to_user_id
        FROM transactions t
        LEFT JOIN users fu ON fu.id = t.from_user_id
        LEFT JOIN users tu ON tu.id = t.to_user_id
        LEFT JOIN block_entries e ON e.tx_id = t.tx_id
        WHERE t.tx_id = $1
        "#,
        tx_id
    )
    .fetch_optional(pool)
    .await
}

/// A user's transactions, newest first, strictly older than `before_seq`.
/// Two index range scans (as sender, as recipient) merged, so a page costs
/// the same however long the history is.
pub async fn list_for_user(
    pool: &PgPool,
    user_id: Uuid,
    before_seq: i64,
    limit: i64,
) -> sqlx::Result<Vec<TxView>> {
    sqlx::query_as!(
        TxView,
        r#"
        WITH page AS (
            (SELECT seq FROM transactions WHERE from_user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3)
            UNION
            (SELECT seq FROM transactions WHERE to_user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3)
            ORDER BY seq DESC LIMIT $3
        )
        SELECT t.seq, t.tx_id, t.tx_type, t.status, t.amount, t.fee, t.currency,
               fu.phone AS "from_phone?", tu.phone AS "to_phone?", t.note, t.created_at, t.signature,
               t.to_currency, t.converted_amount, trim_scale(t.rate)::text AS rate,
               e.block_index AS "block_index?", t.from_user_id, t.to_user_id
        FROM page JOIN transactions t ON t.seq = page.seq
        LEFT JOIN users fu ON fu.id = t.from_user_id
        LEFT JOIN users tu ON tu.id = t.to_user_id
        LEFT JOIN block_entries e ON e.tx_id = t.tx_id
        ORDER BY t.seq DESC
        "#,
        user_id,
        before_seq,
        limit
    )
    .fetch_all(pool)
    .await
}
