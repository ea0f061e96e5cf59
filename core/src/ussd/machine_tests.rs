//! The menu machine driven like a phone: each test types inputs one by one
//! and answers effects the way the gateway would.

use super::*;

struct Phone {
    caller: Option<Caller>,
    inputs: Vec<String>,
    state: State,
    currencies: Vec<String>,
}

fn exponent(_currency: &str) -> u32 {
    2
}

impl Phone {
    fn new(caller: Option<Caller>) -> Self {
        Self {
            caller,
            inputs: Vec::new(),
            state: State::Ended,
            currencies: ["EUR", "GBP", "KES", "NGN", "USD"]
                .iter()
                .map(|c| c.to_string())
                .collect(),
        }
    }

    fn registered() -> Self {
        Self::new(Some(Caller {
            name: "Amina Otieno".into(),
            lang: Lang::En,
            home_currency: "KES".into(),
            kyc_status: "VERIFIED".into(),
            agent_number: None,
        }))
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            caller: self.caller.as_ref(),
            inputs: &self.inputs,
            exponent: &exponent,
            currencies: &self.currencies,
        }
    }

    /// Applies a step: shows its screen, or returns the effect it asks for.
    fn settle(&mut self, step: Step) -> Result<Screen, Effect> {
        match step {
            Step::Show(screen, state) => {
                self.state = state;
                Ok(screen)
            }
            Step::Do(effect, state) => {
                self.state = state;
                Err(effect)
            }
        }
    }

    fn dial(&mut self) -> Result<Screen, Effect> {
        self.inputs.clear();
        let step = dial(&self.ctx());
        self.settle(step)
    }

    fn press(&mut self, text: &str) -> Result<Screen, Effect> {
        self.inputs.push(text.to_owned());
        let step = input(self.state.clone(), text, &self.ctx());
        self.settle(step)
    }

    fn answer(&mut self, result: Outcome) -> Result<Screen, Effect> {
        let step = outcome(self.state.clone(), result, &self.ctx());
        self.settle(step)
    }

    /// The state never holds a PIN, in any form.
    fn assert_no_pin_stored(&self, pin: &str) {
        let json = serde_json::to_string(&self.state).unwrap();
        assert!(
            !json.contains(pin),
            "PIN leaked into the session state: {json}"
        );
    }
}

fn con(result: Result<Screen, Effect>) -> String {
    match result {
        Ok(Screen::Con(text)) => text,
        other => panic!("expected CON, got {other:?}"),
    }
}

fn end(result: Result<Screen, Effect>) -> String {
    match result {
        Ok(Screen::End(text)) => text,
        other => panic!("expected END, got {other:?}"),
    }
}

#[test]
fn registration_asks_name_pin_and_confirmation_and_refuses_weak_or_mismatched_pins() {
    let mut phone = Phone::new(None);
    assert!(con(phone.dial()).contains("full name"));
    assert!(con(phone.press("x")).contains("2-50 letters"));
    assert!(con(phone.press("Amina Otieno")).contains("4-digit PIN"));
    assert!(con(phone.press("1234")).contains("too easy"));
    assert!(con(phone.press("58")).contains("4 digits"));
    assert!(con(phone.press("5831")).contains("Confirm"));
    phone.assert_no_pin_stored("5831");
    assert!(con(phone.press("5832")).contains("did not match"));
    con(phone.press("5831"));
    match phone.press("5831") {
        Err(Effect::Register { name, pin }) => {
            assert_eq!(name, "Amina Otieno");
            assert_eq!(pin.expose(), "5831");
        }
        other => panic!("{other:?}"),
    }
    phone.assert_no_pin_stored("5831");
    assert!(end(phone.answer(Outcome::Done)).contains("Welcome to ChainPay, Amina Otieno"));
}

#[test]
fn sending_money_looks_up_the_recipient_confirms_name_and_fee_then_takes_the_pin() {
    let mut phone = Phone::registered();
    assert!(con(phone.dial()).starts_with("Hi Amina"));
    assert!(con(phone.press("1")).contains("recipient phone"));
    assert!(con(phone.press("12345")).contains("Invalid number"));
    let Err(Effect::FindRecipient { phone: to }) = phone.press("0712345678") else {
        panic!()
    };
    assert_eq!(to.as_str(), "+254712345678");
    assert!(con(phone.answer(Outcome::Unknown)).contains("not on ChainPay"));
    phone.press("0712345678").unwrap_err();
    let Err(Effect::Holdings) = phone.answer(Outcome::Recipient {
        name: "BARAKA JUMA".into(),
    }) else {
        panic!()
    };
    // Only shillings held: no currency question.
    assert!(
        con(phone.answer(Outcome::Holdings(vec![("KES".into(), 100_000)])))
            .contains("Enter amount (KES)")
    );
    assert!(con(phone.press("abc")).contains("Invalid amount"));
    let Err(Effect::PreviewSend {
        amount, currency, ..
    }) = phone.press("250")
    else {
        panic!()
    };
    assert_eq!((amount, currency.as_str()), (25_000, "KES"));
    let confirm = con(phone.answer(Outcome::Preview { fee: 500 }));
    assert!(
        confirm.contains("Send KES 250.00 to BARAKA JUMA +254712345678"),
        "{confirm}"
    );
    assert!(confirm.contains("Fee KES 5.00"), "{confirm}");
    let Err(Effect::Send { pin, amount, .. }) = phone.press("5831") else {
        panic!()
    };
    assert_eq!((pin.expose(), amount), ("5831", 25_000));
    phone.assert_no_pin_stored("5831");
    let done = end(phone.answer(Outcome::Sent {
        reference: "QK7X2ABC".into(),
        balance: 74_500,
    }));
    assert!(
        done.contains("QK7X2ABC Confirmed. KES 250.00 sent to BARAKA JUMA. New balance KES 745.00"),
        "{done}"
    );
}

