//! Redeeming a voucher once: into the redeemer's wallet, or by an agent
//! for cash into their float. The code is checked (format and check digit)
//! before it counts; a well-formed code that matches nothing is a wrong
//! guess. The voucher's row lock decides concurrent redemptions.

use chainpay_core::compliance::Rule;
use chainpay_core::ledger::move_entry;
use chainpay_core::notify::{Receipt, Sms};
use chainpay_core::refusal::Refusal;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::voucher;
use chainpay_core::CurrencyCode;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{lock, record_wrong_guess, settle, wrong_guesses, Locked, MAX_GUESSES};
use crate::agents;
use crate::audit::{AuditEvent, Outcome};
use crate::error::Error;
use crate::idempotency::{IdempotencyKey, Prior};
use crate::ledger::accounts::AccountRef;
use crate::movements::book::{book, Booking};
use crate::movements::parties::{self, Direction, Person};
use crate::movements::transfer::fx_error;
use crate::movements::{self, Attempted, Operation, Reply};
use crate::rules::Rules;
use crate::state::AppState;
use crate::transactions::TxView;

/// Where a redeemed voucher's money goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemer {
    /// The redeemer's own wallet.
    Wallet,
    /// An agent's float: the agent hands the bearer cash.
    AgentCash,
}

struct RedeemOrder {
    voucher_id: Uuid,
    user_id: Uuid,
    to: Redeemer,
}

