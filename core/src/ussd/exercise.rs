//! Drives the menu machine through one scripted session, answering its
//! effects as a gateway would (usually rightly, sometimes with anything),
//! and checks what every page must keep: it is a `CON ` or `END ` page of
//! at most 182 characters, and neither a page nor the stored session state
//! holds a PIN the caller typed at a PIN prompt. The property tests
//! (`machine_props`) and the fuzz target `ussd_sessions` both run sessions
//! through [`run`]; built only for them (`cfg(test)` or feature `exercise`).

use uuid::Uuid;

use super::text::MAX_SCREEN_CHARS;
use super::{dial, input, outcome, Caller, Ctx, Effect, Lang, Outcome, PendingRequest, Screen};
use super::{State, Step};
use crate::refusal::Refusal;

/// PINs the caller may type; no answer the gateway gives contains them.
pub const PINS: [&str; 3] = ["9173", "4826", "7391"];

/// Keys a caller plausibly types besides menu digits and PINs: navigation,
/// phones, amounts, a name, a voucher code.
pub const WORDS: [&str; 9] = [
    "00",
    "*",
    "",
    "0712345678",
    "+254700000002",
    "250.5",
    "99999999999999999999",
    "Amina Otieno",
    "ABCD-EFGH-JKLM",
];

/// A session: who dials, what they type, and which answers the gateway
/// gives (byte `b` below 200 picks the right answer, else answer `b % n`).
pub struct Session {
    pub caller: Option<Caller>,
    pub keys: Vec<String>,
    pub choices: Vec<u8>,
}

/// The caller numbered `n`: unregistered, or a customer in either language,
/// an agent or not, with any KYC status.
pub fn caller(n: u8) -> Option<Caller> {
    if n.is_multiple_of(13) {
        return None;
    }
    Some(Caller {
        name: "Amina Otieno".into(),
        lang: if n & 1 == 1 { Lang::Sw } else { Lang::En },
        home_currency: "KES".into(),
        kyc_status: ["VERIFIED", "PENDING", "REJECTED"][usize::from(n >> 2) % 3].into(),
        agent_number: (n & 2 == 2).then(|| "123456".to_owned()),
    })
}

const SOME_REF: &str = "TX1AB2CD3E";

