//! Money movements requested by customers, run through one pipeline.
//!
//! Each kind of movement ([`transfer`], [`conversion`], M-Pesa withdrawals)
//! says how to execute itself inside a database transaction and books
//! itself through [`book`]; [`run`] does the rest the same way for all of
//! them: the idempotency record, commit or rollback, the audit row of a
//! refusal (with the AML rule that fired and any report it opens), and
//! metrics.

pub mod book;
pub mod cash_in;
pub mod cash_out;
pub mod conversion;
pub mod engine;
pub mod merchant_pay;
pub mod merchant_refund;
pub mod parties;
pub mod transfer;

use std::future::Future;

use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::compliance::sars;
use crate::error::Error;
use crate::idempotency::{IdempotencyKey, Prior};
use crate::rules::Rules;
use crate::state::AppState;
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
    ) -> impl Future<Output = Result<TxView, Error>> + Send;

    /// Runs the movement once per `key`: in a transaction of its own unless
    /// its kind is posted in batches (transfers go to [`engine`]).
    fn submit(
        &self,
        state: &AppState,
        key: Option<IdempotencyKey>,
    ) -> impl Future<Output = Reply> + Send
    where
        Self: Sized,
    {
        run(state, self, key)
    }
}

/// What a keyed request comes to: its result or refusal, and whether that
/// is a replay of an earlier request with the same key.
pub struct Reply<T = TxView> {
    pub outcome: Result<T, Error>,
    pub replayed: bool,
}

impl<T> Reply<T> {
    pub fn fresh(outcome: Result<T, Error>) -> Self {
        Self {
            outcome,
            replayed: false,
        }
    }

    pub fn replayed(outcome: Result<T, Error>) -> Self {
        Self {
            outcome,
            replayed: true,
        }
    }
}

/// Runs `op` once per idempotency key: the outcome saved first is the
/// answer to every copy. Business refusals are audited and, when keyed,
/// saved so a retry sees the same answer.
pub async fn run<O: Operation>(state: &AppState, op: &O, key: Option<IdempotencyKey>) -> Reply {
    match attempt(state, op, key.as_ref()).await {
        Ok(reply) => reply,
        Err(error) => Reply::fresh(Err(error)),
    }
}

async fn attempt<O: Operation>(
    state: &AppState,
    op: &O,
    key: Option<&IdempotencyKey>,
) -> Result<Reply, Error> {
    // No look-up before the work: a retry is rare, and the key's unique
    // index catches it when the outcome is saved (the earlier answer wins).
    let rules = state.rules.get(&state.pool).await?;
    let mut tx = state.pool.begin().await?;
    match op.execute(&mut tx, state, &rules).await {
        Ok(view) => {
            if let Some(key) = key {
                if !key.save(&mut tx, Ok(&view)).await? {
                    tx.rollback().await?;
                    return replay(state, key).await;
                }
            }
            tx.commit().await?;
            count(state, O::KIND, op.currency(), "completed");
            tracing::info!(tx_id = %view.tx_id, kind = O::KIND, amount = view.amount, currency = %view.currency, "movement completed");
            Ok(Reply::fresh(Ok(view)))
        }
        Err(Error::Internal(error)) => Err(Error::Internal(error)),
        Err(refusal) => {
            tx.rollback().await?;
            // A retry refused now (say, by the velocity its first try
            // counted) still gets the first answer.
            if let Some(key) = key {
                if let Some(Prior::Done(outcome)) = key.prior(&state.pool).await? {
                    return Ok(Reply::replayed(outcome));
                }
            }
            let attempted = Attempted {
                action: O::ACTION,
                kind: O::KIND,
                currency: op.currency(),
                actor: op.actor(),
                detail: op.describe(),
            };
            record_refusal(state, attempted, key, &refusal).await?;
            Ok(Reply::fresh(Err(refusal)))
        }
    }
}

/// The audit row of a refused request: what was asked, the reason and, for
/// an AML refusal, the rule and what it found.
pub fn refusal_audit(attempted: &Attempted<'_>, refusal: &Error) -> AuditEvent {
    let mut detail = attempted.detail.clone();
    detail["reason"] = json!(refusal.label());
    if let Error::Compliance(compliance) = refusal {
        detail["rule"] = json!(compliance.rule.as_str());
        detail["finding"] = compliance.detail.clone();
    }
    AuditEvent::new(attempted.action, Outcome::Rejected)
        .actor(attempted.actor)
        .detail(detail)
}

/// Opens (or adds to) the report an AML refusal calls for, if any.
pub async fn open_refusal_report(conn: &mut PgConnection, refusal: &Error) -> sqlx::Result<()> {
    if let Error::Compliance(compliance) = refusal {
        if let Some((party, finding)) = &compliance.report {
            let rule = compliance.rule.as_str();
            sars::open_or_append(conn, *party, rule, None, finding.clone()).await?;
        }
    }
    Ok(())
}

pub(crate) fn count(state: &AppState, kind: &str, currency: &str, outcome: &str) {
    state
        .metrics
        .transfers
        .with_label_values(&[kind, currency, outcome])
        .inc();
}

/// A refused request, as its audit row and metrics describe it.
pub struct Attempted<'a> {
    /// Audit action, e.g. `wallet.send`.
    pub action: &'static str,
    /// Metrics label, e.g. `transfer`.
    pub kind: &'static str,
    pub currency: &'a str,
    pub actor: Uuid,
    /// What was asked for; the reason and rule are added.
    pub detail: Value,
}

/// Another request with the same key got there first: answer as it did,
/// or say it is still in flight.
pub async fn replay<T: serde::de::DeserializeOwned>(
    state: &AppState,
    key: &IdempotencyKey,
) -> Result<Reply<T>, Error> {
    match key.prior(&state.pool).await? {
        Some(Prior::Done(outcome)) => Ok(Reply::replayed(outcome)),
        Some(Prior::InFlight) => Err(Error::RequestInFlight),
        None => Err(Error::internal("idempotency record vanished")),
    }
}

/// Audits a refusal (and opens the report a compliance refusal calls for)
/// in its own transaction, since the request's was rolled back; a keyed
/// request saves the refusal so a retry replays it.
pub async fn record_refusal(
    state: &AppState,
    attempted: Attempted<'_>,
    key: Option<&IdempotencyKey>,
    refusal: &Error,
) -> Result<(), Error> {
    let mut tx = state.pool.begin().await?;
    open_refusal_report(&mut tx, refusal).await?;
    refusal_audit(&attempted, refusal).record(&mut tx).await?;
    if let Some(key) = key {
        if !key.save::<()>(&mut tx, Err(refusal)).await? {
            // A concurrent copy already answered; nothing of ours to keep.
            tx.rollback().await?;
            return Ok(());
        }
    }
    tx.commit().await?;
    count(state, attempted.kind, attempted.currency, refusal.label());
    Ok(())
}