/// Redeems the voucher with `typed` code for `user_id`. A keyed retry
/// replays its first answer before anything is counted. The guess budget is
/// checked, and a wrong code recorded, under the redeemer's row lock, so
/// guesses sent in parallel cannot slip past it.
pub async fn redeem(
    state: &AppState,
    user_id: Uuid,
    typed: &str,
    to: Redeemer,
    key: Option<IdempotencyKey>,
) -> Result<Reply, Error> {
    let code = voucher::parse_code(typed).ok_or_else(|| {
        Error::Validation("a voucher code is 16 digits; check it and type it again".into())
    })?;
    if let Some(key) = &key {
        if let Some(Prior::Done(outcome)) = key.prior(&state.pool).await? {
            return Ok(Reply::replayed(outcome));
        }
    }
    let digest = voucher::digest(&state.keys.voucher_digest, &code);
    let mut tx = state.pool.begin().await?;
    sqlx::query!(
        "SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE",
        user_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if wrong_guesses(&mut tx, user_id).await? >= i64::from(MAX_GUESSES) {
        return Err(Refusal::VoucherGuessesExhausted.into());
    }
    let found = sqlx::query_scalar!("SELECT id FROM vouchers WHERE code_digest = $1", digest)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(voucher_id) = found else {
        record_wrong_guess(&mut tx, user_id).await?;
        tx.commit().await?;
        let refusal = Error::Refused(Refusal::VoucherUnknown);
        let attempted = Attempted {
            action: RedeemOrder::ACTION,
            kind: RedeemOrder::KIND,
            currency: "",
            actor: user_id,
            detail: json!({"code_hint": &code[code.len() - 4..]}),
        };
        movements::record_refusal(state, attempted, key.as_ref(), &refusal).await?;
        return Err(refusal);
    };
    tx.commit().await?;
    let order = RedeemOrder {
        voucher_id,
        user_id,
        to,
    };
    Ok(movements::run(state, &order, key).await)
}

impl Operation for RedeemOrder {
    const ACTION: &'static str = "voucher.redeem";
    const KIND: &'static str = "redemption";

    fn actor(&self) -> Uuid {
        self.user_id
    }

    fn currency(&self) -> &str {
        ""
    }

    fn describe(&self) -> Value {
        json!({"voucher_id": self.voucher_id, "for_cash": self.to == Redeemer::AgentCash})
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, Error> {
        let voucher = lock(conn, self.voucher_id).await?;
        let parties = self.redeemable(conn, &voucher).await?;
        let currency = voucher.currency.as_str();
        let code = CurrencyCode::parse(currency).map_err(|e| Error::internal(e.to_string()))?;
        let usd_cents = rules
            .rates
            .usd_cents(currency, voucher.amount)
            .map_err(fx_error)?;
        let (target, report) = self
            .target(conn, (state, rules), &parties, currency, usd_cents)
            .await?;
        let entry = move_entry(
            AccountRef::voucher_liability(currency),
            target.clone(),
            &code,
            voucher.amount,
        )
        .map_err(|e| Error::Validation(e.to_string()))?;
        let tx_id = crate::ledger::new_tx_id();
        let detail = json!({"voucher_id": voucher.id, "amount": voucher.amount, "currency": currency,
                            "for_cash": self.to == Redeemer::AgentCash, "code_hint": voucher.code_hint});
        let booking = Booking {
            facts: TxFacts::now(
                tx_id,
                TxType::Redemption,
                currency,
                (voucher.amount, 0),
                None,
                Some(self.user_id),
            ),
            entry,
            note: None,
            // Counted towards the redeemer's incoming limits; an agent's
            // redemption for cash is their business, not their income.
            usd_cents: (self.to == Redeemer::Wallet).then_some(usd_cents),
            status: TxStatus::Completed,
            audit: AuditEvent::new(Self::ACTION, Outcome::Success)
                .actor(self.user_id)
                .detail(detail.clone()),
        };
        let redeemer = &parties.sender;
        let shown = |minor| rules.show(currency, minor);
        let booked = book(conn, &state.keys.tx_signing, booking, |booked| {
            let (amount, balance) = (shown(voucher.amount), shown(booked.available_of(&target)));
            self.texts(booked.receipt(), &voucher, redeemer, &amount, &balance)
        })
        .await?;
        settle(conn, voucher.id, "REDEEMED", tx_id, Some(self.user_id)).await?;
        parties::file_report(conn, report, self.user_id, tx_id, detail).await?;
        Ok(booked.view(None, Some(redeemer.party.phone.clone())))
    }
}

impl RedeemOrder {
    /// Where the money goes, after the checks that route calls for: the
    /// wallet under the redeemer's incoming limits, or an active agent's
    /// float (screened; their business rather than their income).
    async fn target<'a>(
        &self,
        conn: &mut PgConnection,
        (state, rules): (&AppState, &Rules),
        parties: &parties::Parties,
        currency: &'a str,
        usd_cents: i64,
    ) -> Result<(AccountRef<'a>, Option<Rule>), Error> {
        match self.to {
            Redeemer::Wallet => {
                let report =
                    parties::gate(conn, state, rules, parties, usd_cents, Direction::Incoming)
                        .await?;
                Ok((AccountRef::wallet(self.user_id, currency), report))
            }
            Redeemer::AgentCash => {
                agents::active_by_user(conn, self.user_id).await?;
                parties::screen(conn, state, rules, parties, usd_cents).await?;
                Ok((AccountRef::agent_float(self.user_id, currency), None))
            }
        }
    }

    /// The redeemer and the buyer, if the locked `voucher` may be redeemed
    /// by this caller: active, someone else's, the caller in good standing,
    /// and its buyer not suspended (a stolen phone's codes stay frozen with
    /// the account until it is reinstated).
    async fn redeemable(
        &self,
        conn: &mut PgConnection,
        voucher: &Locked,
    ) -> Result<parties::Parties, Error> {
        if !voucher.active() {
            return Err(Refusal::VoucherSpent.into());
        }
        if voucher.issuer_id == self.user_id {
            return Err(Refusal::SelfPayment.into());
        }
        let parties = parties::load(conn, self.user_id, Some(&voucher.issuer_phone)).await?;
        parties.sender.may_send()?;
        let issuer = parties.counterparty.as_ref();
        if issuer.is_none_or(|issuer| issuer.suspended) {
            return Err(Refusal::VoucherOnHold.into());
        }
        Ok(parties)
    }

    /// The redeemer's receipt (or the agent's instruction) and the buyer's note.
    fn texts(
        &self,
        receipt: Receipt,
        voucher: &Locked,
        redeemer: &Person,
        amount: &str,
        balance: &str,
    ) -> Vec<(String, String)> {
        let hint = &voucher.code_hint;
        let to_redeemer = match self.to {
            Redeemer::Wallet => Sms(redeemer.lang).voucher_redeemed(receipt, amount, hint, balance),
            Redeemer::AgentCash => {
                Sms(redeemer.lang).voucher_cashed(receipt, amount, hint, balance)
            }
        };
        let to_issuer =
            Sms(voucher.issuer_lang).voucher_used(receipt, amount, hint, &redeemer.party.name);
        vec![
            (redeemer.party.phone.clone(), to_redeemer),
            (voucher.issuer_phone.clone(), to_issuer),
        ]
    }
}
