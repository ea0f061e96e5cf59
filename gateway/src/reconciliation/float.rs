//! The M-Pesa float against Daraja's Account Balance.
//!
//! Our books say what M-Pesa holds for us: the negated balance of the
//! M-Pesa float account (deposits booked in, payouts booked out). Daraja's
//! Account Balance answers asynchronously at `/api/v1/mpesa/balance/result`;
//! a run asks, waits a few seconds for the answer, and compares. Money in
//! flight is allowed for: M-Pesa may hold up to the pending deposits more
//! (paid, not yet booked) and up to the pending withdrawals less (paid out,
//! not yet settled); anything outside that is a finding.

use std::time::Duration;

use chainpay_core::daraja::codes::ResultCode;
use chainpay_core::daraja::queries::working_account_cents;
use chainpay_core::daraja::wire::{self, B2cResultEnvelope};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{Connection, PgPool};

use super::{Check, Finding};
use crate::error::Error;
use crate::state::AppState;

/// How long a run waits for Account Balance to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// M-Pesa's side of the float check.
#[derive(Debug, Clone)]
pub enum Figure {
    /// The Working Account's balance in KES cents, and when it was stated.
    Answered { cents: i64, at: DateTime<Utc> },
    /// Asked and not answered (or answered with an error): the check could
    /// not be made, which is itself a finding.
    Unanswered(String),
    /// Not asked (the command line uses the latest answer when there is one).
    NotAsked,
}

/// Asks Account Balance and waits briefly for its answer.
pub async fn ask(state: &AppState) -> Figure {
    match ask_inner(state).await {
        Ok(figure) => figure,
        Err(error) => Figure::Unanswered(error.to_string()),
    }
}

