//! The menu's transitions: [`dial`] on a new session, [`input`] for what the
//! caller typed, [`outcome`] for what an [`Effect`] produced.
//!
//! Navigation everywhere after registration: `0` goes back one screen, `00`
//! goes home, `98` shows more of a long list. Input the screen cannot use
//! asks again with a short hint instead of ending the session.

use uuid::Uuid;

use super::{parse_amount, Ctx, Effect, Outcome, Screen, State, Step, Texts};
use crate::money::show;
use crate::phone::Msisdn;
use crate::pin::{Pin, PinError};

/// Wrong PINs in one session before it ends.
pub const MAX_PIN_TRIES: u8 = 3;
/// List items per page.
const PAGE_ITEMS: usize = 4;

pub(super) fn t(ctx: &Ctx) -> Texts {
    Texts(ctx.lang())
}

pub(super) fn con(text: impl Into<String>, state: State) -> Step {
    Step::Show(Screen::Con(text.into()), state)
}

pub(super) fn end(text: impl Into<String>) -> Step {
    Step::Show(Screen::End(text.into()), State::Ended)
}

fn home_menu(ctx: &Ctx) -> String {
    let caller = ctx.caller;
    t(ctx).main_menu(
        caller.map_or("", |c| c.name.as_str()),
        caller.is_some_and(|c| c.agent_number.is_some()),
    )
}

pub(super) fn home(ctx: &Ctx) -> Step {
    match ctx.caller {
        Some(_) => con(home_menu(ctx), State::Home),
        None => con(t(ctx).welcome_new(), State::RegisterName),
    }
}

/// The first screen of a session.
pub fn dial(ctx: &Ctx) -> Step {
    home(ctx)
}

pub(super) fn fmt(ctx: &Ctx, currency: &str, minor: i64) -> String {
    show(currency, minor, (ctx.exponent)(currency))
}

fn numbered(title: &str, options: &[String]) -> String {
    let lines: Vec<String> = options
        .iter()
        .enumerate()
        .map(|(i, o)| format!("{}. {o}", i + 1))
        .collect();
    format!("{title}\n{}", lines.join("\n"))
}

/// The option a typed number picks, if any.
pub(super) fn pick<'a, T>(options: &'a [T], input: &str) -> Option<&'a T> {
    input
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| options.get(i))
}

pub(super) fn pin_screen(
    ctx: &Ctx,
    raw: &str,
    state: State,
    effect: impl FnOnce(Pin) -> Effect,
) -> Step {
    match Pin::parse(raw) {
        Ok(pin) => Step::Do(effect(pin), state),
        Err(_) => con(t(ctx).pin_format(), state),
    }
}

/// A wrong PIN: ask again, or end the session on the last try or a lock.
fn wrong_pin(ctx: &Ctx, mut state: State, locked: bool) -> Step {
    if locked {
        return end(t(ctx).locked());
    }
    let tries = match &mut state {
        State::SendConfirm { tries, .. }
        | State::WithdrawConfirm { tries, .. }
        | State::BalancePin { tries }
        | State::StatementPin { tries }
        | State::ReversePin { tries }
        | State::ConvertConfirm { tries, .. }
        | State::ReverseConfirm { tries, .. }
        | State::VoucherConfirm { tries, .. }
        | State::CashOutConfirm { tries, .. }
        | State::PayConfirm { tries, .. }
        | State::RequestConfirm { tries, .. }
        | State::CashInConfirm { tries, .. }
        | State::FloatPin { tries }
        | State::AgentVoucherPin { tries, .. } => tries,
        _ => return end(t(ctx).wrong_pin_end()),
    };
    *tries += 1;
    if *tries >= MAX_PIN_TRIES {
        end(t(ctx).wrong_pin_end())
    } else {
        con(t(ctx).wrong_pin_try(), state)
    }
}

