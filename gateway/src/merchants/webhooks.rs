//! Webhooks to merchants' apps, by the Standard Webhooks specification
//! (standardwebhooks.com): each request carries `webhook-id` (the event's
//! stable `msg_…` id), `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256>` over `id.timestamp.body`
//! under the endpoint's `whsec_…` secret; the body is `{type, timestamp,
//! data}`.
//!
//! An event is written in the movement's own transaction ([`enqueue`]), with
//! a delivery per subscribed endpoint; the `webhooks` job sends what is due
//! ([`deliver_due`]), retrying failures with exponential backoff from
//! `CHAINPAY_WEBHOOK_FIRST_RETRY_MS` (capped at ten hours) for up to
//! [`MAX_ATTEMPTS`] tries. An endpoint whose deliveries have all failed for
//! [`DISABLE_AFTER_DAYS`] days is disabled and its owner told by SMS.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chainpay_core::crypto::random_bytes;
use chainpay_core::notify::Sms;
use chainpay_core::Lang;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::outbound;
use super::{owned_active, owned_by};
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::state::AppState;

/// What an endpoint may subscribe to.
pub const EVENTS: &[&str] = &[
    "payment.received",
    "refund.completed",
    "payment_request.paid",
    "payment_request.declined",
    "payment_request.expired",
];
/// Tries of one delivery before it is given up.
pub const MAX_ATTEMPTS: i32 = 12;
/// An endpoint failing every delivery this long is disabled.
pub const DISABLE_AFTER_DAYS: i32 = 5;
/// Endpoints one business may register.
const MAX_ENDPOINTS: i64 = 10;
/// Deliveries tried per pass, shared among the senders.
const BATCH: usize = 20;
/// Deliveries sent at once.
const SENDERS: usize = 4;
/// How long a claimed delivery is held before another pass may retry it.
/// (Longer than a try may take, lookup, send and record included, so two
/// tries of one endpoint are never out at once: see `bounded::ITEM_PATIENCE`.)
const LEASE_S: f64 = 300.0;
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two tries.
const MAX_BACKOFF_MS: u64 = 10 * 3600 * 1000;

/// An endpoint as it is registered: the only time `secret` is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewWebhook {
    pub webhook_id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    /// `whsec_…`: verify each request's `webhook-signature` with it.
    pub secret: String,
}

/// One delivery in an endpoint's log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub delivery_id: i64,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

fn signing_key(secret: &str) -> Result<Vec<u8>, Error> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| Error::internal("a webhook secret without its prefix"))?;
    BASE64
        .decode(encoded)
        .map_err(|e| Error::internal(e.to_string()))
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, Error> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&signing_key(secret)?)
        .map_err(|e| Error::internal(e.to_string()))?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// Registers an endpoint for the caller's business; the URL is checked
/// (see [`outbound`]) before anything is stored.
pub async fn register(
    state: &AppState,
    owner: Uuid,
    url: &str,
    events: Vec<String>,
) -> Result<NewWebhook, Error> {
    if events.is_empty() || events.iter().any(|e| !EVENTS.contains(&e.as_str())) {
        return Err(Error::Validation(format!(
            "events: one or more of {}",
            EVENTS.join(", ")
        )));
    }
    // Who asks is checked before the URL is resolved, so a customer without
    // a business cannot use the check to probe names (and again below,
    // under the transaction, for a suspension meanwhile).
    owned_active(&mut *state.pool.acquire().await?, owner).await?;
    let target = outbound::check(url, state.settings.webhook_allow_private).await?;
    let mut tx = state.pool.begin().await?;
    let merchant = owned_active(&mut tx, owner).await?;
    super::lock_setup(&mut tx, merchant.merchant_id).await?;
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM merchant_webhooks WHERE merchant_id = $1 AND status = 'ACTIVE'"#,
        merchant.merchant_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if count >= MAX_ENDPOINTS {
        return Err(Error::Conflict(format!(
            "a business has at most {MAX_ENDPOINTS} webhook endpoints"
        )));
    }
    super::count_creation(&mut tx, merchant.merchant_id).await?;
    let webhook_id = Uuid::new_v4();
    let secret = format!("whsec_{}", BASE64.encode(random_bytes::<24>()));
    let sealed = state
        .keys
        .master
        .seal(secret.as_bytes(), webhook_id.as_bytes());
    sqlx::query!(
        "INSERT INTO merchant_webhooks (id, merchant_id, url, events, secret_sealed) VALUES ($1, $2, $3, $4, $5)",
        webhook_id,
        merchant.merchant_id,
        target.url.as_str(),
        &events,
        sealed
    )
    .execute(&mut *tx)
    .await?;
    AuditEvent::new("merchant.webhook.register", Outcome::Success)
        .actor(owner)
        .subject(webhook_id)
        .detail(
            json!({"merchant": merchant.merchant_id, "url": target.url.as_str(), "events": events}),
        )
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(NewWebhook {
        webhook_id,
        url: target.url.to_string(),
        events,
        secret,
    })
}

