//! Reconciliation: every check of the books against themselves and against
//! M-Pesa, run on a schedule (`CHAINPAY_RECON_INTERVAL_S`), on demand
//! (`POST /admin/reconciliation/runs`) and from the command line
//! (`chainpay reconcile`), each run stored with what it found.
//!
//! The checks: ledger balances against postings and per-currency zero sums
//! ([`crate::ledger::check`]); the transaction chain and the audit hash
//! chain; M-Pesa deposits, callbacks and withdrawals against each other and
//! the ledger ([`mpesa`]); the M-Pesa float against Daraja's Account Balance
//! ([`float`]); SMS stuck in the outbox ([`mpesa::stuck_sms`]). Each
//! finding is logged at error, counted in `chainpay_reconciliation_discrepancies_total`
//! and audited. Money that reached suspense is resolved through
//! [`suspense`], with four eyes.

pub mod float;
pub mod mpesa;
pub mod suspense;

use chainpay_core::crypto::aead::MasterKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::ledger::check::{self, Discrepancy};
use crate::metrics::Metrics;

/// Findings kept per check and run; the count says how many there were.
pub const MAX_FINDINGS_PER_CHECK: usize = 100;
/// Advisory lock under which a run is claimed, so runs never overlap.
const RUN_LOCK: i64 = 0x4348_4149_4e52_4543;

/// What a check is about; stored as the item's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Ledger,
    Chain,
    Audit,
    MpesaDeposit,
    MpesaCallback,
    MpesaWithdrawal,
    MpesaFloat,
    Sms,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Ledger => "ledger",
            Check::Chain => "chain",
            Check::Audit => "audit",
            Check::MpesaDeposit => "mpesa_deposit",
            Check::MpesaCallback => "mpesa_callback",
            Check::MpesaWithdrawal => "mpesa_withdrawal",
            Check::MpesaFloat => "mpesa_float",
            Check::Sms => "sms",
        }
    }
}

/// One thing found wrong: which check, about what, and the facts.
#[derive(Debug, Clone)]
pub struct Finding {
    pub check: Check,
    pub subject: String,
    pub detail: Value,
}

impl Finding {
    pub fn new(check: Check, subject: impl ToString, detail: Value) -> Self {
        Self {
            check,
            subject: subject.to_string(),
            detail,
        }
    }
}

/// What ran a reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Job,
    Api,
    Cli,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Job => "job",
            Trigger::Api => "api",
            Trigger::Cli => "cli",
        }
    }
}

/// A stored finding as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Item {
    pub id: i64,
    /// The check that found it (`ledger`, `chain`, `audit`, `mpesa_deposit`,
    /// `mpesa_callback`, `mpesa_withdrawal`, `mpesa_float`, `sms`).
    pub check: String,
    /// What it is about: an account, a block, a deposit, a callback…
    pub subject: String,
    pub detail: Value,
}

/// A run and everything it found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Run {
    pub id: i64,
    /// `job`, `api` or `cli`.
    pub trigger: String,
    pub requested_by: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// No discrepancy in any check.
    pub clean: bool,
    pub discrepancies: i32,
    /// What each check looked at.
    pub checks: Value,
    pub items: Vec<Item>,
}

/// A run in a list (without its items).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunSummary {
    pub id: i64,
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub clean: bool,
    pub discrepancies: i32,
}

/// A run still unfinished this long after it started is taken to have
/// died with its process; another may start.
pub const RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs every check now and stores the run; refused while another run is
/// in progress (each run reads every table and asks Daraja once).
pub async fn run(
    pool: &PgPool,
    master: &MasterKey,
    trigger: Trigger,
    requested_by: Option<Uuid>,
    balance: impl std::future::Future<Output = float::Figure>,
    metrics: Option<&Metrics>,
) -> Result<Run, Error> {
    let id = claim(pool, trigger, requested_by, None)
        .await?
        .ok_or_else(|| {
            Error::Conflict(
                "a reconciliation run is in progress; try again when it has finished".into(),
            )
        })?;
    complete(pool, master, id, balance.await, metrics).await
}