/// The screen one step back from `state`.
fn back(state: State, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match state {
        State::RegisterPin { .. } => con(t.welcome_new(), State::RegisterName),
        State::RegisterConfirm { name, .. } => con(t.choose_pin(), State::RegisterPin { name }),
        State::SendCurrency { .. } | State::SendAmount { .. } => {
            con(t.enter_phone(), State::SendPhone)
        }
        State::SendConfirm {
            to,
            to_name,
            currency,
            ..
        } => con(
            t.enter_amount(&currency),
            State::SendAmount {
                to,
                to_name,
                currency,
            },
        ),
        State::ConvertTo { .. } | State::ConvertAmount { .. } => {
            Step::Do(Effect::Holdings, State::ConvertFrom { options: vec![] })
        }
        State::ConvertConfirm { .. } => {
            Step::Do(Effect::Holdings, State::ConvertFrom { options: vec![] })
        }
        State::ReverseReason { .. } | State::ReverseConfirm { .. } => {
            con(t.enter_pin(), State::ReversePin { tries: 0 })
        }
        State::ChangePinOld | State::Language | State::IdType | State::ResetCode => {
            con(t.account_menu(), State::Account)
        }
        State::IdNumber { .. } => con(t.id_type_menu(), State::IdType),
        State::ResetPin { .. } | State::ResetConfirm { .. } => {
            con(t.enter_reset_code(), State::ResetCode)
        }
        State::WithdrawAmount | State::AgentNumber => con(t.withdraw_menu(), State::WithdrawMethod),
        State::VoucherAmount | State::VoucherConfirm { .. } | State::VoucherCode => {
            con(t.vouchers_menu(), State::VoucherMenu)
        }
        State::AgentAmount { .. } | State::CashOutConfirm { .. } => {
            con(t.enter_agent_number(), State::AgentNumber)
        }
        State::PayNumber { .. } | State::RequestChoose { .. } => con(t.pay_menu(), State::PayMenu),
        State::RequestAction { .. } | State::RequestConfirm { .. } => Step::Do(
            Effect::PendingRequests,
            State::RequestChoose {
                items: vec![],
                page: 0,
            },
        ),
        State::CashInPhone
        | State::CashInAmount { .. }
        | State::CashInConfirm { .. }
        | State::FloatPin { .. }
        | State::AgentVoucherCode
        | State::AgentVoucherPin { .. } => super::counter::agent_home(ctx),
        State::WithdrawConfirm { .. } => con(t.enter_amount("KES"), State::WithdrawAmount),
        State::ChangePinNew { .. } | State::ChangePinConfirm { .. } => {
            con(t.old_pin(), State::ChangePinOld)
        }
        _ => home(ctx),
    }
}

/// What the caller typed on the current screen. (A dispatch table with a
/// line per state, so longer than most functions; each flow is its own.)
pub fn input(state: State, raw: &str, ctx: &Ctx) -> Step {
    let input = raw.trim();
    if state == State::Ended {
        return end(t(ctx).try_later());
    }
    if input == "00" {
        return home(ctx);
    }
    if input == "0" && !matches!(state, State::Home | State::RegisterName) {
        return back(state, ctx);
    }
    match state {
        State::RegisterName | State::RegisterPin { .. } | State::RegisterConfirm { .. } => {
            register(state, input, ctx)
        }
        State::Home => main_menu(input, ctx),
        State::SendPhone
        | State::SendCurrency { .. }
        | State::SendAmount { .. }
        | State::SendConfirm { .. } => send(state, input, ctx),
        State::DepositAmount
        | State::WithdrawMethod
        | State::WithdrawAmount
        | State::WithdrawConfirm { .. } => mpesa(state, input, ctx),
        State::BalancePin { tries } => pin_screen(ctx, input, State::BalancePin { tries }, |pin| {
            Effect::Balances { pin }
        }),
        State::StatementPin { tries } => {
            pin_screen(ctx, input, State::StatementPin { tries }, |pin| {
                Effect::Statement { pin }
            })
        }
        State::Statement { lines, page } => {
            if input == "98" {
                statement_page(ctx, lines, page + 1)
            } else {
                statement_page(ctx, lines, page)
            }
        }
        State::ConvertFrom { .. }
        | State::ConvertTo { .. }
        | State::ConvertAmount { .. }
        | State::ConvertConfirm { .. } => convert(state, input, ctx),
        State::ReversePin { .. }
        | State::ReverseChoose { .. }
        | State::ReverseReason { .. }
        | State::ReverseConfirm { .. } => reverse(state, input, ctx),
        State::Account
        | State::ChangePinOld
        | State::ChangePinNew { .. }
        | State::ChangePinConfirm { .. }
        | State::Language => account(state, input, ctx),
        State::IdType
        | State::IdNumber { .. }
        | State::ResetCode
        | State::ResetPin { .. }
        | State::ResetConfirm { .. } => super::desk::desk(state, input, ctx),
        State::VoucherMenu
        | State::VoucherAmount
        | State::VoucherConfirm { .. }
        | State::VoucherCode => super::counter::vouchers(state, input, ctx),
        State::AgentNumber | State::AgentAmount { .. } | State::CashOutConfirm { .. } => {
            super::counter::cash_out(state, input, ctx)
        }
        State::PayMenu
        | State::PayNumber { .. }
        | State::PayAccount { .. }
        | State::PayAmount { .. }
        | State::PayConfirm { .. } => super::merchant::pay(state, input, ctx),
        State::RequestChoose { .. }
        | State::RequestAction { .. }
        | State::RequestConfirm { .. } => super::merchant::requests(state, input, ctx),
        State::AgentMenu
        | State::CashInPhone
        | State::CashInAmount { .. }
        | State::CashInConfirm { .. }
        | State::FloatPin { .. }
        | State::AgentVoucherCode
        | State::AgentVoucherPin { .. } => super::counter::agent(state, input, ctx),
        State::Ended => end(t(ctx).try_later()),
    }
}

