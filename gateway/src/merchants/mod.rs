//! Merchants: businesses registered by an admin, each owned by one verified
//! customer (role `merchant`), with a six-digit Buy Goods till or Paybill
//! number and an account per currency (`merchant` accounts under the
//! owner's id, opened by the `merchants` insert trigger). Payments to them
//! are movements (`movements::merchant_pay`); this module is who they are
//! and what they were paid.

pub mod detail;
pub mod keys;
pub mod outbound;
pub mod requests;
pub mod webhooks;

use chainpay_core::Lang;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::agents::{unused_number, Numbering};
use crate::audit::{AuditEvent, Outcome};
use crate::auth::rate_limit::{admit, Admission};
use crate::error::{Error, Missing};
use crate::state::AppState;

/// How customers pay a business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Buy Goods: the till number alone.
    Till,
    /// Paybill: the number and the customer's account with the business.
    Paybill,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Till => "till",
            Kind::Paybill => "paybill",
        }
    }
}

/// An active merchant, as a payment to it needs it.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub number: String,
    pub kind: String,
    pub owner_phone: String,
    pub owner_lang: Lang,
}

/// A merchant as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MerchantView {
    pub merchant_id: Uuid,
    pub name: String,
    /// `till` or `paybill`.
    pub kind: String,
    /// Six digits, what customers type.
    pub number: String,
    pub owner_id: Uuid,
    pub owner_phone: String,
    /// `ACTIVE` or `SUSPENDED`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// Every currency, zero included.
    pub balances: Vec<BusinessBalance>,
}

/// A business as its owner and its API keys see it: no owner's id or phone,
/// which a key given to a shop's website has no need of.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BusinessView {
    pub merchant_id: Uuid,
    pub name: String,
    /// `till` or `paybill`.
    pub kind: String,
    /// Six digits, what customers type.
    pub number: String,
    /// `ACTIVE` or `SUSPENDED`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// Every currency, zero included.
    pub balances: Vec<BusinessBalance>,
}

impl From<MerchantView> for BusinessView {
    fn from(m: MerchantView) -> Self {
        Self {
            merchant_id: m.merchant_id,
            name: m.name,
            kind: m.kind,
            number: m.number,
            status: m.status,
            created_at: m.created_at,
            balances: m.balances,
        }
    }
}

/// One currency of a business's account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BusinessBalance {
    pub currency: String,
    /// Minor units.
    pub balance: i64,
    /// Reserved: owed back for a payout M-Pesa reported paid after it was
    /// refunded, until operators settle it.
    pub locked: i64,
    /// `balance - locked`: what can be paid out or refunded now.
    pub available: i64,
}

/// The active merchant with this till or paybill `number`, whose owner is
/// in good standing: not suspended, not listed, still verified (an owner
/// whose KYC was rejected since cannot pay out, so customers' money would
/// pile up in a business that cannot move it).
pub async fn active_by_number(
    conn: &mut PgConnection,
    kind: Kind,
    number: &str,
) -> Result<Option<Merchant>, Error> {
    let row = sqlx::query!(
        r#"SELECT m.id, m.owner_user_id, m.name, m.number, m.kind, u.phone, u.language FROM merchants m
           JOIN users u ON u.id = m.owner_user_id
           WHERE m.number = $1 AND m.kind = $2 AND m.status = 'ACTIVE' AND NOT u.suspended AND u.sanctions_match_id IS NULL
             AND u.kyc_status = 'VERIFIED'"#,
        number,
        kind.as_str()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Merchant {
        id: r.id,
        owner_id: r.owner_user_id,
        name: r.name,
        number: r.number,
        kind: r.kind,
        owner_phone: r.phone,
        owner_lang: Lang::parse(&r.language),
    }))
}

/// Refuses a movement from `owner`'s business: they own none (403), or it
/// is suspended (409). The business's row is share-locked until the
/// movement's transaction ends, so a suspension waits for it.
pub async fn ensure_active(conn: &mut PgConnection, owner: Uuid) -> Result<(), Error> {
    let status = sqlx::query_scalar!(
        "SELECT status FROM merchants WHERE owner_user_id = $1 FOR SHARE",
        owner
    )
    .fetch_optional(conn)
    .await?;
    match status.as_deref() {
        None => Err(Error::Forbidden),
        Some("ACTIVE") => Ok(()),
        Some(_) => Err(Error::Conflict("this business is suspended".into())),
    }
}

