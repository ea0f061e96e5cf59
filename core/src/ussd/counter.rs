//! The voucher menu, withdrawing at an agent, and an agent's own counter:
//! cash-in for a customer (the customer's name shown before the PIN),
//! the float balance, and a bearer's voucher redeemed for cash.

use super::menu::{con, end, ended, fmt, home, pin_screen, t};
use super::{parse_amount, Ctx, Effect, Outcome, State, Step};
use crate::phone::Msisdn;
use crate::voucher;

/// Days a voucher bought over USSD stays valid.
pub const VOUCHER_DAYS: i64 = 30;

pub(super) fn home_currency(ctx: &Ctx) -> String {
    ctx.caller
        .map_or_else(|| "KES".to_owned(), |c| c.home_currency.clone())
}

pub(super) fn amount_in(ctx: &Ctx, currency: &str, input: &str) -> Option<i64> {
    parse_amount(input, (ctx.exponent)(currency))
}

pub(super) fn vouchers(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    let currency = home_currency(ctx);
    match state {
        State::VoucherMenu => match input {
            "1" => con(t.enter_amount(&currency), State::VoucherAmount),
            "2" => con(t.enter_voucher_code(), State::VoucherCode),
            _ => con(
                format!("{}\n{}", t.invalid_choice(), t.vouchers_menu()),
                State::VoucherMenu,
            ),
        },
        State::VoucherAmount => match amount_in(ctx, &currency, input) {
            Some(amount) => Step::Do(
                Effect::PreviewVoucher {
                    currency: currency.clone(),
                    amount,
                },
                State::VoucherConfirm {
                    currency,
                    amount,
                    tries: 0,
                },
            ),
            None => con(t.amount_hint(), State::VoucherAmount),
        },
        State::VoucherConfirm {
            currency,
            amount,
            tries,
        } => {
            let confirm = State::VoucherConfirm {
                currency: currency.clone(),
                amount,
                tries,
            };
            pin_screen(ctx, input, confirm, |pin| Effect::BuyVoucher {
                currency,
                amount,
                pin,
            })
        }
        State::VoucherCode => match voucher::parse_code(input) {
            Some(code) => Step::Do(Effect::RedeemVoucher { code }, State::VoucherCode),
            None => con(t.voucher_code_hint(), State::VoucherCode),
        },
        _ => home(ctx),
    }
}

fn agent_number(input: &str) -> Option<String> {
    (input.len() == 6 && input.bytes().all(|b| b.is_ascii_digit())).then(|| input.to_owned())
}

pub(super) fn cash_out(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    let currency = home_currency(ctx);
    match state {
        State::AgentNumber => match agent_number(input) {
            Some(agent) => con(t.enter_amount(&currency), State::AgentAmount { agent }),
            None => con(t.agent_number_hint(), State::AgentNumber),
        },
        State::AgentAmount { agent } => match amount_in(ctx, &currency, input) {
            Some(amount) => Step::Do(
                Effect::PreviewCashOut {
                    agent: agent.clone(),
                    currency: currency.clone(),
                    amount,
                },
                State::CashOutConfirm {
                    agent,
                    agent_name: String::new(),
                    currency,
                    amount,
                    tries: 0,
                },
            ),
            None => con(t.amount_hint(), State::AgentAmount { agent }),
        },
        State::CashOutConfirm {
            agent,
            agent_name,
            currency,
            amount,
            tries,
        } => {
            let confirm = State::CashOutConfirm {
                agent: agent.clone(),
                agent_name,
                currency: currency.clone(),
                amount,
                tries,
            };
            pin_screen(ctx, input, confirm, |pin| Effect::CashOut {
                agent,
                currency,
                amount,
                pin,
            })
        }
        _ => home(ctx),
    }
}

/// The agent's menu, for an active agent; anyone else goes home.
pub(super) fn agent_home(ctx: &Ctx) -> Step {
    match ctx.caller.and_then(|c| c.agent_number.as_deref()) {
        Some(number) => con(t(ctx).agent_menu(number), State::AgentMenu),
        None => home(ctx),
    }
}