fn main_menu(input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match input {
        "1" => con(t.enter_phone(), State::SendPhone),
        "2" => con(t.enter_amount("KES"), State::DepositAmount),
        "3" => con(t.withdraw_menu(), State::WithdrawMethod),
        "4" => con(t.enter_pin(), State::BalancePin { tries: 0 }),
        "5" => Step::Do(Effect::Holdings, State::ConvertFrom { options: vec![] }),
        "6" => con(t.enter_pin(), State::StatementPin { tries: 0 }),
        "7" => con(t.enter_pin(), State::ReversePin { tries: 0 }),
        "8" => con(t.account_menu(), State::Account),
        "9" => con(t.vouchers_menu(), State::VoucherMenu),
        "10" => con(t.pay_menu(), State::PayMenu),
        "11" if ctx.caller.is_some_and(|c| c.agent_number.is_some()) => {
            super::counter::agent_home(ctx)
        }
        _ => con(
            format!("{}\n{}", t.invalid_choice(), home_menu(ctx)),
            State::Home,
        ),
    }
}

/// M-Pesa deposits (a prompt on the phone) and withdrawals (PIN-confirmed).
fn mpesa(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match state {
        State::DepositAmount => match parse_amount(input, 0) {
            Some(shillings) => Step::Do(
                Effect::Deposit {
                    amount: shillings * 100,
                },
                State::DepositAmount,
            ),
            None => con(t.amount_hint(), State::DepositAmount),
        },
        State::WithdrawMethod => match input {
            "1" => con(t.enter_amount("KES"), State::WithdrawAmount),
            "2" => con(t.enter_agent_number(), State::AgentNumber),
            _ => con(
                format!("{}\n{}", t.invalid_choice(), t.withdraw_menu()),
                State::WithdrawMethod,
            ),
        },
        State::WithdrawAmount => match parse_amount(input, 0) {
            Some(shillings) => {
                let amount = shillings * 100;
                Step::Do(
                    Effect::PreviewWithdraw { amount },
                    State::WithdrawConfirm { amount, tries: 0 },
                )
            }
            None => con(t.amount_hint(), State::WithdrawAmount),
        },
        State::WithdrawConfirm { amount, tries } => pin_screen(
            ctx,
            input,
            State::WithdrawConfirm { amount, tries },
            |pin| Effect::Withdraw { amount, pin },
        ),
        _ => home(ctx),
    }
}

fn valid_name(name: &str) -> bool {
    let letters = name.chars().filter(|c| c.is_alphabetic()).count();
    (2..=50).contains(&name.chars().count())
        && letters >= 2
        && name
            .chars()
            .all(|c| c.is_alphabetic() || c == ' ' || c == '-' || c == '\'' || c == '.')
}

