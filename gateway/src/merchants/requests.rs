//! Request to pay: a business asks a registered customer to pay an amount
//! under its own reference. The customer gets an SMS, finds the request in
//! USSD (*Pay merchant → Pending requests*) or the REST API, and pays it
//! with the PIN or declines it; unanswered, it expires. A request is paid at
//! most once: the payment locks its row and marks it paid in the payment's
//! own transaction (`movements::merchant_pay`), so a second approval waits
//! and then finds it no longer pending.
//!
//! Every write an app can cause is bounded: one request per reference
//! (a retried create answers with the first), a few pending per customer
//! and business, expiry within a day.

use chainpay_core::notify::Sms;
use chainpay_core::refusal::Refusal;
use chainpay_core::{Amount, CurrencyCode, Lang, Msisdn};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::keys::MerchantCaller;
use super::{webhooks, Kind};
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::sms::outbox;
use crate::state::AppState;

/// How long a request waits when the business does not say.
pub const DEFAULT_EXPIRY_S: u32 = 3600;
/// The longest a request may wait.
pub const MAX_EXPIRY_S: u32 = 86_400;
/// The shortest a request may wait (time to dial and find it).
pub const MIN_EXPIRY_S: u32 = 60;
/// Requests one customer may have waiting, from all businesses.
const MAX_PENDING_PER_CUSTOMER: i64 = 10;
/// Requests one business may have waiting for one customer.
const MAX_PENDING_PER_PAIR: i64 = 3;
/// Requests one business may make of one customer in a day, however they
/// were answered: each is an SMS, and declining one frees its place.
const MAX_PER_PAIR_PER_DAY: i64 = 10;
/// Requests one business may make in a day, of all its customers: each is
/// an SMS in the platform's name, and the other caps are per customer.
const MAX_PER_BUSINESS_PER_DAY: i64 = 1_000;
/// Requests expired per pass of the job.
const EXPIRY_BATCH: i64 = 200;

/// What a business asks for.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub customer_phone: Msisdn,
    pub amount: Amount,
    pub currency: CurrencyCode,
    pub reference: String,
    pub expires_in_s: u32,
}

/// A payment request as the business and the customer see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    pub request_id: Uuid,
    pub merchant_id: Uuid,
    pub merchant_name: String,
    pub customer_phone: String,
    pub amount: i64,
    pub currency: String,
    pub reference: String,
    /// `PENDING`, `PAID`, `DECLINED` or `EXPIRED`.
    pub status: String,
    pub expires_at: DateTime<Utc>,
    /// The payment's `tx_id`, once paid.
    pub payment_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl RequestView {
    /// What a `payment_request.*` webhook says.
    fn event(&self) -> Value {
        json!({"payment_request_id": self.request_id, "reference": self.reference, "status": self.status,
               "amount": self.amount, "currency": self.currency, "customer_phone": self.customer_phone,
               "payment_id": self.payment_id, "decided_at": self.decided_at})
    }
}

