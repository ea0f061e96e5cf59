//! Any text typed as an amount or a phone number parses or is refused,
//! never panics, and what parses reads back the same (`ussd::exercise`).
#![no_main]

use chainpay_core::ussd::exercise;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(broken) = exercise::typed_value(text) {
        panic!("{broken}");
    }
});