fn register(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match state {
        State::RegisterName => {
            let name = input.split_whitespace().collect::<Vec<_>>().join(" ");
            if valid_name(&name) {
                con(t.choose_pin(), State::RegisterPin { name })
            } else {
                con(t.name_hint(), State::RegisterName)
            }
        }
        State::RegisterPin { name } => {
            match Pin::parse(input).and_then(|pin| pin.check_strength().map(|()| pin)) {
                Ok(_) => con(
                    t.confirm_pin(),
                    State::RegisterConfirm {
                        name,
                        pin_at: ctx.inputs.len().saturating_sub(1),
                    },
                ),
                Err(PinError::Weak) => con(t.weak_pin(), State::RegisterPin { name }),
                Err(PinError::Format) => con(t.pin_format(), State::RegisterPin { name }),
            }
        }
        State::RegisterConfirm { name, pin_at } => {
            let first = ctx.inputs.get(pin_at).map(|s| s.trim());
            match (first == Some(input), Pin::parse(input)) {
                (true, Ok(pin)) => Step::Do(
                    Effect::Register {
                        name: name.clone(),
                        pin,
                    },
                    State::RegisterConfirm { name, pin_at },
                ),
                _ => con(t.pins_differ(), State::RegisterPin { name }),
            }
        }
        _ => home(ctx),
    }
}

fn send(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match state {
        State::SendPhone => match Msisdn::parse(input) {
            Ok(phone) => Step::Do(Effect::FindRecipient { phone }, State::SendPhone),
            Err(_) => con(t.phone_hint(), State::SendPhone),
        },
        State::SendCurrency {
            to,
            to_name,
            options,
        } => match pick(&options, input) {
            Some(currency) => {
                let currency = currency.clone();
                con(
                    t.enter_amount(&currency),
                    State::SendAmount {
                        to,
                        to_name,
                        currency,
                    },
                )
            }
            None => {
                let menu = numbered(t.choose_currency(), &options);
                let again = State::SendCurrency {
                    to,
                    to_name,
                    options,
                };
                con(format!("{}\n{menu}", t.invalid_choice()), again)
            }
        },
        State::SendAmount {
            to,
            to_name,
            currency,
        } => send_amount(to, to_name, currency, input, ctx),
        State::SendConfirm {
            to,
            to_name,
            currency,
            amount,
            tries,
        } => {
            let Ok(phone) = Msisdn::parse(&to) else {
                return end(t.try_later());
            };
            let confirm = State::SendConfirm {
                to,
                to_name,
                currency: currency.clone(),
                amount,
                tries,
            };
            pin_screen(ctx, input, confirm, |pin| Effect::Send {
                to: phone,
                currency,
                amount,
                pin,
            })
        }
        _ => home(ctx),
    }
}

/// The amount of a payment: previewed (fee and recipient) before the PIN.
fn send_amount(to: String, to_name: String, currency: String, input: &str, ctx: &Ctx) -> Step {
    match (
        parse_amount(input, (ctx.exponent)(&currency)),
        Msisdn::parse(&to),
    ) {
        (Some(amount), Ok(phone)) => {
            let preview = Effect::PreviewSend {
                to: phone,
                currency: currency.clone(),
                amount,
            };
            Step::Do(
                preview,
                State::SendConfirm {
                    to,
                    to_name,
                    currency,
                    amount,
                    tries: 0,
                },
            )
        }
        _ => con(
            t(ctx).amount_hint(),
            State::SendAmount {
                to,
                to_name,
                currency,
            },
        ),
    }
}

fn statement_page(ctx: &Ctx, lines: Vec<String>, page: usize) -> Step {
    let t = t(ctx);
    let pages = lines.len().div_ceil(PAGE_ITEMS).max(1);
    let page = page.min(pages - 1);
    let shown: Vec<&String> = lines
        .iter()
        .skip(page * PAGE_ITEMS)
        .take(PAGE_ITEMS)
        .collect();
    let mut text = shown
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    if page + 1 < pages {
        text = format!("{text}\n{}", t.more());
    }
    con(
        format!("{text}\n{}", t.nav()),
        State::Statement { lines, page },
    )
}

