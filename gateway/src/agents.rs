//! Cash agents: appointed by an admin from verified customers, each with a
//! six-digit agent number and a float per currency (`agent_float`
//! accounts, opened by the `agents` insert trigger). Cash-in and cash-out
//! are movements (`movements::cash_in`, `movements::cash_out`); this module
//! is who the agents are and what their counter shows.

use chainpay_core::crypto::random_bytes;
use chainpay_core::Lang;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::state::AppState;

/// An active agent, as a movement through them needs them.
#[derive(Debug, Clone)]
pub struct Agent {
    pub user_id: Uuid,
    pub number: String,
    pub name: String,
    pub phone: String,
    pub lang: Lang,
}

/// One currency of an agent's float.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FloatBalance {
    pub currency: String,
    pub balance: i64,
}

/// An agent as operators see them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    /// Six digits, what customers type at the counter.
    pub agent_number: String,
    pub user_id: Uuid,
    pub phone: String,
    pub name: String,
    /// `ACTIVE` or `SUSPENDED`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// Every currency, zero included.
    pub float: Vec<FloatBalance>,
}

/// The active agent with `number`, whose own account is in good standing.
pub async fn active_by_number(
    conn: &mut PgConnection,
    number: &str,
) -> Result<Option<Agent>, Error> {
    let row = sqlx::query!(
        r#"SELECT u.id, u.name, u.phone, u.language, a.agent_number FROM agents a JOIN users u ON u.id = a.user_id
           WHERE a.agent_number = $1 AND a.status = 'ACTIVE' AND NOT u.suspended AND u.kyc_status = 'VERIFIED'"#,
        number
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Agent {
        user_id: r.id,
        number: r.agent_number,
        name: r.name,
        phone: r.phone,
        lang: Lang::parse(&r.language),
    }))
}

/// The caller as an active agent; anyone else is refused.
pub async fn active_by_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Agent, Error> {
    let number = sqlx::query_scalar!(
        "SELECT agent_number FROM agents WHERE user_id = $1 AND status = 'ACTIVE'",
        user_id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::Forbidden)?;
    active_by_number(conn, &number)
        .await?
        .ok_or(Error::Forbidden)
}

/// A fresh six-digit number not starting with 0 (it reads like a till).
fn new_number() -> String {
    let bytes = random_bytes::<4>();
    let n = u32::from_le_bytes(bytes) % 900_000 + 100_000;
    n.to_string()
}

/// Which numbers a fresh one must not clash with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Numbering {
    Agents,
    Merchants,
}

/// A fresh six-digit number not yet used in `numbering`. Numbers are
/// random; a clash (rare) just draws again.
pub(crate) async fn unused_number(
    conn: &mut PgConnection,
    numbering: Numbering,
) -> Result<String, Error> {
    for _ in 0..20 {
        let number = new_number();
        let taken = sqlx::query_scalar!(
            r#"SELECT CASE WHEN $2 THEN EXISTS (SELECT 1 FROM agents WHERE agent_number = $1)
                           ELSE EXISTS (SELECT 1 FROM merchants WHERE number = $1) END AS "taken!""#,
            number,
            matches!(numbering, Numbering::Agents)
        )
        .fetch_one(&mut *conn)
        .await?;
        if !taken {
            return Ok(number);
        }
    }
    Err(Error::internal("no unused six-digit number after 20 draws"))
}