/// A valid reference: 1 to 40 letters, digits, `-` or `_`.
pub fn valid_reference(raw: &str) -> bool {
    (1..=40).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The customer a business may ask: registered, not an admin, not the
/// business's own owner, able to pay. A customer who is suspended, listed
/// or rejected answers as an unknown number does: a business learns only
/// whether it can ask, never why not (no tipping off).
struct Payer {
    id: Uuid,
    phone: String,
    lang: Lang,
}

async fn payer(
    conn: &mut PgConnection,
    caller: &MerchantCaller,
    phone: &Msisdn,
) -> Result<Payer, Error> {
    let row = sqlx::query!(
        "SELECT id, phone, language, role, suspended, kyc_status, sanctions_match_id IS NOT NULL AS \"sanctioned!\"
         FROM users WHERE phone = $1",
        phone.as_str()
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound(Missing::User))?;
    if row.id == caller.owner_id {
        return Err(Refusal::SelfPayment.into());
    }
    if row.role == "admin" || row.suspended || row.sanctioned || row.kyc_status == "REJECTED" {
        return Err(Error::NotFound(Missing::User));
    }
    Ok(Payer {
        id: row.id,
        phone: row.phone,
        lang: Lang::parse(&row.language),
    })
}

/// Creates a request, or finds the one made earlier under the same
/// reference (`false`: nothing new was written). The customer's SMS is
/// queued in the same transaction.
pub async fn create(
    state: &AppState,
    caller: &MerchantCaller,
    new: NewRequest,
) -> Result<(bool, RequestView), Error> {
    let rules = state.rules.get(&state.pool).await?;
    rules
        .rates
        .leg(new.currency.as_str())
        .map_err(|_| Error::Validation(format!("unsupported currency {}", new.currency)))?;
    let mut tx = state.pool.begin().await?;
    let merchant = sqlx::query!(
        r#"SELECT m.name, m.status,
                  u.kyc_status = 'VERIFIED' AND NOT u.suspended AND u.sanctions_match_id IS NULL AS "owner_ok!"
           FROM merchants m JOIN users u ON u.id = m.owner_user_id WHERE m.id = $1"#,
        caller.merchant_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if merchant.status != "ACTIVE" {
        return Err(Error::Conflict("this business is suspended".into()));
    }
    // A till whose owner is not in good standing takes no payment
    // (`active_by_number`): asking customers for one would only fail.
    if !merchant.owner_ok {
        return Err(Error::Conflict(
            "this business cannot take payments while its owner's account is under review".into(),
        ));
    }
    let payer = payer(&mut tx, caller, &new.customer_phone).await?;
    // Counting and inserting under the customer's lock: two creates cannot
    // both see room for one more.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('payment_request:' || $1::text, 0))",
        payer.id.to_string()
    )
    .execute(&mut *tx)
    .await?;
    if let Some(earlier) = by_reference(&mut tx, caller.merchant_id, &new.reference).await? {
        let same = earlier.customer_phone == payer.phone
            && earlier.amount == new.amount.minor()
            && earlier.currency == new.currency.as_str();
        return if same {
            Ok((false, earlier))
        } else {
            Err(Error::Conflict(
                "this reference was used for a different request".into(),
            ))
        };
    }
    check_room(&mut tx, caller.merchant_id, payer.id).await?;
    let id = Uuid::new_v4();
    let expires_at = Utc::now() + Duration::seconds(i64::from(new.expires_in_s));
    let inserted = sqlx::query_scalar!(
        "INSERT INTO payment_requests (id, merchant_id, customer_id, amount, currency, reference, expires_at, created_by_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (merchant_id, reference) DO NOTHING RETURNING id",
        id,
        caller.merchant_id,
        payer.id,
        new.amount.minor(),
        new.currency.as_str(),
        new.reference,
        expires_at,
        caller.key_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        // Another customer's request took the reference a moment ago.
        return Err(Error::Conflict(
            "this reference was used for a different request".into(),
        ));
    }
    let shown = rules.show(new.currency.as_str(), new.amount.minor());
    let message =
        Sms(payer.lang).payment_requested(&merchant.name, &shown, &new.reference, expires_at);
    outbox::queue(&mut tx, &payer.phone, &message, None).await?;
    AuditEvent::new("merchant.payment_request.create", Outcome::Success)
        .actor(caller.owner_id)
        .subject(id)
        .detail(json!({"merchant": caller.merchant_id, "by": caller.who(), "customer": payer.id,
                       "amount": new.amount.minor(), "currency": new.currency.as_str(), "reference": new.reference}))
        .record(&mut tx)
        .await?;
    let view = select_one(&mut tx, id).await?;
    tx.commit().await?;
    Ok((true, view))
}

async fn check_room(
    conn: &mut PgConnection,
    merchant_id: Uuid,
    customer: Uuid,
) -> Result<(), Error> {
    let waiting = sqlx::query!(
        r#"SELECT count(*) AS "all!", count(*) FILTER (WHERE merchant_id = $2) AS "ours!"
           FROM payment_requests WHERE customer_id = $1 AND status = 'PENDING' AND expires_at > now()"#,
        customer,
        merchant_id
    )
    .fetch_one(&mut *conn)
    .await?;
    if waiting.ours >= MAX_PENDING_PER_PAIR || waiting.all >= MAX_PENDING_PER_CUSTOMER {
        return Err(Error::Conflict(
            "this customer has too many requests waiting; wait for them to be answered or expire"
                .into(),
        ));
    }
    let today = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM payment_requests
                   WHERE customer_id = $1 AND merchant_id = $2 AND created_at > now() - interval '1 day') AS "pair!",
                  (SELECT count(*) FROM payment_requests
                   WHERE merchant_id = $2 AND created_at > now() - interval '1 day') AS "business!""#,
        customer,
        merchant_id
    )
    .fetch_one(conn)
    .await?;
    if today.pair >= MAX_PER_PAIR_PER_DAY {
        return Err(Error::Conflict(format!(
            "this business has asked this customer {MAX_PER_PAIR_PER_DAY} times in the last day; ask again tomorrow"
        )));
    }
    // Counted outside any one lock: requests at once may pass it by a few.
    if today.business >= MAX_PER_BUSINESS_PER_DAY {
        return Err(Error::Conflict(format!(
            "this business has made {MAX_PER_BUSINESS_PER_DAY} requests in the last day; ask again tomorrow"
        )));
    }
    Ok(())
}