/// "Invalid choice" above the same list again.
fn choose_again(ctx: &Ctx, title: &str, options: &[String], state: State) -> Step {
    con(
        format!("{}\n{}", t(ctx).invalid_choice(), numbered(title, options)),
        state,
    )
}

fn convert(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match state {
        State::ConvertFrom { options } => match pick(&options, input) {
            Some(from) => {
                let targets: Vec<String> = ctx
                    .currencies
                    .iter()
                    .filter(|c| *c != from)
                    .cloned()
                    .collect();
                let menu = numbered(t.convert_to(), &targets);
                con(
                    menu,
                    State::ConvertTo {
                        from: from.clone(),
                        options: targets,
                    },
                )
            }
            None => choose_again(
                ctx,
                t.convert_from(),
                &options,
                State::ConvertFrom {
                    options: options.clone(),
                },
            ),
        },
        State::ConvertTo { from, options } => match pick(&options, input) {
            Some(to) => con(
                t.enter_amount(&from),
                State::ConvertAmount {
                    from,
                    to: to.clone(),
                },
            ),
            None => {
                let again = State::ConvertTo {
                    from,
                    options: options.clone(),
                };
                choose_again(ctx, t.convert_to(), &options, again)
            }
        },
        State::ConvertAmount { from, to } => match parse_amount(input, (ctx.exponent)(&from)) {
            Some(amount) => {
                let quote = Effect::Quote {
                    from: from.clone(),
                    to: to.clone(),
                    amount,
                };
                Step::Do(quote, State::ConvertAmount { from, to })
            }
            None => con(t.amount_hint(), State::ConvertAmount { from, to }),
        },
        State::ConvertConfirm {
            quote_id,
            to,
            tries,
        } => {
            let confirm = State::ConvertConfirm {
                quote_id,
                to,
                tries,
            };
            pin_screen(ctx, input, confirm, |pin| Effect::Convert { quote_id, pin })
        }
        _ => home(ctx),
    }
}

/// One page of a list numbered across pages, with `98 More` while more
/// follow: the screen's text and the page it shows.
pub(super) fn list_page(ctx: &Ctx, title: &str, labels: &[String], page: usize) -> (String, usize) {
    let pages = labels.len().div_ceil(PAGE_ITEMS).max(1);
    let page = page.min(pages - 1);
    let lines: Vec<String> = labels
        .iter()
        .enumerate()
        .skip(page * PAGE_ITEMS)
        .take(PAGE_ITEMS)
        .map(|(i, label)| format!("{}. {label}", i + 1))
        .collect();
    let mut text = format!("{title}\n{}", lines.join("\n"));
    if page + 1 < pages {
        text = format!("{text}\n{}", t(ctx).more());
    }
    (text, page)
}

fn reverse_page(ctx: &Ctx, items: Vec<(Uuid, String)>, page: usize) -> Step {
    let labels: Vec<String> = items.iter().map(|(_, label)| label.clone()).collect();
    let (text, page) = list_page(ctx, t(ctx).choose_tx(), &labels, page);
    con(text, State::ReverseChoose { items, page })
}

fn reverse(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match state {
        State::ReversePin { tries } => pin_screen(ctx, input, State::ReversePin { tries }, |pin| {
            Effect::Eligible { pin }
        }),
        State::ReverseChoose { items, page } => {
            if input == "98" {
                return reverse_page(ctx, items, page + 1);
            }
            match pick(&items, input) {
                Some((tx_id, label)) => con(
                    t.reason(),
                    State::ReverseReason {
                        tx_id: *tx_id,
                        label: label.clone(),
                    },
                ),
                None => reverse_page(ctx, items, page),
            }
        }
        State::ReverseReason { tx_id, label } => {
            let reason = input.split_whitespace().collect::<Vec<_>>().join(" ");
            if (3..=100).contains(&reason.chars().count()) {
                con(
                    t.enter_pin(),
                    State::ReverseConfirm {
                        tx_id,
                        label,
                        reason,
                        tries: 0,
                    },
                )
            } else {
                con(t.reason_hint(), State::ReverseReason { tx_id, label })
            }
        }
        State::ReverseConfirm {
            tx_id,
            label,
            reason,
            tries,
        } => {
            let confirm = State::ReverseConfirm {
                tx_id,
                label,
                reason: reason.clone(),
                tries,
            };
            pin_screen(ctx, input, confirm, |pin| Effect::Reverse {
                tx_id,
                reason,
                pin,
            })
        }
        _ => home(ctx),
    }
}

