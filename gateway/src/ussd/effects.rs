//! Carrying out what the menu machine asks for, through the same services
//! the REST API uses (registration, PIN checks with the account lockout,
//! the movement pipeline with its AML rules and idempotency).

use chainpay_core::ussd::{Effect, Outcome};
use chainpay_core::{Amount, CurrencyCode, Pin};
use serde_json::json;
use uuid::Uuid;

use super::{load_caller, CallerRow, UssdRequest};
use crate::audit::{AuditEvent, Outcome as AuditOutcome};
use crate::auth::accounts;
use crate::auth::pins::{self, PinCheck};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::idempotency::IdempotencyKey;
use crate::movements::conversion::{self, ConvertOrder, ConvertTerms};
use crate::movements::transfer::SendOrder;
use crate::movements::{self, Operation};
use crate::mpesa::withdrawals::{self, WithdrawOrder};
use crate::transactions::TxView;
use crate::{reversals, statement};
use chainpay_core::Msisdn;

/// What a refusal tells the caller.
fn refused(error: &ApiError) -> Outcome {
    match error {
        ApiError::Internal(_) => Outcome::Failed,
        ApiError::InsufficientFunds => Outcome::Refused("your balance is not enough".into()),
        ApiError::InvalidCredentials => Outcome::WrongPin { locked: false },
        ApiError::AccountLocked { .. } => Outcome::WrongPin { locked: true },
        ApiError::WeakPin(_) => Outcome::WeakPin,
        other => Outcome::Refused(other.to_string()),
    }
}

/// Checks the caller's PIN (counting towards the lockout); `None` means go on.
async fn pin_gate(
    state: &AppState,
    caller: &CallerRow,
    pin: Pin,
) -> anyhow::Result<Option<Outcome>> {
    let mut conn = state.pool.acquire().await?;
    let check = pins::check(&mut conn, caller.user_id, pin).await?;
    if check == PinCheck::Correct {
        return Ok(None);
    }
    AuditEvent::new("ussd.pin", AuditOutcome::Failure)
        .actor(caller.user_id)
        .detail(json!({"locked": !matches!(check, PinCheck::Wrong { locked: false })}))
        .record(&mut conn)
        .await?;
    Ok(Some(Outcome::WrongPin {
        locked: !matches!(check, PinCheck::Wrong { locked: false }),
    }))
}

/// Runs a movement keyed by the session and step, so a retried step moves nothing twice.
async fn move_money<O: Operation>(
    state: &AppState,
    caller: &CallerRow,
    op: &O,
    key: &str,
) -> Result<TxView, Outcome> {
    let key = IdempotencyKey {
        user_id: caller.user_id,
        key: key.to_owned(),
        request_hash: chainpay_core::crypto::sha3_256_hex(
            format!("ussd|{}|{}", O::ACTION, op.describe()).as_bytes(),
        ),
    };
    match movements::run(state, op, Some(key)).await {
        Ok(reply) if reply.status.is_success() => {
            serde_json::from_value(reply.body).map_err(|_| Outcome::Failed)
        }
        Ok(reply) => Err(Outcome::Refused(
            reply.body["detail"]
                .as_str()
                .unwrap_or("not completed")
                .to_owned(),
        )),
        Err(error) => Err(refused(&error)),
    }
}

async fn wallet_balance(state: &AppState, user_id: Uuid, currency: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "SELECT balance FROM accounts WHERE kind = 'wallet' AND user_id = $1 AND currency = $2",
        user_id,
        currency
    )
    .fetch_optional(&state.pool)
    .await
    .map(|balance| balance.unwrap_or(0))
}

/// The caller's non-empty wallets, home currency first.
async fn holdings(state: &AppState, caller: &CallerRow) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query!(
        "SELECT currency, balance FROM accounts WHERE kind = 'wallet' AND user_id = $1 AND balance - locked > 0
         ORDER BY currency <> $2, currency",
        caller.user_id,
        caller.caller.home_currency
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.currency, row.balance))
        .collect())
}

