//! Random USSD sessions: whoever dials, whatever they type and however the
//! gateway answers, the machine never panics, every page is `CON `/`END `
//! within 182 characters, and a PIN typed at a PIN prompt is never on a
//! page nor in the stored session state (`ussd::exercise`).
#![no_main]

use chainpay_core::ussd::exercise::{self, Session, PINS, WORDS};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Most keys in one session: deeper than any path through the menu.
const MAX_KEYS: usize = 24;
/// Longest free text typed as one key.
const MAX_KEY_CHARS: usize = 200;

fn session(u: &mut Unstructured) -> Result<Session> {
    let caller = exercise::caller(u.arbitrary()?);
    let choices = (0..14)
        .map(|_| u.arbitrary())
        .collect::<Result<Vec<u8>>>()?;
    let mut keys = Vec::new();
    while keys.len() < MAX_KEYS && !u.is_empty() {
        let key = match u.arbitrary::<u8>()? {
            k @ 0..=99 => (k % 12).to_string(),
            k @ 100..=159 => WORDS[usize::from(k) % WORDS.len()].to_owned(),
            k @ 160..=219 => PINS[usize::from(k) % PINS.len()].to_owned(),
            _ => u.arbitrary::<&str>()?.chars().take(MAX_KEY_CHARS).collect(),
        };
        keys.push(key);
    }
    Ok(Session {
        caller,
        keys,
        choices,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(session) = session(&mut Unstructured::new(data)) else {
        return;
    };
    if let Err(broken) = exercise::run(&session) {
        panic!("{broken}");
    }
});
