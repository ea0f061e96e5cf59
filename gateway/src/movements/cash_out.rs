//! Cash-out: a customer withdraws at an agent's counter. The wallet pays
//! amount and fee; the agent's float receives the amount and a commission
//! (a share of the fee) and the agent is told to hand over the cash. The
//! customer is the AML subject, as for any outgoing movement.

use chainpay_core::fees::{commission, FeeKind};
use chainpay_core::ledger::{cash_out_entry, AgentAccounts};
use chainpay_core::notify::{Agent as AgentName, Float, Party, Receipt, Sms};
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
use crate::agents::{self, Agent};
use crate::audit::{AuditEvent, Outcome};
use crate::error::Error;
use crate::ledger::accounts::AccountRef;
use crate::rules::Rules;
use crate::state::AppState;
use crate::transactions::TxView;

/// A customer's request to withdraw `amount` at agent `agent_number`.
#[derive(Debug, Clone)]
pub struct CashOutOrder {
    pub customer_id: Uuid,
    pub agent_number: String,
    pub amount: Amount,
    pub currency: CurrencyCode,
}

/// What the customer confirms before the PIN: the agent's name and the fee.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CashOutPreview {
    pub agent_number: String,
    pub agent_name: String,
    pub amount: i64,
    pub fee: i64,
    /// `amount + fee`: what leaves the wallet.
    pub total: i64,
    pub currency: String,
}

struct Priced {
    agent: Agent,
    parties: Parties,
    usd_cents: i64,
    fee: i64,
    commission: i64,
}

impl CashOutOrder {
    async fn price(&self, conn: &mut PgConnection, rules: &Rules) -> Result<Priced, Error> {
        let currency = self.currency.as_str();
        rules
            .rates
            .leg(currency)
            .map_err(|_| Error::Validation(format!("unsupported currency {currency}")))?;
        let agent = agents::active_by_number(conn, &self.agent_number)
            .await?
            .ok_or(Refusal::AgentUnknown)?;
        if agent.user_id == self.customer_id {
            return Err(Refusal::SelfPayment.into());
        }
        let parties = parties::load(conn, self.customer_id, Some(agent.phone.as_str())).await?;
        let amount = self.amount.minor();
        let usd_cents = rules.rates.usd_cents(currency, amount).map_err(fx_error)?;
        let fee = rules
            .fees
            .fee(FeeKind::CashOut, &rules.rates, currency, amount)
            .map_err(fx_error)?;
        let commission = commission(
            &rules.commissions,
            FeeKind::CashOut,
            &rules.rates,
            currency,
            amount,
            fee,
        )
        .map_err(fx_error)?;
        Ok(Priced {
            agent,
            parties,
            usd_cents,
            fee,
            commission,
        })
    }

    /// The agent's name and the fee, without moving money.
    pub async fn preview(&self, state: &AppState) -> Result<CashOutPreview, Error> {
        let rules = state.rules.get(&state.pool).await?;
        let mut conn = state.pool.acquire().await?;
        let priced = self.price(&mut conn, &rules).await?;
        Ok(CashOutPreview {
            agent_number: priced.agent.number,
            agent_name: priced.agent.name,
            amount: self.amount.minor(),
            fee: priced.fee,
            total: self.amount.minor() + priced.fee,
            currency: self.currency.to_string(),
        })
    }
}

impl Operation for CashOutOrder {
    const ACTION: &'static str = "wallet.withdraw";
    const KIND: &'static str = "cash_out";

    fn actor(&self) -> Uuid {
        self.customer_id
    }

    fn currency(&self) -> &str {
        self.currency.as_str()
    }

    fn describe(&self) -> Value {
        json!({"method": "agent", "agent_number": self.agent_number, "amount": self.amount.minor(), "currency": self.currency.as_str()})
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, Error> {
        let priced = self.price(conn, rules).await?;
        let report =
            parties::aml_gate(conn, state, rules, &priced.parties, priced.usd_cents).await?;
        let currency = self.currency.as_str();
        let (amount, fee, commission) = (self.amount.minor(), priced.fee, priced.commission);
        let (agent, customer) = (&priced.agent, &priced.parties.sender);
        let tx_id = crate::ledger::new_tx_id();
        let wallet = AccountRef::wallet(self.customer_id, currency);
        let float = AccountRef::agent_float(agent.user_id, currency);
        let accounts = AgentAccounts {
            customer_wallet: wallet.clone(),
            agent_float: float.clone(),
            fee_revenue: AccountRef::fee_revenue(currency, tx_id),
        };
        let entry = cash_out_entry(accounts, &self.currency, amount, fee, commission)
            .map_err(|e| Error::Validation(e.to_string()))?;
        let detail = json!({"method": "agent", "amount": amount, "fee": fee, "commission": commission, "currency": currency,
                            "agent_number": agent.number, "usd_cents": priced.usd_cents});
        let booking = Booking {
            facts: TxFacts::now(
                tx_id,
                TxType::CashOut,
                currency,
                (amount, fee),
                Some(self.customer_id),
                Some(agent.user_id),
            ),
            entry,
            note: None,
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
                shown(booked.available_of(&float)),
            );
            texts(
                booked.receipt(),
                agent,
                customer,
                balances,
                [shown(amount), shown(fee), shown(commission)],
            )
        })
        .await?;
        parties::file_report(conn, report, self.customer_id, tx_id, detail).await?;
        Ok(booked.view(
            Some(customer.party.phone.clone()),
            Some(agent.phone.clone()),
        ))
    }
}

/// The customer's receipt and the agent's instruction to pay out.
fn texts(
    receipt: Receipt,
    agent: &Agent,
    customer: &Person,
    (wallet_balance, float_balance): (String, String),
    [amount, fee, commission]: [String; 3],
) -> Vec<(String, String)> {
    let to_customer = Sms(customer.lang).cashed_out(
        receipt,
        &amount,
        AgentName {
            name: &agent.name,
            number: &agent.number,
        },
        &wallet_balance,
        &fee,
    );
    let to_agent = Sms(agent.lang).agent_cashed_out(
        receipt,
        &amount,
        Party {
            name: &customer.party.name,
            phone: &customer.party.phone,
        },
        Float {
            commission: &commission,
            balance: &float_balance,
        },
    );
    vec![
        (customer.party.phone.clone(), to_customer),
        (agent.phone.clone(), to_agent),
    ]
}
