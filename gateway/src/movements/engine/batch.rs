//! One batch of transfers in one database transaction.
//!
//! 1. Lock every sender (id order) and read the parties; claim the keys
//!    ((user, key) order); read the senders' rolling windows, which now see
//!    every movement that committed before the locks were granted.
//! 2. Check each transfer alone: price, recipient, sanctions.
//! 3. Resolve and lock the accounts (id order) and read their balances.
//! 4. In arrival order, decide each against the windows and balances the
//!    earlier ones left: tier limits, then funds.
//! 5. Write every posted transfer and every refusal ([`super::write`]),
//!    file the reports the AML rules asked for, commit.
//!
//! The `accounts_wallet_not_overdrawn` constraint and the balanced-entry
//! trigger stay as backstops: if one fired, the batch would not commit and
//! its transfers would be decided again one by one.

use std::collections::HashMap;

use chainpay_core::compliance::{Decision, Rule};
use chainpay_core::notify::Receipt;
use chainpay_core::status::TxStatus;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio::time::{timeout_at, Duration, Instant};
use uuid::Uuid;

use super::phases::{Phase, Phases};
use super::write::{self, Rows};
use super::Job;
use crate::audit::AuditEvent;
use crate::compliance::limits::{self, Window};
use crate::error::{ComplianceRefusal, Error};
use crate::idempotency::IdempotencyKey;
use crate::ledger::accounts::{self, AccountRef};
use crate::ledger::post::{Locked, Movement};
use crate::movements::book::post_error;
use crate::movements::parties::{self, Parties, People, Person};
use crate::movements::transfer::{Quote, SendOrder};
use crate::movements::{count, open_refusal_report, refusal_audit, Attempted, Operation};
use crate::rules::Rules;
use crate::state::AppState;
use crate::transactions::TxView;

/// What became of one transfer of a committed batch.
pub enum Verdict {
    /// Posted or refused, and saved under its key.
    Done(Box<Result<TxView, Error>>),
    /// Its key was taken already: answer as the first request was answered.
    Replay,
}

/// A transfer that passed the checks that do not depend on its neighbours.
struct Candidate {
    sender: Person,
    recipient: Person,
    quote: Quote,
}

/// Where a transfer stands as the batch is decided.
enum Step {
    Replay,
    Refused(Error),
    Candidate(Box<Candidate>),
    /// Decided to post, with the report its AML rule asked for.
    Posted(Box<write::Posted>, Option<Rule>),
}

/// Why a batch has no verdicts.
pub enum Failed {
    /// Nothing was written: each transfer may be decided again alone.
    NotWritten(Error),
    /// Nothing was written, but the database did not answer within the
    /// batch's patience (a server gone silent): deciding each transfer again
    /// alone would wait as long, so each is answered with this error.
    GaveUp(Error),
    /// The commit's answer was lost: whether it took effect is unknown, so
    /// nothing may be decided again (an unkeyed transfer would post twice).
    Unknown(Error),
}

/// Decides, writes and commits `jobs` within `patience`; their verdicts, in
/// order.
///
/// Each step on the batch's connection waits at most until the patience
/// ends. A connection given up on is closed, not handed back to the pool:
/// its server has likely gone silent, and sqlx bounds a close (five
/// seconds), where a release would first send whatever was left unsent
/// (a large write cut short) with no bound.
pub async fn commit(
    state: &AppState,
    jobs: &[Job],
    patience: Duration,
) -> Result<Vec<Verdict>, Failed> {
    let deadline = Instant::now() + patience;
    let mut phases = Phases::start();
    let mut conn = timeout_at(deadline, state.pool.acquire())
        .await
        .map_err(|_| Failed::GaveUp(no_answer()))?
        .map_err(|e| Failed::NotWritten(e.into()))?;
    let ended = begin_to_commit(&mut conn, state, jobs, &mut phases, deadline).await;
    let steps = match ended {
        Ended::Committed(steps) => steps,
        Ended::NotWritten(error) => return Err(Failed::NotWritten(error)),
        Ended::GaveUp => {
            conn.close_on_drop();
            return Err(Failed::GaveUp(no_answer()));
        }
        // A COMMIT cut short may still reach the server (from the buffer of
        // the connection as it closes): whether it took effect cannot be told.
        Ended::CommitCut => {
            conn.close_on_drop();
            return Err(Failed::Unknown(no_answer()));
        }
        Ended::CommitFailed(steps, xid, error) => {
            let first = steps.iter().find_map(|step| match step {
                Step::Posted(posted, _) => Some(posted.movement.facts.tx_id),
                _ => None,
            });
            let outcome = match (xid, first) {
                (Some(xid), Some(first)) => committed(state, xid, first).await,
                _ => None,
            };
            match outcome {
                Some(true) => steps,
                Some(false) => return Err(Failed::NotWritten(error.into())),
                None => return Err(Failed::Unknown(error.into())),
            }
        }
    };
    phases.ended(Phase::Commit);
    phases.record(&state.metrics, jobs.len());
    Ok(jobs
        .iter()
        .zip(steps)
        .map(|(job, step)| verdict(state, job, step))
        .collect())
}

