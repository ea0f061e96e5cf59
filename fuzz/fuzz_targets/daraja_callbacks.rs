//! Any body posted to the Daraja callback and result URLs, read as the
//! gateway reads it: never a panic; an amount is trusted only as whole
//! shillings within M-Pesa's limits; a payout is completed only with a
//! receipt; a float balance is read only from a plain decimal, to the
//! cent.
#![no_main]

use chainpay_core::daraja::queries::PayoutStatus;
use chainpay_core::daraja::queries::{parameter, payout_status, working_account_cents};
use chainpay_core::daraja::wire::{self, B2cResultEnvelope, StkCallbackEnvelope};
use chainpay_core::daraja::MAX_KES;
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

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
        let amount = parameter(result, "AccountBalance")
            .and_then(Value::as_str)
            .and_then(|t| {
                t.split('&')
                    .find(|a| a.trim_start().starts_with("Working Account"))
            })
            .and_then(|a| a.split('|').nth(2))
            .map(str::trim)
            .unwrap_or_default();
        // Read independently: a plain decimal, its cents truncated.
        let (negative, plain) = match amount.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, amount),
        };
        let (whole, fraction) = plain.split_once('.').unwrap_or((plain, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        assert!(
            digits(whole) && digits(fraction),
            "{amount:?} read as {cents}"
        );
        let whole = Decimal::from_str(whole).unwrap();
        let cents_part = Decimal::from_str(&format!("{:0<2}", fraction)[..2]).unwrap();
        let magnitude = whole * Decimal::ONE_HUNDRED + cents_part;
        let expected = if negative { -magnitude } else { magnitude };
        assert_eq!(Decimal::from(cents), expected, "{amount:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    stk(&body);
    result(&body);
});
