//! Currency conversion between a customer's own wallets, at a locked quote
//! or at the current rate.
//!
//! A quote fixes the rate, the converted amount and the fee for
//! `quote_ttl_seconds` (30 by default); converting with it executes exactly
//! those numbers once, or fails with `quote_expired`.

use chainpay_core::fees::FeeKind;
use chainpay_core::ledger::{conversion_entry, ConversionAccounts};
use chainpay_core::notify::Sms;
use chainpay_core::refusal::Refusal;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{ConversionLeg, TxFacts, TxType};
use chainpay_core::{Amount, CurrencyCode};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::book::{book, Booking};
use super::parties;
use super::transfer::fx_error;
use super::Operation;
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::ledger::accounts::AccountRef;
use crate::rules::Rules;
use crate::state::AppState;
use crate::transactions::TxView;

/// The numbers of one conversion.
#[derive(Debug, Clone)]
pub struct Price {
    pub from: CurrencyCode,
    pub to: CurrencyCode,
    pub amount_minor: i64,
    pub converted_minor: i64,
    pub rate: Decimal,
    /// In `from`, charged on top of `amount_minor`.
    pub fee_minor: i64,
}

/// Prices converting `amount` of `from` into `to` at the current rates.
pub fn price(
    rules: &Rules,
    from: CurrencyCode,
    to: CurrencyCode,
    amount: Amount,
) -> Result<Price, Error> {
    let conversion = rules
        .rates
        .convert(&from, &to, amount.minor())
        .map_err(fx_error)?;
    let fee_minor = rules
        .fees
        .fee(
            FeeKind::Convert,
            &rules.rates,
            from.as_str(),
            amount.minor(),
        )
        .map_err(fx_error)?;
    Ok(Price {
        from,
        to,
        amount_minor: amount.minor(),
        converted_minor: conversion.converted_minor,
        rate: conversion.rate,
        fee_minor,
    })
}

/// A price, as `GET /fx/quote` returns it: locked for its owner (with a
/// `quote_id` and `expires_at`), or indicative for an anonymous caller.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    /// Convert with this id to execute exactly this price; absent on an
    /// indicative price.
    pub quote_id: Option<Uuid>,
    pub from: String,
    pub to: String,
    pub amount: i64,
    /// Exactly what the target wallet receives.
    pub converted_amount: i64,
    /// Target units per source unit (decimal string).
    pub rate: String,
    /// Charged in the source currency on top of `amount`.
    pub fee: i64,
    /// Until when the locked price holds; absent on an indicative price.
    pub expires_at: Option<DateTime<Utc>>,
    /// `true` for an anonymous caller's price: shown, not locked, not stored.
    pub indicative: bool,
}

impl Quote {
    fn of(price: &Price) -> Self {
        Quote {
            quote_id: None,
            from: price.from.to_string(),
            to: price.to.to_string(),
            amount: price.amount_minor,
            converted_amount: price.converted_minor,
            rate: price.rate.normalize().to_string(),
            fee: price.fee_minor,
            expires_at: None,
            indicative: true,
        }
    }
}

/// The current price, for anyone, without writing anything.
pub async fn indicative(
    state: &AppState,
    from: CurrencyCode,
    to: CurrencyCode,
    amount: Amount,
) -> Result<Quote, Error> {
    let rules = state.rules.get(&state.pool).await?;
    Ok(Quote::of(&price(&rules, from, to, amount)?))
}

/// Prices and stores a quote for `user_id`, valid for the configured time;
/// only they may convert with it.
pub async fn quote(
    state: &AppState,
    user_id: Uuid,
    from: CurrencyCode,
    to: CurrencyCode,
    amount: Amount,
) -> Result<Quote, Error> {
    let rules = state.rules.get(&state.pool).await?;
    let price = price(&rules, from, to, amount)?;
    let quote_id = Uuid::new_v4();
    let expires_at = sqlx::query_scalar!(
        r#"INSERT INTO fx_quotes (quote_id, user_id, from_currency, to_currency, amount, converted_amount, rate, fee, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
           RETURNING expires_at"#,
        quote_id,
        user_id,
        price.from.as_str(),
        price.to.as_str(),
        price.amount_minor,
        price.converted_minor,
        price.rate,
        price.fee_minor,
        rules.quote_ttl_seconds as f64,
    )
    .fetch_one(&state.pool)
    .await?;
    Ok(Quote {
        quote_id: Some(quote_id),
        expires_at: Some(expires_at),
        indicative: false,
        ..Quote::of(&price)
    })
}

/// What the customer asked to convert.
#[derive(Debug, Clone)]
pub enum ConvertTerms {
    Quoted(Uuid),
    Spot {
        from: CurrencyCode,
        to: CurrencyCode,
        amount: Amount,
    },
}

#[derive(Debug, Clone)]
pub struct ConvertOrder {
    pub user_id: Uuid,
    pub terms: ConvertTerms,
}

