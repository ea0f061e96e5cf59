//! The voucher and agent effects of the USSD menu, through the same
//! movements the REST API runs (`vouchers`, `movements::cash_in`,
//! `movements::cash_out`), keyed by the session step.

use chainpay_core::fees::FeeKind;
use chainpay_core::transaction::reference;
use chainpay_core::ussd::Outcome;
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use uuid::Uuid;

use chainpay_core::ussd::Effect;

use super::effects::{gated, move_money, or_refused, refused, wallet_balance};
use super::CallerRow;
use crate::error::{Error, Missing};
use crate::idempotency::IdempotencyKey;
use crate::movements::cash_in::CashInOrder;
use crate::movements::cash_out::CashOutOrder;
use crate::movements::transfer::fx_error;
use crate::state::AppState;
use crate::vouchers::{self, Redeemer, VoucherOrder};

/// The voucher and agent effects; those behind a PIN run only when it is right.
pub async fn perform(
    state: &AppState,
    who: &CallerRow,
    effect: Effect,
    key: &str,
) -> Result<Outcome, Error> {
    match effect {
        Effect::PreviewVoucher { currency, amount } => {
            preview_voucher(state, &currency, amount).await
        }
        Effect::RedeemVoucher { code } => {
            redeem_voucher(state, who, &code, Redeemer::Wallet, key).await
        }
        Effect::PreviewCashOut {
            agent,
            currency,
            amount,
        } => Ok(preview_cash_out(state, who, &agent, &currency, amount).await),
        Effect::PreviewCashIn {
            phone,
            currency,
            amount,
        } => Ok(preview_cash_in(state, who, phone, &currency, amount).await),
        Effect::BuyVoucher {
            currency,
            amount,
            pin,
        } => {
            gated(state, who, pin, async {
                Ok(buy_voucher(state, who, &currency, amount, key).await)
            })
            .await
        }
        Effect::CashOut {
            agent,
            currency,
            amount,
            pin,
        } => {
            gated(
                state,
                who,
                pin,
                cash_out(state, who, (&agent, &currency, amount), key),
            )
            .await
        }
        Effect::CashIn {
            phone,
            currency,
            amount,
            pin,
        } => {
            gated(
                state,
                who,
                pin,
                cash_in(state, who, (phone, &currency, amount), key),
            )
            .await
        }
        Effect::Float { pin } => gated(state, who, pin, floats(state, who)).await,
        Effect::CashVoucher { code, pin } => {
            gated(
                state,
                who,
                pin,
                redeem_voucher(state, who, &code, Redeemer::AgentCash, key),
            )
            .await
        }
        _ => Ok(Outcome::Failed),
    }
}

pub(super) fn amount_and_currency(
    amount: i64,
    currency: &str,
) -> Result<(Amount, CurrencyCode), Error> {
    Ok((
        Amount::new(amount).map_err(|e| Error::Validation(e.to_string()))?,
        CurrencyCode::parse(currency).map_err(|e| Error::Validation(e.to_string()))?,
    ))
}

async fn float_balance(state: &AppState, agent: Uuid, currency: &str) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT balance FROM accounts WHERE kind = 'agent_float' AND user_id = $1 AND currency = $2",
        agent,
        currency
    )
    .fetch_optional(&state.pool)
    .await?
    .unwrap_or(0))
}

async fn preview_voucher(state: &AppState, currency: &str, amount: i64) -> Result<Outcome, Error> {
    let rules = state.rules.get(&state.pool).await?;
    let fee = rules
        .fees
        .fee(FeeKind::Voucher, &rules.rates, currency, amount)
        .map_err(fx_error);
    Ok(or_refused(fee, |fee| Outcome::Preview { fee }))
}

async fn buy_voucher(
    state: &AppState,
    who: &CallerRow,
    currency: &str,
    amount: i64,
    key: &str,
) -> Outcome {
    let order = match amount_and_currency(amount, currency) {
        Ok((amount, currency)) => VoucherOrder {
            user_id: who.user_id,
            amount,
            currency,
            days: chainpay_core::ussd::VOUCHER_DAYS,
        },
        Err(error) => return refused(&error),
    };
    match move_money(state, who, &order, key).await {
        Ok(view) => Outcome::VoucherBought {
            reference: reference(view.tx_id),
        },
        Err(outcome) => outcome,
    }
}