/// Every answer the gateway can give, the right ones first (see [`right`]).
fn answers() -> Vec<Outcome> {
    let reference = || SOME_REF.to_owned();
    let mut all = vec![
        Outcome::Done,
        Outcome::Recipient {
            name: "BARAKA JUMA".into(),
        },
        Outcome::Holdings(vec![("KES".into(), 250_000), ("USD".into(), 10_000)]),
        Outcome::Preview { fee: 500 },
        Outcome::Sent {
            reference: reference(),
            balance: 100_000,
        },
        Outcome::DepositStarted,
        Outcome::Withdrawn {
            reference: reference(),
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
            reference: reference(),
            converted: 77,
            balance: 1_000,
        },
        Outcome::Eligible(vec![(Uuid::nil(), "TX1AB2CD3E KES 250.00".into())]),
        Outcome::ReversalRequested {
            reference: reference(),
        },
        Outcome::VoucherBought {
            reference: reference(),
        },
        Outcome::VoucherRedeemed {
            reference: reference(),
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
            reference: reference(),
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
    let refusals = [
        Refusal::InsufficientFunds,
        Refusal::AccountSuspended,
        Refusal::RecipientCannotReceive,
    ];
    all.extend(refusals.into_iter().map(Outcome::Refused));
    all
}

/// Where in [`answers`] a working gateway's answer to `effect` is, where
/// it is not simply "done".
fn right(effect: &Effect) -> usize {
    match effect {
        Effect::FindRecipient { .. } => 1,
        Effect::Holdings => 2,
        Effect::PreviewSend { .. } | Effect::PreviewWithdraw { .. } => 3,
        Effect::PreviewVoucher { .. } => 3,
        Effect::Send { .. } => 4,
        Effect::Balances { .. } => 7,
        Effect::Statement { .. } => 8,
        Effect::Quote { .. } => 9,
        Effect::Eligible { .. } => 11,
        Effect::PendingRequests => 15,
        Effect::PreviewPay { .. } => 16,
        Effect::PreviewCashOut { .. } => 17,
        Effect::PreviewCashIn { .. } => 18,
        Effect::Float { .. } => 20,
        _ => 0,
    }
}

/// The PINs typed at a PIN prompt, and those that also appeared in
/// something typed elsewhere (a reason, a name), which may be shown back.
#[derive(Default)]
struct Pins {
    at_prompt: Vec<&'static str>,
    elsewhere: Vec<&'static str>,
}

impl Pins {
    fn typed(&mut self, screen: &Screen, key: &str) {
        let (Screen::Con(text) | Screen::End(text)) = screen;
        for pin in PINS {
            if text.contains("PIN") && key == pin {
                self.at_prompt.push(pin);
            } else if key.contains(pin) {
                self.elsewhere.push(pin);
            }
        }
    }

    /// The PINs the caller typed only ever as a PIN.
    fn secret(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.at_prompt
            .iter()
            .copied()
            .filter(|pin| !self.elsewhere.contains(pin))
    }
}

/// What a session's pages were checked for.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checked {
    pub pages: usize,
    /// Checks of a page and its state for a PIN typed at a PIN prompt.
    pub secret_pins: usize,
}

/// One page: its wire form obeys the rules and holds no secret PIN; the
/// number of secret PINs looked for.
fn check(screen: &Screen, state: &State, pins: &Pins) -> Result<usize, String> {
    let page = screen.render();
    if !(page.starts_with("CON ") || page.starts_with("END ")) {
        return Err(format!("not a CON/END page: {page:?}"));
    }
    let chars = page.chars().count();
    if chars > MAX_SCREEN_CHARS {
        return Err(format!("{chars} characters: {page:?}"));
    }
    let stored = serde_json::to_string(state).map_err(|e| format!("state: {e}"))?;
    let mut looked_for = 0;
    for pin in pins.secret() {
        looked_for += 1;
        if page.contains(pin) {
            return Err(format!("PIN {pin} on screen: {page:?}"));
        }
        if stored.contains(pin) {
            return Err(format!("PIN {pin} in the session state: {stored}"));
        }
    }
    Ok(looked_for)
}

fn exponent(_currency: &str) -> u32 {
    2
}

/// Most effects a session may ask for before it must show a page.
const MAX_TURNS: usize = 100;

/// Runs `session`: what was checked, or the first broken rule.
pub fn run(session: &Session) -> Result<Checked, String> {
    let currencies: Vec<String> = ["EUR", "KES", "USD"].map(String::from).to_vec();
    let all = answers();
    let caller = session.caller.as_ref();
    let mut inputs: Vec<String> = Vec::new();
    let mut pins = Pins::default();
    let mut step = dial(&Ctx {
        caller,
        inputs: &inputs,
        exponent: &exponent,
        currencies: &currencies,
    });
    let mut keys = session.keys.iter();
    let mut checked = Checked::default();
    let (mut answered, mut in_a_row) = (0, 0);
    loop {
        step = match step {
            Step::Do(effect, state) => {
                in_a_row += 1;
                if in_a_row > MAX_TURNS {
                    return Err("the machine keeps asking for effects".into());
                }
                answered += 1;
                let choice = session.choices.get(answered % session.choices.len().max(1));
                let answer = match choice.copied().unwrap_or(0) {
                    c if c < 200 => &all[right(&effect)],
                    c => &all[usize::from(c) % all.len()],
                };
                let ctx = Ctx {
                    caller,
                    inputs: &inputs,
                    exponent: &exponent,
                    currencies: &currencies,
                };
                outcome(state, answer.clone(), &ctx)
            }
            Step::Show(screen, state) => {
                in_a_row = 0;
                checked.pages += 1;
                checked.secret_pins += check(&screen, &state, &pins)?;
                let (Screen::Con(_), Some(key)) = (&screen, keys.next()) else {
                    return Ok(checked);
                };
                pins.typed(&screen, key);
                inputs.push(key.clone());
                let ctx = Ctx {
                    caller,
                    inputs: &inputs,
                    exponent: &exponent,
                    currencies: &currencies,
                };
                input(state, key, &ctx)
            }
        };
    }
}

/// A typed amount or phone number parses or is refused, never panics, and
/// what parses is what was meant: a positive amount that reads back the
/// same when shown, and a phone in E.164 that parses back to itself.
pub fn typed_value(text: &str) -> Result<(), String> {
    for exponent in 0..=3 {
        let Some(minor) = super::parse_amount(text, exponent) else {
            continue;
        };
        let shown = crate::money::format_minor(minor, exponent).replace(',', "");
        if minor <= 0 || super::parse_amount(&shown, exponent) != Some(minor) {
            return Err(format!("{text:?} read as {minor}, shown as {shown}"));
        }
    }
    if let Ok(phone) = crate::phone::Msisdn::parse(text) {
        let again = crate::phone::Msisdn::parse(phone.as_str()).ok();
        if !phone.as_str().starts_with('+') || again.as_ref() != Some(&phone) {
            return Err(format!(
                "{text:?} read as {phone}, which reads as {again:?}"
            ));
        }
    }
    Ok(())
}
