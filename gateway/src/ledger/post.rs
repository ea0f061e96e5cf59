//! Posting one journal entry: check it against its locked accounts, write
//! it — inside the caller's database transaction, so the movement commits
//! together with its audit row, its chain entry and its idempotency record
//! or not at all.

use chainpay_core::crypto::signing::SigningKey;
use chainpay_core::ledger::JournalEntry;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::TxFacts;
use sqlx::PgConnection;

/// A movement ready to be written.
#[derive(Debug, Clone)]
pub struct Movement {
    pub facts: TxFacts,
    pub note: Option<String>,
    pub entry: JournalEntry,
    /// USD value for the sender's AML windows; `None` for movements that do
    /// not count towards them (funding, deposits, reversals).
    pub usd_cents: Option<i64>,
    /// `COMPLETED`, or `PENDING` for a movement that waits on a channel
    /// (a withdrawal held until M-Pesa pays out).
    pub status: TxStatus,
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("insufficient agent float")]
    InsufficientFloat,
    #[error("account missing from the ledger")]
    UnknownAccount,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a posted movement left behind.
#[derive(Debug, Clone)]
pub struct Posted {
    /// HMAC-SHA3-256 of the transaction's canonical bytes.
    pub signature: String,
    /// What every account the entry touched can spend after it: its new
    /// balance less what is reserved on it (the balance customers are told).
    pub available: Vec<(i64, i64)>,
}

/// Writes `movement`; returns its signature and what its accounts can spend.
///
/// Its accounts are `locked` already ([`super::accounts::resolve_and_lock`]
/// locks them in ascending id order, one global order, so two entries can
/// never wait on each other in a cycle); each one's available balance is checked
/// against its delta, and the `accounts_*_not_overdrawn` constraints back
/// that check up inside PostgreSQL.
pub async fn post(
    conn: &mut PgConnection,
    movement: &Movement,
    key: &SigningKey,
    locked: &[Locked],
) -> Result<Posted, PostError> {
    let (account_ids, deltas): (Vec<i64>, Vec<i64>) =
        movement.entry.net_by_account().into_iter().unzip();
    for (account_id, delta) in account_ids.iter().zip(&deltas) {
        let row = locked.iter().find(|row| row.id == *account_id);
        row.ok_or(PostError::UnknownAccount)?.check(*delta)?;
    }
    let signature = movement.facts.sign(key);
    match write(conn, movement, &signature, &account_ids, &deltas).await {
        Ok(available) => Ok(Posted {
            signature,
            available,
        }),
        Err(sqlx::Error::Database(e))
            if matches!(
                e.constraint(),
                Some("accounts_wallet_not_overdrawn" | "accounts_merchant_not_overdrawn")
            ) =>
        {
            Err(PostError::InsufficientFunds)
        }
        Err(sqlx::Error::Database(e))
            if e.constraint() == Some("accounts_agent_float_not_overdrawn") =>
        {
            Err(PostError::InsufficientFloat)
        }
        Err(e) => Err(e.into()),
    }
}

/// An account row as locked for posting.
#[derive(Debug, Clone)]
pub struct Locked {
    pub id: i64,
    pub kind: String,
    pub balance: i64,
    /// Reserved by holds; not available to spend.
    pub locked: i64,
}

impl Locked {
    /// What the account can spend: its balance less what is reserved on it.
    pub fn available(&self) -> i64 {
        self.balance - self.locked
    }

    /// Whether `delta` may be applied: wallets, merchants' accounts and
    /// agents' float never go below what they have reserved.
    pub fn check(&self, delta: i64) -> Result<(), PostError> {
        if self.available() + delta >= 0 {
            return Ok(());
        }
        match self.kind.as_str() {
            "wallet" | "merchant" => Err(PostError::InsufficientFunds),
            "agent_float" => Err(PostError::InsufficientFloat),
            _ => Ok(()),
        }
    }
}

/// The transaction row, its postings, its chain entry and the new
/// balances, in one statement; returns (account id, new balance less what is
/// reserved on it).
async fn write(
    conn: &mut PgConnection,
    movement: &Movement,
    signature: &str,
    account_ids: &[i64],
    deltas: &[i64],
) -> sqlx::Result<Vec<(i64, i64)>> {
    let facts = &movement.facts;
    let (posting_accounts, posting_amounts): (Vec<i64>, Vec<i64>) = movement
        .entry
        .postings()
        .iter()
        .map(|p| (p.account, p.amount_minor))
        .unzip();
    let conversion = facts.conversion.as_ref();
    let rate = match conversion {
        Some(leg) => Some(
            leg.rate
                .parse::<rust_decimal::Decimal>()
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
        ),
        None => None,
    };
    let rows = sqlx::query!(
        r#"
        WITH tx AS (
            INSERT INTO transactions (tx_id, tx_type, amount, fee, currency, from_user_id, to_user_id, note, signature,
                                      created_at, to_currency, converted_amount, rate, usd_cents, status)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $15, $16, $17, $18, $19)
        ), legs AS (
            INSERT INTO postings (tx_id, account_id, amount)
            SELECT $1, account_id, amount FROM unnest($11::bigint[], $12::bigint[]) AS l (account_id, amount)
        ), chained AS (
            INSERT INTO chain_pending (tx_id) VALUES ($1)
        )
        UPDATE accounts a SET balance = a.balance + d.delta
        FROM unnest($13::bigint[], $14::bigint[]) AS d (id, delta)
        WHERE a.id = d.id
        RETURNING a.id, a.balance - a.locked AS "available!"
        "#,
        facts.tx_id,
        facts.tx_type.as_str(),
        facts.amount_minor,
        facts.fee_minor,
        facts.currency,
        facts.from_user_id,
        facts.to_user_id,
        movement.note,
        signature,
        facts.created_at,
        &posting_accounts,
        &posting_amounts,
        account_ids,
        deltas,
        conversion.map(|leg| leg.to_currency.clone()),
        conversion.map(|leg| leg.converted_minor),
        rate,
        movement.usd_cents,
        movement.status.as_str(),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.id, row.available))
        .collect())
}
