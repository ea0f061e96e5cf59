//! Offline vouchers. A customer buys one (amount and fee leave the wallet
//! for the voucher liability account) and gets a 16-digit code by SMS and a
//! signed form anyone can check offline (`core::voucher`). Anyone
//! registered redeems it once — into their wallet, or an agent for cash
//! into their float; concurrent redemptions queue on the voucher's row lock
//! and exactly one wins. Unredeemed vouchers go back to the buyer on
//! cancel or at expiry (a job). Wrong codes count against the guesser:
//! [`MAX_GUESSES`] a day.

mod issue;
mod redeem;
mod refund;

pub use issue::{created, Created, VoucherOrder};
pub use redeem::{redeem, Redeemer};
pub use refund::{cancel, expire_due};

use chainpay_core::crypto::aead::MasterKey;
use chainpay_core::Lang;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, Missing};

/// Wrong codes one user may type in [`GUESS_WINDOW_S`].
pub const MAX_GUESSES: u32 = 5;
pub const GUESS_WINDOW_S: i64 = 86_400;
/// Validity when the buyer does not say, and the longest allowed.
pub const DEFAULT_DAYS: i64 = 30;
pub const MAX_DAYS: i64 = 90;
/// What a sealed code is bound to.
const CODE_CONTEXT: &[u8] = b"vouchers.code_sealed";

/// A voucher as its buyer and operators see it (never the code itself).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VoucherView {
    pub voucher_id: Uuid,
    pub serial: i64,
    /// The code's last four digits.
    pub code_hint: String,
    pub amount: i64,
    pub fee: i64,
    pub currency: String,
    /// `ACTIVE`, `REDEEMED`, `CANCELLED` or `EXPIRED`.
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
    /// The signed form, checkable offline (`chainpay voucher verify`).
    pub signed: String,
    pub issuer_phone: String,
    pub redeemed_by_phone: Option<String>,
}

/// The caller's vouchers, or (for operators, `issuer = None`) everyone's,
/// optionally of one status; newest first.
pub async fn list(
    conn: &mut PgConnection,
    issuer: Option<Uuid>,
    status: Option<&str>,
) -> Result<Vec<VoucherView>, Error> {
    Ok(sqlx::query_as!(
        VoucherView,
        r#"SELECT v.id AS voucher_id, v.serial, v.code_hint, v.amount, v.fee, v.currency, v.status, v.expires_at,
                  v.created_at, v.settled_at, v.signed, i.phone AS issuer_phone, r.phone AS "redeemed_by_phone?"
           FROM vouchers v JOIN users i ON i.id = v.issuer_id LEFT JOIN users r ON r.id = v.redeemed_by
           WHERE ($1::uuid IS NULL OR v.issuer_id = $1) AND ($2::text IS NULL OR v.status = $2)
           ORDER BY v.created_at DESC LIMIT 200"#,
        issuer,
        status
    )
    .fetch_all(conn)
    .await?)
}

/// A voucher under its row lock, with what settling it needs.
struct Locked {
    id: Uuid,
    code_hint: String,
    issuer_id: Uuid,
    issuer_phone: String,
    issuer_lang: Lang,
    amount: i64,
    currency: String,
    status: String,
    expires_at: DateTime<Utc>,
}

impl Locked {
    /// Still redeemable or refundable.
    fn active(&self) -> bool {
        self.status == "ACTIVE" && self.expires_at > Utc::now()
    }
}

async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Locked, Error> {
    let row = sqlx::query!(
        r#"SELECT v.id, v.code_hint, v.issuer_id, u.phone, u.language, v.amount, v.currency, v.status, v.expires_at
           FROM vouchers v JOIN users u ON u.id = v.issuer_id WHERE v.id = $1 FOR UPDATE OF v"#,
        id
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound(Missing::Voucher))?;
    Ok(Locked {
        id: row.id,
        code_hint: row.code_hint,
        issuer_id: row.issuer_id,
        issuer_phone: row.phone,
        issuer_lang: Lang::parse(&row.language),
        amount: row.amount,
        currency: row.currency,
        status: row.status,
        expires_at: row.expires_at,
    })
}

/// Marks a voucher settled by `tx_id` (redeemed, cancelled or expired).
async fn settle(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    tx_id: Uuid,
    redeemed_by: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE vouchers SET status = $2, settle_tx_id = $3, redeemed_by = $4, settled_at = now() WHERE id = $1",
        id,
        status,
        tx_id,
        redeemed_by
    )
    .execute(conn)
    .await?;
    Ok(())
}

fn seal_code(master: &MasterKey, code: &str) -> Vec<u8> {
    master.seal(code.as_bytes(), CODE_CONTEXT)
}

fn open_code(master: &MasterKey, sealed: &[u8]) -> Result<String, Error> {
    let bytes = master
        .open(sealed, CODE_CONTEXT)
        .map_err(|e| Error::internal(format!("voucher code: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::internal(format!("voucher code: {e}")))
}

/// What an idempotency record may hold of a typed code: its keyed digest
/// (hex), the same one vouchers are looked up by.
pub fn fingerprint(state: &crate::state::AppState, typed: &str) -> String {
    let code = chainpay_core::voucher::parse_code(typed).unwrap_or_default();
    hex::encode(chainpay_core::voucher::digest(
        &state.keys.voucher_digest,
        &code,
    ))
}

/// The guess-counting bucket of one user.
fn guess_bucket(user_id: Uuid) -> String {
    format!("voucher_guess:{user_id}")
}

/// Wrong codes `user_id` typed in the last [`GUESS_WINDOW_S`].
async fn wrong_guesses(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM rate_limits r, unnest(r.hits) h
           WHERE r.bucket = $1 AND h > now() - make_interval(secs => $2)"#,
        guess_bucket(user_id),
        GUESS_WINDOW_S as f64
    )
    .fetch_one(conn)
    .await
}

/// Records one wrong code (dropping those older than the window).
async fn record_wrong_guess(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO rate_limits AS r (bucket, hits, window_s) VALUES ($1, ARRAY[now()], $3)
         ON CONFLICT (bucket) DO UPDATE SET window_s = GREATEST(r.window_s, $3), hits =
             ARRAY(SELECT h FROM unnest(r.hits) h WHERE h > now() - make_interval(secs => $2) ORDER BY h) || now()",
        guess_bucket(user_id),
        GUESS_WINDOW_S as f64,
        GUESS_WINDOW_S as i32
    )
    .execute(conn)
    .await?;
    Ok(())
}
