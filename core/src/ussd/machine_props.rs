//! Properties of the menu machine over random sessions (proptest): whoever
//! dials and whatever they type, and however the gateway answers, every
//! page keeps the rules [`exercise::run`] checks; and typed amounts and
//! phones parse or are refused, never panic. The fuzz targets check the
//! same properties with libFuzzer.

use proptest::prelude::*;

use super::exercise::{self, Session, PINS, WORDS};

/// What a caller types: menu choices, navigation, phones, amounts, names,
/// codes, PINs, and garbage.
fn typed() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u8..12).prop_map(|n| n.to_string()),
        4 => (0..WORDS.len()).prop_map(|i| WORDS[i].to_owned()),
        2 => (0..PINS.len()).prop_map(|i| PINS[i].to_owned()),
        1 => "\\PC{0,200}",
    ]
}

/// The checker is not vacuous: a PIN typed at the balance's PIN prompt is
/// looked for on the page that follows.
#[test]
fn the_checker_looks_for_a_pin_typed_at_a_pin_prompt() {
    let session = Session {
        caller: exercise::caller(2),
        keys: vec!["4".into(), PINS[0].into()],
        choices: vec![0; 14],
    };
    let checked = exercise::run(&session).unwrap();
    assert!(
        checked.pages >= 3 && checked.secret_pins >= 1,
        "{checked:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_session_gets_well_formed_pages_and_never_shows_or_keeps_a_pin(
        caller in any::<u8>(),
        keys in proptest::collection::vec(typed(), 0..14),
        choices in proptest::collection::vec(any::<u8>(), 14),
    ) {
        let session = Session { caller: exercise::caller(caller), keys, choices };
        if let Err(broken) = exercise::run(&session) {
            return Err(TestCaseError::fail(broken));
        }
    }
}

proptest! {
    #[test]
    fn any_typed_amount_or_phone_parses_cleanly_or_is_refused(typed in "\\PC{0,40}|[0-9.+ ]{0,24}") {
        if let Err(broken) = exercise::typed_value(&typed) {
            return Err(TestCaseError::fail(broken));
        }
    }
}