/// The caller's own business; `None` when they own none.
pub async fn owned_by(conn: &mut PgConnection, owner: Uuid) -> Result<Option<MerchantView>, Error> {
    Ok(select(conn, None, Some(owner)).await?.into_iter().next())
}

/// The business `owner` owns, for a change to it: `403` if they own none,
/// `409` if it is suspended.
pub async fn owned_active(conn: &mut PgConnection, owner: Uuid) -> Result<MerchantView, Error> {
    let merchant = owned_by(conn, owner).await?.ok_or(Error::Forbidden)?;
    if merchant.status != "ACTIVE" {
        return Err(Error::Conflict("this business is suspended".into()));
    }
    Ok(merchant)
}

/// Keys and endpoints one business may create in a day. The caps hold for
/// live ones; revoked or removed ones do not count against them, so without
/// this, creating and revoking would write (and text the owner) without end.
const SETUP_CREATIONS_PER_DAY: u32 = 50;

/// Before a business counts its live keys or endpoints to create one, on
/// the creating transaction: creations for one business wait for each
/// other, so the count a cap reads is not stale.
pub(crate) async fn lock_setup(conn: &mut PgConnection, merchant_id: Uuid) -> Result<(), Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('merchant_setup:' || $1::uuid::text, 0))",
        merchant_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts one creation of a key or an endpoint the caps allow, on the
/// creating transaction (it counts only if the creation commits): at most
/// [`SETUP_CREATIONS_PER_DAY`] a day.
pub(crate) async fn count_creation(
    conn: &mut PgConnection,
    merchant_id: Uuid,
) -> Result<(), Error> {
    let bucket = format!("merchant_setup:{merchant_id}");
    match admit(conn, &bucket, SETUP_CREATIONS_PER_DAY, 86_400).await? {
        Admission::Allowed => Ok(()),
        Admission::Limited { retry_after_s } => Err(Error::RateLimited { retry_after_s }),
    }
}

