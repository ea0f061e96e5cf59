//! Carrying out what the menu machine asks for, through the same services
//! the REST API uses (registration, PIN checks with the account lockout,
//! the movement pipeline with its AML rules and idempotency). Domain
//! errors become [`Outcome`]s by kind; the machine words them.

use chainpay_core::kyc::DocumentType;
use chainpay_core::refusal::Refusal;
use chainpay_core::transaction::reference;
use chainpay_core::ussd::{Effect, Outcome};
use chainpay_core::{Amount, CurrencyCode, Msisdn, Pin};
use serde_json::json;
use uuid::Uuid;

use super::{counter, load_caller, CallerRow, UssdRequest};
use crate::audit::{AuditEvent, Outcome as AuditOutcome};
use crate::auth::accounts;
use crate::auth::pins::{self, PinCheck};
use crate::error::Error;
use crate::idempotency::IdempotencyKey;
use crate::movements::conversion::{self, ConvertOrder, ConvertTerms};
use crate::movements::transfer::SendOrder;
use crate::movements::Operation;
use crate::mpesa::deposits::{self, DepositOrder};
use crate::mpesa::withdrawals::{self, WithdrawOrder};
use crate::state::AppState;
use crate::transactions::TxView;
use crate::{reversals, statement};

/// What a refusal tells the caller, by kind.
pub(super) fn refused(error: &Error) -> Outcome {
    match error {
        Error::InvalidCredentials => Outcome::WrongPin { locked: false },
        Error::AccountLocked { .. } => Outcome::WrongPin { locked: true },
        Error::WeakPin => Outcome::WeakPin,
        Error::Validation(_) | Error::NotFound(_) => Outcome::Invalid,
        Error::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "USSD effect failed");
            Outcome::Failed
        }
        other => other.refusal().map_or(Outcome::Failed, Outcome::Refused),
    }
}

/// The outcome of a domain call: `done` on success, the refusal otherwise.
pub(super) fn or_refused<T>(result: Result<T, Error>, done: impl FnOnce(T) -> Outcome) -> Outcome {
    match result {
        Ok(value) => done(value),
        Err(error) => refused(&error),
    }
}

/// Checks the caller's PIN (counting towards the lockout); `None` means go on.
async fn pin_gate(
    state: &AppState,
    caller: &CallerRow,
    pin: Pin,
) -> Result<Option<Outcome>, Error> {
    let check = pins::check(&state.pool, caller.user_id, pin).await?;
    if check == PinCheck::Correct {
        return Ok(None);
    }
    let mut conn = state.pool.acquire().await?;
    let locked = check.locked();
    AuditEvent::new("ussd.pin", AuditOutcome::Failure)
        .actor(caller.user_id)
        .detail(json!({ "locked": locked }))
        .record(&mut conn)
        .await?;
    Ok(Some(Outcome::WrongPin { locked }))
}

/// Runs a movement keyed by the session and step, so a retried step moves nothing twice.
pub(super) async fn move_money<O: Operation>(
    state: &AppState,
    caller: &CallerRow,
    op: &O,
    key: &str,
) -> Result<TxView, Outcome> {
    let fingerprint = format!("ussd|{}|{}", O::ACTION, op.describe());
    let key = IdempotencyKey::new(caller.user_id, key, &fingerprint).map_err(|e| refused(&e))?;
    op.submit(state, Some(key))
        .await
        .outcome
        .map_err(|error| refused(&error))
}

pub(super) async fn wallet_balance(
    state: &AppState,
    user_id: Uuid,
    currency: &str,
) -> Result<i64, Error> {
    let balance = sqlx::query_scalar!(
        r#"SELECT balance - locked AS "available!" FROM accounts WHERE kind = 'wallet' AND user_id = $1 AND currency = $2"#,
        user_id,
        currency
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(balance.unwrap_or(0))
}

/// The caller's non-empty wallets, home currency first.
async fn holdings(state: &AppState, caller: &CallerRow) -> Result<Vec<(String, i64)>, Error> {
    let rows = sqlx::query!(
        r#"SELECT currency, balance - locked AS "available!" FROM accounts WHERE kind = 'wallet' AND user_id = $1 AND balance - locked > 0
         ORDER BY currency <> $2, currency"#,
        caller.user_id,
        caller.caller.home_currency
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.currency, row.available))
        .collect())
}

/// Carries out `effect` for the caller; `key` identifies the step (for
/// idempotency). Only broken infrastructure is an `Err`.
pub async fn perform(
    state: &AppState,
    request: &UssdRequest,
    caller: &mut Option<CallerRow>,
    effect: Effect,
    key: &str,
) -> Result<Outcome, Error> {
    if let Effect::Register { name, pin } = effect {
        let registered = accounts::register(state, &request.phone, name, pin).await;
        if registered.is_ok() {
            *caller = load_caller(state, &request.phone).await?;
        }
        return Ok(or_refused(registered, |_| Outcome::Done));
    }
    let Some(who) = caller.clone() else {
        return Ok(Outcome::Failed);
    };
    match effect {
        Effect::Register { .. } => Ok(Outcome::Failed),
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
            Ok(Outcome::Done)
        }
        effect => perform_for(state, &who, effect, key).await,
    }
}