/// Writes an event and its deliveries on the movement's connection, so they
/// exist exactly when the movement does; a business with no endpoint for
/// the event gets no row (a payment's hot path writes nothing it would not
/// read). The endpoints are key-share-locked until the movement commits,
/// which only a removal or a disabling conflicts with (each locks the
/// endpoint `FOR UPDATE`; a try's lease and record do not wait): either it
/// comes first, and the endpoint gets nothing, or it waits for the movement
/// and gives up what it enqueued. Never a delivery left waiting on an
/// endpoint that will not send it.
pub async fn enqueue(
    conn: &mut PgConnection,
    merchant_id: Uuid,
    event_type: &str,
    data: Value,
) -> Result<(), Error> {
    let id = format!("msg_{}", hex::encode(random_bytes::<16>()));
    let payload = json!({"type": event_type, "timestamp": Utc::now(), "data": data});
    sqlx::query!(
        "WITH endpoints AS (SELECT id, CASE WHEN failing_since IS NULL THEN now() ELSE greatest(now(), held_until) END AS due
                            FROM merchant_webhooks WHERE merchant_id = $2 AND status = 'ACTIVE' AND $3 = ANY (events) FOR KEY SHARE),
              event AS (INSERT INTO webhook_events (id, merchant_id, type, payload)
                        SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM endpoints) RETURNING id)
         INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at)
         SELECT endpoints.id, event.id, endpoints.due FROM endpoints, event",
        id,
        merchant_id,
        event_type,
        payload
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A delivery claimed for sending.
struct Due {
    id: i64,
    webhook_id: Uuid,
    attempts: i32,
    url: String,
    secret_sealed: Vec<u8>,
    event_id: String,
    payload: Value,
}

/// Sends what is due, [`SENDERS`] at a time, up to [`BATCH`] tries in all
/// (one endpoint slow to answer holds up only the sender waiting on it;
/// the others use the rest of the budget); returns how many were tried.
/// A sender that finds nothing it may claim looks again shortly while
/// another has not: that sender's business has its other deliveries held
/// back ([`claim`]), and other businesses' deliveries behind them in the
/// queue are this sender's to try. The pass ends once every sender found
/// nothing.
pub async fn deliver_due(state: &AppState) -> Result<usize, Error> {
    let budget = AtomicUsize::new(BATCH);
    let senders = Senders {
        alive: AtomicUsize::new(SENDERS),
        idle: AtomicUsize::new(0),
    };
    let take = || {
        budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    };
    let sender = || async {
        let mut tried = 0;
        let mut idle = false;
        let ended = async {
            while take() {
                let Some(due) = crate::bounded::item(claim(state)).await? else {
                    budget.fetch_add(1, Ordering::SeqCst);
                    if senders.found_nothing(&mut idle) {
                        break;
                    }
                    tokio::time::sleep(IDLE_LOOK_AGAIN).await;
                    continue;
                };
                senders.found(&mut idle);
                crate::bounded::item(async {
                    let result = send(state, &due).await;
                    record(state, &due, result).await
                })
                .await?;
                tried += 1;
            }
            Ok::<_, Error>(())
        }
        .await;
        senders.gone(idle);
        ended.map(|()| tried)
    };
    let mut tried = 0;
    for sent in futures::future::join_all((0..SENDERS).map(|_| sender())).await {
        match sent {
            Ok(count) => tried += count,
            Err(error) => {
                tracing::warn!(error = %error, "webhook sender failed");
                return Err(error);
            }
        }
    }
    Ok(tried)
}

/// The senders of one pass: how many are still sending, and how many of
/// those found nothing to claim when they last looked (a sender between
/// two tries, or not yet back from its first claim, has not).
struct Senders {
    alive: AtomicUsize,
    idle: AtomicUsize,
}

impl Senders {
    /// A sender found nothing to claim; `true` when every sender still
    /// sending found nothing either: the pass is over.
    fn found_nothing(&self, idle: &mut bool) -> bool {
        if !*idle {
            *idle = true;
            self.idle.fetch_add(1, Ordering::SeqCst);
        }
        self.idle.load(Ordering::SeqCst) >= self.alive.load(Ordering::SeqCst)
    }