impl ConvertOrder {
    /// The price to execute: the quote's (locked, checked, marked used) or the current one.
    async fn settle_price(
        &self,
        conn: &mut PgConnection,
        rules: &Rules,
        tx_id: Uuid,
    ) -> Result<Price, Error> {
        let quote_id = match &self.terms {
            ConvertTerms::Spot { from, to, amount } => {
                return price(rules, from.clone(), to.clone(), *amount)
            }
            ConvertTerms::Quoted(quote_id) => *quote_id,
        };
        let quote = sqlx::query!(
            r#"SELECT user_id, from_currency, to_currency, amount, converted_amount, rate, fee,
                      expires_at <= now() AS "expired!", used_by_tx
               FROM fx_quotes WHERE quote_id = $1 FOR UPDATE"#,
            quote_id
        )
        .fetch_optional(&mut *conn)
        .await?
        .filter(|q| q.user_id == self.user_id)
        .ok_or(Error::NotFound(Missing::Quote))?;
        if quote.used_by_tx.is_some() {
            return Err(Refusal::QuoteUsed.into());
        }
        if quote.expired {
            return Err(Refusal::QuoteExpired.into());
        }
        sqlx::query!(
            "UPDATE fx_quotes SET used_by_tx = $2 WHERE quote_id = $1",
            quote_id,
            tx_id
        )
        .execute(&mut *conn)
        .await?;
        let currency =
            |code: &str| CurrencyCode::parse(code).map_err(|e| Error::Internal(e.into()));
        Ok(Price {
            from: currency(&quote.from_currency)?,
            to: currency(&quote.to_currency)?,
            amount_minor: quote.amount,
            converted_minor: quote.converted_amount,
            rate: quote.rate,
            fee_minor: quote.fee,
        })
    }
}

impl Operation for ConvertOrder {
    const ACTION: &'static str = "wallet.convert";
    const KIND: &'static str = "conversion";

    fn actor(&self) -> Uuid {
        self.user_id
    }

    fn currency(&self) -> &str {
        match &self.terms {
            ConvertTerms::Spot { from, .. } => from.as_str(),
            ConvertTerms::Quoted(_) => "quoted",
        }
    }

    fn describe(&self) -> Value {
        match &self.terms {
            ConvertTerms::Quoted(quote_id) => json!({"quote_id": quote_id}),
            ConvertTerms::Spot { from, to, amount } => {
                json!({"from": from.as_str(), "to": to.as_str(), "amount": amount.minor()})
            }
        }
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, Error> {
        let tx_id = crate::ledger::new_tx_id();
        let price = self.settle_price(conn, rules, tx_id).await?;
        let (from, to) = (price.from.as_str(), price.to.as_str());
        let usd_cents = rules
            .rates
            .usd_cents(from, price.amount_minor)
            .map_err(fx_error)?;
        let parties = parties::load(conn, self.user_id, None).await?;
        let report = parties::aml_gate(conn, state, rules, &parties, usd_cents).await?;
        let booking = price.booking(self.user_id, tx_id, usd_cents)?;
        let detail = booking.audit.detail.clone();
        let target = AccountRef::wallet(self.user_id, to);
        let customer = &parties.sender;
        let booked = book(conn, &state.keys.tx_signing, booking, |booked| {
            let message = Sms(customer.lang).converted(
                booked.receipt(),
                &rules.show(from, price.amount_minor),
                &rules.show(to, price.converted_minor),
                &price.rate.normalize().to_string(),
                &rules.show(to, booked.available_of(&target)),
                &rules.show(from, price.fee_minor),
            );
            vec![(customer.party.phone.clone(), message)]
        })
        .await?;
        parties::file_report(conn, report, self.user_id, tx_id, detail).await?;
        let phone = customer.party.phone.clone();
        Ok(booked.view(Some(phone.clone()), Some(phone)))
    }
}

impl Price {
    /// The conversion as a booking: the customer's two wallets against the
    /// house's FX positions, the fee to revenue.
    fn booking(&self, user_id: Uuid, tx_id: Uuid, usd_cents: i64) -> Result<Booking<'_>, Error> {
        let (from, to) = (self.from.as_str(), self.to.as_str());
        let accounts = ConversionAccounts {
            source_wallet: AccountRef::wallet(user_id, from),
            target_wallet: AccountRef::wallet(user_id, to),
            source_position: AccountRef::house("fx_position", from),
            target_position: AccountRef::house("fx_position", to),
            fee_revenue: AccountRef::fee_revenue(from, tx_id),
        };
        let (amount, converted, fee) = (self.amount_minor, self.converted_minor, self.fee_minor);
        let entry = conversion_entry(accounts, &self.from, &self.to, amount, converted, fee)
            .map_err(|e| Error::Validation(e.to_string()))?;
        let rate = self.rate.normalize().to_string();
        let detail = json!({"from": from, "to": to, "amount": amount, "fee": fee,
                            "converted_amount": converted, "rate": rate, "usd_cents": usd_cents});
        let mut facts = TxFacts::now(
            tx_id,
            TxType::Conversion,
            from,
            (amount, fee),
            Some(user_id),
            Some(user_id),
        );
        facts.conversion = Some(ConversionLeg {
            to_currency: to.to_owned(),
            converted_minor: converted,
            rate,
        });
        Ok(Booking {
            facts,
            entry,
            note: None,
            usd_cents: Some(usd_cents),
            status: TxStatus::Completed,
            audit: AuditEvent::new(ConvertOrder::ACTION, Outcome::Success)
                .actor(user_id)
                .detail(detail),
        })
    }
}
