//! Cash-in: a customer hands an agent cash, and the agent's float pays the
//! same amount into the customer's wallet. Free to the customer; the agent
//! earns a commission from fee revenue in the same journal entry. The
//! customer is the AML subject (incoming limits, screening of both sides).

use chainpay_core::fees::{cash_in_commission, MIN_CASH_IN_USD_CENTS};
use chainpay_core::ledger::{cash_in_entry, AgentAccounts};
use chainpay_core::notify::{Agent as AgentName, Float, Party, Receipt, Sms};
use chainpay_core::refusal::Refusal;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use rust_decimal::RoundingStrategy;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::book::{book, Booking};
use super::parties::{self, Direction, Parties, Person};
use super::transfer::fx_error;
use super::Operation;
use crate::agents::{self, Agent};
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::ledger::accounts::AccountRef;
use crate::rules::Rules;
use crate::state::AppState;
use crate::transactions::TxView;

/// An agent's request to pay `amount` into `customer_phone`'s wallet.
#[derive(Debug, Clone)]
pub struct CashInOrder {
    pub agent_user_id: Uuid,
    pub customer_phone: Msisdn,
    pub amount: Amount,
    pub currency: CurrencyCode,
}

/// What the agent confirms before the PIN: whose wallet it is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CashInPreview {
    pub customer_phone: String,
    pub customer_name: String,
    pub amount: i64,
    pub currency: String,
    /// What the agent earns.
    pub commission: i64,
}

struct Priced {
    agent: Agent,
    parties: Parties,
    usd_cents: i64,
    commission: i64,
}

impl CashInOrder {
    /// Loads the customer (locked: their incoming limits are decided one at
    /// a time) and the agent, and prices the commission.
    async fn price(&self, conn: &mut PgConnection, rules: &Rules) -> Result<Priced, Error> {
        let currency = self.currency.as_str();
        rules
            .rates
            .leg(currency)
            .map_err(|_| Error::Validation(format!("unsupported currency {currency}")))?;
        let agent = agents::active_by_user(conn, self.agent_user_id).await?;
        let customer_id = sqlx::query_scalar!(
            "SELECT id FROM users WHERE phone = $1",
            self.customer_phone.as_str()
        )
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound(Missing::Recipient))?;
        if customer_id == agent.user_id {
            return Err(Refusal::SelfPayment.into());
        }
        let parties = parties::load(conn, customer_id, Some(agent.phone.as_str())).await?;
        if !parties.sender.can_receive() {
            return Err(Refusal::RecipientCannotReceive.into());
        }
        let amount = self.amount.minor();
        let usd_cents = rules.rates.usd_cents(currency, amount).map_err(fx_error)?;
        if usd_cents < MIN_CASH_IN_USD_CENTS {
            return Err(Refusal::BelowMinimum.into());
        }
        let (same, other_usd) = earlier_today(conn, agent.user_id, customer_id, currency).await?;
        // Other currencies' cash-ins count at today's rate, rounded up (what
        // they earned is taken back generously: the house's way).
        let other = rules
            .rates
            .from_usd_cents(currency, other_usd, RoundingStrategy::AwayFromZero)
            .map_err(fx_error)?;
        let earlier = same.checked_add(other).ok_or(Error::Validation(
            "the amount is too large to cash in".into(),
        ))?;
        let commission =
            cash_in_commission(&rules.commissions, &rules.rates, currency, earlier, amount)
                .map_err(fx_error)?;
        Ok(Priced {
            agent,
            parties,
            usd_cents,
            commission,
        })
    }

    /// The customer's name and the commission, without moving money.
    pub async fn preview(&self, state: &AppState) -> Result<CashInPreview, Error> {
        let rules = state.rules.get(&state.pool).await?;
        let mut conn = state.pool.acquire().await?;
        let priced = self.price(&mut conn, &rules).await?;
        Ok(CashInPreview {
            customer_phone: self.customer_phone.to_string(),
            customer_name: priced.parties.sender.party.name,
            amount: self.amount.minor(),
            currency: self.currency.to_string(),
            commission: priced.commission,
        })
    }
}