/// Appoints the customer with `phone` as an agent: verified, in good
/// standing, not an admin, a business owner or an agent already.
pub async fn appoint(state: &AppState, admin: Uuid, phone: &str) -> Result<AgentView, Error> {
    let mut tx = state.pool.begin().await?;
    let user = sqlx::query!(
        r#"SELECT id, role, kyc_status, suspended, sanctions_match_id IS NOT NULL AS "listed!"
           FROM users WHERE phone = $1 FOR NO KEY UPDATE"#,
        phone
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound(Missing::User))?;
    match user.role.as_str() {
        "agent" => return Err(Error::Conflict("this customer is already an agent".into())),
        "admin" => return Err(Error::Validation("an admin cannot be an agent".into())),
        // A business's takings and an agent's float stay apart (as
        // `merchants::register` refuses agents).
        "merchant" => {
            return Err(Error::Validation(
                "a business owner cannot be an agent".into(),
            ))
        }
        _ => {}
    }
    if user.suspended || user.listed || user.kyc_status != "VERIFIED" {
        return Err(Error::Validation(
            "only a verified customer in good standing can be an agent".into(),
        ));
    }
    let number = unused_number(&mut tx, Numbering::Agents).await?;
    sqlx::query!(
        "INSERT INTO agents (user_id, agent_number, appointed_by) VALUES ($1, $2, $3)",
        user.id,
        number,
        admin
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("UPDATE users SET role = 'agent' WHERE id = $1", user.id)
        .execute(&mut *tx)
        .await?;
    AuditEvent::new("admin.agent.appoint", Outcome::Success)
        .actor(admin)
        .subject(user.id)
        .detail(json!({"agent_number": number, "phone": phone}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    state.sessions.forget(user.id);
    let mut conn = state.pool.acquire().await?;
    view(&mut conn, &number).await
}

/// Suspends (`active = false`) or reinstates an agent.
pub async fn set_active(
    state: &AppState,
    admin: Uuid,
    number: &str,
    active: bool,
) -> Result<AgentView, Error> {
    let status = if active { "ACTIVE" } else { "SUSPENDED" };
    let mut tx = state.pool.begin().await?;
    let user_id = sqlx::query_scalar!(
        "UPDATE agents SET status = $2, updated_at = now() WHERE agent_number = $1 RETURNING user_id",
        number,
        status
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound(Missing::Agent))?;
    let action = if active {
        "admin.agent.reinstate"
    } else {
        "admin.agent.suspend"
    };
    AuditEvent::new(action, Outcome::Success)
        .actor(admin)
        .subject(user_id)
        .detail(json!({"agent_number": number}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    let mut conn = state.pool.acquire().await?;
    view(&mut conn, number).await
}

/// Every agent with their float, newest first (the newest 500).
pub async fn list(conn: &mut PgConnection) -> Result<Vec<AgentView>, Error> {
    select(conn, None).await
}

async fn view(conn: &mut PgConnection, number: &str) -> Result<AgentView, Error> {
    select(conn, Some(number))
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound(Missing::Agent))
}

async fn select(conn: &mut PgConnection, number: Option<&str>) -> Result<Vec<AgentView>, Error> {
    let rows = sqlx::query!(
        r#"SELECT a.agent_number, a.user_id, u.phone, u.name, a.status, a.created_at,
                  coalesce((SELECT jsonb_agg(jsonb_build_object('currency', f.currency, 'balance', f.balance) ORDER BY f.currency)
                            FROM accounts f WHERE f.kind = 'agent_float' AND f.user_id = a.user_id), '[]') AS "float!"
           FROM agents a JOIN users u ON u.id = a.user_id
           WHERE ($1::text IS NULL OR a.agent_number = $1)
           ORDER BY a.created_at DESC LIMIT 500"#,
        number
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(AgentView {
                agent_number: r.agent_number,
                user_id: r.user_id,
                phone: r.phone,
                name: r.name,
                status: r.status,
                created_at: r.created_at,
                float: serde_json::from_value(r.float).map_err(anyhow::Error::from)?,
            })
        })
        .collect()
}

/// Today's movements at one agent's counter in one currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DayTotals {
    pub currency: String,
    pub cash_in_count: i64,
    pub cash_in_amount: i64,
    pub cash_out_count: i64,
    pub cash_out_amount: i64,
    /// Earned today, paid into the float with each movement.
    pub commission: i64,
}

/// What an agent's counter shows: float, today's totals and commission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub agent_number: String,
    pub name: String,
    pub float: Vec<FloatBalance>,
    /// Since midnight East Africa Time, per currency with movements.
    pub today: Vec<DayTotals>,
    /// Commission earned since midnight, all currencies.
    pub commission: Vec<FloatBalance>,
}

/// The agent's summary. Commission is read from the ledger itself: the
/// float's posting of a movement minus what the movement moved.
pub async fn summary(conn: &mut PgConnection, agent: &Agent) -> Result<Summary, Error> {
    let today = sqlx::query_as!(
        DayTotals,
        r#"SELECT t.currency AS "currency!",
                  count(*) FILTER (WHERE t.tx_type = 'cash_in') AS "cash_in_count!",
                  coalesce(sum(t.amount) FILTER (WHERE t.tx_type = 'cash_in'), 0)::bigint AS "cash_in_amount!",
                  count(*) FILTER (WHERE t.tx_type = 'cash_out') AS "cash_out_count!",
                  coalesce(sum(t.amount) FILTER (WHERE t.tx_type = 'cash_out'), 0)::bigint AS "cash_out_amount!",
                  coalesce(sum(p.amount + CASE t.tx_type WHEN 'cash_in' THEN t.amount ELSE -t.amount END), 0)::bigint
                      AS "commission!"
           FROM transactions t
           JOIN accounts f ON f.kind = 'agent_float' AND f.user_id = $1 AND f.currency = t.currency
           JOIN postings p ON p.tx_id = t.tx_id AND p.account_id = f.id
           WHERE t.tx_type IN ('cash_in', 'cash_out')
             AND t.created_at >= date_trunc('day', now() AT TIME ZONE 'Africa/Nairobi') AT TIME ZONE 'Africa/Nairobi'
           GROUP BY t.currency ORDER BY t.currency"#,
        agent.user_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let float = sqlx::query_as!(
        FloatBalance,
        "SELECT currency, balance FROM accounts WHERE kind = 'agent_float' AND user_id = $1 ORDER BY currency",
        agent.user_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let commission = today
        .iter()
        .map(|d| FloatBalance {
            currency: d.currency.clone(),
            balance: d.commission,
        })
        .collect();
    Ok(Summary {
        agent_number: agent.number.clone(),
        name: agent.name.clone(),
        float,
        today,
        commission,
    })
}
