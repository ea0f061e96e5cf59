//! Pay merchant (Lipa na M-Pesa's Buy Goods and Paybill): a till number,
//! or a paybill number and the customer's account with the business; the
//! amount; the business's name on the screen before the PIN. The customer
//! pays no fee. *Pending requests* lists what businesses asked the caller
//! to pay: each is paid with the PIN or declined.

use super::counter::{amount_in, home_currency};
use super::menu::{con, end, ended, fmt, home, list_page, pick, pin_screen, t};
use super::{Ctx, Effect, Outcome, PendingRequest, State, Step};
use crate::refusal::Refusal;

fn six_digits(input: &str) -> Option<String> {
    (input.len() == 6 && input.bytes().all(|b| b.is_ascii_digit())).then(|| input.to_owned())
}

/// A paybill account number: 1 to 20 letters, digits or `-`, upper-cased.
pub fn pay_account(input: &str) -> Option<String> {
    let input = input.trim();
    ((1..=20).contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    .then(|| input.to_ascii_uppercase())
}

pub(super) fn pay(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    let currency = home_currency(ctx);
    match state {
        State::PayMenu => match input {
            "1" => con(t.enter_till(), State::PayNumber { paybill: false }),
            "2" => con(t.enter_paybill(), State::PayNumber { paybill: true }),
            "3" => Step::Do(
                Effect::PendingRequests,
                State::RequestChoose {
                    items: vec![],
                    page: 0,
                },
            ),
            _ => con(
                format!("{}\n{}", t.invalid_choice(), t.pay_menu()),
                State::PayMenu,
            ),
        },
        State::PayNumber { paybill } => match (six_digits(input), paybill) {
            (Some(number), true) => con(t.enter_pay_account(), State::PayAccount { number }),
            (Some(number), false) => con(
                t.enter_amount(&currency),
                State::PayAmount {
                    paybill,
                    number,
                    account: None,
                },
            ),
            (None, _) => con(t.pay_number_hint(), State::PayNumber { paybill }),
        },
        State::PayAccount { number } => match pay_account(input) {
            Some(account) => con(
                t.enter_amount(&currency),
                State::PayAmount {
                    paybill: true,
                    number,
                    account: Some(account),
                },
            ),
            None => con(t.pay_account_hint(), State::PayAccount { number }),
        },
        State::PayAmount {
            paybill,
            number,
            account,
        } => match amount_in(ctx, &currency, input) {
            Some(amount) => preview(paybill, number, account, (currency, amount)),
            None => con(
                t.amount_hint(),
                State::PayAmount {
                    paybill,
                    number,
                    account,
                },
            ),
        },
        confirm @ State::PayConfirm { .. } => confirm_with_pin(confirm, input, ctx),
        _ => home(ctx),
    }
}

/// Looks the business up before the PIN screen.
fn preview(
    paybill: bool,
    number: String,
    account: Option<String>,
    (currency, amount): (String, i64),
) -> Step {
    let effect = Effect::PreviewPay {
        paybill,
        number: number.clone(),
        account: account.clone(),
        currency: currency.clone(),
        amount,
    };
    let confirm = State::PayConfirm {
        paybill,
        number,
        account,
        merchant: String::new(),
        currency,
        amount,
        tries: 0,
    };
    Step::Do(effect, confirm)
}

fn confirm_with_pin(confirm: State, input: &str, ctx: &Ctx) -> Step {
    let State::PayConfirm {
        paybill,
        number,
        account,
        currency,
        amount,
        ..
    } = confirm.clone()
    else {
        return home(ctx);
    };
    pin_screen(ctx, input, confirm, |pin| Effect::Pay {
        paybill,
        number,
        account,
        currency,
        amount,
        pin,
    })
}

pub(super) fn outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match (state, result) {
        (
            State::PayConfirm { paybill, .. },
            Outcome::Refused(refusal @ Refusal::MerchantUnknown),
        ) => {
            let ask = if paybill {
                t.enter_paybill()
            } else {
                t.enter_till()
            };
            con(
                format!("{}\n{ask}", t.refused(refusal)),
                State::PayNumber { paybill },
            )
        }
        (
            State::PayConfirm {
                paybill,
                number,
                account,
                currency,
                amount,
                tries,
                ..
            },
            Outcome::MerchantFound { name },
        ) => con(
            t.confirm_pay(
                &fmt(ctx, &currency, amount),
                &name,
                &number,
                account.as_deref(),
            ),
            State::PayConfirm {
                paybill,
                number,
                account,
                merchant: name,
                currency,
                amount,
                tries,
            },
        ),
        (
            State::PayConfirm {
                merchant,
                currency,
                amount,
                ..
            },
            Outcome::Sent { reference, balance },
        ) => end(t.paid_merchant(
            &reference,
            &fmt(ctx, &currency, amount),
            &merchant,
            &fmt(ctx, &currency, balance),
        )),
        (_, result) => ended(result, ctx),
    }
}

fn requests_page(ctx: &Ctx, items: Vec<PendingRequest>, page: usize) -> Step {
    let t = t(ctx);
    let labels: Vec<String> = items
        .iter()
        .map(|r| t.request_line(&r.merchant, &fmt(ctx, &r.currency, r.amount)))
        .collect();
    let (text, page) = list_page(ctx, t.pending_requests(), &labels, page);
    con(text, State::RequestChoose { items, page })
}

fn request_screen(ctx: &Ctx, item: PendingRequest, hint: Option<&str>) -> Step {
    let t = t(ctx);
    let amount = fmt(ctx, &item.currency, item.amount);
    let text = t.request_action(&item.merchant, &amount, &item.reference);
    let text = match hint {
        Some(hint) => format!("{hint}\n{text}"),
        None => text,
    };
    con(text, State::RequestAction { item })
}

pub(super) fn requests(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match state {
        State::RequestChoose { items, page } => {
            if input == "98" {
                return requests_page(ctx, items, page + 1);
            }
            match pick(&items, input) {
                Some(item) => request_screen(ctx, item.clone(), None),
                None => requests_page(ctx, items, page),
            }
        }
        State::RequestAction { item } => match input {
            "1" => con(t.enter_pin(), State::RequestConfirm { item, tries: 0 }),
            "2" => Step::Do(
                Effect::DeclineRequest { id: item.id },
                State::RequestAction { item },
            ),
            _ => request_screen(ctx, item, Some(t.invalid_choice())),
        },
        State::RequestConfirm { item, tries } => {
            let id = item.id;
            let confirm = State::RequestConfirm { item, tries };
            pin_screen(ctx, input, confirm, |pin| Effect::ApproveRequest {
                id,
                pin,
            })
        }
        _ => home(ctx),
    }
}

pub(super) fn requests_outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match (state, result) {
        (State::RequestChoose { .. }, Outcome::PaymentRequests(items)) if items.is_empty() => {
            end(t.no_requests())
        }
        (State::RequestChoose { .. }, Outcome::PaymentRequests(items)) => {
            requests_page(ctx, items, 0)
        }
        (State::RequestAction { .. }, Outcome::Done) => end(t.request_declined()),
        (State::RequestConfirm { item, .. }, Outcome::Sent { reference, balance }) => end(t
            .paid_merchant(
                &reference,
                &fmt(ctx, &item.currency, item.amount),
                &item.merchant,
                &fmt(ctx, &item.currency, balance),
            )),
        (_, result) => ended(result, ctx),
    }
}
