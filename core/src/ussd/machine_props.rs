//! Properties of the menu machine over random sessions (proptest): whoever
//! dials and whatever they type, and however the gateway answers, the
//! machine never panics, every reply is a `CON ` or `END ` page of at most
//! 182 characters, and neither a reply nor the stored session state ever
//! contains the PIN the caller typed; and typed amounts and phones parse
//! or are refused, never panic.

use proptest::prelude::*;

use super::text::MAX_SCREEN_CHARS;
use super::*;
use crate::refusal::Refusal;

/// PINs the caller may type; no other input or answer contains these digits.
const PINS: [&str; 3] = ["9173", "4826", "7391"];

/// What a caller types: menu choices, navigation, phones, amounts, names,
/// codes, and garbage.
fn typed() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u8..12).prop_map(|n| n.to_string()),
        1 => Just("00".to_owned()),
        1 => Just("*".to_owned()),
        1 => Just(String::new()),
        1 => Just("0712345678".to_owned()),
        1 => Just("+254700000002".to_owned()),
        1 => Just("250.5".to_owned()),
        1 => Just("99999999999999999999".to_owned()),
        1 => Just("Amina Otieno".to_owned()),
        1 => Just("ABCD-EFGH-JKLM".to_owned()),
        2 => (0..PINS.len()).prop_map(|i| PINS[i].to_owned()),
        1 => "\\PC{0,200}",
    ]
}

/// Every answer the gateway can give; the right one is usually chosen.
fn answers() -> Vec<Outcome> {
    let refusals = [
        Refusal::InsufficientFunds,
        Refusal::AccountSuspended,
        Refusal::RecipientCannotReceive,
    ];
    let mut all = vec![
        Outcome::Done,
        Outcome::Recipient {
            name: "BARAKA JUMA".into(),
        },
        Outcome::Holdings(vec![("KES".into(), 250_000), ("USD".into(), 10_000)]),
        Outcome::Preview { fee: 500 },
        Outcome::Sent {
            reference: "TX1AB2CD3E".into(),
            balance: 100_000,
        },
        Outcome::DepositStarted,
        Outcome::Withdrawn {
            reference: "TX1AB2CD3E".into(),
            balance: 100_000,
        },
        Outcome::Balances(vec![("KES".into(), 250_000)]),
        Outcome::Statement(vec!["TX1AB2CD3E -KES 250.00".into()]),
        Outcome::Quote {
            quote_id: Uuid::nil(),
            amount: 10_000,
            converted: 77,
            rate: "0.0077".into(),
            fee: 100,
        },
        Outcome::Converted {
            reference: "TX1AB2CD3E".into(),
            converted: 77,
            balance: 1_000,
        },
        Outcome::Eligible(vec![(Uuid::nil(), "TX1AB2CD3E KES 250.00".into())]),
        Outcome::ReversalRequested {
            reference: "TX1AB2CD3E".into(),
        },
        Outcome::VoucherBought {
            reference: "TX1AB2CD3E".into(),
        },
        Outcome::VoucherRedeemed {
            reference: "TX1AB2CD3E".into(),
            currency: "KES".into(),
            amount: 50_000,
            balance: 60_000,
        },
        Outcome::PaymentRequests(vec![PendingRequest {
            id: Uuid::nil(),
            merchant: "CHAI CORNER".into(),
            currency: "KES".into(),
            amount: 25_000,
            reference: "INV-0042".into(),
        }]),
        Outcome::MerchantFound {
            name: "CHAI CORNER".into(),
        },
        Outcome::AgentFound {
            name: "MAMA MBOGA".into(),
            fee: 300,
        },
        Outcome::CustomerFound {
            name: "BARAKA JUMA".into(),
            commission: 50,
        },
        Outcome::CashedIn {
            reference: "TX1AB2CD3E".into(),
            float: 900_000,
        },
        Outcome::Float(vec![("KES".into(), 900_000)]),
        Outcome::Unknown,
        Outcome::WrongPin { locked: false },
        Outcome::WrongPin { locked: true },
        Outcome::WeakPin,
        Outcome::Invalid,
        Outcome::Failed,
    ];
    all.extend(refusals.into_iter().map(Outcome::Refused));
    all
}

/// The answer a working gateway would give to `effect`, where it is not
/// simply "done".
fn expected<'a>(effect: &Effect, all: &'a [Outcome]) -> Option<&'a Outcome> {
    let pick = |i: usize| &all[i];
    Some(match effect {
        Effect::FindRecipient { .. } => pick(1),
        Effect::Holdings => pick(2),
        Effect::PreviewSend { .. } | Effect::PreviewWithdraw { .. } => pick(3),
        Effect::PreviewVoucher { .. } => pick(3),
        Effect::Send { .. } => pick(4),
        Effect::Balances { .. } => pick(7),
        Effect::Statement { .. } => pick(8),
        Effect::Quote { .. } => pick(9),
        Effect::Eligible => pick(11),
        Effect::PendingRequests => pick(15),
        Effect::PreviewPay { .. } => pick(16),
        Effect::PreviewCashOut { .. } => pick(17),
        Effect::PreviewCashIn { .. } => pick(18),
        Effect::Float { .. } => pick(20),
        _ => return None,
    })
}