fn account(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    let last = ctx.inputs.len().saturating_sub(1);
    match state {
        State::Account => match input {
            "1" => con(t.old_pin(), State::ChangePinOld),
            "2" => con(t.language_menu(), State::Language),
            "3" => end(t.kyc_status(ctx.caller.map_or("UNKNOWN", |c| c.kyc_status.as_str()))),
            "4" => con(t.id_type_menu(), State::IdType),
            "5" => con(t.enter_reset_code(), State::ResetCode),
            _ => con(
                format!("{}\n{}", t.invalid_choice(), t.account_menu()),
                State::Account,
            ),
        },
        State::ChangePinOld => match Pin::parse(input) {
            Ok(_) => con(t.new_pin(), State::ChangePinNew { old_at: last }),
            Err(_) => con(t.pin_format(), State::ChangePinOld),
        },
        State::ChangePinNew { old_at } => {
            let old = ctx.inputs.get(old_at).map(|s| s.trim());
            match Pin::parse(input).and_then(|pin| pin.check_strength().map(|()| pin)) {
                Ok(_) if old == Some(input) => con(t.same_pin(), State::ChangePinNew { old_at }),
                Ok(_) => con(
                    t.confirm_pin(),
                    State::ChangePinConfirm {
                        old_at,
                        new_at: last,
                    },
                ),
                Err(PinError::Weak) => con(t.weak_pin(), State::ChangePinNew { old_at }),
                Err(PinError::Format) => con(t.pin_format(), State::ChangePinNew { old_at }),
            }
        }
        State::ChangePinConfirm { old_at, new_at } => {
            let pins = (
                ctx.inputs
                    .get(old_at)
                    .and_then(|p| Pin::parse(p.trim()).ok()),
                ctx.inputs.get(new_at).map(|s| s.trim()),
            );
            match pins {
                (Some(old), Some(new)) if new == input => match Pin::parse(input) {
                    Ok(new) => Step::Do(
                        Effect::ChangePin { old, new },
                        State::ChangePinConfirm { old_at, new_at },
                    ),
                    Err(_) => con(t.pins_differ(), State::ChangePinNew { old_at }),
                },
                _ => con(t.pins_differ(), State::ChangePinNew { old_at }),
            }
        }
        State::Language => match input {
            "1" => Step::Do(Effect::SetLanguage(super::Lang::En), State::Language),
            "2" => Step::Do(Effect::SetLanguage(super::Lang::Sw), State::Language),
            _ => con(
                format!("{}\n{}", t.invalid_choice(), t.language_menu()),
                State::Language,
            ),
        },
        _ => home(ctx),
    }
}

