//! The ledger check: proves the books balance.
//!
//! Runs on one REPEATABLE READ snapshot so that transfers committing while it
//! reads cannot make a balanced ledger look unbalanced (or the reverse).

use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

/// One thing found wrong, with enough detail to find the rows.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Discrepancy {
    /// An account whose stored balance is not the sum of its postings.
    AccountBalance {
        account_id: i64,
        account_kind: String,
        currency: String,
        balance: i64,
        postings_sum: i64,
    },
    /// A currency whose accounts do not sum to zero.
    CurrencyTotal { currency: String, total: i64 },
    /// A journal entry whose postings do not sum to zero in a currency.
    UnbalancedEntry {
        tx_id: Uuid,
        currency: String,
        sum: i64,
    },
    /// A customer wallet, an agent's float or the voucher liability below zero.
    NegativeWallet {
        account_id: i64,
        currency: String,
        balance: i64,
    },
    /// A database safeguard switched off: a trigger that keeps rows
    /// append-only, checks their references or an entry's balance, or a
    /// foreign key's, disabled (`ALTER TABLE … DISABLE TRIGGER`, which only
    /// a table's owner or a superuser can do). What it guards is no longer
    /// refused while it stays off.
    SafeguardOff { table: String, safeguard: String },
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct LedgerReport {
    pub balanced: bool,
    pub accounts_checked: i64,
    pub transactions_checked: i64,
    pub discrepancies: Vec<Discrepancy>,
}

/// Runs every check on one consistent snapshot.
pub async fn check(pool: &PgPool) -> sqlx::Result<LedgerReport> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut discrepancies = balances_against_postings(&mut tx).await?;
    discrepancies.extend(currency_totals(&mut tx).await?);
    discrepancies.extend(unbalanced_entries(&mut tx).await?);
    discrepancies.extend(negative_wallets(&mut tx).await?);
    discrepancies.extend(safeguards_off(&mut tx).await?);
    let counts = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM accounts) AS "accounts!", (SELECT count(*) FROM transactions) AS "transactions!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(LedgerReport {
        balanced: discrepancies.is_empty(),
        accounts_checked: counts.accounts,
        transactions_checked: counts.transactions,
        discrepancies,
    })
}

/// Accounts whose balance is not the sum of their postings.
async fn balances_against_postings(conn: &mut PgConnection) -> sqlx::Result<Vec<Discrepancy>> {
    let accounts = sqlx::query!(
        r#"
        SELECT a.id, a.kind, a.currency, a.balance, coalesce(p.total, 0)::bigint AS "postings_sum!"
        FROM accounts a
        LEFT JOIN (SELECT account_id, sum(amount) AS total FROM postings GROUP BY account_id) p ON p.account_id = a.id
        WHERE a.balance <> coalesce(p.total, 0)
        ORDER BY a.id
        "#
    )
    .fetch_all(conn)
    .await?;
    Ok(accounts
        .into_iter()
        .map(|r| Discrepancy::AccountBalance {
            account_id: r.id,
            account_kind: r.kind,
            currency: r.currency,
            balance: r.balance,
            postings_sum: r.postings_sum,
        })
        .collect())
}

/// Currencies whose accounts do not sum to zero.
async fn currency_totals(conn: &mut PgConnection) -> sqlx::Result<Vec<Discrepancy>> {
    let totals = sqlx::query!(
        r#"SELECT currency, sum(balance)::bigint AS "total!" FROM accounts GROUP BY currency HAVING sum(balance) <> 0 ORDER BY currency"#
    )
    .fetch_all(conn)
    .await?;
    Ok(totals
        .into_iter()
        .map(|r| Discrepancy::CurrencyTotal {
            currency: r.currency,
            total: r.total,
        })
        .collect())
}

/// Journal entries whose postings do not sum to zero in a currency.
async fn unbalanced_entries(conn: &mut PgConnection) -> sqlx::Result<Vec<Discrepancy>> {
    let entries = sqlx::query!(
        r#"
        SELECT p.tx_id, a.currency, sum(p.amount)::bigint AS "sum!"
        FROM postings p JOIN accounts a ON a.id = p.account_id
        GROUP BY p.tx_id, a.currency HAVING sum(p.amount) <> 0
        ORDER BY p.tx_id LIMIT 1000
        "#
    )
    .fetch_all(conn)
    .await?;
    Ok(entries
        .into_iter()
        .map(|r| Discrepancy::UnbalancedEntry {
            tx_id: r.tx_id,
            currency: r.currency,
            sum: r.sum,
        })
        .collect())
}

async fn negative_wallets(conn: &mut PgConnection) -> sqlx::Result<Vec<Discrepancy>> {
    let negatives = sqlx::query!(
        "SELECT id, currency, balance FROM accounts
         WHERE kind IN ('wallet', 'agent_float', 'merchant', 'voucher_liability') AND balance < 0 ORDER BY id"
    )
    .fetch_all(conn)
    .await?;
    Ok(negatives
        .into_iter()
        .map(|r| Discrepancy::NegativeWallet {
            account_id: r.id,
            currency: r.currency,
            balance: r.balance,
        })
        .collect())
}

/// Triggers of the application's tables that do not fire in normal
/// operation: disabled (`D`) or firing only in replication mode (`R`). A
/// foreign key's internal triggers are named by their constraint.
async fn safeguards_off(conn: &mut PgConnection) -> sqlx::Result<Vec<Discrepancy>> {
    let off = sqlx::query!(
        r#"SELECT DISTINCT c.relname::text AS "table!", coalesce(k.conname, t.tgname)::text AS "safeguard!"
           FROM pg_trigger t
           JOIN pg_class c ON c.oid = t.tgrelid
           LEFT JOIN pg_constraint k ON k.oid = t.tgconstraint
           WHERE c.relnamespace = 'public'::regnamespace AND t.tgenabled IN ('D', 'R')
           ORDER BY 1, 2"#
    )
    .fetch_all(conn)
    .await?;
    Ok(off
        .into_iter()
        .map(|r| Discrepancy::SafeguardOff {
            table: r.table,
            safeguard: r.safeguard,
        })
        .collect())
}