impl Operation for CashInOrder {
    const ACTION: &'static str = "agent.cash_in";
    const KIND: &'static str = "cash_in";

    fn actor(&self) -> Uuid {
        self.agent_user_id
    }

    fn currency(&self) -> &str {
        self.currency.as_str()
    }

    fn describe(&self) -> Value {
        json!({"customer": self.customer_phone.as_str(), "amount": self.amount.minor(), "currency": self.currency.as_str()})
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, Error> {
        let priced = self.price(conn, rules).await?;
        let report = parties::gate(
            conn,
            state,
            rules,
            &priced.parties,
            priced.usd_cents,
            Direction::Incoming,
        )
        .await?;
        let (currency, amount, commission) = (
            self.currency.as_str(),
            self.amount.minor(),
            priced.commission,
        );
        let (agent, customer) = (&priced.agent, &priced.parties.sender);
        let tx_id = crate::ledger::new_tx_id();
        let wallet = AccountRef::wallet(customer.party.user_id, currency);
        let float = AccountRef::agent_float(agent.user_id, currency);
        let accounts = AgentAccounts {
            customer_wallet: wallet.clone(),
            agent_float: float.clone(),
            fee_revenue: AccountRef::fee_revenue(currency, tx_id),
        };
        let entry = cash_in_entry(accounts, &self.currency, amount, commission)
            .map_err(|e| Error::Validation(e.to_string()))?;
        let detail = json!({"amount": amount, "currency": currency, "commission": commission,
                            "customer": customer.party.phone, "agent_number": agent.number, "usd_cents": priced.usd_cents});
        let booking = Booking {
            facts: TxFacts::now(
                tx_id,
                TxType::CashIn,
                currency,
                (amount, 0),
                Some(agent.user_id),
                Some(customer.party.user_id),
            ),
            entry,
            note: None,
            usd_cents: Some(priced.usd_cents),
            status: TxStatus::Completed,
            audit: AuditEvent::new(Self::ACTION, Outcome::Success)
                .actor(agent.user_id)
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
                [shown(amount), shown(commission)],
            )
        })
        .await?;
        parties::file_report(conn, report, customer.party.user_id, tx_id, detail).await?;
        Ok(booked.view(
            Some(agent.phone.clone()),
            Some(customer.party.phone.clone()),
        ))
    }
}

/// What `agent` cashed in for `customer` in the last 24 hours: in
/// `currency` (minor units), and in every other currency (US cents). A
/// cash-in's commission is priced on that total per pair
/// ([`cash_in_commission`]). In a movement the customer's row is locked
/// already ([`parties::load`]), so two cash-ins for one customer cannot both
/// price against the same total.
async fn earlier_today(
    conn: &mut PgConnection,
    agent: Uuid,
    customer: Uuid,
    currency: &str,
) -> Result<(i64, i64), Error> {
    let row = sqlx::query!(
        r#"SELECT coalesce(sum(amount) FILTER (WHERE currency = $5), 0)::bigint AS "same!",
                  coalesce(sum(usd_cents) FILTER (WHERE currency <> $5), 0)::bigint AS "other_usd!"
           FROM transactions
           WHERE from_user_id = $1 AND to_user_id = $2 AND tx_type = $3 AND status = $4
             AND created_at > now() - interval '1 day'"#,
        agent,
        customer,
        TxType::CashIn.as_str(),
        TxStatus::Completed.as_str(),
        currency
    )
    .fetch_one(conn)
    .await?;
    Ok((row.same, row.other_usd))
}

/// The customer's receipt and the agent's confirmation.
fn texts(
    receipt: Receipt,
    agent: &Agent,
    customer: &Person,
    (wallet_balance, float_balance): (String, String),
    [amount, commission]: [String; 2],
) -> Vec<(String, String)> {
    let to_customer = Sms(customer.lang).cashed_in(
        receipt,
        &amount,
        AgentName {
            name: &agent.name,
            number: &agent.number,
        },
        &wallet_balance,
    );
    let to_agent = Sms(agent.lang).agent_cashed_in(
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
