//! Any body posted to the Daraja callback and result URLs, read as the
//! gateway reads it: never a panic; an amount is trusted only as whole
//! shillings within M-Pesa's limits; a payout is completed only with a
//! receipt; a float balance is read only from a plain decimal.
#![no_main]

use chainpay_core::daraja::queries::PayoutStatus;
use chainpay_core::daraja::queries::{parameter, payout_status, working_account_cents};
use chainpay_core::daraja::wire::{self, B2cResultEnvelope, StkCallbackEnvelope};
use chainpay_core::daraja::MAX_KES;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn stk(body: &Value) {
    let Ok(envelope) = serde_json::from_value::<StkCallbackEnvelope>(body.clone()) else {
        return;
    };
    let callback = &envelope.body.stk_callback;
    if let Ok(cents) = callback.amount_minor() {
        assert!(
            cents % 100 == 0 && (100..=MAX_KES * 100).contains(&cents),
            "{cents}"
        );
    }
    let _ = (
        callback.receipt(),
        callback.phone(),
        wire::code(&callback.result_code),
    );
}

fn result(body: &Value) {
    let Ok(envelope) = serde_json::from_value::<B2cResultEnvelope>(body.clone()) else {
        return;
    };
    let result = &envelope.result;
    if let PayoutStatus::Completed { receipt } = payout_status(result) {
        assert!(!receipt.is_empty());
        assert!(wire::code(&result.result_code).is_some_and(|c| c.is_success()));
    }
    if let Some(cents) = working_account_cents(result) {
        let text = parameter(result, "AccountBalance").and_then(Value::as_str);
        let working = text.and_then(|t| {
            t.split('&')
                .find(|a| a.trim_start().starts_with("Working Account"))
        });
        let amount = working
            .and_then(|a| a.split('|').nth(2))
            .map(str::trim)
            .unwrap_or_default();
        let plain = amount.trim_start_matches('-');
        assert!(
            plain
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())),
            "{amount:?} read as {cents}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    stk(&body);
    result(&body);
});