/// A pending request the customer is about to pay, locked until the
/// payment's transaction ends; refused when it was paid, declined or has
/// expired (a concurrent approval finds it paid once it may look).
pub async fn claim(
    conn: &mut PgConnection,
    id: Uuid,
    customer: Uuid,
    (amount, currency): (i64, &str),
) -> Result<(), Error> {
    sqlx::query_scalar!(
        "SELECT id FROM payment_requests WHERE id = $1 AND customer_id = $2 AND amount = $3 AND currency = $4
           AND status = 'PENDING' AND expires_at > now() FOR UPDATE",
        id,
        customer,
        amount,
        currency
    )
    .fetch_optional(conn)
    .await?
    .map(|_| ())
    .ok_or_else(|| Refusal::RequestNotPending.into())
}

/// Marks a claimed request paid by `tx_id` and tells the business.
pub async fn mark_paid(conn: &mut PgConnection, id: Uuid, tx_id: Uuid) -> Result<(), Error> {
    let merchant = sqlx::query_scalar!(
        "UPDATE payment_requests SET status = 'PAID', tx_id = $2, decided_at = now() WHERE id = $1 RETURNING merchant_id",
        id,
        tx_id
    )
    .fetch_one(&mut *conn)
    .await?;
    let view = select_one(conn, id).await?;
    webhooks::enqueue(conn, merchant, "payment_request.paid", view.event()).await
}

