//! Writing a decided batch: one statement for every row of every transfer
//! and refusal in it.

use std::collections::BTreeMap;

use chainpay_core::status::TxStatus;
use chainpay_core::transaction::TxType;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Job;
use crate::audit::{AuditEvent, Outcome};
use crate::error::Error;
use crate::idempotency::IdempotencyKey;
use crate::ledger::post::Movement;
use crate::movements::book::Text;
use crate::movements::transfer::SendOrder;
use crate::movements::Operation;
use crate::sms::outbox;
use crate::transactions::TxView;

/// A transfer decided to post: its movement, its answer, its texts and what
/// its audit row says.
pub struct Posted {
    pub movement: Movement,
    pub view: TxView,
    pub texts: Vec<Text>,
    pub detail: Value,
}

/// The batch's rows, one vector per column.
#[derive(Default)]
pub struct Rows {
    tx_ids: Vec<Uuid>,
    amounts: Vec<i64>,
    fees: Vec<i64>,
    currencies: Vec<String>,
    from_users: Vec<Uuid>,
    to_users: Vec<Uuid>,
    notes: Vec<Option<String>>,
    signatures: Vec<String>,
    created: Vec<DateTime<Utc>>,
    usd_cents: Vec<Option<i64>>,
    leg_tx: Vec<Uuid>,
    leg_accounts: Vec<i64>,
    leg_amounts: Vec<i64>,
    sms_to: Vec<String>,
    sms_text: Vec<String>,
    sms_tx: Vec<Uuid>,
    audit: Vec<(AuditEvent, Option<String>)>,
    keys: Vec<(Uuid, String, Value)>,
    deltas: BTreeMap<i64, i64>,
}

impl Rows {
    /// A posted transfer: its transaction, postings, texts, audit row and
    /// saved answer.
    pub fn posted(&mut self, job: &Job, posted: &Posted) {
        let facts = &posted.movement.facts;
        self.tx_ids.push(facts.tx_id);
        self.amounts.push(facts.amount_minor);
        self.fees.push(facts.fee_minor);
        self.currencies.push(facts.currency.clone());
        self.from_users.push(job.order.from_user_id);
        self.to_users.push(facts.to_user_id.unwrap_or_default());
        self.notes.push(posted.movement.note.clone());
        self.signatures.push(posted.view.signature.clone());
        self.created.push(facts.created_at);
        self.usd_cents.push(posted.movement.usd_cents);
        for posting in posted.movement.entry.postings() {
            self.leg_tx.push(facts.tx_id);
            self.leg_accounts.push(posting.account);
            self.leg_amounts.push(posting.amount_minor);
        }
        for (account, delta) in posted.movement.entry.net_by_account() {
            *self.deltas.entry(account).or_default() += delta;
        }
        for (to, text) in &posted.texts {
            self.sms_to.push(to.clone());
            self.sms_text.push(outbox::clip(text));
            self.sms_tx.push(facts.tx_id);
        }
        let audit = AuditEvent::new(SendOrder::ACTION, Outcome::Success)
            .actor(job.order.from_user_id)
            .subject(facts.tx_id)
            .detail(posted.detail.clone());
        self.audit.push((audit, job.request_id.clone()));
        self.save(job.key.as_ref(), IdempotencyKey::stored(Ok(&posted.view)));
    }

    /// A refused transfer: its audit row and saved answer.
    pub fn refused(&mut self, job: &Job, audit: AuditEvent, refusal: &Error) {
        self.audit.push((audit, job.request_id.clone()));
        self.save(
            job.key.as_ref(),
            IdempotencyKey::stored::<TxView>(Err(refusal)),
        );
    }

    fn save(&mut self, key: Option<&IdempotencyKey>, outcome: Value) {
        if let Some(key) = key {
            self.keys.push((key.user_id, key.key.clone(), outcome));
        }
    }

