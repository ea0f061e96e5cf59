//! The Pay merchant effects of the USSD menu, through the same movement the
//! REST API runs (`movements::merchant_pay`), keyed by the session step.

use chainpay_core::transaction::reference;
use chainpay_core::ussd::{Effect, Outcome};

use super::counter::amount_and_currency;
use super::effects::{gated, move_money, or_refused, refused, wallet_balance};
use super::CallerRow;
use crate::error::Error;
use crate::merchants::Kind;
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
        _ => Ok(Outcome::Invalid),
    }
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