/// The customer declines a pending request; the business is told.
pub async fn decline(state: &AppState, customer: Uuid, id: Uuid) -> Result<RequestView, Error> {
    let mut tx = state.pool.begin().await?;
    let declined = sqlx::query_scalar!(
        "UPDATE payment_requests SET status = 'DECLINED', decided_at = now()
         WHERE id = $1 AND customer_id = $2 AND status = 'PENDING' AND expires_at > now() RETURNING merchant_id",
        id,
        customer
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(merchant) = declined else {
        let exists = sqlx::query_scalar!(
            "SELECT id FROM payment_requests WHERE id = $1 AND customer_id = $2",
            id,
            customer
        )
        .fetch_optional(&mut *tx)
        .await?;
        return Err(match exists {
            Some(_) => Refusal::RequestNotPending.into(),
            None => Error::NotFound(Missing::PaymentRequest),
        });
    };
    let view = select_one(&mut tx, id).await?;
    webhooks::enqueue(&mut tx, merchant, "payment_request.declined", view.event()).await?;
    AuditEvent::new("wallet.payment_request.decline", Outcome::Success)
        .actor(customer)
        .subject(id)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(view)
}

/// Expires requests past their time (a batch per call, safe on every
/// instance at once); each business is told. Returns how many expired.
pub async fn expire_due(state: &AppState) -> Result<usize, Error> {
    let mut tx = state.pool.begin().await?;
    let expired = sqlx::query!(
        "UPDATE payment_requests SET status = 'EXPIRED', decided_at = now()
         WHERE id IN (SELECT id FROM payment_requests WHERE status = 'PENDING' AND expires_at <= now()
                      ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, merchant_id",
        EXPIRY_BATCH
    )
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = expired.iter().map(|row| row.id).collect();
    for view in select(&mut tx, Filter::Ids(&ids)).await? {
        webhooks::enqueue(
            &mut tx,
            view.merchant_id,
            "payment_request.expired",
            view.event(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(expired.len())
}

/// What paying a request takes: the business's till or paybill number and
/// the request's terms.
pub struct Payable {
    pub kind: Kind,
    pub number: String,
    pub amount: i64,
    pub currency: String,
    pub reference: String,
}

/// One of the customer's requests, to pay. Whether it is still pending is
/// decided under its lock ([`claim`]), so a retried approval can still be
/// answered as the first was.
pub async fn payable(conn: &mut PgConnection, customer: Uuid, id: Uuid) -> Result<Payable, Error> {
    let row = sqlx::query!(
        "SELECT m.kind, m.number, r.amount, r.currency, r.reference
         FROM payment_requests r JOIN merchants m ON m.id = r.merchant_id WHERE r.id = $1 AND r.customer_id = $2",
        id,
        customer
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound(Missing::PaymentRequest))?;
    Ok(Payable {
        kind: if row.kind == "paybill" {
            Kind::Paybill
        } else {
            Kind::Till
        },
        number: row.number,
        amount: row.amount,
        currency: row.currency,
        reference: row.reference,
    })
}

/// The customer's requests still waiting, oldest first (at most 20).
pub async fn pending_for(
    conn: &mut PgConnection,
    customer: Uuid,
) -> Result<Vec<RequestView>, Error> {
    select(conn, Filter::PendingFor(customer)).await
}

/// One of the business's requests.
pub async fn of_merchant(
    conn: &mut PgConnection,
    merchant_id: Uuid,
    id: Uuid,
) -> Result<RequestView, Error> {
    select(conn, Filter::Merchant(merchant_id, id))
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound(Missing::PaymentRequest))
}

async fn by_reference(
    conn: &mut PgConnection,
    merchant_id: Uuid,
    reference: &str,
) -> Result<Option<RequestView>, Error> {
    Ok(select(conn, Filter::Reference(merchant_id, reference))
        .await?
        .into_iter()
        .next())
}

async fn select_one(conn: &mut PgConnection, id: Uuid) -> Result<RequestView, Error> {
    select(conn, Filter::Ids(&[id]))
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound(Missing::PaymentRequest))
}

enum Filter<'a> {
    Ids(&'a [Uuid]),
    Merchant(Uuid, Uuid),
    Reference(Uuid, &'a str),
    PendingFor(Uuid),
}

async fn select(conn: &mut PgConnection, filter: Filter<'_>) -> Result<Vec<RequestView>, Error> {
    let (ids, merchant, reference, pending_for) = match filter {
        Filter::Ids(ids) => (Some(ids.to_vec()), None, None, None),
        Filter::Merchant(merchant, id) => (Some(vec![id]), Some(merchant), None, None),
        Filter::Reference(merchant, reference) => (None, Some(merchant), Some(reference), None),
        Filter::PendingFor(customer) => (None, None, None, Some(customer)),
    };
    // Every row asked for by id; otherwise the oldest 20 (a customer has
    // at most 10 waiting, a reference one request).
    let limit = ids.as_ref().map_or(20, |ids| ids.len() as i64);
    let rows = sqlx::query!(
        r#"SELECT r.id, r.merchant_id, m.name, u.phone, r.amount, r.currency, r.reference, r.status, r.expires_at,
                  r.tx_id, r.created_at, r.decided_at
           FROM payment_requests r JOIN merchants m ON m.id = r.merchant_id JOIN users u ON u.id = r.customer_id
           WHERE ($1::uuid[] IS NULL OR r.id = ANY ($1)) AND ($2::uuid IS NULL OR r.merchant_id = $2)
             AND ($3::text IS NULL OR r.reference = $3)
             AND ($4::uuid IS NULL OR (r.customer_id = $4 AND r.status = 'PENDING' AND r.expires_at > now()))
           ORDER BY r.created_at LIMIT $5"#,
        ids.as_deref(),
        merchant,
        reference,
        pending_for,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RequestView {
            request_id: r.id,
            merchant_id: r.merchant_id,
            merchant_name: r.name,
            customer_phone: r.phone,
            amount: r.amount,
            currency: r.currency,
            reference: r.reference,
            status: r.status,
            expires_at: r.expires_at,
            payment_id: r.tx_id,
            created_at: r.created_at,
            decided_at: r.decided_at,
        })
        .collect())
}