#[test]
fn a_caller_holding_other_currencies_chooses_one() {
    let mut phone = Phone::registered();
    phone.dial().unwrap();
    phone.press("1").unwrap();
    phone.press("0712345678").unwrap_err();
    phone
        .answer(Outcome::Recipient { name: "B".into() })
        .unwrap_err();
    let menu = con(phone.answer(Outcome::Holdings(vec![
        ("KES".into(), 1),
        ("USD".into(), 5),
    ])));
    assert!(menu.contains("1. KES\n2. USD"), "{menu}");
    assert!(con(phone.press("7")).contains("Invalid choice"));
    assert!(con(phone.press("2")).contains("Enter amount (USD)"));
}

#[test]
fn three_wrong_pins_end_the_session_and_a_lock_ends_it_at_once() {
    let mut phone = Phone::registered();
    phone.dial().unwrap();
    phone.press("4").unwrap();
    phone.press("1111").unwrap_err();
    assert!(con(phone.answer(Outcome::WrongPin { locked: false })).contains("Wrong PIN"));
    phone.press("2222").unwrap_err();
    assert!(con(phone.answer(Outcome::WrongPin { locked: false })).contains("Wrong PIN"));
    phone.press("3333").unwrap_err();
    assert!(end(phone.answer(Outcome::WrongPin { locked: false })).contains("3 times"));

    phone.dial().unwrap();
    phone.press("4").unwrap();
    phone.press("1111").unwrap_err();
    assert!(end(phone.answer(Outcome::WrongPin { locked: true })).contains("locked"));
}

#[test]
fn zero_goes_back_and_double_zero_goes_home_from_anywhere() {
    let mut phone = Phone::registered();
    phone.dial().unwrap();
    phone.press("1").unwrap();
    phone.press("0712345678").unwrap_err();
    phone
        .answer(Outcome::Recipient { name: "B".into() })
        .unwrap_err();
    phone.answer(Outcome::Holdings(vec![])).unwrap();
    assert!(
        con(phone.press("0")).contains("recipient phone"),
        "back from amount to phone"
    );
    assert!(
        con(phone.press("0")).starts_with("Hi Amina"),
        "back from phone to home"
    );
    phone.press("8").unwrap();
    phone.press("1").unwrap();
    assert!(con(phone.press("00")).starts_with("Hi Amina"));
    assert!(con(phone.press("12")).starts_with("Invalid choice"));
    assert!(
        con(phone.press("11")).starts_with("Invalid choice"),
        "only an agent has a counter"
    );
}

#[test]
fn the_mini_statement_pages_with_98() {
    let mut phone = Phone::registered();
    phone.dial().unwrap();
    phone.press("6").unwrap();
    phone.press("5831").unwrap_err();
    let lines: Vec<String> = (1..=6).map(|i| format!("25/11 line {i}")).collect();
    let first = con(phone.answer(Outcome::Statement(lines)));
    assert!(first.contains("line 1") && first.contains("line 4") && !first.contains("line 5"));
    assert!(first.contains("98 More"));
    let second = con(phone.press("98"));
    assert!(second.contains("line 5") && second.contains("line 6") && !second.contains("98 More"));
}

#[test]
fn converting_offers_held_currencies_quotes_and_takes_the_pin() {
    let mut phone = Phone::registered();
    phone.dial().unwrap();
    let Err(Effect::Holdings) = phone.press("5") else {
        panic!()
    };
    assert!(con(phone.answer(Outcome::Holdings(vec![("USD".into(), 10_000)]))).contains("1. USD"));
    let to = con(phone.press("1"));
    assert!(to.contains("Convert to:") && !to.contains("USD"), "{to}");
    assert!(con(phone.press("3")).contains("Enter amount (USD)"));
    let Err(Effect::Quote { from, to, amount }) = phone.press("10") else {
        panic!()
    };
    assert_eq!((from.as_str(), to.as_str(), amount), ("USD", "KES", 1_000));
    let quote_id = Uuid::new_v4();
    let confirm = con(phone.answer(Outcome::Quote {
        quote_id,
        amount: 1_000,
        converted: 128_528,
        rate: "128.52875".into(),
        fee: 20,
    }));
    assert!(
        confirm.contains("Convert USD 10.00 to KES 1,285.28"),
        "{confirm}"
    );
    assert!(
        confirm.contains("Rate 128.52875. Fee USD 0.20"),
        "{confirm}"
    );
    let Err(Effect::Convert { quote_id: used, .. }) = phone.press("5831") else {
        panic!()
    };
    assert_eq!(used, quote_id);
}