pub(super) fn agent(state: State, input: &str, ctx: &Ctx) -> Step {
    if ctx.caller.and_then(|c| c.agent_number.as_ref()).is_none() {
        return home(ctx);
    }
    let t = t(ctx);
    let last = ctx.inputs.len().saturating_sub(1);
    match state {
        State::CashInPhone | State::CashInAmount { .. } | State::CashInConfirm { .. } => {
            cash_in(state, input, ctx)
        }
        State::AgentMenu => match input {
            "1" => con(t.enter_customer_phone(), State::CashInPhone),
            "2" => con(t.enter_pin(), State::FloatPin { tries: 0 }),
            "3" => con(t.enter_voucher_code(), State::AgentVoucherCode),
            _ => {
                let menu = t.agent_menu(
                    ctx.caller
                        .and_then(|c| c.agent_number.as_deref())
                        .unwrap_or(""),
                );
                con(format!("{}\n{menu}", t.invalid_choice()), State::AgentMenu)
            }
        },
        State::FloatPin { tries } => pin_screen(ctx, input, State::FloatPin { tries }, |pin| {
            Effect::Float { pin }
        }),
        State::AgentVoucherCode => match voucher::parse_code(input) {
            Some(_) => con(
                t.enter_pin(),
                State::AgentVoucherPin {
                    code_at: last,
                    tries: 0,
                },
            ),
            None => con(t.voucher_code_hint(), State::AgentVoucherCode),
        },
        State::AgentVoucherPin { code_at, tries } => {
            let Some(code) = ctx.inputs.get(code_at).and_then(|c| voucher::parse_code(c)) else {
                return end(t.try_later());
            };
            pin_screen(
                ctx,
                input,
                State::AgentVoucherPin { code_at, tries },
                |pin| Effect::CashVoucher { code, pin },
            )
        }
        _ => home(ctx),
    }
}

/// Cash-in: the customer's phone, the amount, then (after the preview
/// names the customer) the agent's PIN.
fn cash_in(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    let currency = home_currency(ctx);
    match state {
        State::CashInPhone => match Msisdn::parse(input) {
            Ok(phone) => con(
                t.enter_amount(&currency),
                State::CashInAmount {
                    phone: phone.to_string(),
                },
            ),
            Err(_) => con(t.phone_hint(), State::CashInPhone),
        },
        State::CashInAmount { phone } => {
            match (amount_in(ctx, &currency, input), Msisdn::parse(&phone)) {
                (Some(amount), Ok(to)) => Step::Do(
                    Effect::PreviewCashIn {
                        phone: to,
                        currency: currency.clone(),
                        amount,
                    },
                    State::CashInConfirm {
                        phone,
                        name: String::new(),
                        currency,
                        amount,
                        tries: 0,
                    },
                ),
                _ => con(t.amount_hint(), State::CashInAmount { phone }),
            }
        }
        State::CashInConfirm {
            phone,
            name,
            currency,
            amount,
            tries,
        } => {
            let Ok(to) = Msisdn::parse(&phone) else {
                return end(t.try_later());
            };
            let confirm = State::CashInConfirm {
                phone,
                name,
                currency: currency.clone(),
                amount,
                tries,
            };
            pin_screen(ctx, input, confirm, |pin| Effect::CashIn {
                phone: to,
                currency,
                amount,
                pin,
            })
        }
        _ => home(ctx),
    }
}

/// What the voucher and agent effects came to.
pub(super) fn outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    match state {
        State::VoucherConfirm { .. } | State::VoucherCode | State::AgentVoucherPin { .. } => {
            voucher_outcome(state, result, ctx)
        }
        State::CashOutConfirm { .. } => cash_out_outcome(state, result, ctx),
        _ => agent_outcome(state, result, ctx),
    }
}

