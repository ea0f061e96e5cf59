//! Booking a movement, the one way every kind of movement is written:
//! resolve its accounts, post its balanced entry (signature and chain entry
//! included), queue its SMS and write its audit row, all on the caller's
//! connection, so they commit together with whatever else the caller does
//! (the idempotency record, a deposit's new status) or not at all.

use chainpay_core::crypto::signing::SigningKey;
use chainpay_core::ledger::JournalEntry;
use chainpay_core::notify::Receipt;
use chainpay_core::refusal::Refusal;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::TxFacts;
use sqlx::PgConnection;

use crate::audit::AuditEvent;
use crate::error::Error;
use crate::ledger::accounts::{self, AccountRef};
use crate::ledger::post::{post, Movement, PostError};
use crate::sms::outbox;
use crate::transactions::TxView;

/// A movement ready to book.
pub struct Booking<'a> {
    pub facts: TxFacts,
    /// The entry, with accounts named by reference (resolved here).
    pub entry: JournalEntry<AccountRef<'a>>,
    pub note: Option<String>,
    /// USD value for the sender's AML windows; `None` for movements that do
    /// not count towards them.
    pub usd_cents: Option<i64>,
    pub status: TxStatus,
    /// The success audit row; its subject defaults to the transaction id.
    pub audit: AuditEvent,
}

/// A booked movement: what the response and the SMS need to say.
pub struct Booked<'a> {
    pub movement: Movement,
    pub signature: String,
    accounts: Vec<(AccountRef<'a>, i64)>,
    available: Vec<(i64, i64)>,
}

impl Booked<'_> {
    /// The balance one of the movement's accounts is left with, as customers
    /// are told it: what it can spend (less anything reserved on it).
    pub fn available_of(&self, account: &AccountRef<'_>) -> i64 {
        let id = self
            .accounts
            .iter()
            .find(|(known, _)| known == account)
            .map(|(_, id)| *id);
        self.available
            .iter()
            .find(|(balance_id, _)| Some(*balance_id) == id)
            .map_or(0, |(_, balance)| *balance)
    }

    /// What an SMS about this movement cites.
    pub fn receipt(&self) -> Receipt {
        Receipt {
            tx_id: self.movement.facts.tx_id,
            at: self.movement.facts.created_at,
        }
    }

    /// The movement as its response shows it.
    pub fn view(&self, from_phone: Option<String>, to_phone: Option<String>) -> TxView {
        TxView::posted(&self.movement, self.signature.clone(), from_phone, to_phone)
    }
}

/// An SMS to queue with the movement: (E.164 phone, text).
pub type Text = (String, String);

/// Books `booking` and queues the texts `notify` writes from the result.
pub async fn book<'a>(
    conn: &mut PgConnection,
    key: &SigningKey,
    booking: Booking<'a>,
    notify: impl FnOnce(&Booked<'a>) -> Vec<Text>,
) -> Result<Booked<'a>, Error> {
    let mut refs: Vec<AccountRef<'a>> = Vec::new();
    for posting in booking.entry.postings() {
        if !refs.contains(&posting.account) {
            refs.push(posting.account.clone());
        }
    }
    let locked = accounts::resolve_and_lock(conn, &refs)
        .await?
        .ok_or_else(|| Error::internal(format!("ledger accounts missing: {refs:?}")))?;
    let ids = locked.iter().map(|account| account.id);
    let accounts: Vec<(AccountRef<'a>, i64)> = refs.into_iter().zip(ids).collect();
    let entry = booking.entry.map_accounts(|account| {
        accounts
            .iter()
            .find(|(known, _)| *known == account)
            .map(|(_, id)| *id)
            .ok_or_else(|| Error::internal("an account of the entry was not resolved"))
    })?;
    let tx_id = booking.facts.tx_id;
    let movement = Movement {
        facts: booking.facts,
        note: booking.note,
        entry,
        usd_cents: booking.usd_cents,
        status: booking.status,
    };
    let posted = post(conn, &movement, key, &locked)
        .await
        .map_err(post_error)?;
    let booked = Booked {
        movement,
        signature: posted.signature,
        accounts,
        available: posted.available,
    };
    let texts = notify(&booked);
    let messages: Vec<(&str, &str)> = texts
        .iter()
        .map(|(to, text)| (to.as_str(), text.as_str()))
        .collect();
    if !messages.is_empty() {
        outbox::queue_all(conn, &messages, Some(tx_id)).await?;
    }
    let audit = match booking.audit.subject {
        Some(_) => booking.audit,
        None => booking.audit.subject(tx_id),
    };
    audit.record(conn).await?;
    Ok(booked)
}

/// A ledger posting failure as the domain reports it.
pub fn post_error(error: PostError) -> Error {
    match error {
        PostError::InsufficientFunds => Error::Refused(Refusal::InsufficientFunds),
        PostError::InsufficientFloat => Error::Refused(Refusal::InsufficientFloat),
        PostError::UnknownAccount => Error::internal("ledger account vanished"),
        PostError::Database(e) => e.into(),
    }
}
