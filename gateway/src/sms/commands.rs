//! Commands customers text to the short code. The phone number they text
//! from identifies them, so commands only ever read; no PIN travels by SMS.
//!
//! `BAL` — balances; `MINI` — the last five movements; `HELP` (or anything
//! else) — what the short code can do. The replies' wording is core's
//! (`chainpay_core::notify`), in the customer's language.

use chainpay_core::money::show;
use chainpay_core::notify::Sms;
use chainpay_core::Lang;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::outbox;
use crate::auth::rate_limit::{admit, Admission};
use crate::error::Error;
use crate::statement;

/// What a text asks for: its first word, case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Balance,
    MiniStatement,
    Help,
}

impl Command {
    pub fn parse(text: &str) -> Self {
        match text
            .split_whitespace()
            .next()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("BAL" | "BALANCE") => Command::Balance,
            Some("MINI") => Command::MiniStatement,
            _ => Command::Help,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Balance => "BAL",
            Command::MiniStatement => "MINI",
            Command::Help => "HELP",
        }
    }
}

/// Replies one number gets per hour: enough for a customer, useless for
/// making the gateway text someone at the operator's cost.
pub const REPLIES_PER_SENDER_HOUR: u32 = 10;

/// Answers one inbound SMS exactly once: `at_id` is Africa's Talking's id,
/// and a retried callback with the same id queues nothing. Only registered,
/// active customers are answered, at most [`REPLIES_PER_SENDER_HOUR`] times
/// an hour (anyone can put any number in `from`, and every reply costs the
/// operator money); for anyone else nothing is written. Returns whether a
/// reply was queued.
pub async fn answer(
    pool: &PgPool,
    at_id: &str,
    from: &str,
    to: &str,
    text: &str,
) -> Result<bool, Error> {
    let command = Command::parse(text);
    let user = sqlx::query!(
        "SELECT id, language FROM users WHERE phone = $1 AND NOT suspended",
        from
    )
    .fetch_optional(pool)
    .await?;
    let Some(user) = user else {
        return Ok(false);
    };
    let mut tx = pool.begin().await?;
    let fresh = sqlx::query!(
        "INSERT INTO sms_inbound (at_id, from_phone, to_code, command) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        at_id,
        from,
        to,
        command.as_str()
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(false);
    }
    // Counted only once known new (Africa's Talking retrying one message
    // does not use up the sender's replies), on the reply's transaction.
    // One over the limit is not recorded either (the transaction is
    // dropped): a number anyone can put in `from` writes nothing past it.
    let bucket = format!("sms:{from}");
    if let Admission::Limited { .. } =
        admit(&mut *tx, &bucket, REPLIES_PER_SENDER_HOUR, 3600).await?
    {
        tracing::warn!(
            command = command.as_str(),
            "inbound SMS over the hourly limit; not answered"
        );
        return Ok(false);
    }
    let sms = Sms(Lang::parse(&user.language));
    let reply = match command {
        Command::Help => sms.help(),
        Command::Balance => sms.balances(&balances(&mut tx, user.id).await?),
        Command::MiniStatement => {
            let lines = statement::mini(&mut tx, user.id, sms.0).await?;
            sms.mini_statement(&lines)
        }
    };
    outbox::queue(&mut tx, from, &reply, None).await?;
    tx.commit().await?;
    Ok(true)
}

/// The customer's non-empty wallets, shown.
async fn balances(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Vec<String>> {
    let wallets = sqlx::query!(
        r#"SELECT a.currency, a.balance - a.locked AS "available!", c.exponent FROM accounts a JOIN currencies c ON c.code = a.currency
         WHERE a.kind = 'wallet' AND a.user_id = $1 AND a.balance <> 0 ORDER BY a.currency"#,
        user_id
    )
    .fetch_all(conn)
    .await?;
    Ok(wallets
        .iter()
        .map(|w| show(&w.currency, w.available, w.exponent.max(0) as u32))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_the_first_word_in_any_case() {
        assert_eq!(Command::parse("bal"), Command::Balance);
        assert_eq!(Command::parse("  Mini please"), Command::MiniStatement);
        assert_eq!(Command::parse("1234"), Command::Help);
        assert_eq!(Command::parse(""), Command::Help);
    }
}
