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
use sqlx::PgPool;

use super::{Check, Finding};
use crate::error::Error;
use crate::state::AppState;

/// How long a run waits for Account Balance to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// M-Pesa's side of the float check.
#[derive(Debug, Clone)]
pub enum Figure {
    /// The Working Account's balance in KES cents, when it was recorded,
    /// and what the books said at that moment.
    Answered {
        cents: i64,
        at: DateTime<Utc>,
        books: Books,
    },
    /// Asked and not answered (or answered with an error): the check could
    /// not be made, which is itself a finding.
    Unanswered(String),
    /// Not asked (the command line uses the latest answer when there is one).
    NotAsked,
}

/// What the books say M-Pesa holds (the negated M-Pesa float), and the
/// deposits and payouts still in flight, in one snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Books {
    pub held: i64,
    pub deposits_in_flight: i64,
    pub payouts_in_flight: i64,
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
        "INSERT INTO mpesa_balance_queries (conversation_id, acknowledged_at) VALUES ($1, now())
         ON CONFLICT (conversation_id) DO UPDATE SET acknowledged_at = coalesce(mpesa_balance_queries.acknowledged_at, now())",
        ack.conversation_id
    )
    .execute(&state.pool)
    .await?;
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    loop {
        let row = sqlx::query!(
            "SELECT answered_at, working_balance, result_code, result_desc, books_held, deposits_in_flight, payouts_in_flight
             FROM mpesa_balance_queries WHERE conversation_id = $1",
            ack.conversation_id
        )
        .fetch_one(&state.pool)
        .await?;
        if let Some(at) = row.answered_at {
            let books = snapshot(
                row.books_held,
                row.deposits_in_flight,
                row.payouts_in_flight,
            );
            return Ok(match (row.working_balance, books) {
                (Some(cents), Some(books)) => Figure::Answered { cents, at, books },
                _ => Figure::Unanswered(format!(
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

/// The latest answer no older than `max_age` to a query Safaricom
/// acknowledged (an answer to a conversation nobody started is not one),
/// for the command line (which cannot receive Daraja's answer itself).
pub async fn latest(pool: &PgPool, max_age: Duration) -> Result<Figure, Error> {
    let row = sqlx::query!(
        r#"SELECT working_balance AS "cents!", answered_at AS "at!", books_held, deposits_in_flight, payouts_in_flight
           FROM mpesa_balance_queries
           WHERE working_balance IS NOT NULL AND acknowledged_at IS NOT NULL
             AND answered_at > now() - make_interval(secs => $1)
           ORDER BY answered_at DESC LIMIT 1"#,
        max_age.as_secs_f64()
    )
    .fetch_optional(pool)
    .await?;
    Ok(row
        .and_then(|row| {
            let books = snapshot(
                row.books_held,
                row.deposits_in_flight,
                row.payouts_in_flight,
            )?;
            Some(Figure::Answered {
                cents: row.cents,
                at: row.at,
                books,
            })
        })
        .unwrap_or(Figure::NotAsked))
}

fn snapshot(held: Option<i64>, deposits: Option<i64>, payouts: Option<i64>) -> Option<Books> {
    Some(Books {
        held: held?,
        deposits_in_flight: deposits?,
        payouts_in_flight: payouts?,
    })
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
    // The answer may arrive before the acknowledgement is stored, so the
    // row may be created here (never without the callback token, which the
    // route checks); it counts only once acknowledged (see [`latest`]).
    // The books are read in the same statement that records the answer, so
    // the two are compared as of one moment, however long a run takes.
    let updated = sqlx::query!(
        "WITH books AS (
             SELECT (SELECT -coalesce(sum(balance), 0) FROM accounts WHERE kind = 'float' AND channel = 'mpesa' AND currency = 'KES')::bigint AS held,
                    (SELECT coalesce(sum(amount), 0) FROM mpesa_deposits WHERE status = 'PENDING')::bigint AS deposits,
                    (SELECT coalesce(sum(amount), 0) FROM mpesa_withdrawals WHERE status = 'PENDING')::bigint AS payouts)
         INSERT INTO mpesa_balance_queries (conversation_id, answered_at, working_balance, result_code, result_desc,
                                            books_held, deposits_in_flight, payouts_in_flight)
         SELECT $1, now(), $2, $3, $4, held, deposits, payouts FROM books
         ON CONFLICT (conversation_id) DO UPDATE SET answered_at = now(), working_balance = $2, result_code = $3, result_desc = $4,
             books_held = EXCLUDED.books_held, deposits_in_flight = EXCLUDED.deposits_in_flight, payouts_in_flight = EXCLUDED.payouts_in_flight
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

/// Compares M-Pesa's figure with the books as they were when it was
/// recorded, allowing for money in flight.
pub async fn compare(pool: &PgPool, figure: &Figure) -> Result<(Vec<Finding>, Value), Error> {
    let (cents, at, books) = match figure {
        Figure::Answered { cents, at, books } => (*cents, *at, *books),
        Figure::NotAsked => {
            return Ok((
                Vec::new(),
                json!({"skipped": "no recent Account Balance answer"}),
            ))
        }
        Figure::Unanswered(reason) => {
            let held = current_books(pool).await?;
            let finding = Finding::new(
                Check::MpesaFloat,
                "M-Pesa float",
                json!({"problem": "the float could not be checked", "reason": reason, "books": held}),
            );
            return Ok((vec![finding], json!({"books": held, "unanswered": reason})));
        }
    };
    let difference = cents - books.held;
    let explained = (-books.payouts_in_flight..=books.deposits_in_flight).contains(&difference);
    let looked = json!({"mpesa": cents, "books": books.held, "stated_at": at,
                        "deposits_in_flight": books.deposits_in_flight, "payouts_in_flight": books.payouts_in_flight});
    let findings = if explained {
        Vec::new()
    } else {
        let mut detail = looked.clone();
        detail["problem"] =
            json!("M-Pesa's Account Balance disagrees with the books beyond what is in flight");
        detail["difference"] = json!(difference);
        vec![Finding::new(Check::MpesaFloat, "M-Pesa float", detail)]
    };
    Ok((findings, looked))
}

/// What the books say M-Pesa holds now.
async fn current_books(pool: &PgPool) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT (-coalesce(sum(balance), 0))::bigint AS "held!" FROM accounts WHERE kind = 'float' AND channel = 'mpesa' AND currency = 'KES'"#
    )
    .fetch_one(pool)
    .await?)
}