/// How a batch's transaction ended on its connection.
enum Ended {
    Committed(Vec<Step>),
    /// Refused before the commit: nothing was written.
    NotWritten(Error),
    /// The patience ended before the commit was sent: nothing was written.
    GaveUp,
    /// The patience ended while the commit was on its way.
    CommitCut,
    /// The commit failed: it may or may not have taken effect. With the
    /// transaction's id when it moved money.
    CommitFailed(Vec<Step>, Option<i64>, sqlx::Error),
}

/// `BEGIN`, steps 1 to 5 and the commit on `conn`, each waiting at most until
/// `deadline`.
async fn begin_to_commit(
    conn: &mut PgConnection,
    state: &AppState,
    jobs: &[Job],
    phases: &mut Phases,
    deadline: Instant,
) -> Ended {
    let mut tx = match timeout_at(
        deadline,
        conn.begin_with(crate::db::BEGIN_ON_PREPARED_PLANS),
    )
    .await
    {
        Ok(Ok(tx)) => tx,
        Ok(Err(error)) => return Ended::NotWritten(error.into()),
        Err(_) => return Ended::GaveUp,
    };
    let (steps, xid) =
        match timeout_at(deadline, decide_and_write(&mut tx, state, jobs, phases)).await {
            Ok(Ok(written)) => written,
            Ok(Err(error)) => return Ended::NotWritten(error),
            Err(_) => return Ended::GaveUp,
        };
    match timeout_at(deadline, tx.commit()).await {
        Ok(Ok(())) => Ended::Committed(steps),
        Ok(Err(error)) => Ended::CommitFailed(steps, xid, error),
        Err(_) => Ended::CommitCut,
    }
}

/// A batch, or a step of it, given up on: the database did not answer
/// within its patience.
pub(super) fn no_answer() -> Error {
    sqlx::Error::Io(std::io::ErrorKind::TimedOut.into()).into()
}

/// Whether a batch whose commit got no answer took effect: asked by its
/// transaction's id, which tells "still landing" from "never" (a look for
/// its rows cannot). A crash before the id reached the WAL can hand the
/// same id to another transaction once the server is back, so "committed"
/// also needs the batch's first transfer to be there; without it the batch
/// was lost with the crash. `None`: unknown within [`ASK_PATIENCE`].
async fn committed(state: &AppState, xid: i64, first: Uuid) -> Option<bool> {
    let until = tokio::time::Instant::now() + ASK_PATIENCE;
    if !crate::db::transaction_outcome(&state.pool, xid, until).await? {
        return Some(false);
    }
    let mut conn = crate::db::live_connection(&state.pool, until).await.ok()?;
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM transactions WHERE tx_id = $1) AS "found!""#,
        first
    )
    .fetch_one(&mut *conn)
    .await
    .ok()
}