fn voucher_outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match (state, result) {
        (
            State::VoucherConfirm {
                currency,
                amount,
                tries,
            },
            Outcome::Preview { fee },
        ) => con(
            t.confirm_voucher(
                &fmt(ctx, &currency, amount),
                &fmt(ctx, &currency, fee),
                VOUCHER_DAYS,
            ),
            State::VoucherConfirm {
                currency,
                amount,
                tries,
            },
        ),
        (State::VoucherConfirm { .. }, Outcome::VoucherBought { reference }) => {
            end(t.voucher_bought(&reference))
        }
        (
            State::VoucherCode,
            Outcome::Refused(refusal @ crate::refusal::Refusal::VoucherUnknown),
        ) => con(
            format!("{}\n{}", t.refused(refusal), t.enter_voucher_code()),
            State::VoucherCode,
        ),
        (
            State::VoucherCode,
            Outcome::VoucherRedeemed {
                reference,
                currency,
                amount,
                balance,
            },
        ) => end(t.voucher_redeemed(
            &reference,
            &fmt(ctx, &currency, amount),
            &fmt(ctx, &currency, balance),
        )),
        (
            State::AgentVoucherPin { .. },
            Outcome::VoucherRedeemed {
                reference,
                currency,
                amount,
                balance,
            },
        ) => end(t.voucher_cashed(
            &reference,
            &fmt(ctx, &currency, amount),
            &fmt(ctx, &currency, balance),
        )),
        (_, result) => ended(result, ctx),
    }
}

fn cash_out_outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match (state, result) {
        (
            State::CashOutConfirm { .. },
            Outcome::Refused(refusal @ crate::refusal::Refusal::AgentUnknown),
        ) => con(
            format!("{}\n{}", t.refused(refusal), t.enter_agent_number()),
            State::AgentNumber,
        ),
        (
            State::CashOutConfirm {
                agent,
                currency,
                amount,
                tries,
                ..
            },
            Outcome::AgentFound { name, fee },
        ) => con(
            t.confirm_cash_out(
                &fmt(ctx, &currency, amount),
                &name,
                &agent,
                &fmt(ctx, &currency, fee),
            ),
            State::CashOutConfirm {
                agent,
                agent_name: name,
                currency,
                amount,
                tries,
            },
        ),
        (
            State::CashOutConfirm {
                agent_name,
                currency,
                amount,
                ..
            },
            Outcome::Withdrawn { reference, balance },
        ) => end(t.cashed_out(
            &reference,
            &fmt(ctx, &currency, amount),
            &agent_name,
            &fmt(ctx, &currency, balance),
        )),
        (_, result) => ended(result, ctx),
    }
}

