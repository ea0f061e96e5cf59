//! The `chainpay` command line: `serve`, `users`, `reconcile`, `verify-chain`,
//! `phone`, `promote`, `voucher verify`.
//! Every subcommand reads the same configuration as `serve`.

mod phone;

use std::process::ExitCode;

use anyhow::Context;
use chainpay_core::money::format_minor;
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::db::Database;

#[derive(Debug, Parser)]
#[command(name = "chainpay", version, about = "ChainPay mobile-money gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP gateway (REST API, webhooks, console).
    Serve {
        /// Seed the demo users even on an external DATABASE_URL.
        #[arg(long)]
        demo: bool,
    },
    /// List registered users and their non-zero balances.
    Users,
    /// Run every reconciliation check (ledger, chain, audit chain, M-Pesa,
    /// SMS) and store the run; exits non-zero if anything disagrees. The
    /// M-Pesa float is compared with the latest Account Balance answer the
    /// gateway received, when there is a recent one.
    Reconcile,
    /// Validate the whole audit chain from the stored rows; exits non-zero
    /// and names the first invalid block if it is not valid.
    VerifyChain,
    /// A feature phone in the terminal: dial the running server's USSD menu
    /// as Africa's Talking would, and see the SMS the number receives.
    Phone {
        /// The phone number to dial from, e.g. 0700000001.
        msisdn: String,
    },
    /// Make a registered, KYC-verified customer an admin. There is no API
    /// for this on purpose: whoever runs the server decides who operates it.
    Promote {
        /// Their phone, e.g. 0700000002.
        phone: String,
    },
    /// Lift a wrong-PIN lockout, and an admin's suspension, from the
    /// server's host: the way back when every admin is locked out (anyone
    /// who knows their numbers can lock them, and one rogue admin can
    /// suspend the others). Audited.
    Unlock {
        /// Their phone, e.g. 0700000000.
        phone: String,
    },
    /// Vouchers.
    Voucher {
        #[command(subcommand)]
        action: VoucherCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum VoucherCommand {
    /// Check a voucher's signed form (`cpv1.…`) without the server: exits 0
    /// and prints what it states when the signature holds, 1 when it does not.
    Verify {
        /// The signed form.
        signed: String,
        /// The voucher key (hex, `GET /api/v1/vouchers/authority`); without
        /// it, the key is read from this installation's database.
        #[arg(long)]
        key: Option<String>,
    },
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    match cli.command {
        // The binary runs the server itself (the HTTP edge), see `main.rs`.
        Command::Serve { .. } => anyhow::bail!("serve is run by the binary"),
        Command::Users => with_database(&settings, users).await,
        Command::Reconcile => with_database(&settings, |pool| reconcile(pool, &settings)).await,
        Command::VerifyChain => {
            with_database(&settings, |pool| verify_chain(pool, &settings)).await
        }
        Command::Phone { msisdn } => {
            let database = Database::open(&settings, false).await?;
            let result = phone::run(&settings, database.pool.clone(), &msisdn).await;
            database.close().await;
            result
        }
        Command::Promote { phone } => {
            let phone = chainpay_core::Msisdn::parse(&phone)?;
            with_database(&settings, |pool| promote(pool, phone)).await
        }
        Command::Unlock { phone } => {
            let phone = chainpay_core::Msisdn::parse(&phone)?;
            with_database(&settings, |pool| unlock(pool, phone)).await
        }
        Command::Voucher {
            action: VoucherCommand::Verify { signed, key },
        } => {
            let key = match key {
                Some(key) => key,
                None => {
                    let database = Database::open(&settings, false).await?;
                    let key = voucher_public_key(&settings, &database.pool).await;
                    database.close().await;
                    key?
                }
            };
            Ok(verify_voucher(&signed, &key))
        }
    }
}

/// The public half of the key vouchers are signed with, as `serve` created
/// it: nothing is generated or written here (a wrong master key is refused).
async fn voucher_public_key(settings: &Settings, pool: &sqlx::PgPool) -> anyhow::Result<String> {
    let master = crate::secrets::master_key(settings, pool).await?;
    let secret = crate::secrets::existing(pool, &master, crate::secrets::VOUCHER_SIGNING)
        .await?
        .context(
            "this database has no voucher signing key yet: run `chainpay serve` on it first",
        )?;
    Ok(chainpay_core::chain::block::AuthorityKey::from_bytes(&secret).public_hex())
}

async fn promote(pool: sqlx::PgPool, phone: chainpay_core::Msisdn) -> anyhow::Result<ExitCode> {
    let mut tx = pool.begin().await?;
    let promoted = sqlx::query_scalar!(
        "UPDATE users SET role = 'admin' WHERE phone = $1 AND role = 'user' AND kyc_status = 'VERIFIED' AND NOT suspended
         RETURNING id",
        phone.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user_id) = promoted else {
        println!("{phone} is not a verified customer in good standing (or is already an admin or an agent)");
        return Ok(ExitCode::FAILURE);
    };
    crate::audit::AuditEvent::new("cli.promote", crate::audit::Outcome::Success)
        .subject(user_id)
        .detail(serde_json::json!({ "phone": phone.as_str() }))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    println!("{phone} is now an admin");
    Ok(ExitCode::SUCCESS)
}

async fn unlock(pool: sqlx::PgPool, phone: chainpay_core::Msisdn) -> anyhow::Result<ExitCode> {
    let mut tx = pool.begin().await?;
    let found = sqlx::query_scalar!(
        "SELECT id FROM users WHERE phone = $1 FOR NO KEY UPDATE",
        phone.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user_id) = found else {
        println!("no account has the number {phone}");
        return Ok(ExitCode::FAILURE);
    };
    crate::auth::lockout::lift(&mut tx, user_id).await?;
    // An admin's suspension only: a customer's (fraud, compliance) is the
    // desk's to lift, with its audit trail.
    let was_suspended = sqlx::query_scalar!(
        r#"UPDATE users u SET suspended = false FROM users old
           WHERE u.id = $1 AND old.id = u.id AND u.role = 'admin' AND u.suspended
           RETURNING old.suspended AS "was!""#,
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .is_some();
    crate::audit::AuditEvent::new("cli.unlock", crate::audit::Outcome::Success)
        .subject(user_id)
        .detail(serde_json::json!({ "phone": phone.as_str(), "was_suspended": was_suspended }))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    let lifted = if was_suspended { " and reinstated" } else { "" };
    println!("{phone} is unlocked{lifted}");
    Ok(ExitCode::SUCCESS)
}

fn verify_voucher(signed: &str, key: &str) -> ExitCode {
    match chainpay_core::voucher::verify(signed, key) {
        Ok(terms) => {
            let state = if terms.expires_at > chrono::Utc::now() {
                "valid until"
            } else {
                "expired"
            };
            println!(
                "signature valid: voucher {} for {} {} (minor units), {state} {}",
                terms.serial,
                terms.amount_minor,
                terms.currency,
                terms.expires_at.to_rfc3339()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("NOT VALID: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the database for a one-shot command and closes it afterwards
/// (stopping the embedded cluster only if this command started it).
async fn with_database<F, Fut>(settings: &Settings, command: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let database = Database::open(settings, false).await?;
    let result = command(database.pool.clone()).await;
    database.close().await;
    result
}

async fn users(pool: sqlx::PgPool) -> anyhow::Result<ExitCode> {
    let rows = sqlx::query!(
        r#"SELECT u.phone, u.name, u.role, u.kyc_status, u.suspended,
                  coalesce(string_agg(a.currency || ':' || a.balance || ':' || c.exponent, ',' ORDER BY a.currency)
                           FILTER (WHERE a.balance <> 0), '') AS "balances!"
           FROM users u
           LEFT JOIN accounts a ON a.user_id = u.id AND a.kind = 'wallet'
           LEFT JOIN currencies c ON c.code = a.currency
           GROUP BY u.id ORDER BY u.created_at"#
    )
    .fetch_all(&pool)
    .await?;
    println!(
        "{:<16} {:<24} {:<6} {:<9} {:<9} BALANCES",
        "PHONE", "NAME", "ROLE", "KYC", "STATUS"
    );
    for row in &rows {
        let balances: Vec<String> = row
            .balances
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|entry| {
                let mut parts = entry.split(':');
                let currency = parts.next()?;
                let minor: i64 = parts.next()?.parse().ok()?;
                let exponent: u32 = parts.next()?.parse().ok()?;
                Some(format!("{currency} {}", format_minor(minor, exponent)))
            })
            .collect();
        println!(
            "{:<16} {:<24} {:<6} {:<9} {:<9} {}",
            row.phone,
            row.name.chars().take(24).collect::<String>(),
            row.role,
            row.kyc_status,
            if row.suspended { "SUSPENDED" } else { "active" },
            balances.join(", ")
        );
    }
    println!("{} user(s)", rows.len());
    Ok(ExitCode::SUCCESS)
}

/// The oldest Account Balance answer the command line compares with: the
/// books it was recorded against are its own, but money moves at M-Pesa too.
const FLOAT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

async fn reconcile(pool: sqlx::PgPool, settings: &Settings) -> anyhow::Result<ExitCode> {
    use crate::reconciliation::{self, float, Trigger};
    let master = crate::secrets::master_key(settings, &pool).await?;
    let figure = float::latest(&pool, FLOAT_MAX_AGE).await?;
    let figure = std::future::ready(figure);
    let run = reconciliation::run(&pool, &master, Trigger::Cli, None, figure, None).await?;
    let ledger_ok = !run.items.iter().any(|item| item.check == "ledger");
    let looked = &run.checks["ledger"]["looked_at"];
    println!(
        "ledger check: {} accounts, {} transactions: {}",
        looked["accounts"],
        looked["transactions"],
        if ledger_ok {
            "BALANCED"
        } else {
            "DISCREPANCIES FOUND"
        }
    );
    if let Some(checks) = run.checks.as_object() {
        for (name, check) in checks {
            println!("  {name}: {}", check["looked_at"]);
        }
    }
    for item in &run.items {
        println!("  [{}] {}: {}", item.check, item.subject, item.detail);
    }
    println!(
        "reconciliation run {}: {}",
        run.id,
        if run.clean {
            "CLEAN".to_owned()
        } else {
            format!("{} DISCREPANCIES", run.discrepancies)
        }
    );
    Ok(if run.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn verify_chain(pool: sqlx::PgPool, settings: &Settings) -> anyhow::Result<ExitCode> {
    let master = crate::secrets::master_key(settings, &pool).await?;
    let report = crate::chain::validate::validate(&pool, &master).await?;
    if report.valid {
        println!(
            "chain valid: {} blocks, {} transactions",
            report.blocks_checked, report.transactions_checked
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "chain INVALID at block {}: {} ({} blocks checked before it)",
        report.first_invalid_block.unwrap_or(report.blocks_checked),
        report.reason.as_deref().unwrap_or("unknown"),
        report.blocks_checked
    );
    Ok(ExitCode::from(1))
}
