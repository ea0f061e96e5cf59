//! The Pay merchant effects of the USSD menu, through the same movement the
//! REST API runs (`movements::merchant_pay`), keyed by the session step;
//! and the caller's pending payment requests (`merchants::requests`).

use chainpay_core::transaction::reference;
use chainpay_core::ussd::{Effect, Outcome, PendingRequest};

use super::counter::amount_and_currency;
use super::effects::{gated, move_money, or_refused, refused, wallet_balance};
use super::CallerRow;
use crate::error::Error;
use crate::merchants::{requests, Kind};
use crate::movements::merchant_pay::PayOrder;
use crate::state::AppState;

/// Where a payment goes: (paybill?, number, account).
type Payee = (bool, String, Option<String>);

fn order(
    who: &CallerRow,
    (paybill, number, account): Payee,
    currency: &str,
    amount: i64,
) -> Result<PayOrder, Error> {
    let (amount, currency) = amount_and_currency(amount, currency)?;
    Ok(PayOrder {
        customer_id: who.user_id,
        kind: if paybill { Kind::Paybill } else { Kind::Till },
        number,
        account,
        amount,
        currency,
        note: None,
        request: None,
    })
}

/// The preview, and the payment once the PIN is right.
pub async fn perform(
    state: &AppState,
    who: &CallerRow,
    effect: Effect,
    key: &str,
) -> Result<Outcome, Error> {
    match effect {
        Effect::PreviewPay {
            paybill,
            number,
            account,
            currency,
            amount,
        } => Ok(
            match order(who, (paybill, number, account), &currency, amount) {
                Ok(order) => or_refused(order.preview(state).await, |p| Outcome::MerchantFound {
                    name: p.merchant_name.to_uppercase(),
                }),
                Err(error) => refused(&error),
            },
        ),
        Effect::Pay {
            paybill,
            number,
            account,
            currency,
            amount,
            pin,
        } => {
            let payee = (paybill, number, account);
            gated(
                state,
                who,
                pin,
                pay(state, who, payee, (&currency, amount), key),
            )
            .await
        }
        Effect::PendingRequests => {
            let mut conn = state.pool.acquire().await?;
            let waiting = requests::pending_for(&mut conn, who.user_id).await?;
            Ok(Outcome::PaymentRequests(
                waiting
                    .into_iter()
                    .map(|r| PendingRequest {
                        id: r.request_id,
                        merchant: r.merchant_name.to_uppercase(),
                        currency: r.currency,
                        amount: r.amount,
                        reference: r.reference,
                    })
                    .collect(),
            ))
        }
        Effect::ApproveRequest { id, pin } => {
            gated(state, who, pin, approve(state, who, id, key)).await
        }
        Effect::DeclineRequest { id } => Ok(or_refused(
            requests::decline(state, who.user_id, id).await,
            |_| Outcome::Done,
        )),
        _ => Ok(Outcome::Invalid),
    }
}

async fn approve(
    state: &AppState,
    who: &CallerRow,
    id: uuid::Uuid,
    key: &str,
) -> Result<Outcome, Error> {
    let order = match PayOrder::for_request(state, who.user_id, id).await {
        Ok(order) => order,
        Err(error) => return Ok(refused(&error)),
    };
    Ok(match move_money(state, who, &order, key).await {
        Ok(view) => Outcome::Sent {
            reference: reference(view.tx_id),
            balance: wallet_balance(state, who.user_id, order.currency.as_str()).await?,
        },
        Err(outcome) => outcome,
    })
}

async fn pay(
    state: &AppState,
    who: &CallerRow,
    payee: Payee,
    (currency, amount): (&str, i64),
    key: &str,
) -> Result<Outcome, Error> {
    let order = match order(who, payee, currency, amount) {
        Ok(order) => order,
        Err(error) => return Ok(refused(&error)),
    };
    Ok(match move_money(state, who, &order, key).await {
        Ok(view) => Outcome::Sent {
            reference: reference(view.tx_id),
            balance: wallet_balance(state, who.user_id, currency).await?,
        },
        Err(outcome) => outcome,
    })
}
