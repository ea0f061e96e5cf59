//! The audit log: every login, money movement, rejection and admin action.
//!
//! Rows are written on the caller's connection so an event commits or rolls
//! back together with what it describes. The request id of the HTTP request
//! that caused the event is attached automatically. Each row is queued for
//! the hash chain ([`chain`]) in the same statement.

pub mod chain;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

tokio::task_local! {
    /// Set by the request-id middleware for the duration of each request.
    pub static REQUEST_ID: String;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor_user_id: Option<Uuid>,
    pub action: &'static str,
    pub outcome: Outcome,
    pub subject: Option<String>,
    pub detail: Value,
}

impl AuditEvent {
    pub fn new(action: &'static str, outcome: Outcome) -> Self {
        Self {
            actor_user_id: None,
            action,
            outcome,
            subject: None,
            detail: Value::Object(Default::default()),
        }
    }

    pub fn actor(mut self, user_id: Uuid) -> Self {
        self.actor_user_id = Some(user_id);
        self
    }

    pub fn subject(mut self, subject: impl ToString) -> Self {
        self.subject = Some(subject.to_string());
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    pub async fn record(self, conn: &mut PgConnection) -> sqlx::Result<()> {
        let request_id = REQUEST_ID.try_with(Clone::clone).ok();
        sqlx::query!(
            "WITH row AS (
                 INSERT INTO audit_log (actor_user_id, action, outcome, subject, detail, request_id)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
             )
             INSERT INTO audit_pending (audit_id) SELECT id FROM row",
            self.actor_user_id,
            self.action,
            self.outcome.as_str(),
            self.subject,
            self.detail,
            request_id,
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}
