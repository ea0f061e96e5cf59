//! Any form body posted to the Africa's Talking webhooks, decoded as the
//! gateway decodes it: never a panic; a USSD step the menu acts on has a
//! trimmed session id of 1 to 100 characters, a phone in E.164 and exactly
//! the inputs of `text`; an inbound SMS has a sender and an id; a delivery
//! report is looked up only by an id PostgreSQL can store.
#![no_main]

use chainpay_core::africastalking::webhooks::{
    DeliveryReport, InboundSms, UssdForm, MAX_MESSAGE_ID_CHARS, MAX_SESSION_ID_CHARS,
};
use libfuzzer_sys::fuzz_target;

fn ussd(data: &[u8]) {
    let Ok(form) = serde_urlencoded::from_bytes::<UssdForm>(data) else {
        return;
    };
    let Ok(step) = form.step() else {
        return;
    };
    assert!(!step.session_id.is_empty() && step.session_id.chars().count() <= MAX_SESSION_ID_CHARS);
    assert_eq!(step.session_id, step.session_id.trim());
    assert!(step.phone.as_str().starts_with('+'));
    assert_eq!(step.inputs.join("*"), form.text);
    assert!(step.inputs.iter().all(|input| !input.contains('*')));
}

fn sms(data: &[u8]) {
    if let Ok(form) = serde_urlencoded::from_bytes::<InboundSms>(data) {
        if let Ok((from, id)) = form.sender() {
            assert!(from.as_str().starts_with('+'));
            assert!(!id.is_empty() && id.chars().count() <= MAX_MESSAGE_ID_CHARS);
        }
    }
    if let Ok(report) = serde_urlencoded::from_bytes::<DeliveryReport>(data) {
        if let Some(id) = report.message_id() {
            assert!(!id.is_empty() && !id.contains('\0') && !report.status.contains('\0'));
            assert!(id.chars().count() <= MAX_MESSAGE_ID_CHARS);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    ussd(data);
    sms(data);
});