async fn redeem_voucher(
    state: &AppState,
    who: &CallerRow,
    code: &str,
    to: Redeemer,
    key: &str,
) -> Result<Outcome, Error> {
    let fingerprint = format!("ussd|voucher.redeem|{}", vouchers::fingerprint(state, code));
    let key = match IdempotencyKey::new(who.user_id, key, &fingerprint) {
        Ok(key) => key,
        Err(error) => return Ok(refused(&error)),
    };
    let redeemed = vouchers::redeem(state, who.user_id, code, to, Some(key))
        .await
        .and_then(|reply| reply.outcome);
    let view = match redeemed {
        Ok(view) => view,
        Err(error) => return Ok(refused(&error)),
    };
    let balance = match to {
        Redeemer::Wallet => wallet_balance(state, who.user_id, &view.currency).await?,
        Redeemer::AgentCash => float_balance(state, who.user_id, &view.currency).await?,
    };
    Ok(Outcome::VoucherRedeemed {
        reference: reference(view.tx_id),
        currency: view.currency,
        amount: view.amount,
        balance,
    })
}

fn cash_out_order(
    who: &CallerRow,
    agent: &str,
    currency: &str,
    amount: i64,
) -> Result<CashOutOrder, Error> {
    let (amount, currency) = amount_and_currency(amount, currency)?;
    Ok(CashOutOrder {
        customer_id: who.user_id,
        agent_number: agent.to_owned(),
        amount,
        currency,
    })
}

async fn preview_cash_out(
    state: &AppState,
    who: &CallerRow,
    agent: &str,
    currency: &str,
    amount: i64,
) -> Outcome {
    match cash_out_order(who, agent, currency, amount) {
        Ok(order) => or_refused(order.preview(state).await, |p| Outcome::AgentFound {
            name: p.agent_name.to_uppercase(),
            fee: p.fee,
        }),
        Err(error) => refused(&error),
    }
}

async fn cash_out(
    state: &AppState,
    who: &CallerRow,
    (agent, currency, amount): (&str, &str, i64),
    key: &str,
) -> Result<Outcome, Error> {
    let order = match cash_out_order(who, agent, currency, amount) {
        Ok(order) => order,
        Err(error) => return Ok(refused(&error)),
    };
    Ok(match move_money(state, who, &order, key).await {
        Ok(view) => Outcome::Withdrawn {
            reference: reference(view.tx_id),
            balance: wallet_balance(state, who.user_id, currency).await?,
        },
        Err(outcome) => outcome,
    })
}

fn cash_in_order(
    who: &CallerRow,
    phone: Msisdn,
    currency: &str,
    amount: i64,
) -> Result<CashInOrder, Error> {
    let (amount, currency) = amount_and_currency(amount, currency)?;
    Ok(CashInOrder {
        agent_user_id: who.user_id,
        customer_phone: phone,
        amount,
        currency,
    })
}

async fn preview_cash_in(
    state: &AppState,
    who: &CallerRow,
    phone: Msisdn,
    currency: &str,
    amount: i64,
) -> Outcome {
    let preview = match cash_in_order(who, phone, currency, amount) {
        Ok(order) => order.preview(state).await,
        Err(error) => Err(error),
    };
    match preview {
        Ok(p) => Outcome::CustomerFound {
            name: p.customer_name.to_uppercase(),
            commission: p.commission,
        },
        Err(Error::NotFound(Missing::Recipient)) => Outcome::Unknown,
        Err(error) => refused(&error),
    }
}

async fn cash_in(
    state: &AppState,
    who: &CallerRow,
    (phone, currency, amount): (Msisdn, &str, i64),
    key: &str,
) -> Result<Outcome, Error> {
    let order = match cash_in_order(who, phone, currency, amount) {
        Ok(order) => order,
        Err(error) => return Ok(refused(&error)),
    };
    Ok(match move_money(state, who, &order, key).await {
        Ok(view) => Outcome::CashedIn {
            reference: reference(view.tx_id),
            float: float_balance(state, who.user_id, currency).await?,
        },
        Err(outcome) => outcome,
    })
}

/// The agent's float: every currency with money in it, the home one always.
async fn floats(state: &AppState, who: &CallerRow) -> Result<Outcome, Error> {
    let rows = sqlx::query!(
        "SELECT currency, balance FROM accounts WHERE kind = 'agent_float' AND user_id = $1
           AND (balance <> 0 OR currency = $2) ORDER BY currency <> $2, currency",
        who.user_id,
        who.caller.home_currency
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Outcome::Float(
        rows.into_iter().map(|r| (r.currency, r.balance)).collect(),
    ))
}
