//! Paying a merchant (Lipa na M-Pesa's Buy Goods and Paybill): the
//! customer's wallet pays the amount; the merchant's account receives it
//! less the merchant's fee (fee kind `merchant`, a percentage with a cap),
//! which goes to fee revenue, in one entry. The customer pays no fee and is
//! the AML subject, as for any outgoing movement; the owner is screened as
//! a counterparty. Both get an SMS; the customer's names the business.

use chainpay_core::fees::FeeKind;
use chainpay_core::ledger::{merchant_payment_entry, MerchantAccounts};
use chainpay_core::notify::{Business, Party, Receipt, Sms};
use chainpay_core::refusal::Refusal;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::{Amount, CurrencyCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::book::{book, Booking};
use super::parties::{self, Parties, Person};
use super::transfer::fx_error;
use super::Operation;
use crate::audit::{AuditEvent, Outcome};
use crate::error::Error;
use crate::ledger::accounts::AccountRef;
use crate::merchants::{self, requests, webhooks, Kind, Merchant};
use crate::rules::Rules;
use crate::state::AppState;
use crate::transactions::TxView;

/// A customer's request to pay a till, or a paybill with an account number.
#[derive(Debug, Clone)]
pub struct PayOrder {
    pub customer_id: Uuid,
    pub kind: Kind,
    pub number: String,
    /// Paybill only: the customer's account with the business.
    pub account: Option<String>,
    pub amount: Amount,
    pub currency: CurrencyCode,
    pub note: Option<String>,
    /// The business's payment request this pays, if any
    /// (`merchants::requests`): claimed under its row lock, marked paid in
    /// the same transaction.
    pub request: Option<Uuid>,
}

/// What the customer confirms before paying: the business's name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayPreview {
    pub merchant_name: String,
    pub number: String,
    pub kind: String,
    pub account: Option<String>,
    pub amount: i64,
    /// Always 0: the merchant pays the fee.
    pub fee: i64,
    pub currency: String,
}

struct Priced {
    merchant: Merchant,
    parties: Parties,
    usd_cents: i64,
    fee: i64,
}

impl PayOrder {
    async fn price(&self, conn: &mut PgConnection, rules: &Rules) -> Result<Priced, Error> {
        let currency = self.currency.as_str();
        rules
            .rates
            .leg(currency)
            .map_err(|_| Error::Validation(format!("unsupported currency {currency}")))?;
        let merchant = merchants::active_by_number(conn, self.kind, &self.number)
            .await?
            .ok_or(Refusal::MerchantUnknown)?;
        if merchant.owner_id == self.customer_id {
            return Err(Refusal::SelfPayment.into());
        }
        let parties =
            parties::load(conn, self.customer_id, Some(merchant.owner_phone.as_str())).await?;
        let amount = self.amount.minor();
        let usd_cents = rules.rates.usd_cents(currency, amount).map_err(fx_error)?;
        let fee = rules
            .fees
            .fee(FeeKind::Merchant, &rules.rates, currency, amount)
            .map_err(fx_error)?;
        if fee >= amount {
            return Err(Refusal::BelowMinimum.into());
        }
        Ok(Priced {
            merchant,
            parties,
            usd_cents,
            fee,
        })
    }

    /// What the merchant's `payment.received` webhook says.
    fn event(
        &self,
        tx_id: Uuid,
        fee: i64,
        customer: &Person,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Value {
        json!({"payment_id": tx_id, "amount": self.amount.minor(), "fee": fee, "currency": self.currency.as_str(),
               "account": self.account, "note": self.note, "customer_name": customer.party.name,
               "customer_phone": chainpay_core::phone::masked(&customer.party.phone), "created_at": at})
    }

    /// Paying one of the customer's payment requests, on its terms.
    pub async fn for_request(
        state: &AppState,
        customer_id: Uuid,
        request: Uuid,
    ) -> Result<Self, Error> {
        let mut conn = state.pool.acquire().await?;
        let payable = requests::payable(&mut conn, customer_id, request).await?;
        Ok(Self {
            customer_id,
            kind: payable.kind,
            number: payable.number,
            account: None,
            amount: Amount::new(payable.amount).map_err(|e| Error::internal(e.to_string()))?,
            currency: CurrencyCode::parse(&payable.currency)
                .map_err(|e| Error::internal(e.to_string()))?,
            note: Some(payable.reference),
            request: Some(request),
        })
    }

    /// The business's name, without moving money.
    pub async fn preview(&self, state: &AppState) -> Result<PayPreview, Error> {
        let rules = state.rules.get(&state.pool).await?;
        let mut conn = state.pool.acquire().await?;
        let priced = self.price(&mut conn, &rules).await?;
        Ok(PayPreview {
            merchant_name: priced.merchant.name,
            number: priced.merchant.number,
            kind: self.kind.as_str().to_owned(),
            account: self.account.clone(),
            amount: self.amount.minor(),
            fee: 0,
            currency: self.currency.to_string(),
        })
    }
}

impl Operation for PayOrder {
    const ACTION: &'static str = "wallet.pay";
    const KIND: &'static str = "merchant_payment";