/// How long a worker waits for the database to say whether a batch whose
/// commit failed was written.
const ASK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Steps 1 to 5 but the commit, on `tx`; with the transaction's id when it
/// moved money.
async fn decide_and_write(
    tx: &mut PgConnection,
    state: &AppState,
    jobs: &[Job],
    phases: &mut Phases,
) -> Result<(Vec<Step>, Option<i64>), Error> {
    let rules = state.rules.get(&state.pool).await?;
    phases.ended(Phase::Begin);
    let mut steps = check_each(tx, state, &rules, jobs, phases).await?;
    decide_in_order(tx, state, &rules, jobs, &mut steps, phases).await?;
    let mut rows = Rows::default();
    for (job, step) in jobs.iter().zip(&steps) {
        match step {
            Step::Posted(posted, _) => rows.posted(job, posted),
            Step::Refused(refusal) => rows.refused(job, refusal_row(job, refusal), refusal),
            Step::Replay | Step::Candidate(_) => {}
        }
    }
    let xid = rows.write(tx).await?;
    for (job, step) in jobs.iter().zip(&steps) {
        match step {
            Step::Posted(posted, report) => {
                let (sender, tx_id) = (job.order.from_user_id, posted.movement.facts.tx_id);
                let finding = posted.detail.clone();
                parties::file_report(tx, *report, sender, tx_id, finding).await?;
            }
            Step::Refused(refusal) => open_refusal_report(tx, refusal).await?,
            Step::Replay | Step::Candidate(_) => {}
        }
    }
    phases.ended(Phase::Write);
    Ok((steps, xid))
}

/// Steps 1 and 2: locks the senders, claims the keys and checks each
/// transfer alone.
async fn check_each(
    conn: &mut PgConnection,
    state: &AppState,
    rules: &Rules,
    jobs: &[Job],
    phases: &mut Phases,
) -> Result<Vec<Step>, Error> {
    let mut senders: Vec<Uuid> = jobs.iter().map(|job| job.order.from_user_id).collect();
    senders.sort_unstable();
    senders.dedup();
    let mut phones: Vec<String> = jobs
        .iter()
        .map(|job| job.order.to_phone.to_string())
        .collect();
    phones.sort_unstable();
    phones.dedup();
    let people = parties::load_many(conn, &senders, &phones).await?;
    phases.ended(Phase::Parties);
    // Only the first request naming a key claims it; a later one in the
    // same batch answers as the first did.
    let mut keys: Vec<(usize, &IdempotencyKey)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        if let Some(key) = &job.key {
            let known = keys
                .iter()
                .any(|(_, k)| k.user_id == key.user_id && k.key == key.key);
            if !known {
                keys.push((i, key));
            }
        }
    }
    let only_keys: Vec<&IdempotencyKey> = keys.iter().map(|(_, key)| *key).collect();
    let claimed = IdempotencyKey::claim_all(conn, &only_keys).await?;
    phases.ended(Phase::Keys);
    let mut steps = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let replay = match keys.iter().position(|(job_index, _)| *job_index == i) {
            Some(k) => !claimed.contains(&k),
            None => jobs[i].key.is_some(),
        };
        let step = if replay {
            Step::Replay
        } else {
            match check(conn, state, rules, &people, &job.order).await {
                Ok(candidate) => Step::Candidate(Box::new(candidate)),
                Err(Error::Internal(error)) => return Err(Error::Internal(error)),
                Err(refusal) => Step::Refused(refusal),
            }
        };
        steps.push(step);
    }
    phases.ended(Phase::Check);
    Ok(steps)
}

/// Price, parties and sanctions of one transfer, as [`SendOrder`] alone
/// checks them.
async fn check(
    conn: &mut PgConnection,
    state: &AppState,
    rules: &Rules,
    people: &People,
    order: &SendOrder,
) -> Result<Candidate, Error> {
    let quote = order.quote(rules)?;
    let sender = people
        .by_id
        .get(&order.from_user_id)
        .cloned()
        .ok_or(Error::Unauthorized)?;
    sender.may_send()?;
    let recipient = order.recipient(people.by_phone.get(order.to_phone.as_str()))?;
    let parties = Parties {
        sender,
        counterparty: Some(recipient),
        list_version: people.list_version,
    };
    parties::screen(conn, state, rules, &parties, quote.usd_cents).await?;
    let Parties {
        sender,
        counterparty,
        ..
    } = parties;
    let recipient = counterparty.ok_or_else(|| Error::internal("the recipient vanished"))?;
    Ok(Candidate {
        sender,
        recipient,
        quote,
    })
}