    /// Writes every row in one statement (the accounts' net deltas last, in
    /// id order, their rows locked already). Returns the transaction's id
    /// when it moved money, so a commit that gets no answer can be asked
    /// about ([`crate::db::transaction_outcome`]).
    /// (Longer than most: one bound array per column of six tables.)
    pub async fn write(self, conn: &mut PgConnection) -> sqlx::Result<Option<i64>> {
        let (audit_actor, audit_action, audit_outcome, audit_subject, audit_detail, audit_request) =
            audit_columns(self.audit);
        let (key_users, key_names, key_outcomes) = key_columns(self.keys);
        let (delta_ids, delta_amounts): (Vec<i64>, Vec<i64>) = self.deltas.into_iter().unzip();
        let types = vec![TxType::Transfer.as_str().to_owned(); self.tx_ids.len()];
        let statuses = vec![TxStatus::Completed.as_str().to_owned(); self.tx_ids.len()];
        sqlx::query!(
            r#"
            WITH tx AS (
                INSERT INTO transactions (tx_id, tx_type, amount, fee, currency, from_user_id, to_user_id, note,
                                          signature, created_at, usd_cents, status)
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::uuid[],
                                     $7::uuid[], $8::text[], $9::text[], $10::timestamptz[], $11::bigint[], $12::text[])
            ), legs AS (
                INSERT INTO postings (tx_id, account_id, amount)
                SELECT * FROM unnest($13::uuid[], $14::bigint[], $15::bigint[])
            ), chained AS (
                INSERT INTO chain_pending (tx_id) SELECT unnest($1::uuid[])
            ), texts AS (
                INSERT INTO sms_outbox (to_phone, message, tx_id)
                SELECT * FROM unnest($16::text[], $17::text[], $18::uuid[])
            ), audited AS (
                INSERT INTO audit_log (actor_user_id, action, outcome, subject, detail, request_id)
                SELECT * FROM unnest($19::uuid[], $20::text[], $21::text[], $22::text[], $23::jsonb[], $24::text[])
                RETURNING id
            ), audit_queued AS (
                INSERT INTO audit_pending (audit_id) SELECT id FROM audited
            ), saved AS (
                UPDATE idempotency_keys k SET outcome = o.outcome
                FROM unnest($25::uuid[], $26::text[], $27::jsonb[]) AS o (user_id, key, outcome)
                WHERE k.user_id = o.user_id AND k.key = o.key
            )
            UPDATE accounts a SET balance = a.balance + d.delta
            FROM unnest($28::bigint[], $29::bigint[]) AS d (id, delta)
            WHERE a.id = d.id
            RETURNING pg_current_xact_id()::text::bigint AS "xid!"
            "#,
            &self.tx_ids,
            &types,
            &self.amounts,
            &self.fees,
            &self.currencies,
            &self.from_users,
            &self.to_users,
            &self.notes as &[Option<String>],
            &self.signatures,
            &self.created,
            &self.usd_cents as &[Option<i64>],
            &statuses,
            &self.leg_tx,
            &self.leg_accounts,
            &self.leg_amounts,
            &self.sms_to,
            &self.sms_text,
            &self.sms_tx,
            &audit_actor as &[Option<Uuid>],
            &audit_action,
            &audit_outcome,
            &audit_subject as &[Option<String>],
            &audit_detail,
            &audit_request as &[Option<String>],
            &key_users,
            &key_names,
            &key_outcomes,
            &delta_ids,
            &delta_amounts,
        )
        .fetch_all(conn)
        .await
        .map(|rows| rows.first().map(|row| row.xid))
    }
}

type AuditColumns = (
    Vec<Option<Uuid>>,
    Vec<String>,
    Vec<String>,
    Vec<Option<String>>,
    Vec<Value>,
    Vec<Option<String>>,
);

fn audit_columns(rows: Vec<(AuditEvent, Option<String>)>) -> AuditColumns {
    let mut columns = AuditColumns::default();
    for (event, request_id) in rows {
        columns.0.push(event.actor_user_id);
        columns.1.push(event.action.to_owned());
        columns.2.push(event.outcome.as_str().to_owned());
        columns.3.push(event.subject);
        columns.4.push(event.detail);
        columns.5.push(request_id);
    }
    columns
}

fn key_columns(rows: Vec<(Uuid, String, Value)>) -> (Vec<Uuid>, Vec<String>, Vec<Value>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for (user, key, outcome) in rows {
        columns.0.push(user);
        columns.1.push(key);
        columns.2.push(outcome);
    }
    columns
}