/// Registers a business owned by the customer with `owner_phone`:
/// verified, in good standing, an ordinary customer (not an admin, agent or
/// another business's owner).
pub async fn register(
    state: &AppState,
    admin: Uuid,
    name: &str,
    owner_phone: &str,
    kind: Kind,
) -> Result<MerchantView, Error> {
    let mut tx = state.pool.begin().await?;
    let owner = sqlx::query!(
        "SELECT id, role, kyc_status, suspended FROM users WHERE phone = $1 FOR NO KEY UPDATE",
        owner_phone
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound(Missing::User))?;
    match owner.role.as_str() {
        "merchant" => {
            return Err(Error::Conflict(
                "this customer already owns a business".into(),
            ))
        }
        "user" => {}
        _ => {
            return Err(Error::Validation(
                "an admin or agent cannot own a business".into(),
            ))
        }
    }
    if owner.suspended || owner.kyc_status != "VERIFIED" {
        return Err(Error::Validation(
            "only a verified customer in good standing can own a business".into(),
        ));
    }
    let number = unused_number(&mut tx, Numbering::Merchants).await?;
    let id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO merchants (id, owner_user_id, name, kind, number, registered_by) VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        owner.id,
        name,
        kind.as_str(),
        number,
        admin
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("UPDATE users SET role = 'merchant' WHERE id = $1", owner.id)
        .execute(&mut *tx)
        .await?;
    AuditEvent::new("admin.merchant.register", Outcome::Success)
        .actor(admin)
        .subject(id)
        .detail(json!({"name": name, "kind": kind.as_str(), "number": number, "owner": owner.id}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    state.sessions.forget(owner.id);
    let mut conn = state.pool.acquire().await?;
    view(&mut conn, id).await
}

/// Suspends (`active = false`) or reinstates a merchant.
pub async fn set_active(
    state: &AppState,
    admin: Uuid,
    id: Uuid,
    active: bool,
) -> Result<MerchantView, Error> {
    let status = if active { "ACTIVE" } else { "SUSPENDED" };
    let mut tx = state.pool.begin().await?;
    sqlx::query_scalar!(
        "UPDATE merchants SET status = $2, updated_at = now() WHERE id = $1 RETURNING id",
        id,
        status
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound(Missing::Merchant))?;
    let action = if active {
        "admin.merchant.reinstate"
    } else {
        "admin.merchant.suspend"
    };
    AuditEvent::new(action, Outcome::Success)
        .actor(admin)
        .subject(id)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    let mut conn = state.pool.acquire().await?;
    view(&mut conn, id).await
}

/// Every merchant with its balances, newest first (the newest 500).
pub async fn list(conn: &mut PgConnection) -> Result<Vec<MerchantView>, Error> {
    select(conn, None, None).await
}

pub async fn view(conn: &mut PgConnection, id: Uuid) -> Result<MerchantView, Error> {
    select(conn, Some(id), None)
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound(Missing::Merchant))
}

async fn select(
    conn: &mut PgConnection,
    id: Option<Uuid>,
    owner: Option<Uuid>,
) -> Result<Vec<MerchantView>, Error> {
    let rows = sqlx::query!(
        r#"SELECT m.id, m.name, m.kind, m.number, m.owner_user_id, u.phone, m.status, m.created_at,
                  coalesce((SELECT jsonb_agg(jsonb_build_object('currency', a.currency, 'balance', a.balance, 'locked', a.locked,
                                                               'available', a.balance - a.locked) ORDER BY a.currency)
                            FROM accounts a WHERE a.kind = 'merchant' AND a.user_id = m.owner_user_id), '[]') AS "balances!"
           FROM merchants m JOIN users u ON u.id = m.owner_user_id
           WHERE ($1::uuid IS NULL OR m.id = $1) AND ($2::uuid IS NULL OR m.owner_user_id = $2)
           ORDER BY m.created_at DESC LIMIT 500"#,
        id,
        owner
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(MerchantView {
                merchant_id: r.id,
                name: r.name,
                kind: r.kind,
                number: r.number,
                owner_id: r.owner_user_id,
                owner_phone: r.phone,
                status: r.status,
                created_at: r.created_at,
                balances: serde_json::from_value(r.balances).map_err(anyhow::Error::from)?,
            })
        })
        .collect()
}

/// One payment a merchant received.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub tx_id: Uuid,
    pub amount: i64,
    /// What the merchant paid on it.
    pub fee: i64,
    pub currency: String,
    /// The paybill account number the customer gave, if any.
    pub account: Option<String>,
    pub note: Option<String>,
    pub customer_name: String,
    /// Masked (`+2547*****001`): a business recognises a customer it knows,
    /// and cannot collect the numbers of everyone who paid it.
    pub customer_phone: String,
    pub created_at: DateTime<Utc>,
}

/// A merchant's payments from `from` to `to`, newest first, `before` a
/// position for the next page (the position is the transaction's `seq`).
pub async fn payments(
    conn: &mut PgConnection,
    merchant_id: Uuid,
    (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    before: i64,
    limit: i64,
) -> Result<Vec<(i64, PaymentView)>, Error> {
    let rows = sqlx::query!(
        r#"SELECT t.seq, p.tx_id, p.amount, p.fee, p.currency, p.account, p.note, u.name, u.phone, p.created_at
           FROM merchant_payments p JOIN transactions t ON t.tx_id = p.tx_id JOIN users u ON u.id = p.customer_id
           WHERE p.merchant_id = $1 AND ($2::timestamptz IS NULL OR p.created_at >= $2)
             AND ($3::timestamptz IS NULL OR p.created_at < $3) AND t.seq < $4
           ORDER BY t.seq DESC LIMIT $5"#,
        merchant_id,
        from,
        to,
        before,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.seq,
                PaymentView {
                    tx_id: r.tx_id,
                    amount: r.amount,
                    fee: r.fee,
                    currency: r.currency,
                    account: r.account,
                    note: r.note,
                    customer_name: r.name,
                    customer_phone: chainpay_core::phone::masked(&r.phone),
                    created_at: r.created_at,
                },
            )
        })
        .collect())
}
