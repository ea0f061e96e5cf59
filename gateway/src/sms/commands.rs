//! Commands customers text to the short code. The phone number they text
//! from identifies them, so commands only ever read; no PIN travels by SMS.
//!
//! `BAL` — balances; `MINI` — the last five movements; `HELP` (or anything
//! else) — what the short code can do.

use chainpay_core::ussd::money;
use sqlx::PgPool;

use super::outbox;
use crate::statement;

/// The short code customers dial, shown in replies.
pub const USSD_CODE: &str = "*384*123#";

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

fn help() -> String {
    format!(
        "ChainPay: text BAL for your balance, MINI for your last 5 transactions. Dial {USSD_CODE} to send money. \
         ChainPay never asks for your PIN by SMS."
    )
}

/// Answers one inbound SMS exactly once: `at_id` is Africa's Talking's id,
/// and a retried callback with the same id queues nothing. Returns whether
/// a reply was queued.
pub async fn answer(
    pool: &PgPool,
    at_id: &str,
    from: &str,
    to: &str,
    text: &str,
) -> anyhow::Result<bool> {
    let command = Command::parse(text);
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
    let user = sqlx::query!(
        "SELECT id FROM users WHERE phone = $1 AND NOT suspended",
        from
    )
    .fetch_optional(&mut *tx)
    .await?;
    let reply = match (user, command) {
        (None, _) => format!("Welcome to ChainPay. Dial {USSD_CODE} to open an account."),
        (Some(_), Command::Help) => help(),
        (Some(user), Command::Balance) => {
            let wallets = sqlx::query!(
                "SELECT a.currency, a.balance, c.exponent FROM accounts a JOIN currencies c ON c.code = a.currency
                 WHERE a.kind = 'wallet' AND a.user_id = $1 AND a.balance <> 0 ORDER BY a.currency",
                user.id
            )
            .fetch_all(&mut *tx)
            .await?;
            if wallets.is_empty() {
                "ChainPay balance: you have no money in any wallet yet.".to_owned()
            } else {
                let lines: Vec<String> = wallets
                    .iter()
                    .map(|w| money(&w.currency, w.balance, w.exponent.max(0) as u32))
                    .collect();
                format!("ChainPay balance: {}.", lines.join(", "))
            }
        }
        (Some(user), Command::MiniStatement) => {
            let lines = statement::mini(&mut tx, user.id).await?;
            if lines.is_empty() {
                "ChainPay: no transactions yet.".to_owned()
            } else {
                format!("ChainPay last {}: {}", lines.len(), lines.join("; "))
            }
        }
    };
    outbox::queue(&mut tx, from, &reply, None).await?;
    tx.commit().await?;
    Ok(true)
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
