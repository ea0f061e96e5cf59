//! Money movements requested by customers, run through one pipeline.
//!
//! Each kind of movement ([`transfer`], [`conversion`]) says how to execute
//! itself inside a database transaction; [`run`] does the rest the same way
//! for all of them: the `Idempotency-Key` record, commit or rollback, the
//! audit row of a refusal (with the AML rule that fired and any report it
//! opens), and metrics.

pub mod conversion;
pub mod parties;
pub mod transfer;

use std::future::Future;

use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::compliance::sars;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::idempotency::{IdempotencyKey, Prior};
use crate::ledger::post::PostError;
use crate::rules::Rules;
use crate::transactions::TxView;

/// A customer's request to move money.
pub trait Operation: Sync {
    /// Audit action, e.g. `wallet.send`.
    const ACTION: &'static str;
    /// Metrics label, e.g. `transfer`.
    const KIND: &'static str;
    fn actor(&self) -> Uuid;
    /// The currency the movement is measured in (metrics).
    fn currency(&self) -> &str;
    /// What a refusal's audit row says about the request.
    fn describe(&self) -> Value;
    /// Performs the movement inside `conn`'s transaction, under `rules`
    /// (read before the transaction began, so no request ever holds one
    /// pooled connection while waiting for another).
    fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> impl Future<Output = Result<TxView, ApiError>> + Send;
}

/// The response a movement request gets: status and JSON body, exactly as
/// saved for replays.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub replayed: bool,
}

/// Runs `op` once per idempotency key: the outcome saved first is the
/// answer to every copy. Business refusals are audited and, when keyed,
/// saved so a retry sees the same answer.
pub async fn run<O: Operation>(
    state: &AppState,
    op: &O,
    key: Option<IdempotencyKey>,
) -> Result<Reply, ApiError> {
    // No look-up before the work: a retry is rare, and the key's unique
    // index catches it when the outcome is saved (the earlier answer wins).
    let rules = state.rules.get(&state.pool).await?;
    let mut tx = state.pool.begin().await?;
    match op.execute(&mut tx, state, &rules).await {
        Ok(view) => {
            let body = serde_json::to_value(&view).map_err(anyhow::Error::from)?;
            // A movement that waits on a channel is accepted, not done.
            let status = if view.status == "PENDING" {
                StatusCode::ACCEPTED
            } else {
                StatusCode::CREATED
            };
            if let Some(key) = &key {
                if !key.save(&mut tx, status, &body).await? {
                    tx.rollback().await?;
                    return replay_winner(state, key).await;
                }
            }
            tx.commit().await?;
            count(state, op, "completed");
            tracing::info!(tx_id = %view.tx_id, kind = O::KIND, amount = view.amount, currency = %view.currency, "movement completed");
            Ok(Reply {
                status,
                body,
                replayed: false,
            })
        }
        Err(ApiError::Internal(error)) => Err(ApiError::Internal(error)),
        Err(refusal) => {
            tx.rollback().await?;
            // A retry refused now (say, by the velocity its first try
            // counted) still gets the first answer.
            if let Some(key) = &key {
                if let Prior::Replay { status, body } = key.prior(&state.pool).await? {
                    return Ok(Reply {
                        status,
                        body,
                        replayed: true,
                    });
                }
            }
            record_refusal(state, op, key.as_ref(), &refusal).await?;
            Err(refusal)
        }
    }
}

fn count<O: Operation>(state: &AppState, op: &O, outcome: &str) {
    state
        .metrics
        .transfers
        .with_label_values(&[O::KIND, op.currency(), outcome])
        .inc();
}

/// Another request with the same key committed first: answer as it did.
async fn replay_winner(state: &AppState, key: &IdempotencyKey) -> Result<Reply, ApiError> {
    match key.prior(&state.pool).await? {
        Prior::Replay { status, body } => Ok(Reply {
            status,
            body,
            replayed: true,
        }),
        Prior::Fresh => Err(ApiError::Internal(anyhow::anyhow!(
            "idempotency record vanished"
        ))),
    }
}

/// Audits a refusal (and opens the report a compliance refusal calls for)
/// in its own transaction, since the movement's was rolled back.
async fn record_refusal<O: Operation>(
    state: &AppState,
    op: &O,
    key: Option<&IdempotencyKey>,
    refusal: &ApiError,
) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let mut detail = op.describe();
    detail["reason"] = json!(refusal.code());
    if let ApiError::Compliance(compliance) = refusal {
        detail["rule"] = json!(compliance.rule.as_str());
        detail["finding"] = compliance.detail.clone();
        if let Some((party, finding)) = &compliance.report {
            sars::open_or_append(
                &mut tx,
                *party,
                compliance.rule.as_str(),
                None,
                finding.clone(),
            )
            .await?;
        }
    }
    AuditEvent::new(O::ACTION, Outcome::Rejected)
        .actor(op.actor())
        .detail(detail)
        .record(&mut tx)
        .await?;
    if let Some(key) = key {
        let problem = serde_json::to_value(refusal.problem()).map_err(anyhow::Error::from)?;
        if !key.save(&mut tx, refusal.status(), &problem).await? {
            // A concurrent copy already answered; nothing of ours to keep.
            tx.rollback().await?;
            return Ok(());
        }
    }
    tx.commit().await?;
    count(state, op, refusal.code());
    Ok(())
}

/// Maps a ledger posting failure to the API's answer.
pub fn post_error(error: PostError) -> ApiError {
    match error {
        PostError::InsufficientFunds => ApiError::InsufficientFunds,
        PostError::UnknownAccount => ApiError::Internal(anyhow::anyhow!("ledger account vanished")),
        PostError::Database(e) => e.into(),
    }
}