fn agent_outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match (state, result) {
        (
            State::CashInConfirm {
                phone,
                currency,
                amount,
                tries,
                ..
            },
            Outcome::CustomerFound { name, commission },
        ) => {
            let screen = t.confirm_cash_in(
                &fmt(ctx, &currency, amount),
                &name,
                &phone,
                &fmt(ctx, &currency, commission),
            );
            con(
                screen,
                State::CashInConfirm {
                    phone,
                    name,
                    currency,
                    amount,
                    tries,
                },
            )
        }
        (
            State::CashInConfirm {
                name,
                currency,
                amount,
                ..
            },
            Outcome::CashedIn { reference, float },
        ) => end(t.cashed_in(
            &reference,
            &fmt(ctx, &currency, amount),
            &name,
            &fmt(ctx, &currency, float),
        )),
        (State::CashInAmount { .. } | State::CashInConfirm { .. }, Outcome::Unknown) => {
            con(t.not_registered(), State::CashInPhone)
        }
        (State::FloatPin { .. }, Outcome::Float(floats)) => {
            let lines: Vec<String> = floats
                .iter()
                .map(|(c, minor)| fmt(ctx, c, *minor))
                .collect();
            end(t.float(&lines.join("\n")))
        }
        (_, result) => ended(result, ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{dial, input, outcome as after, Caller, Lang, Screen};
    use super::*;

    fn agent_caller() -> Caller {
        Caller {
            name: "Mary Wanjiru".into(),
            lang: Lang::En,
            home_currency: "KES".into(),
            kyc_status: "VERIFIED".into(),
            agent_number: Some("204815".into()),
        }
    }

    fn ctx<'a>(caller: &'a Caller, inputs: &'a [String]) -> Ctx<'a> {
        Ctx {
            caller: Some(caller),
            inputs,
            exponent: &|_| 2,
            currencies: &[],
        }
    }

    fn screen(step: &Step) -> (&str, &State) {
        match step {
            Step::Show(Screen::Con(text) | Screen::End(text), state) => (text.as_str(), state),
            Step::Do(_, state) => ("", state),
        }
    }

    #[test]
    fn an_agent_cashes_in_after_seeing_the_customers_name() {
        let caller = agent_caller();
        let inputs: Vec<String> = vec![];
        let home = dial(&ctx(&caller, &inputs));
        assert!(screen(&home).0.contains("11. Agent"));
        let menu = input(State::Home, "11", &ctx(&caller, &inputs));
        assert_eq!(screen(&menu).1, &State::AgentMenu);
        let phone = input(State::AgentMenu, "1", &ctx(&caller, &inputs));
        let amount = input(
            screen(&phone).1.clone(),
            "0712345678",
            &ctx(&caller, &inputs),
        );
        let preview = input(screen(&amount).1.clone(), "500", &ctx(&caller, &inputs));
        let Step::Do(Effect::PreviewCashIn { amount: 50_000, .. }, waiting) = preview else {
            panic!("expected a preview: {preview:?}");
        };
        let found = Outcome::CustomerFound {
            name: "BARAKA JUMA".into(),
            commission: 100,
        };
        let confirm = after(waiting, found, &ctx(&caller, &inputs));
        let (text, state) = screen(&confirm);
        assert!(
            text.contains("Cash in KES 500.00 to BARAKA JUMA +254712345678"),
            "{text}"
        );
        let Step::Do(Effect::CashIn { amount: 50_000, .. }, _) =
            input(state.clone(), "5831", &ctx(&caller, &inputs))
        else {
            panic!("the PIN confirms the cash-in");
        };
    }

    #[test]
    fn a_customer_is_not_offered_the_agent_menu() {
        let caller = Caller {
            agent_number: None,
            ..agent_caller()
        };
        let inputs: Vec<String> = vec![];
        assert!(!screen(&dial(&ctx(&caller, &inputs))).0.contains("Agent"));
        assert_eq!(
            screen(&input(State::Home, "11", &ctx(&caller, &inputs))).1,
            &State::Home
        );
        assert_eq!(
            screen(&input(State::AgentMenu, "1", &ctx(&caller, &inputs))).1,
            &State::Home
        );
    }

    #[test]
    fn a_mistyped_voucher_code_is_caught_before_it_counts() {
        let caller = agent_caller();
        let inputs: Vec<String> = vec![];
        let again = input(
            State::VoucherCode,
            "4539 1488 0343 6468",
            &ctx(&caller, &inputs),
        );
        assert_eq!(screen(&again).1, &State::VoucherCode);
        let Step::Do(Effect::RedeemVoucher { code }, _) = input(
            State::VoucherCode,
            "4539 1488 0343 6467",
            &ctx(&caller, &inputs),
        ) else {
            panic!("a well-formed code is tried");
        };
        assert_eq!(code, "4539148803436467");
    }

    #[test]
    fn an_agent_voucher_code_is_read_back_from_the_inputs_not_stored() {
        let caller = agent_caller();
        let inputs: Vec<String> = vec!["11".into(), "3".into(), "4539148803436467".into()];
        let pin = input(
            State::AgentVoucherCode,
            "4539148803436467",
            &ctx(&caller, &inputs),
        );
        let state = screen(&pin).1.clone();
        assert_eq!(
            state,
            State::AgentVoucherPin {
                code_at: 2,
                tries: 0
            }
        );
        assert!(!serde_json::to_string(&state).unwrap().contains("4539"));
        let Step::Do(Effect::CashVoucher { code, .. }, _) =
            input(state, "5831", &ctx(&caller, &inputs))
        else {
            panic!("the PIN confirms");
        };
        assert_eq!(code, "4539148803436467");
    }
}