#[test]
fn changing_the_pin_checks_strength_difference_and_confirmation_without_storing_pins() {
    let mut phone = Phone::registered();
    phone.dial().unwrap();
    phone.press("8").unwrap();
    assert!(con(phone.press("1")).contains("current PIN"));
    phone.press("5831").unwrap();
    assert!(con(phone.press("5831")).contains("must differ"));
    assert!(con(phone.press("0000")).contains("too easy"));
    phone.press("7294").unwrap();
    phone.assert_no_pin_stored("7294");
    phone.assert_no_pin_stored("5831");
    let Err(Effect::ChangePin { old, new }) = phone.press("7294") else {
        panic!()
    };
    assert_eq!((old.expose(), new.expose()), ("5831", "7294"));
    assert!(end(phone.answer(Outcome::Done)).contains("changed"));
}

#[test]
fn swahili_callers_get_swahili_screens() {
    let mut phone = Phone::registered();
    if let Some(caller) = phone.caller.as_mut() {
        caller.lang = Lang::Sw;
    }
    assert!(con(phone.dial()).starts_with("Habari Amina\n1. Tuma pesa"));
    assert!(con(phone.press("1")).contains("namba ya simu"));
}

#[test]
fn refusals_read_as_plain_sentences() {
    let mut phone = Phone::registered();
    phone.dial().unwrap();
    phone.press("4").unwrap();
    phone.press("5831").unwrap_err();
    assert_eq!(
        end(phone.answer(Outcome::Failed)),
        "Service is busy. Please try again later."
    );
    let rendered = Screen::End(
        "Not completed: this amount is above your limit for a single transaction.".into(),
    )
    .render();
    assert!(rendered.starts_with("END Not completed"));
}

#[test]
fn a_pending_request_is_paid_with_the_pin_or_declined() {
    let mut phone = Phone::registered();
    con(phone.dial());
    assert!(con(phone.press("10")).contains("3. Pending requests"));
    assert!(matches!(phone.press("3"), Err(Effect::PendingRequests)));
    assert!(end(phone.answer(Outcome::PaymentRequests(vec![]))).contains("no pending"));

    let request = |n: u128, name: &str| PendingRequest {
        id: Uuid::from_u128(n),
        merchant: name.into(),
        currency: "KES".into(),
        amount: 50_000,
        reference: format!("INV-{n}"),
    };
    let items: Vec<PendingRequest> = (1..=5).map(|n| request(n, "MAMA MBOGA")).collect();
    con(phone.dial());
    con(phone.press("10"));
    let _ = phone.press("3");
    let list = con(phone.answer(Outcome::PaymentRequests(items)));
    assert!(list.contains("1. MAMA MBOGA KES 500.00") && list.contains("98 More"));
    assert!(con(phone.press("98")).contains("5. MAMA MBOGA"));
    let screen = con(phone.press("5"));
    assert!(screen.contains("asks you to pay KES 500.00, ref INV-5"));
    assert!(con(phone.press("7")).starts_with("Invalid choice."));
    assert_eq!(con(phone.press("1")), "Enter PIN:");
    let Err(Effect::ApproveRequest { id, .. }) = phone.press("5831") else {
        panic!("expected the approval")
    };
    assert_eq!(id, Uuid::from_u128(5));
    phone.assert_no_pin_stored("5831");
    let done = end(phone.answer(Outcome::Sent {
        reference: "ABC123".into(),
        balance: 100_000,
    }));
    assert!(done.contains("KES 500.00 paid to MAMA MBOGA") && done.contains("KES 1,000.00"));

    con(phone.dial());
    con(phone.press("10"));
    let _ = phone.press("3");
    con(phone.answer(Outcome::PaymentRequests(vec![request(9, "DUKA")])));
    con(phone.press("1"));
    let Err(Effect::DeclineRequest { id }) = phone.press("2") else {
        panic!("expected the decline")
    };
    assert_eq!(id, Uuid::from_u128(9));
    assert!(end(phone.answer(Outcome::Done)).contains("declined"));

    // Paid elsewhere in the meantime: the refusal is a sentence.
    con(phone.dial());
    con(phone.press("10"));
    let _ = phone.press("3");
    con(phone.answer(Outcome::PaymentRequests(vec![request(9, "DUKA")])));
    con(phone.press("1"));
    con(phone.press("1"));
    let _ = phone.press("5831");
    let refused = end(phone.answer(Outcome::Refused(Refusal::RequestNotPending)));
    assert!(refused.contains("already paid, declined or has expired"));
}