/// The scheduled run, unless another instance ran one within the interval
/// (or, `just_started`, no scheduled run was ever made: the first waits an
/// interval).
pub async fn run_if_due(
    pool: &PgPool,
    master: &MasterKey,
    interval_s: u64,
    just_started: bool,
    balance: impl std::future::Future<Output = float::Figure>,
    metrics: &Metrics,
) -> Result<Option<Run>, Error> {
    let Some(id) = claim(pool, Trigger::Job, None, Some((interval_s, just_started))).await? else {
        return Ok(None);
    };
    complete(pool, master, id, balance.await, Some(metrics))
        .await
        .map(Some)
}

/// Starts a run's row unless one is in progress (or, for the schedule,
/// one ran within the interval). The lock is taken in its own statement,
/// so the check that follows sees every run committed before it.
async fn claim(
    pool: &PgPool,
    trigger: Trigger,
    requested_by: Option<Uuid>,
    schedule: Option<(u64, bool)>,
) -> Result<Option<i64>, Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", RUN_LOCK)
        .execute(&mut *tx)
        .await?;
    let (interval_s, just_started) = schedule.unwrap_or((0, false));
    let claimed = sqlx::query_scalar!(
        r#"INSERT INTO reconciliation_runs (trigger, requested_by)
           SELECT $1, $2 WHERE NOT EXISTS (
                 SELECT 1 FROM reconciliation_runs WHERE finished_at IS NULL AND started_at > now() - make_interval(secs => $3))
             AND ($1 <> 'job' OR NOT EXISTS (
                 SELECT 1 FROM reconciliation_runs WHERE trigger = 'job' AND started_at > now() - make_interval(secs => $4)))
             AND ($1 <> 'job' OR NOT $5 OR EXISTS (SELECT 1 FROM reconciliation_runs WHERE trigger = 'job'))
           RETURNING id"#,
        trigger.as_str(),
        requested_by,
        RUN_TIMEOUT.as_secs_f64(),
        interval_s as f64 * 0.95,
        just_started
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

async fn complete(
    pool: &PgPool,
    master: &MasterKey,
    id: i64,
    balance: float::Figure,
    metrics: Option<&Metrics>,
) -> Result<Run, Error> {
    let mut checks = Map::new();
    let mut findings = Vec::new();
    let mut total = 0;
    let mut take = |name: &str, (found, looked): (Vec<Finding>, Value)| {
        total += found.len();
        checks.insert(
            name.to_owned(),
            json!({"looked_at": looked, "discrepancies": found.len()}),
        );
        findings.extend(found.into_iter().take(MAX_FINDINGS_PER_CHECK));
    };
    take("mpesa_float", float::compare(pool, &balance).await?);
    take("ledger", ledger(pool).await?);
    take("chain", chain(pool, master).await?);
    take("audit", audit(pool).await?);
    take("mpesa_deposits", mpesa::deposits(pool).await?);
    take("mpesa_callbacks", mpesa::callbacks(pool).await?);
    take("mpesa_withdrawals", mpesa::withdrawals(pool).await?);
    take("sms", mpesa::stuck_sms(pool).await?);
    store(pool, id, Value::Object(checks), (&findings, total), metrics).await?;
    find(pool, id).await
}

/// The ledger check's discrepancies, each named by what to look at.
async fn ledger(pool: &PgPool) -> Result<(Vec<Finding>, Value), Error> {
    let report = check::check(pool).await?;
    let findings = report
        .discrepancies
        .iter()
        .map(|d| {
            let subject = match d {
                Discrepancy::AccountBalance { account_id, .. }
                | Discrepancy::NegativeWallet { account_id, .. } => format!("account {account_id}"),
                Discrepancy::CurrencyTotal { currency, .. } => format!("currency {currency}"),
                Discrepancy::UnbalancedEntry { tx_id, .. } => format!("transaction {tx_id}"),
                Discrepancy::SafeguardOff { table, safeguard } => {
                    format!("table {table}, {safeguard}")
                }
            };
            Finding::new(Check::Ledger, subject, json!(d))
        })
        .collect();
    let looked =
        json!({"accounts": report.accounts_checked, "transactions": report.transactions_checked});
    Ok((findings, looked))
}

async fn chain(pool: &PgPool, master: &MasterKey) -> Result<(Vec<Finding>, Value), Error> {
    let report = crate::chain::validate::validate(pool, master)
        .await
        .map_err(Error::Internal)?;
    let looked =
        json!({"blocks": report.blocks_checked, "transactions": report.transactions_checked});
    let findings = if report.valid {
        Vec::new()
    } else {
        let block = report.first_invalid_block.unwrap_or(report.blocks_checked);
        vec![Finding::new(
            Check::Chain,
            format!("block {block}"),
            json!({"block": block, "reason": report.reason}),
        )]
    };
    Ok((findings, looked))
}

async fn audit(pool: &PgPool) -> Result<(Vec<Finding>, Value), Error> {
    let report = crate::audit::chain::verify(pool)
        .await
        .map_err(Error::Internal)?;
    let looked = json!({"entries": report.entries_checked});
    let findings = if report.valid {
        Vec::new()
    } else {
        let entry = report.first_broken_id;
        vec![Finding::new(
            Check::Audit,
            format!("audit entry {}", entry.unwrap_or_default()),
            json!(report),
        )]
    };
    Ok((findings, looked))
}

/// Stores the findings and finishes the run; each finding is logged at
/// error, counted and audited in the same transaction.
async fn store(
    pool: &PgPool,
    id: i64,
    checks: Value,
    (findings, total): (&[Finding], usize),
    metrics: Option<&Metrics>,
) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    for finding in findings {
        tracing::error!(run = id, check = finding.check.as_str(), subject = %finding.subject,
                        detail = %finding.detail, "reconciliation discrepancy");
        if let Some(metrics) = metrics {
            metrics.discrepancy(finding.check.as_str());
        }
        sqlx::query!(
            "INSERT INTO reconciliation_items (run_id, category, subject, detail) VALUES ($1, $2, $3, $4)",
            id,
            finding.check.as_str(),
            finding.subject,
            finding.detail
        )
        .execute(&mut *tx)
        .await?;
        AuditEvent::new("reconciliation.discrepancy", Outcome::Failure)
            .subject(id)
            .detail(json!({"check": finding.check.as_str(), "subject": finding.subject, "detail": finding.detail}))
            .record(&mut tx)
            .await?;
    }
    sqlx::query!(
        "UPDATE reconciliation_runs SET finished_at = now(), checks = $2, discrepancies = $3 WHERE id = $1",
        id,
        checks,
        total as i32
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One run with its items.
pub async fn find(pool: &PgPool, id: i64) -> Result<Run, Error> {
    let mut conn = pool.acquire().await?;
    let row = sqlx::query!(
        "SELECT id, trigger, requested_by, started_at, finished_at, checks, discrepancies FROM reconciliation_runs WHERE id = $1",
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound(Missing::ReconciliationRun))?;
    let items = items(&mut conn, id).await?;
    Ok(Run {
        id: row.id,
        trigger: row.trigger,
        requested_by: row.requested_by,
        started_at: row.started_at,
        clean: row.finished_at.is_some() && row.discrepancies == 0,
        finished_at: row.finished_at,
        discrepancies: row.discrepancies,
        checks: row.checks,
        items,
    })
}

async fn items(conn: &mut PgConnection, run_id: i64) -> Result<Vec<Item>, Error> {
    Ok(sqlx::query_as!(
        Item,
        r#"SELECT id, category AS "check", subject, detail FROM reconciliation_items WHERE run_id = $1 ORDER BY id"#,
        run_id
    )
    .fetch_all(conn)
    .await?)
}

/// Runs newest first, `before` an id for the next page.
pub async fn list(
    pool: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<RunSummary>, Error> {
    Ok(sqlx::query_as!(
        RunSummary,
        r#"SELECT id, trigger, started_at, finished_at, finished_at IS NOT NULL AND discrepancies = 0 AS "clean!", discrepancies
           FROM reconciliation_runs WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"#,
        before,
        limit
    )
    .fetch_all(pool)
    .await?)
}