    /// A sender claimed a delivery.
    fn found(&self, idle: &mut bool) {
        if *idle {
            *idle = false;
            self.idle.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A sender stopped (its idleness taken back first, so none reads more
    /// idle senders than are alive).
    fn gone(&self, idle: bool) {
        if idle {
            self.idle.fetch_sub(1, Ordering::SeqCst);
        }
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How soon a sender with nothing to claim looks again while another's
/// try is out.
const IDLE_LOOK_AGAIN: Duration = Duration::from_millis(250);

/// The earliest due delivery of an endpoint that is not held, of a business
/// with no try out; the endpoint is held (leased) and marked trying while
/// the try is out, so one business has one try out at a time (a business
/// whose endpoints answer slowly holds up one sender, never all of them).
/// Claims are made one at a time (a transaction-scoped advisory lock), so
/// two senders never both find a business free.
async fn claim(state: &AppState) -> Result<Option<Due>, Error> {
    let mut tx = state.pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", CLAIM_LOCK)
        .execute(&mut *tx)
        .await?;
    let due = sqlx::query_as!(
        Due,
        r#"WITH next AS (
               SELECT d.id, d.webhook_id FROM webhook_deliveries d JOIN merchant_webhooks w ON w.id = d.webhook_id
               WHERE d.status = 'PENDING' AND d.next_attempt_at <= now() AND w.status = 'ACTIVE'
                 AND (w.held_until IS NULL OR w.held_until <= now())
                 AND NOT EXISTS (SELECT 1 FROM merchant_webhooks o
                                 WHERE o.merchant_id = w.merchant_id AND o.status = 'ACTIVE' AND o.trying_until > now())
               ORDER BY d.next_attempt_at LIMIT 1 FOR NO KEY UPDATE OF d, w SKIP LOCKED),
           leased AS (
               UPDATE merchant_webhooks w SET held_until = now() + make_interval(secs => $1),
                                              trying_until = now() + make_interval(secs => $1)
               FROM next WHERE w.id = next.webhook_id)
           UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $1)
           FROM next, merchant_webhooks w, webhook_events e
           WHERE d.id = next.id AND w.id = d.webhook_id AND e.id = d.event_id
           RETURNING d.id, d.webhook_id, d.attempts, w.url, w.secret_sealed, d.event_id, e.payload"#,
        LEASE_S
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(due)
}

/// The advisory lock claims are made under ("webhooks" in ASCII).
const CLAIM_LOCK: i64 = 0x7765_6268_6f6f_6b73;

/// What one try came to: the receiver's status, or why there was none.
type Sent = Result<u16, String>;

async fn send(state: &AppState, due: &Due) -> Sent {
    let secret = state
        .keys
        .master
        .open(&due.secret_sealed, due.webhook_id.as_bytes())
        .map_err(|_| "the endpoint's secret cannot be opened".to_owned())
        .and_then(|s| {
            String::from_utf8(s).map_err(|_| "the endpoint's secret is not text".to_owned())
        })?;
    // Checked again at every try: a name may resolve elsewhere by now.
    let target = outbound::check(&due.url, state.settings.webhook_allow_private)
        .await
        .map_err(|e| e.to_string())?;
    let body = due.payload.to_string();
    let timestamp = Utc::now().timestamp();
    let signature =
        signature(&secret, &due.event_id, timestamp, &body).map_err(|e| e.to_string())?;
    // No proxy: a proxy would resolve the name again, past the check.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(SEND_TIMEOUT)
        .resolve(&target.host, target.addr)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(target.url)
        .header("content-type", "application/json")
        .header("webhook-id", &due.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("not delivered: {e}"))?;
    Ok(response.status().as_u16())
}

/// Records a try: delivered on 2xx; otherwise retried later, or given up,
/// and the endpoint held. The endpoint's row is locked first, as every
/// writer of an endpoint and its deliveries locks it ([`remove`] included),
/// so none waits on another in a cycle; a delivery given up meanwhile (its
/// endpoint removed) stays given up.
async fn record(state: &AppState, due: &Due, sent: Sent) -> Result<(), Error> {
    let (code, error) = match &sent {
        Ok(code) if (200..300).contains(code) => (Some(*code), None),
        Ok(code) => (Some(*code), Some(format!("the endpoint answered {code}"))),
        Err(why) => (None, Some(why.clone())),
    };
    let mut tx = state.pool.begin().await?;
    // The try is over: the business may have its next one.
    let failing = sqlx::query_scalar!(
        r#"UPDATE merchant_webhooks SET trying_until = NULL WHERE id = $1
           RETURNING failing_since IS NOT NULL AS "failing!""#,
        due.webhook_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if error.is_none() {
        sqlx::query!(
            "UPDATE webhook_deliveries SET status = 'DELIVERED', delivered_at = now(), last_status_code = $2, last_error = NULL WHERE id = $1",
            due.id,
            code.map(i32::from)
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE merchant_webhooks SET failing_since = NULL, held_until = NULL WHERE id = $1",
            due.webhook_id
        )
        .execute(&mut *tx)
        .await?;
        // Answering again: what its failures held back untried is due now
        // (a delivery that failed on its own keeps its own backoff).
        if failing {
            sqlx::query!(
                "UPDATE webhook_deliveries SET next_attempt_at = now()
                 WHERE webhook_id = $1 AND status = 'PENDING' AND attempts = 0 AND next_attempt_at > now()",
                due.webhook_id
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        return Ok(());
    }
    let first = state.settings.webhook_first_retry_ms.max(1);
    let backoff = first
        .saturating_mul(1 << due.attempts.clamp(1, 30).saturating_sub(1))
        .min(MAX_BACKOFF_MS);
    let give_up = due.attempts >= MAX_ATTEMPTS;
    sqlx::query!(
        "UPDATE webhook_deliveries SET status = CASE WHEN $5 THEN 'FAILED' ELSE 'PENDING' END,
                next_attempt_at = now() + make_interval(secs => $4), last_status_code = $2, last_error = $3
         WHERE id = $1 AND status = 'PENDING'",
        due.id,
        code.map(i32::from),
        error,
        backoff as f64 / 1000.0,
        give_up
    )
    .execute(&mut *tx)
    .await?;
    failed(&mut tx, due.webhook_id, first).await?;
    tx.commit().await?;
    Ok(())
}

/// An active endpoint that failed a try: held as long as it has been
/// failing (at least `first_retry_ms`, at most [`MAX_BACKOFF_MS`]), its
/// waiting deliveries with it, so one that does not answer gets fewer and
/// fewer tries and its backlog stays out of the way of other businesses'
/// webhooks (each delivery's own backoff still applies). One failing for
/// days is disabled, what waited for it given up, and its owner told.
async fn failed(
    conn: &mut PgConnection,
    webhook_id: Uuid,
    first_retry_ms: u64,
) -> Result<(), Error> {
    // About to be disabled: locked as a removal locks it, so a payment
    // enqueuing for it meanwhile is waited for and given up below.
    sqlx::query!(
        "SELECT id FROM merchant_webhooks
         WHERE id = $1 AND status = 'ACTIVE' AND failing_since < now() - make_interval(days => $2)
         FOR UPDATE",
        webhook_id,
        DISABLE_AFTER_DAYS
    )
    .fetch_optional(&mut *conn)
    .await?;
    let endpoint = sqlx::query!(
        r#"UPDATE merchant_webhooks w SET failing_since = coalesce(w.failing_since, now()),
                  held_until = now() + least(greatest(make_interval(secs => $3), now() - coalesce(w.failing_since, now())),
                                             make_interval(secs => $4)),
                  status = CASE WHEN w.failing_since < now() - make_interval(days => $2) THEN 'DISABLED' ELSE w.status END,
                  disabled_at = CASE WHEN w.failing_since < now() - make_interval(days => $2) THEN now() ELSE w.disabled_at END
           FROM merchants m JOIN users u ON u.id = m.owner_user_id
           WHERE w.id = $1 AND w.status = 'ACTIVE' AND m.id = w.merchant_id
           RETURNING w.status, w.held_until AS "held_until!", w.url, u.phone, u.language"#,
        webhook_id,
        DISABLE_AFTER_DAYS,
        first_retry_ms as f64 / 1000.0,
        MAX_BACKOFF_MS as f64 / 1000.0
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(endpoint) = endpoint else {
        return Ok(());
    };
    if endpoint.status != "DISABLED" {
        // Held in the rows too, so claims pass over them in the due index.
        // One never tried waits exactly for the hold: enqueued while this
        // try was out, it was set to wait for the try's lease.
        sqlx::query!(
            "UPDATE webhook_deliveries SET next_attempt_at = $2
             WHERE webhook_id = $1 AND status = 'PENDING' AND (next_attempt_at < $2 OR attempts = 0)",
            webhook_id,
            endpoint.held_until
        )
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    fail_pending(
        &mut *conn,
        webhook_id,
        "the endpoint was disabled after failing for days",
    )
    .await?;
    tracing::warn!(%webhook_id, "webhook endpoint disabled after failing for days");
    let text =
        Sms(Lang::parse(&endpoint.language)).webhook_disabled(&endpoint.url, DISABLE_AFTER_DAYS);
    crate::sms::outbox::queue(&mut *conn, &endpoint.phone, &text, None).await?;
    Ok(())
}

/// Removes one of the caller's endpoints: nothing more is sent to it, and
/// what waited to be is given up. Removing it again answers the same.
pub async fn remove(state: &AppState, owner: Uuid, webhook_id: Uuid) -> Result<(), Error> {
    let mut tx = state.pool.begin().await?;
    let merchant = owned_by(&mut tx, owner).await?.ok_or(Error::Forbidden)?;
    let endpoint = sqlx::query!(
        "SELECT status FROM merchant_webhooks WHERE id = $1 AND merchant_id = $2 FOR UPDATE",
        webhook_id,
        merchant.merchant_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound(Missing::Webhook))?;
    if endpoint.status != "DISABLED" {
        sqlx::query!(
            "UPDATE merchant_webhooks SET status = 'DISABLED', disabled_at = now() WHERE id = $1",
            webhook_id
        )
        .execute(&mut *tx)
        .await?;
        AuditEvent::new("merchant.webhook.remove", Outcome::Success)
            .actor(owner)
            .subject(webhook_id)
            .detail(json!({ "merchant": merchant.merchant_id }))
            .record(&mut tx)
            .await?;
    }
    // Also for one disabled before its deliveries were given up with it.
    fail_pending(&mut tx, webhook_id, "the endpoint was removed").await?;
    tx.commit().await?;
    Ok(())
}

/// Gives up every delivery still waiting for an endpoint that is gone.
async fn fail_pending(conn: &mut PgConnection, webhook_id: Uuid, why: &str) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE webhook_deliveries SET status = 'FAILED', last_error = $2 WHERE webhook_id = $1 AND status = 'PENDING'",
        webhook_id,
        why
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An endpoint's deliveries, newest first (the newest 200).
pub async fn deliveries(
    state: &AppState,
    owner: Uuid,
    webhook_id: Uuid,
) -> Result<Vec<DeliveryView>, Error> {
    let mut conn = state.pool.acquire().await?;
    let merchant = owned_by(&mut conn, owner).await?.ok_or(Error::Forbidden)?;
    let known = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM merchant_webhooks WHERE id = $1 AND merchant_id = $2) AS "known!""#,
        webhook_id,
        merchant.merchant_id
    )
    .fetch_one(&mut *conn)
    .await?;
    if !known {
        return Err(Error::NotFound(Missing::Webhook));
    }
    Ok(sqlx::query_as!(
        DeliveryView,
        r#"SELECT d.id AS delivery_id, d.event_id, e.type AS event_type, d.status, d.attempts, d.last_status_code, d.last_error,
                  d.next_attempt_at, d.delivered_at, d.created_at
           FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
           WHERE d.webhook_id = $1 ORDER BY d.id DESC LIMIT 200"#,
        webhook_id
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Sends a delivery again with the same event id (the receiver
/// de-duplicates by `webhook-id`): now, or once its endpoint is no longer
/// held.
pub async fn redeliver(
    state: &AppState,
    owner: Uuid,
    webhook_id: Uuid,
    delivery_id: i64,
) -> Result<DeliveryView, Error> {
    let mut conn = state.pool.acquire().await?;
    let merchant = owned_by(&mut conn, owner).await?.ok_or(Error::Forbidden)?;
    // The endpoint is locked first, as removing it locks it: a delivery is
    // never made due again on an endpoint removed meanwhile.
    sqlx::query_scalar!(
        "WITH w AS (SELECT id, held_until, failing_since FROM merchant_webhooks WHERE id = $2 AND merchant_id = $3 AND status = 'ACTIVE'
                    FOR NO KEY UPDATE)
         UPDATE webhook_deliveries d SET status = 'PENDING',
                next_attempt_at = CASE WHEN w.failing_since IS NULL THEN now() ELSE greatest(now(), w.held_until) END
         FROM w WHERE d.id = $1 AND d.webhook_id = w.id
         RETURNING d.id",
        delivery_id,
        webhook_id,
        merchant.merchant_id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound(Missing::Delivery))?;
    drop(conn);
    deliveries(state, owner, webhook_id)
        .await?
        .into_iter()
        .find(|d| d.delivery_id == delivery_id)
        .ok_or(Error::NotFound(Missing::Delivery))
}