/// Steps 3 and 4: locks the candidates' accounts and decides each in
/// arrival order, turning every candidate into a posting or a refusal.
async fn decide_in_order(
    conn: &mut PgConnection,
    state: &AppState,
    rules: &Rules,
    jobs: &[Job],
    steps: &mut [Step],
    phases: &mut Phases,
) -> Result<(), Error> {
    let mut senders: Vec<Uuid> = candidates(jobs, steps)
        .map(|(job, _)| job.order.from_user_id)
        .collect();
    senders.sort_unstable();
    senders.dedup();
    let mut windows = limits::outgoing_windows(conn, rules, &senders).await?;
    phases.ended(Phase::Windows);
    // One fee revenue shard per batch: a batch locks one of its rows, so
    // concurrent batches rarely wait on each other for it.
    let shard_seed = Uuid::new_v4();
    let mut ledger = Ledger::lock(conn, jobs, steps, shard_seed).await?;
    phases.ended(Phase::Accounts);
    for (job, step) in jobs.iter().zip(steps.iter_mut()) {
        let Step::Candidate(candidate) = step else {
            continue;
        };
        let window = windows
            .get_mut(&job.order.from_user_id)
            .ok_or_else(|| Error::internal("a sender without a compliance tier"))?;
        *step = match decide(
            state,
            rules,
            &job.order,
            candidate,
            window,
            &mut ledger,
            shard_seed,
        ) {
            Ok((posted, report)) => Step::Posted(Box::new(posted), report),
            Err(Error::Internal(error)) => return Err(Error::Internal(error)),
            Err(refusal) => Step::Refused(refusal),
        };
    }
    phases.ended(Phase::Decide);
    Ok(())
}

fn candidates<'a, 's>(
    jobs: &'a [Job],
    steps: &'s [Step],
) -> impl Iterator<Item = (&'a Job, &'s Candidate)> {
    jobs.iter().zip(steps).filter_map(|(job, step)| match step {
        Step::Candidate(candidate) => Some((job, &**candidate)),
        _ => None,
    })
}

/// Tier limits against the sender's window so far, then funds against the
/// balances so far; a posted transfer moves both on for the next one.
fn decide<'a>(
    state: &AppState,
    rules: &Rules,
    order: &'a SendOrder,
    candidate: &Candidate,
    window: &mut Window,
    ledger: &mut Ledger<'a>,
    shard_seed: Uuid,
) -> Result<(write::Posted, Option<Rule>), Error> {
    let usd_cents = candidate.quote.usd_cents;
    let report = match window.decide(rules, usd_cents) {
        Decision::Allow => None,
        Decision::AllowAndReport(rule) => Some(rule),
        Decision::Reject(rule) => {
            return Err(ComplianceRefusal::new(rule, json!({"usd_cents": usd_cents})).into())
        }
    };
    let tx_id = crate::ledger::new_tx_id();
    let fee_revenue = AccountRef::fee_revenue(order.currency.as_str(), shard_seed);
    let plan = order.plan(&candidate.recipient, candidate.quote, tx_id, fee_revenue)?;
    let entry = plan.entry.map_accounts(|account| ledger.id_of(&account))?;
    ledger.apply(&entry.net_by_account())?;
    window.add(rules, usd_cents);
    let balances = (
        ledger.available(&plan.source)?,
        ledger.available(&plan.target)?,
    );
    let movement = Movement {
        facts: plan.facts,
        note: order.note.clone(),
        entry,
        usd_cents: Some(usd_cents),
        status: TxStatus::Completed,
    };
    let receipt = Receipt {
        tx_id,
        at: movement.facts.created_at,
    };
    let people = (&candidate.sender, &candidate.recipient);
    let texts = order.texts(rules, people, receipt, candidate.quote.fee_minor, balances);
    let signature = movement.facts.sign(&state.keys.tx_signing);
    let view = TxView::posted(
        &movement,
        signature,
        Some(candidate.sender.party.phone.clone()),
        Some(order.to_phone.to_string()),
    );
    let posted = write::Posted {
        movement,
        view,
        texts,
        detail: plan.detail,
    };
    Ok((posted, report))
}