/// Effects of a registered caller: reading, or acting behind their PIN.
async fn perform_for(
    state: &AppState,
    who: &CallerRow,
    effect: Effect,
    key: &str,
) -> Result<Outcome, Error> {
    Ok(match effect {
        Effect::FindRecipient { phone } => find_recipient(state, who, &phone).await?,
        Effect::Holdings => Outcome::Holdings(holdings(state, who).await?),
        Effect::PreviewSend {
            to,
            currency,
            amount,
        } => match send_order(who, to, &currency, amount) {
            Ok(order) => or_refused(order.preview(state).await, |p| Outcome::Preview {
                fee: p.fee,
            }),
            Err(error) => refused(&error),
        },
        Effect::PreviewWithdraw { amount } => {
            let rules = state.rules.get(&state.pool).await?;
            let fee = withdraw_order(who, amount).and_then(|order| order.fee(&rules));
            or_refused(fee, |fee| Outcome::Preview { fee })
        }
        Effect::Quote { from, to, amount } => quote(state, who, &from, &to, amount).await,
        Effect::Deposit { amount } => deposit(state, who, amount, key).await?,
        Effect::ChangePin { old, new } => or_refused(
            accounts::change_pin(state, who.user_id, old, new).await,
            |()| Outcome::Done,
        ),
        effect @ (Effect::PreviewVoucher { .. }
        | Effect::RedeemVoucher { .. }
        | Effect::PreviewCashOut { .. }
        | Effect::PreviewCashIn { .. }
        | Effect::BuyVoucher { .. }
        | Effect::CashOut { .. }
        | Effect::CashIn { .. }
        | Effect::Float { .. }
        | Effect::CashVoucher { .. }) => counter::perform(state, who, effect, key).await?,
        effect @ (Effect::PreviewPay { .. }
        | Effect::Pay { .. }
        | Effect::PendingRequests
        | Effect::ApproveRequest { .. }
        | Effect::DeclineRequest { .. }) => {
            super::merchant::perform(state, who, effect, key).await?
        }
        Effect::SubmitDocument {
            document_type,
            number,
        } => match DocumentType::parse(&document_type) {
            Some(kind) => or_refused(
                crate::kyc::submit(state, who.user_id, kind, &number).await,
                |_| Outcome::Done,
            ),
            None => Outcome::Invalid,
        },
        Effect::ResetPin { code, new } => or_refused(
            crate::auth::reset::complete(state, who.user_id, &code, new).await,
            |()| Outcome::Done,
        ),
        Effect::Register { .. } | Effect::SetLanguage(_) => Outcome::Failed,
        pinned => pin_confirmed(state, who, pinned, key).await?,
    })
}

/// Effects the caller confirmed with their PIN: run only when it is right.
async fn pin_confirmed(
    state: &AppState,
    who: &CallerRow,
    effect: Effect,
    key: &str,
) -> Result<Outcome, Error> {
    match effect {
        Effect::Send {
            to,
            currency,
            amount,
            pin,
        } => gated(state, who, pin, send(state, who, to, currency, amount, key)).await,
        Effect::Withdraw { amount, pin } => {
            gated(state, who, pin, withdraw(state, who, amount, key)).await
        }
        Effect::Convert { quote_id, pin } => {
            gated(state, who, pin, convert(state, who, quote_id, key)).await
        }
        Effect::Balances { pin } => {
            gated(state, who, pin, async {
                Ok(Outcome::Balances(holdings(state, who).await?))
            })
            .await
        }
        Effect::Statement { pin } => {
            gated(state, who, pin, async {
                let mut conn = state.pool.acquire().await?;
                let lines = statement::mini(&mut conn, who.user_id, who.caller.lang).await?;
                Ok(Outcome::Statement(lines))
            })
            .await
        }
        Effect::Eligible { pin } => {
            gated(state, who, pin, async {
                let eligible = reversals::eligible(&state.pool, who.user_id).await?;
                Ok(Outcome::Eligible(
                    eligible.into_iter().map(|t| (t.tx_id, t.label())).collect(),
                ))
            })
            .await
        }
        Effect::Reverse { tx_id, reason, pin } => {
            gated(state, who, pin, async {
                let requested = reversals::request(&state.pool, who.user_id, tx_id, &reason).await;
                Ok(or_refused(requested, |_| Outcome::ReversalRequested {
                    reference: reference(tx_id),
                }))
            })
            .await
        }
        _ => Ok(Outcome::Failed),
    }
}