/// What an effect produced, in the state that asked for it.
pub fn outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    match (state, result) {
        (_, Outcome::Failed) => end(t(ctx).try_later()),
        (state, Outcome::WrongPin { locked }) => wrong_pin(ctx, state, locked),
        (State::RegisterConfirm { name, .. }, result) => registration_outcome(name, result, ctx),
        (
            state @ (State::SendPhone | State::SendCurrency { .. } | State::SendConfirm { .. }),
            result,
        ) => send_outcome(state, result, ctx),
        (state @ (State::DepositAmount | State::WithdrawConfirm { .. }), result) => {
            mpesa_outcome(state, result, ctx)
        }
        (State::BalancePin { .. }, Outcome::Balances(wallets)) => balances(wallets, ctx),
        (State::StatementPin { .. }, Outcome::Statement(lines)) if lines.is_empty() => {
            end(t(ctx).no_transactions())
        }
        (State::StatementPin { .. }, Outcome::Statement(lines)) => statement_page(ctx, lines, 0),
        (
            state @ (State::ConvertFrom { .. }
            | State::ConvertAmount { .. }
            | State::ConvertConfirm { .. }),
            result,
        ) => convert_outcome(state, result, ctx),
        (State::ReversePin { .. }, Outcome::Eligible(items)) if items.is_empty() => {
            end(t(ctx).none_eligible())
        }
        (State::ReversePin { .. }, Outcome::Eligible(items)) => reverse_page(ctx, items, 0),
        (State::ReverseConfirm { .. }, Outcome::ReversalRequested { reference }) => {
            end(t(ctx).reversal_requested(&reference))
        }
        (state @ (State::ChangePinConfirm { .. } | State::Language), result) => {
            account_outcome(state, result, ctx)
        }
        (state @ (State::IdNumber { .. } | State::ResetConfirm { .. }), result) => {
            super::desk::outcome(state, result, ctx)
        }
        (state @ State::PayConfirm { .. }, result) => super::merchant::outcome(state, result, ctx),
        (
            state @ (State::RequestChoose { .. }
            | State::RequestAction { .. }
            | State::RequestConfirm { .. }),
            result,
        ) => super::merchant::requests_outcome(state, result, ctx),
        (
            state @ (State::VoucherAmount
            | State::VoucherConfirm { .. }
            | State::VoucherCode
            | State::AgentNumber
            | State::AgentAmount { .. }
            | State::CashOutConfirm { .. }
            | State::CashInAmount { .. }
            | State::CashInConfirm { .. }
            | State::FloatPin { .. }
            | State::AgentVoucherPin { .. }),
            result,
        ) => super::counter::outcome(state, result, ctx),
        (_, result) => ended(result, ctx),
    }
}

/// An outcome the screen has no special answer for ends the session.
pub(super) fn ended(result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match result {
        Outcome::Refused(refusal) => end(t.refused(refusal)),
        Outcome::Invalid => end(t.invalid_request()),
        _ => end(t.try_later()),
    }
}

fn registration_outcome(name: String, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match result {
        Outcome::Done => end(t.registered(&name)),
        Outcome::WeakPin => con(t.weak_pin(), State::RegisterPin { name }),
        other => ended(other, ctx),
    }
}

fn send_outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match (state, result) {
        (State::SendPhone, Outcome::Recipient { name }) => {
            let to = ctx
                .inputs
                .last()
                .and_then(|p| Msisdn::parse(p).ok())
                .map(|p| p.to_string())
                .unwrap_or_default();
            let options = vec![];
            Step::Do(
                Effect::Holdings,
                State::SendCurrency {
                    to,
                    to_name: name,
                    options,
                },
            )
        }
        (State::SendPhone, Outcome::Unknown) => con(t.not_registered(), State::SendPhone),
        (State::SendPhone, Outcome::Refused(refusal)) => con(
            format!("{}\n{}", t.refused(refusal), t.enter_phone()),
            State::SendPhone,
        ),
        (State::SendCurrency { to, to_name, .. }, Outcome::Holdings(held)) => {
            choose_currency(to, to_name, held, ctx)
        }
        (
            State::SendConfirm {
                to,
                to_name,
                currency,
                amount,
                tries,
            },
            Outcome::Preview { fee },
        ) => {
            let screen = t.confirm_send(
                &fmt(ctx, &currency, amount),
                &to_name,
                &to,
                &fmt(ctx, &currency, fee),
            );
            con(
                screen,
                State::SendConfirm {
                    to,
                    to_name,
                    currency,
                    amount,
                    tries,
                },
            )
        }
        (
            State::SendConfirm {
                to_name,
                currency,
                amount,
                ..
            },
            Outcome::Sent { reference, balance },
        ) => end(t.sent(
            &reference,
            &fmt(ctx, &currency, amount),
            &to_name,
            &fmt(ctx, &currency, balance),
        )),
        (_, result) => ended(result, ctx),
    }
}

