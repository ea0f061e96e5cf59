//! My account → Submit ID document, and Forgot PIN: the one-time code an
//! operator sent, then a new PIN twice. Neither the document number, the
//! code nor the PIN is kept in the session state: the number and the code
//! travel in the effect, the PIN confirmation is read back from the
//! session's inputs by position.

use super::menu::{con, end, ended, home, t};
use super::{Ctx, Effect, Outcome, State, Step};
use crate::kyc::{normalise_number, DocumentType};
use crate::pin::{Pin, PinError};

const RESET_CODE_DIGITS: usize = 6;

fn reset_code(input: &str) -> Option<String> {
    (input.len() == RESET_CODE_DIGITS && input.bytes().all(|b| b.is_ascii_digit()))
        .then(|| input.to_owned())
}

pub(super) fn desk(state: State, input: &str, ctx: &Ctx) -> Step {
    let t = t(ctx);
    let last = ctx.inputs.len().saturating_sub(1);
    match state {
        State::IdType => match input {
            "1" | "2" | "3" => {
                let document_type = DocumentType::ALL[input.parse::<usize>().unwrap_or(1) - 1];
                con(
                    t.enter_id_number(),
                    State::IdNumber {
                        document_type: document_type.as_str().to_owned(),
                    },
                )
            }
            _ => con(
                format!("{}\n{}", t.invalid_choice(), t.id_type_menu()),
                State::IdType,
            ),
        },
        State::IdNumber { document_type } => {
            let kind = DocumentType::parse(&document_type);
            match kind.and_then(|k| normalise_number(k, input).ok()) {
                Some(number) => Step::Do(
                    Effect::SubmitDocument {
                        document_type: document_type.clone(),
                        number,
                    },
                    State::IdNumber { document_type },
                ),
                None => con(t.id_number_hint(), State::IdNumber { document_type }),
            }
        }
        State::ResetCode => match reset_code(input) {
            Some(_) => con(t.new_pin(), State::ResetPin { code_at: last }),
            None => con(t.reset_code_hint(), State::ResetCode),
        },
        State::ResetPin { code_at } => {
            match Pin::parse(input).and_then(|pin| pin.check_strength().map(|()| pin)) {
                Ok(_) => con(
                    t.confirm_pin(),
                    State::ResetConfirm {
                        code_at,
                        new_at: last,
                    },
                ),
                Err(PinError::Weak) => con(t.weak_pin(), State::ResetPin { code_at }),
                Err(PinError::Format) => con(t.pin_format(), State::ResetPin { code_at }),
            }
        }
        State::ResetConfirm { code_at, new_at } => {
            let code = ctx.inputs.get(code_at).and_then(|c| reset_code(c.trim()));
            let first = ctx.inputs.get(new_at).map(|s| s.trim());
            match (code, first == Some(input), Pin::parse(input)) {
                (Some(code), true, Ok(new)) => Step::Do(
                    Effect::ResetPin { code, new },
                    State::ResetConfirm { code_at, new_at },
                ),
                (None, _, _) => end(t.try_later()),
                _ => con(t.pins_differ(), State::ResetPin { code_at }),
            }
        }
        _ => home(ctx),
    }
}

pub(super) fn outcome(state: State, result: Outcome, ctx: &Ctx) -> Step {
    let t = t(ctx);
    match (state, result) {
        (State::IdNumber { .. }, Outcome::Done) => end(t.id_submitted()),
        (State::ResetConfirm { .. }, Outcome::Done) => end(t.pin_reset_done()),
        (State::ResetConfirm { code_at, .. }, Outcome::WeakPin) => {
            con(t.weak_pin(), State::ResetPin { code_at })
        }
        (_, result) => ended(result, ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{input, Caller, Lang, Screen};
    use super::*;

    fn caller() -> Caller {
        Caller {
            name: "Amina Otieno".into(),
            lang: Lang::En,
            home_currency: "KES".into(),
            kyc_status: "PENDING".into(),
            agent_number: None,
        }
    }

    fn at(inputs: &[&str], state: State, typed: &str) -> Step {
        let caller = caller();
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        let ctx = Ctx {
            caller: Some(&caller),
            inputs: &inputs,
            exponent: &|_| 2,
            currencies: &[],
        };
        input(state, typed, &ctx)
    }

    #[test]
    fn forgot_pin_takes_the_code_and_a_strong_pin_twice_keeping_neither_in_the_state() {
        let Step::Show(Screen::Con(_), pin_state) =
            at(&["8", "5", "123456"], State::ResetCode, "123456")
        else {
            panic!("asks for the new PIN");
        };
        assert_eq!(pin_state, State::ResetPin { code_at: 2 });
        let Step::Show(_, weak) = at(&["8", "5", "123456", "1111"], pin_state.clone(), "1111")
        else {
            panic!()
        };
        assert_eq!(weak, pin_state, "a weak PIN is refused");
        let Step::Show(_, confirm) = at(&["8", "5", "123456", "4826"], pin_state, "4826") else {
            panic!()
        };
        assert_eq!(
            confirm,
            State::ResetConfirm {
                code_at: 2,
                new_at: 3
            }
        );
        assert!(!serde_json::to_string(&confirm).unwrap().contains("4826"));
        let Step::Do(Effect::ResetPin { code, .. }, _) =
            at(&["8", "5", "123456", "4826", "4826"], confirm, "4826")
        else {
            panic!("the effect carries the code");
        };
        assert_eq!(code, "123456");
    }

    #[test]
    fn a_document_number_is_checked_before_it_is_sent() {
        let Step::Show(_, number) = at(&["8", "4", "1"], State::IdType, "1") else {
            panic!()
        };
        assert_eq!(
            number,
            State::IdNumber {
                document_type: "national_id".into()
            }
        );
        let Step::Show(_, again) = at(&["8", "4", "1", "12"], number.clone(), "12") else {
            panic!()
        };
        assert_eq!(again, number);
        let Step::Do(Effect::SubmitDocument { number, .. }, _) =
            at(&["8", "4", "1", "27 345 678"], number, "27 345 678")
        else {
            panic!("a valid number is submitted");
        };
        assert_eq!(number, "27345678");
    }
}