/// The batch's accounts, locked, with their balances as decided so far.
struct Ledger<'a> {
    ids: Vec<(AccountRef<'a>, i64)>,
    rows: HashMap<i64, Locked>,
}

impl<'a> Ledger<'a> {
    /// Resolves every account the candidates could touch and locks them in
    /// id order, in one round trip.
    async fn lock(
        conn: &mut PgConnection,
        jobs: &'a [Job],
        steps: &[Step],
        shard_seed: Uuid,
    ) -> Result<Self, Error> {
        let mut refs: Vec<AccountRef<'a>> = Vec::new();
        for (job, candidate) in candidates(jobs, steps) {
            let currency = job.order.currency.as_str();
            for account in [
                AccountRef::wallet(job.order.from_user_id, currency),
                AccountRef::wallet(candidate.recipient.party.user_id, currency),
                AccountRef::fee_revenue(currency, shard_seed),
            ] {
                if !refs.contains(&account) {
                    refs.push(account);
                }
            }
        }
        let locked = accounts::resolve_and_lock(conn, &refs)
            .await?
            .ok_or_else(|| Error::internal(format!("ledger accounts missing among {refs:?}")))?;
        let ids = refs.into_iter().zip(locked.iter().map(|row| row.id));
        Ok(Self {
            ids: ids.collect(),
            rows: locked.into_iter().map(|row| (row.id, row)).collect(),
        })
    }

    fn id_of(&self, account: &AccountRef<'_>) -> Result<i64, Error> {
        self.ids
            .iter()
            .find(|(known, _)| known == account)
            .map(|(_, id)| *id)
            .ok_or_else(|| Error::internal("an account of the entry was not resolved"))
    }

    /// What `account` can spend as decided so far: the balance customers are
    /// told, less what is reserved on it.
    fn available(&self, account: &AccountRef<'_>) -> Result<i64, Error> {
        let id = self.id_of(account)?;
        self.rows
            .get(&id)
            .map(Locked::available)
            .ok_or_else(|| Error::internal("an account of the entry was not locked"))
    }

    /// Applies an entry's net deltas if no account would be overdrawn.
    fn apply(&mut self, deltas: &[(i64, i64)]) -> Result<(), Error> {
        for (id, delta) in deltas {
            let row = self
                .rows
                .get(id)
                .ok_or_else(|| Error::internal("an account of the entry was not locked"))?;
            row.check(*delta).map_err(post_error)?;
        }
        for (id, delta) in deltas {
            if let Some(row) = self.rows.get_mut(id) {
                row.balance += delta;
            }
        }
        Ok(())
    }
}

/// The audit row of a refused transfer, as [`super::super::run`] writes it.
fn refusal_row(job: &Job, refusal: &Error) -> AuditEvent {
    let attempted = Attempted {
        action: SendOrder::ACTION,
        kind: SendOrder::KIND,
        currency: job.order.currency.as_str(),
        actor: job.order.from_user_id,
        detail: job.order.describe(),
    };
    refusal_audit(&attempted, refusal)
}

/// A step's answer after commit, counted and logged as [`super::super::run`]
/// counts and logs it.
fn verdict(state: &AppState, job: &Job, step: Step) -> Verdict {
    let currency = job.order.currency.as_str();
    match step {
        Step::Posted(posted, _) => {
            let view = posted.view;
            count(state, SendOrder::KIND, currency, "completed");
            tracing::info!(tx_id = %view.tx_id, kind = SendOrder::KIND, amount = view.amount, currency = %view.currency, "movement completed");
            Verdict::Done(Box::new(Ok(view)))
        }
        Step::Refused(refusal) => {
            count(state, SendOrder::KIND, currency, refusal.label());
            Verdict::Done(Box::new(Err(refusal)))
        }
        Step::Replay => Verdict::Replay,
        Step::Candidate(_) => {
            Verdict::Done(Box::new(Err(Error::internal("a transfer left undecided"))))
        }
    }
}