/// The currencies a payment can be made in: the home currency first, then
/// any other the caller holds. With only one, no question is asked.
fn choose_currency(to: String, to_name: String, held: Vec<(String, i64)>, ctx: &Ctx) -> Step {
    let t = t(ctx);
    let home = ctx
        .caller
        .map_or_else(|| "KES".to_owned(), |c| c.home_currency.clone());
    let mut options = vec![home.clone()];
    options.extend(held.into_iter().map(|(c, _)| c).filter(|c| *c != home));
    if options.len() == 1 {
        return con(
            t.enter_amount(&home),
            State::SendAmount {
                to,
                to_name,
                currency: home,
            },
        );
    }
    con(
        numbered(t.choose_currency(), &options),
        State::SendCurrency {
            to,
            to_name,
            options,
        },
    )
}

fn mpesa_outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match (state, result) {
        (State::DepositAmount, Outcome::DepositStarted) => {
            let shillings = ctx
                .inputs
                .last()
                .and_then(|a| parse_amount(a.trim(), 0))
                .unwrap_or(0);
            end(t.deposit_started(&fmt(ctx, "KES", shillings * 100)))
        }
        (State::DepositAmount, Outcome::Refused(refusal)) => con(
            format!("{}\n{}", t.refused(refusal), t.enter_amount("KES")),
            State::DepositAmount,
        ),
        (State::WithdrawConfirm { amount, tries }, Outcome::Preview { fee }) => con(
            t.confirm_withdraw(&fmt(ctx, "KES", amount), &fmt(ctx, "KES", fee)),
            State::WithdrawConfirm { amount, tries },
        ),
        (State::WithdrawConfirm { amount, .. }, Outcome::Withdrawn { reference, balance }) => {
            end(t.withdrawn(
                &reference,
                &fmt(ctx, "KES", amount),
                &fmt(ctx, "KES", balance),
            ))
        }
        (_, result) => ended(result, ctx),
    }
}

fn balances(wallets: Vec<(String, i64)>, ctx: &Ctx) -> Step {
    let t = t(ctx);
    if wallets.is_empty() {
        return end(t.no_balance());
    }
    let lines: Vec<String> = wallets
        .iter()
        .map(|(c, minor)| fmt(ctx, c, *minor))
        .collect();
    end(t.balances(&lines.join("\n")))
}

fn convert_outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match (state, result) {
        (State::ConvertFrom { .. }, Outcome::Holdings(held)) if held.is_empty() => {
            end(t.no_balance())
        }
        (State::ConvertFrom { .. }, Outcome::Holdings(held)) => {
            let options: Vec<String> = held.into_iter().map(|(c, _)| c).collect();
            con(
                numbered(t.convert_from(), &options),
                State::ConvertFrom { options },
            )
        }
        (
            State::ConvertAmount { from, to },
            Outcome::Quote {
                quote_id,
                amount,
                converted,
                rate,
                fee,
            },
        ) => {
            let screen = t.confirm_convert(
                &fmt(ctx, &from, amount),
                &fmt(ctx, &to, converted),
                &rate,
                &fmt(ctx, &from, fee),
            );
            con(
                screen,
                State::ConvertConfirm {
                    quote_id,
                    to,
                    tries: 0,
                },
            )
        }
        (State::ConvertAmount { from, to }, Outcome::Refused(refusal)) => con(
            format!("{}\n{}", t.refused(refusal), t.enter_amount(&from)),
            State::ConvertAmount { from, to },
        ),
        (
            State::ConvertConfirm { to, .. },
            Outcome::Converted {
                reference,
                converted,
                balance,
            },
        ) => end(t.converted(
            &reference,
            &fmt(ctx, &to, converted),
            &fmt(ctx, &to, balance),
        )),
        (_, result) => ended(result, ctx),
    }
}

fn account_outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match (state, result) {
        (State::ChangePinConfirm { .. }, Outcome::Done) => end(t.pin_changed()),
        (State::ChangePinConfirm { old_at, .. }, Outcome::WeakPin) => {
            con(t.weak_pin(), State::ChangePinNew { old_at })
        }
        (State::Language, Outcome::Done) => {
            // The caller's language changed with this very step.
            let lang = match ctx.inputs.last().map(|s| s.trim()) {
                Some("2") => super::Lang::Sw,
                _ => super::Lang::En,
            };
            end(Texts(lang).language_set())
        }
        (_, result) => ended(result, ctx),
    }
}