/// An M-Pesa prompt to the caller's own phone, keyed by the session step.
async fn deposit(
    state: &AppState,
    who: &CallerRow,
    amount: i64,
    key: &str,
) -> Result<Outcome, Error> {
    let phone = Msisdn::parse(&who.phone).map_err(|e| Error::Internal(e.into()))?;
    let fingerprint = format!("ussd|mpesa.initiate|{amount}");
    let started = match (
        DepositOrder::new(who.user_id, &phone, amount),
        IdempotencyKey::new(who.user_id, key, &fingerprint),
    ) {
        (Ok(order), Ok(key)) => deposits::initiate(state, &order, Some(&key)).await.outcome,
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    Ok(or_refused(started, |_| Outcome::DepositStarted))
}

/// Runs `then` only when `pin` is the caller's PIN.
pub(super) async fn gated(
    state: &AppState,
    who: &CallerRow,
    pin: Pin,
    then: impl std::future::Future<Output = Result<Outcome, Error>>,
) -> Result<Outcome, Error> {
    match pin_gate(state, who, pin).await? {
        Some(wrong) => Ok(wrong),
        None => then.await,
    }
}

async fn find_recipient(
    state: &AppState,
    who: &CallerRow,
    phone: &Msisdn,
) -> Result<Outcome, Error> {
    if phone.as_str() == who.phone {
        return Ok(Outcome::Refused(Refusal::SelfPayment));
    }
    let name = sqlx::query_scalar!("SELECT name FROM users WHERE phone = $1", phone.as_str())
        .fetch_optional(&state.pool)
        .await?;
    Ok(name.map_or(Outcome::Unknown, |name| Outcome::Recipient {
        name: name.to_uppercase(),
    }))
}

async fn send(
    state: &AppState,
    who: &CallerRow,
    to: Msisdn,
    currency: String,
    amount: i64,
    key: &str,
) -> Result<Outcome, Error> {
    let order = match send_order(who, to, &currency, amount) {
        Ok(order) => order,
        Err(error) => return Ok(refused(&error)),
    };
    Ok(match move_money(state, who, &order, key).await {
        Ok(view) => Outcome::Sent {
            reference: reference(view.tx_id),
            balance: wallet_balance(state, who.user_id, &currency).await?,
        },
        Err(outcome) => outcome,
    })
}

async fn withdraw(
    state: &AppState,
    who: &CallerRow,
    amount: i64,
    key: &str,
) -> Result<Outcome, Error> {
    let order = match withdraw_order(who, amount) {
        Ok(order) => order,
        Err(error) => return Ok(refused(&error)),
    };
    Ok(match move_money(state, who, &order, key).await {
        Ok(view) => {
            withdrawals::submit_after_hold(state, view.tx_id);
            Outcome::Withdrawn {
                reference: reference(view.tx_id),
                balance: wallet_balance(state, who.user_id, "KES").await?,
            }
        }
        Err(outcome) => outcome,
    })
}

async fn quote(state: &AppState, who: &CallerRow, from: &str, to: &str, amount: i64) -> Outcome {
    let parsed = (
        CurrencyCode::parse(from),
        CurrencyCode::parse(to),
        Amount::new(amount),
    );
    let (Ok(from), Ok(to), Ok(amount)) = parsed else {
        return Outcome::Refused(Refusal::AmountNotPriceable);
    };
    or_refused(
        conversion::quote(state, who.user_id, from, to, amount).await,
        |quote| Outcome::Quote {
            quote_id: quote.quote_id.unwrap_or_default(),
            amount: quote.amount,
            converted: quote.converted_amount,
            rate: quote.rate,
            fee: quote.fee,
        },
    )
}

async fn convert(
    state: &AppState,
    who: &CallerRow,
    quote_id: Uuid,
    key: &str,
) -> Result<Outcome, Error> {
    let order = ConvertOrder {
        user_id: who.user_id,
        terms: ConvertTerms::Quoted(quote_id),
    };
    Ok(match move_money(state, who, &order, key).await {
        Ok(view) => {
            let to = view.to_currency.clone().unwrap_or_default();
            Outcome::Converted {
                reference: reference(view.tx_id),
                converted: view.converted_amount.unwrap_or(0),
                balance: wallet_balance(state, who.user_id, &to).await?,
            }
        }
        Err(outcome) => outcome,
    })
}

fn withdraw_order(who: &CallerRow, amount: i64) -> Result<WithdrawOrder, Error> {
    let phone = Msisdn::parse(&who.phone).map_err(|e| Error::Internal(e.into()))?;
    WithdrawOrder::new(who.user_id, &phone, amount)
}

fn send_order(
    who: &CallerRow,
    to: Msisdn,
    currency: &str,
    amount: i64,
) -> Result<SendOrder, Error> {
    Ok(SendOrder {
        from_user_id: who.user_id,
        to_phone: to,
        amount: Amount::new(amount).map_err(|e| Error::Validation(e.to_string()))?,
        currency: CurrencyCode::parse(currency).map_err(|e| Error::Validation(e.to_string()))?,
        note: None,
    })
}
