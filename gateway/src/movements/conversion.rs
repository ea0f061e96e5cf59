//! Currency conversion between a customer's own wallets, at a locked quote
//! or at the current rate.
//!
//! A quote fixes the rate, the converted amount and the fee for
//! `quote_ttl_seconds` (30 by default); converting with it executes exactly
//! those numbers once, or fails with `quote_expired`.

use chainpay_core::fees::FeeKind;
use chainpay_core::ledger::{conversion_entry, ConversionAccounts};
use chainpay_core::transaction::{now_micros, ConversionLeg, TxFacts, TxType};
use chainpay_core::{Amount, CurrencyCode};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::parties;
use super::transfer::fx_error;
use super::{post_error, Operation};
use crate::audit::{AuditEvent, Outcome};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ledger::accounts::{self, AccountRef};
use crate::ledger::post::{post, Movement};
use crate::rules::Rules;
use crate::sms::outbox;
use crate::transactions::TxView;
use chainpay_core::notify;
use chainpay_core::ussd::money;

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
) -> Result<Price, ApiError> {
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

/// A locked price, as `GET /fx/quote` returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    pub quote_id: Uuid,
    pub from: String,
    pub to: String,
    pub amount: i64,
    /// Exactly what the target wallet receives.
    pub converted_amount: i64,
    /// Target units per source unit (decimal string).
    pub rate: String,
    /// Charged in the source currency on top of `amount`.
    pub fee: i64,
    pub expires_at: DateTime<Utc>,
}

/// Prices and stores a quote, valid for the configured time.
pub async fn quote(
    state: &AppState,
    user_id: Option<Uuid>,
    from: CurrencyCode,
    to: CurrencyCode,
    amount: Amount,
) -> Result<Quote, ApiError> {
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
        quote_id,
        from: price.from.to_string(),
        to: price.to.to_string(),
        amount: price.amount_minor,
        converted_amount: price.converted_minor,
        rate: price.rate.normalize().to_string(),
        fee: price.fee_minor,
        expires_at,
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
    ) -> Result<Price, ApiError> {
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
        .filter(|q| q.user_id.is_none_or(|owner| owner == self.user_id))
        .ok_or(ApiError::NotFound("quote"))?;
        if quote.used_by_tx.is_some() {
            return Err(ApiError::QuoteExpired(
                "this quote has already been used; ask for a new one",
            ));
        }
        if quote.expired {
            return Err(ApiError::QuoteExpired(
                "this quote has expired; ask for a new one",
            ));
        }
        sqlx::query!(
            "UPDATE fx_quotes SET used_by_tx = $2 WHERE quote_id = $1",
            quote_id,
            tx_id
        )
        .execute(&mut *conn)
        .await?;
        let currency =
            |code: &str| CurrencyCode::parse(code).map_err(|e| ApiError::Internal(e.into()));
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
    ) -> Result<TxView, ApiError> {
        let tx_id = Uuid::new_v4();
        let price = self.settle_price(conn, rules, tx_id).await?;
        let (from, to) = (price.from.as_str(), price.to.as_str());
        let usd_cents = rules
            .rates
            .usd_cents(from, price.amount_minor)
            .map_err(fx_error)?;
        let parties = parties::load(conn, self.user_id, None).await?;
        let report = parties::aml_gate(conn, state, rules, &parties, usd_cents).await?;

        let ids = accounts::resolve(
            conn,
            &[
                AccountRef::wallet(self.user_id, from),
                AccountRef::wallet(self.user_id, to),
                AccountRef::house("fx_position", from),
                AccountRef::house("fx_position", to),
                AccountRef::fee_revenue(from, tx_id),
            ],
        )
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("accounts missing for {from}/{to}")))?;
        let ledger_accounts = ConversionAccounts {
            source_wallet: ids[0],
            target_wallet: ids[1],
            source_position: ids[2],
            target_position: ids[3],
            fee_revenue: ids[4],
        };
        let entry = conversion_entry(
            ledger_accounts,
            &price.from,
            &price.to,
            price.amount_minor,
            price.converted_minor,
            price.fee_minor,
        )
        .map_err(|e| ApiError::Validation(e.to_string()))?;
        let rate = price.rate.normalize().to_string();
        let facts = TxFacts {
            tx_id,
            tx_type: TxType::Conversion,
            amount_minor: price.amount_minor,
            fee_minor: price.fee_minor,
            currency: from.to_owned(),
            from_user_id: Some(self.user_id),
            to_user_id: Some(self.user_id),
            created_at: now_micros(),
            conversion: Some(ConversionLeg {
                to_currency: to.to_owned(),
                converted_minor: price.converted_minor,
                rate: rate.clone(),
            }),
        };
        let movement = Movement {
            facts: facts.clone(),
            note: None,
            entry,
            usd_cents: Some(usd_cents),
            status: "COMPLETED",
        };
        let posted = post(conn, &movement, &state.keys.tx_signing)
            .await
            .map_err(post_error)?;
        let exponent = |currency: &str| rules.rates.leg(currency).map_or(2, |leg| leg.exponent);
        let message = notify::converted(
            tx_id,
            facts.created_at,
            &money(from, price.amount_minor, exponent(from)),
            &money(to, price.converted_minor, exponent(to)),
            &rate,
            &money(
                to,
                posted.balance_of(ledger_accounts.target_wallet),
                exponent(to),
            ),
            &money(from, price.fee_minor, exponent(from)),
        );
        outbox::queue(conn, &parties.sender.party.phone, &message, Some(tx_id)).await?;
        let signature = posted.signature;
        let detail = json!({"from": from, "to": to, "amount": price.amount_minor, "fee": price.fee_minor,
                            "converted_amount": price.converted_minor, "rate": rate, "usd_cents": usd_cents});
        parties::file_report(conn, report, self.user_id, tx_id, detail.clone()).await?;
        AuditEvent::new(Self::ACTION, Outcome::Success)
            .actor(self.user_id)
            .subject(tx_id)
            .detail(detail)
            .record(conn)
            .await?;
        let phone = parties.sender.party.phone;
        Ok(TxView::posted(
            &movement,
            signature,
            Some(phone.clone()),
            Some(phone),
        ))
    }
}