fn callers() -> impl Strategy<Value = Option<Caller>> {
    prop_oneof![
        Just(None),
        (any::<bool>(), any::<bool>(), 0usize..3).prop_map(|(swahili, agent, kyc)| Some(Caller {
            name: "Amina Otieno".into(),
            lang: if swahili { Lang::Sw } else { Lang::En },
            home_currency: "KES".into(),
            kyc_status: ["VERIFIED", "PENDING", "REJECTED"][kyc].into(),
            agent_number: agent.then(|| "123456".to_owned()),
        })),
    ]
}

fn exponent(_currency: &str) -> u32 {
    2
}

/// What the caller typed at a PIN prompt, and what they typed elsewhere
/// (a reason, a name): the same digits typed as a reason may be shown back.
#[derive(Default)]
struct Pins {
    at_prompt: Vec<String>,
    elsewhere: Vec<String>,
}

impl Pins {
    fn typed(&mut self, screen: &Screen, key: &str) {
        if !PINS.contains(&key) {
            return;
        }
        let (Screen::Con(text) | Screen::End(text)) = screen;
        if text.contains("PIN") {
            self.at_prompt.push(key.to_owned());
        } else {
            self.elsewhere.push(key.to_owned());
        }
    }

    /// The PINs the caller typed only ever as a PIN.
    fn secret(&self) -> Vec<&str> {
        self.at_prompt
            .iter()
            .filter(|pin| !self.elsewhere.contains(pin))
            .map(String::as_str)
            .collect()
    }
}

/// One page: its wire form obeys the rules and holds no typed PIN.
fn check(screen: &Screen, state: &State, pins_typed: &[&str]) -> Result<(), TestCaseError> {
    let page = screen.render();
    prop_assert!(
        page.starts_with("CON ") || page.starts_with("END "),
        "{page}"
    );
    prop_assert!(
        page.chars().count() <= MAX_SCREEN_CHARS,
        "{} chars: {page}",
        page.chars().count()
    );
    let stored = serde_json::to_string(state).unwrap_or_default();
    for pin in pins_typed {
        prop_assert!(!page.contains(pin), "PIN {pin} on screen: {page}");
        prop_assert!(
            !stored.contains(pin),
            "PIN {pin} in the session state: {stored}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_session_gets_well_formed_pages_and_never_shows_or_keeps_a_pin(
        caller in callers(),
        keys in proptest::collection::vec(typed(), 0..14),
        choices in proptest::collection::vec(any::<u8>(), 14),
    ) {
        let currencies: Vec<String> = ["EUR", "KES", "USD"].iter().map(|c| c.to_string()).collect();
        let mut inputs: Vec<String> = Vec::new();
        let mut pins = Pins::default();
        let all = answers();
        let mut step = dial(&Ctx { caller: caller.as_ref(), inputs: &inputs, exponent: &exponent, currencies: &currencies });
        let mut keys = keys.into_iter();
        let mut turn = 0;
        loop {
            turn += 1;
            prop_assert!(turn < 100, "the machine keeps asking for effects");
            match step {
                Step::Do(effect, state) => {
                    let choice = choices[turn % choices.len()];
                    let answer = match expected(&effect, &all) {
                        Some(right) if choice < 200 => right.clone(),
                        _ => all[usize::from(choice) % all.len()].clone(),
                    };
                    let ctx = Ctx { caller: caller.as_ref(), inputs: &inputs, exponent: &exponent, currencies: &currencies };
                    step = outcome(state, answer, &ctx);
                }
                Step::Show(screen, state) => {
                    check(&screen, &state, &pins.secret())?;
                    let (Screen::Con(_), Some(key)) = (&screen, keys.next()) else {
                        break;
                    };
                    pins.typed(&screen, &key);
                    inputs.push(key.clone());
                    let ctx = Ctx { caller: caller.as_ref(), inputs: &inputs, exponent: &exponent, currencies: &currencies };
                    step = input(state, &key, &ctx);
                }
            }
        }
    }
}

proptest! {
    /// Typed amounts and phone numbers: any text parses or is refused,
    /// never panics, and what parses is a positive amount or a phone in
    /// E.164 that parses back to itself.
    #[test]
    fn any_typed_amount_or_phone_parses_cleanly_or_is_refused(typed in "\\PC{0,40}|[0-9.+ ]{0,24}") {
        if let Some(minor) = parse_amount(&typed, 2) {
            prop_assert!(minor >= 0, "{typed} → {minor}");
        }
        if let Ok(phone) = Msisdn::parse(&typed) {
            prop_assert!(phone.as_str().starts_with('+'), "{phone}");
            prop_assert_eq!(Msisdn::parse(phone.as_str()).ok(), Some(phone));
        }
    }
}