    fn actor(&self) -> Uuid {
        self.customer_id
    }

    fn currency(&self) -> &str {
        self.currency.as_str()
    }

    fn describe(&self) -> Value {
        json!({"kind": self.kind.as_str(), "number": self.number, "account": self.account,
               "amount": self.amount.minor(), "currency": self.currency.as_str(), "request": self.request})
    }

    // Longer than most: pricing, the request's claim, the AML gate, the
    // entry, booking with both SMS, the payment row, the webhook events and
    // the report, in order, in one transaction.
    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, Error> {
        let priced = self.price(conn, rules).await?;
        let currency = self.currency.as_str();
        let (amount, fee) = (self.amount.minor(), priced.fee);
        if let Some(request) = self.request {
            requests::claim(conn, request, self.customer_id, (amount, currency)).await?;
        }
        let report =
            parties::aml_gate(conn, state, rules, &priced.parties, priced.usd_cents).await?;
        let (merchant, customer) = (&priced.merchant, &priced.parties.sender);
        let tx_id = crate::ledger::new_tx_id();
        let wallet = AccountRef::wallet(self.customer_id, currency);
        let till = AccountRef::merchant(merchant.owner_id, currency);
        let accounts = MerchantAccounts {
            customer_wallet: wallet.clone(),
            merchant: till.clone(),
            fee_revenue: AccountRef::fee_revenue(currency, tx_id),
        };
        let entry = merchant_payment_entry(accounts, &self.currency, amount, fee)
            .map_err(|e| Error::Validation(e.to_string()))?;
        let detail = json!({"merchant": merchant.id, "number": merchant.number, "account": self.account, "amount": amount,
                            "merchant_fee": fee, "currency": currency, "usd_cents": priced.usd_cents});
        let booking = Booking {
            facts: TxFacts::now(
                tx_id,
                TxType::MerchantPayment,
                currency,
                (amount, 0),
                Some(self.customer_id),
                None,
            ),
            entry,
            note: Some(format!("{} {}", merchant.name, merchant.number)),
            usd_cents: Some(priced.usd_cents),
            status: TxStatus::Completed,
            audit: AuditEvent::new(Self::ACTION, Outcome::Success)
                .actor(self.customer_id)
                .detail(detail.clone()),
        };
        let shown = |minor| rules.show(currency, minor);
        let booked = book(conn, &state.keys.tx_signing, booking, |booked| {
            let balances = (
                shown(booked.available_of(&wallet)),
                shown(booked.available_of(&till)),
            );
            texts(
                booked.receipt(),
                (merchant, self.account.as_deref()),
                customer,
                balances,
                [shown(amount), shown(fee)],
            )
        })
        .await?;
        sqlx::query!(
            "INSERT INTO merchant_payments (tx_id, merchant_id, customer_id, amount, fee, currency, account, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            tx_id,
            merchant.id,
            self.customer_id,
            amount,
            fee,
            currency,
            self.account,
            self.note
        )
        .execute(&mut *conn)
        .await?;
        let event = self.event(tx_id, fee, customer, booked.movement.facts.created_at);
        webhooks::enqueue(conn, merchant.id, "payment.received", event).await?;
        if let Some(request) = self.request {
            requests::mark_paid(conn, request, tx_id).await?;
        }
        parties::file_report(conn, report, self.customer_id, tx_id, detail).await?;
        Ok(booked.view(Some(customer.party.phone.clone()), None))
    }
}

/// The customer's receipt naming the business, and the owner's notice.
fn texts(
    receipt: Receipt,
    (merchant, account): (&Merchant, Option<&str>),
    customer: &Person,
    (wallet_balance, merchant_balance): (String, String),
    [amount, fee]: [String; 2],
) -> Vec<(String, String)> {
    let business = Business {
        name: &merchant.name,
        number: &merchant.number,
        account,
    };
    let to_customer = Sms(customer.lang).paid_merchant(receipt, &amount, business, &wallet_balance);
    // The owner recognises the payer, but is not handed their number.
    let payer_phone = chainpay_core::phone::masked(&customer.party.phone);
    let payer = Party {
        name: &customer.party.name,
        phone: &payer_phone,
    };
    let to_owner =
        Sms(merchant.owner_lang).merchant_paid(receipt, &amount, payer, &fee, &merchant_balance);
    vec![
        (customer.party.phone.clone(), to_customer),
        (merchant.owner_phone.clone(), to_owner),
    ]
}