pub async fn perform(
    state: &AppState,
    request: &UssdRequest,
    caller: &mut Option<CallerRow>,
    effect: Effect,
    key: &str,
) -> anyhow::Result<Outcome> {
    if let Effect::Register { name, pin } = effect {
        return Ok(
            match accounts::register(state, &request.phone, name, pin).await {
                Ok(_) => {
                    *caller = load_caller(state, &request.phone).await?;
                    Outcome::Done
                }
                Err(ApiError::PhoneTaken) => {
                    Outcome::Refused("this number is already registered".into())
                }
                Err(error) => refused(&error),
            },
        );
    }
    let Some(who) = caller.clone() else {
        return Ok(Outcome::Failed);
    };
    let outcome = match effect {
        Effect::Register { .. } => Outcome::Failed,
        Effect::FindRecipient { phone } => {
            if phone.as_str() == who.phone {
                Outcome::Refused("you cannot send money to yourself".into())
            } else {
                let name =
                    sqlx::query_scalar!("SELECT name FROM users WHERE phone = $1", phone.as_str())
                        .fetch_optional(&state.pool)
                        .await?;
                name.map_or(Outcome::Unknown, |name| Outcome::Recipient {
                    name: name.to_uppercase(),
                })
            }
        }
        Effect::Holdings => Outcome::Holdings(holdings(state, &who).await?),
        Effect::PreviewSend {
            to,
            currency,
            amount,
        } => match send_order(&who, to, &currency, amount) {
            Ok(order) => match order.preview(state).await {
                Ok(preview) => Outcome::Preview { fee: preview.fee },
                Err(error) => refused(&error),
            },
            Err(error) => refused(&error),
        },
        Effect::Send {
            to,
            currency,
            amount,
            pin,
        } => {
            if let Some(wrong) = pin_gate(state, &who, pin).await? {
                return Ok(wrong);
            }
            let order = match send_order(&who, to, &currency, amount) {
                Ok(order) => order,
                Err(error) => return Ok(refused(&error)),
            };
            match move_money(state, &who, &order, key).await {
                Ok(view) => Outcome::Sent {
                    reference: chainpay_core::transaction::reference(view.tx_id),
                    balance: wallet_balance(state, who.user_id, &currency).await?,
                },
                Err(outcome) => outcome,
            }
        }
        Effect::Deposit { amount } => {
            let phone = Msisdn::parse(&who.phone)?;
            match crate::mpesa::deposits::initiate(state, who.user_id, &phone, amount).await {
                Ok(_) => Outcome::DepositStarted,
                Err(error) => refused(&error),
            }
        }
        Effect::PreviewWithdraw { amount } => {
            let rules = state.rules.get(&state.pool).await?;
            let phone = Msisdn::parse(&who.phone)?;
            match WithdrawOrder::new(who.user_id, &phone, amount)
                .and_then(|order| order.fee(&rules))
            {
                Ok(fee) => Outcome::Preview { fee },
                Err(error) => refused(&error),
            }
        }
        Effect::Withdraw { amount, pin } => {
            if let Some(wrong) = pin_gate(state, &who, pin).await? {
                return Ok(wrong);
            }
            let phone = Msisdn::parse(&who.phone)?;
            let order = match WithdrawOrder::new(who.user_id, &phone, amount) {
                Ok(order) => order,
                Err(error) => return Ok(refused(&error)),
            };
            match move_money(state, &who, &order, key).await {
                Ok(view) => {
                    if let Err(error) = withdrawals::submit(state, view.tx_id).await {
                        tracing::error!(error = %error, "B2C submission failed");
                    }
                    Outcome::Withdrawn {
                        reference: chainpay_core::transaction::reference(view.tx_id),
                        balance: wallet_balance(state, who.user_id, "KES").await?,
                    }
                }
                Err(outcome) => outcome,
            }
        }
        Effect::Balances { pin } => match pin_gate(state, &who, pin).await? {
            Some(wrong) => wrong,
            None => Outcome::Balances(holdings(state, &who).await?),
        },
        Effect::Statement { pin } => match pin_gate(state, &who, pin).await? {
            Some(wrong) => wrong,
            None => {
                let mut conn = state.pool.acquire().await?;
                Outcome::Statement(statement::mini(&mut conn, who.user_id).await?)
            }
        },
        Effect::Quote { from, to, amount } => {
            let parsed = (
                CurrencyCode::parse(&from),
                CurrencyCode::parse(&to),
                Amount::new(amount),
            );
            match parsed {
                (Ok(from), Ok(to), Ok(amount)) => {
                    match conversion::quote(state, Some(who.user_id), from, to, amount).await {
                        Ok(quote) => Outcome::Quote {
                            quote_id: quote.quote_id,
                            amount: quote.amount,
                            converted: quote.converted_amount,
                            rate: quote.rate,
                            fee: quote.fee,
                        },
                        Err(error) => refused(&error),
                    }
                }
                _ => Outcome::Refused("that amount cannot be converted".into()),
            }
        }
        Effect::Convert { quote_id, pin } => {
            if let Some(wrong) = pin_gate(state, &who, pin).await? {
                return Ok(wrong);
            }
            let order = ConvertOrder {
                user_id: who.user_id,
                terms: ConvertTerms::Quoted(quote_id),
            };
            match move_money(state, &who, &order, key).await {
                Ok(view) => {
                    let to = view.to_currency.clone().unwrap_or_default();
                    Outcome::Converted {
                        reference: chainpay_core::transaction::reference(view.tx_id),
                        converted: view.converted_amount.unwrap_or(0),
                        balance: wallet_balance(state, who.user_id, &to).await?,
                    }
                }
                Err(outcome) => outcome,
            }
        }
        Effect::Eligible => Outcome::Eligible(
            reversals::eligible(state, who.user_id)
                .await?
                .into_iter()
                .map(|t| (t.tx_id, t.label()))
                .collect(),
        ),
        Effect::Reverse { tx_id, reason, pin } => {
            if let Some(wrong) = pin_gate(state, &who, pin).await? {
                return Ok(wrong);
            }
            match reversals::request(state, who.user_id, tx_id, &reason).await {
                Ok(_) => Outcome::ReversalRequested {
                    reference: chainpay_core::transaction::reference(tx_id),
                },
                Err(error) => refused(&error),
            }
        }
        Effect::ChangePin { old, new } => {
            match accounts::change_pin(state, who.user_id, old, new).await {
                Ok(()) => Outcome::Done,
                Err(error) => refused(&error),
            }
        }
        Effect::SetLanguage(lang) => {
            sqlx::query!(
                "UPDATE users SET language = $2 WHERE id = $1",
                who.user_id,
                lang.code()
            )
            .execute(&state.pool)
            .await?;
            if let Some(row) = caller.as_mut() {
                row.caller.lang = lang;
            }
            Outcome::Done
        }
    };
    Ok(outcome)
}

fn send_order(
    who: &CallerRow,
    to: chainpay_core::Msisdn,
    currency: &str,
    amount: i64,
) -> Result<SendOrder, ApiError> {
    Ok(SendOrder {
        from_user_id: who.user_id,
        to_phone: to,
        amount: Amount::new(amount).map_err(|e| ApiError::Validation(e.to_string()))?,
        currency: CurrencyCode::parse(currency).map_err(|e| ApiError::Validation(e.to_string()))?,
        note: None,
    })
}
