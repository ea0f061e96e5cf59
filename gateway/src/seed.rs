//! Demo data: an admin and a user (PIN 1234, KYC VERIFIED), each funded from
//! the treasury float through real, balanced journal entries.

use chainpay_core::crypto::signing::SigningKey;
use chainpay_core::ledger::move_entry;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::{CurrencyCode, Pin};
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::ledger::accounts::AccountRef;
use crate::movements::book::{book, Booking};

pub const DEMO_ADMIN_PHONE: &str = "+254700000000";
pub const DEMO_USER_PHONE: &str = "+254700000001";
pub const DEMO_PIN: &str = "1234";

/// Each demo user's opening balance per currency, in minor units.
pub const DEMO_FUNDING: [(&str, i64); 5] = [
    ("USD", 1_000_000),
    ("EUR", 1_000_000),
    ("GBP", 1_000_000),
    ("KES", 100_000_000),
    ("NGN", 1_000_000_000),
];

/// Seeds the demo users once; returns `false` when they already exist.
pub async fn seed_demo(pool: &PgPool, key: &SigningKey) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    // Two instances starting together must not both seed.
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('chainpay.seed_demo'))")
        .execute(&mut *tx)
        .await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE phone = $1) AS "exists!""#,
        DEMO_ADMIN_PHONE
    )
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        return Ok(false);
    }
    // The demo PIN predates the weak-PIN rule by contract, so it is hashed
    // directly rather than through registration.
    #[allow(clippy::unwrap_used)]
    let pin = Pin::parse(DEMO_PIN).unwrap();
    let pin_hash = crate::auth::pins::hash(pin).await?;
    for (phone, name, role) in [
        (DEMO_ADMIN_PHONE, "ChainPay Admin", "admin"),
        (DEMO_USER_PHONE, "Demo User", "user"),
    ] {
        let user_id = Uuid::new_v4();
        sqlx::query!(
            "INSERT INTO users (id, phone, name, pin_hash, role, kyc_status) VALUES ($1, $2, $3, $4, $5, 'VERIFIED')",
            user_id,
            phone,
            name,
            pin_hash,
            role
        )
        .execute(&mut *tx)
        .await?;
        for (currency, amount_minor) in DEMO_FUNDING {
            fund(&mut tx, key, user_id, currency, amount_minor).await?;
        }
        AuditEvent::new("demo.seed", Outcome::Success)
            .subject(phone)
            .record(&mut tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(
        "seeded demo users {DEMO_ADMIN_PHONE} (admin) and {DEMO_USER_PHONE}, PIN {DEMO_PIN}"
    );
    Ok(true)
}

/// Moves `amount_minor` from the treasury float into a user's wallet.
pub async fn fund(
    conn: &mut sqlx::PgConnection,
    key: &SigningKey,
    user_id: Uuid,
    currency: &str,
    amount_minor: i64,
) -> anyhow::Result<Uuid> {
    let code = CurrencyCode::parse(currency)?;
    let entry = move_entry(
        AccountRef::float("treasury", currency),
        AccountRef::wallet(user_id, currency),
        &code,
        amount_minor,
    )?;
    let tx_id = crate::ledger::new_tx_id();
    let booking = Booking {
        facts: TxFacts::now(
            tx_id,
            TxType::Funding,
            currency,
            (amount_minor, 0),
            None,
            Some(user_id),
        ),
        entry,
        note: Some("Opening balance".into()),
        usd_cents: None,
        status: TxStatus::Completed,
        audit: AuditEvent::new("demo.fund", Outcome::Success).actor(user_id),
    };
    book(conn, key, booking, |_| Vec::new()).await?;
    Ok(tx_id)
}