async fn ask_inner(state: &AppState) -> Result<Figure, Error> {
    let result_url = crate::mpesa::callback_url(state, "/api/v1/mpesa/balance/result")?;
    let timeout_url = crate::mpesa::callback_url(state, "/api/v1/mpesa/balance/timeout")?;
    let ack = match state
        .daraja()?
        .account_balance(&result_url, &timeout_url)
        .await
    {
        Ok(ack) => ack,
        Err(error) => return Ok(Figure::Unanswered(format!("Account Balance: {error}"))),
    };
    sqlx::query!(
        "INSERT INTO mpesa_balance_queries (conversation_id) VALUES ($1) ON CONFLICT (conversation_id) DO NOTHING",
        ack.conversation_id
    )
    .execute(&state.pool)
    .await?;
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    loop {
        let row = sqlx::query!(
            "SELECT answered_at, working_balance, result_code, result_desc FROM mpesa_balance_queries WHERE conversation_id = $1",
            ack.conversation_id
        )
        .fetch_one(&state.pool)
        .await?;
        if let Some(at) = row.answered_at {
            return Ok(match row.working_balance {
                Some(cents) => Figure::Answered { cents, at },
                None => Figure::Unanswered(format!(
                    "Account Balance answered {}: {}",
                    row.result_code.unwrap_or(-1),
                    row.result_desc.unwrap_or_default()
                )),
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Figure::Unanswered(format!(
                "no Account Balance answer within {} s",
                ANSWER_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The latest answer no older than `max_age`, for the command line (which
/// cannot receive Daraja's answer itself).
pub async fn latest(pool: &PgPool, max_age: Duration) -> Result<Figure, Error> {
    let row = sqlx::query!(
        r#"SELECT working_balance AS "cents!", answered_at AS "at!" FROM mpesa_balance_queries
           WHERE working_balance IS NOT NULL AND answered_at > now() - make_interval(secs => $1)
           ORDER BY answered_at DESC LIMIT 1"#,
        max_age.as_secs_f64()
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or(Figure::NotAsked, |row| Figure::Answered {
        cents: row.cents,
        at: row.at,
    }))
}

/// Records Daraja's answer (a result, or with `timed_out` a queue timeout).
/// Returns what happened, for the log.
pub async fn on_result(pool: &PgPool, body: &Value, timed_out: bool) -> Result<String, Error> {
    let Ok(envelope) = serde_json::from_value::<B2cResultEnvelope>(body.clone()) else {
        return Ok("unreadable".into());
    };
    let result = envelope.result;
    let code = wire::code(&result.result_code).unwrap_or(ResultCode(-1));
    let cents = (!timed_out && code.is_success())
        .then(|| working_account_cents(&result))
        .flatten();
    let desc = if timed_out {
        format!("timed out in M-Pesa's queue: {}", result.result_desc)
    } else if code.is_success() && cents.is_none() {
        "no Working Account balance in the answer".to_owned()
    } else {
        result.result_desc.clone()
    };
    // Only conversations we started are recorded (the answer may arrive
    // before the acknowledgement is stored, so the row may be created here,
    // but never without the callback token, which the route checks).
    let updated = sqlx::query!(
        "INSERT INTO mpesa_balance_queries (conversation_id, answered_at, working_balance, result_code, result_desc)
         VALUES ($1, now(), $2, $3, $4)
         ON CONFLICT (conversation_id) DO UPDATE SET answered_at = now(), working_balance = $2, result_code = $3, result_desc = $4
         WHERE mpesa_balance_queries.answered_at IS NULL",
        result.conversation_id,
        cents,
        code.0 as i32,
        desc
    )
    .execute(pool)
    .await?;
    Ok(match (updated.rows_affected(), cents) {
        (0, _) => "already answered".into(),
        (_, Some(cents)) => format!("working balance {cents}"),
        (_, None) => format!("no balance: {desc}"),
    })
}

/// Compares M-Pesa's figure with the books, allowing for money in flight.
pub async fn compare(pool: &PgPool, figure: &Figure) -> Result<(Vec<Finding>, Value), Error> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let books = sqlx::query!(
        r#"SELECT
             (SELECT -coalesce(sum(balance), 0) FROM accounts WHERE kind = 'float' AND channel = 'mpesa' AND currency = 'KES')::bigint AS "held!",
             (SELECT coalesce(sum(amount), 0) FROM mpesa_deposits WHERE status = 'PENDING')::bigint AS "deposits_in_flight!",
             (SELECT coalesce(sum(amount), 0) FROM mpesa_withdrawals WHERE status = 'PENDING')::bigint AS "payouts_in_flight!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let looked = json!({"books": books.held, "deposits_in_flight": books.deposits_in_flight,
                        "payouts_in_flight": books.payouts_in_flight});
    let (cents, at) = match figure {
        Figure::Answered { cents, at } => (*cents, *at),
        Figure::NotAsked => {
            return Ok((
                Vec::new(),
                json!({"skipped": "no recent Account Balance answer", "books": books.held}),
            ))
        }
        Figure::Unanswered(reason) => {
            let finding = Finding::new(
                Check::MpesaFloat,
                "M-Pesa float",
                json!({"problem": "the float could not be checked", "reason": reason, "books": books.held}),
            );
            return Ok((vec![finding], looked));
        }
    };
    let difference = cents - books.held;
    let explained = (-books.payouts_in_flight..=books.deposits_in_flight).contains(&difference);
    let mut looked = looked;
    looked["mpesa"] = json!(cents);
    looked["stated_at"] = json!(at);
    let findings = if explained {
        Vec::new()
    } else {
        vec![Finding::new(
            Check::MpesaFloat,
            "M-Pesa float",
            json!({"problem": "M-Pesa's Account Balance disagrees with the books beyond what is in flight",
                   "mpesa": cents, "books": books.held, "difference": difference, "stated_at": at,
                   "deposits_in_flight": books.deposits_in_flight, "payouts_in_flight": books.payouts_in_flight}),
        )]
    };
    Ok((findings, looked))
}
