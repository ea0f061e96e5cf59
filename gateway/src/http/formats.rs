//! ChainPay's own formats in the OpenAPI document. A request field marked
//! `#[schema(format = "phone")]` (or `#[param(format = …)]`) gets here, in
//! one place, the constraints the server enforces for that kind of value,
//! so every phone, amount, currency, PIN and voucher code in the document
//! says the same thing the parsers in core do.

use chainpay_core::daraja::{MAX_KES, MIN_B2C_KES};
use chainpay_core::money::MAX_AMOUNT_MINOR;
use utoipa::openapi::schema::{
    Array, ArrayBuilder, Object, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{OpenApi, RefOr};

use super::paging::MAX_PAGE;
use crate::idempotency::MAX_KEY_LEN;

/// A string that must be one of `values` (for `#[schema(schema_with = …)]`,
/// so the list in the document is the one the server checks against).
pub fn one_of(values: impl IntoIterator<Item = &'static str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}

/// A string naming one of `statuses`.
pub fn status_of<S: Copy>(statuses: &[S], name: fn(S) -> &'static str) -> Object {
    one_of(statuses.iter().map(|s| name(*s)))
}

/// A non-empty list of strings, each one of `values`.
pub fn some_of(values: impl IntoIterator<Item = &'static str>) -> Array {
    ArrayBuilder::new()
        .items(one_of(values))
        .min_items(Some(1))
        .build()
}

/// What a format means, and the constraints that go with it.
struct Rule {
    format: &'static str,
    meaning: &'static str,
    apply: fn(&mut Object),
}

const RULES: &[Rule] = &[
    Rule {
        format: "phone",
        meaning: "A mobile number, as E.164 (`+254712345678`), without the `+` (`254712345678`) or national (`0712345678`, read as Kenyan); spaces, dashes, dots and brackets are ignored. Refused (400) unless it is a valid mobile number.",
        apply: |o| o.max_length = Some(32),
    },
    Rule {
        format: "safaricom-phone",
        meaning: "A Safaricom mobile number (Kenyan `07…` other than `073…`, or `010…`/`011…`), in any form a `phone` takes; M-Pesa prompts no other (400).",
        apply: |o| o.max_length = Some(32),
    },
    Rule {
        format: "minor-units",
        meaning: "A positive amount in the currency's minor units (cents: 10000 = 100.00).",
        apply: |o| {
            o.minimum = Some(1.into());
            o.maximum = Some((MAX_AMOUNT_MINOR as f64).into());
        },
    },
    Rule {
        format: "mpesa-deposit-cents",
        meaning: "KES cents in whole shillings, KES 1 to the most one M-Pesa payment may carry (10000 = KES 100).",
        apply: |o| kes_cents(o, 1),
    },
    Rule {
        format: "mpesa-payout-cents",
        meaning: "KES cents in whole shillings, from the smallest M-Pesa payout to the most one may carry (10000 = KES 100).",
        apply: |o| kes_cents(o, MIN_B2C_KES),
    },
    Rule {
        format: "currency",
        meaning: "The ISO 4217 code of a currency ChainPay holds (`KES`, `USD`, `EUR`, `GBP`, `NGN`; operators may add more, so the list is not fixed here): three letters, case and surrounding spaces ignored. Any other is refused (400).",
        apply: |o| o.max_length = Some(32),
    },
    Rule {
        format: "pin",
        meaning: "Four digits. A new PIN must also not be easy to guess (one repeated digit, a run, a repeated or mirrored pair, a common choice): 400 `weak_pin`.",
        apply: |o| o.pattern = Some("^[0-9]{4}$".to_owned()),
    },
    Rule {
        format: "page-size",
        meaning: "How many rows a page holds (default 50).",
        apply: |o| {
            o.minimum = Some(1.into());
            o.maximum = Some((MAX_PAGE as f64).into());
        },
    },
    Rule {
        format: "cursor",
        meaning: "The `next_cursor` of the previous page: a row position, up to 18 digits without a leading zero.",
        apply: |o| o.pattern = Some("^([1-9][0-9]{0,17})?$".to_owned()),
    },
    Rule {
        format: "note",
        meaning: "Up to 500 characters once trimmed; no control characters but line breaks.",
        apply: |o| text(o, 0, 500, true),
    },
    Rule {
        format: "required-note",
        meaning: "1 to 500 characters once trimmed; no control characters but line breaks.",
        apply: |o| text(o, 1, 500, true),
    },
    Rule {
        format: "reason-note",
        meaning: "3 to 500 characters once trimmed; no control characters but line breaks.",
        apply: |o| text(o, 3, 500, true),
    },
    Rule {
        format: "case-note",
        meaning: "1 to 2000 characters once trimmed; no control characters but line breaks.",
        apply: |o| text(o, 1, 2000, true),
    },
    Rule {
        format: "business-name",
        meaning: "2 to 40 characters once trimmed, none of them a control character.",
        apply: |o| text(o, 2, 40, false),
    },
    Rule {
        format: "key-name",
        meaning: "1 to 40 characters once trimmed, none of them a control character.",
        apply: |o| text(o, 1, 40, false),
    },
    Rule {
        format: "transfer-reference",
        meaning: "3 to 64 ASCII letters, digits, `-`, `/`, `.` or `_` not counting spaces (which are dropped; letters are upper-cased).",
        apply: |o| {
            o.pattern = Some(format!(r"^(?:{TRIMMED}*[A-Za-z0-9./_-]){{3,64}}{TRIMMED}*$"));
        },
    },
    Rule {
        format: "mpesa-receipt",
        meaning: "An M-Pesa receipt (`NLJ7RT61SV`): 8 to 20 letters and digits, case and surrounding spaces ignored.",
        apply: |o| o.pattern = Some(format!(r"^{TRIMMED}*[A-Za-z0-9]{{8,20}}{TRIMMED}*$")),
    },
    Rule {
        format: "voucher-code",
        meaning: "The 16 digits of a voucher, the last a Luhn check digit; spaces and dashes between them are ignored. Anything else is refused (400).",
        apply: |o| o.min_length = Some(16),
    },
];

/// Whitespace that `str::trim` removes (Python's and ECMAScript's `\s` also
/// count U+001C–U+001F, which Rust calls control characters, not space).
const TRIMMED: &str = r"[^\S\x1c-\x1f]";
/// What `char::is_control` is true of.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// The same, less line feed and carriage return.
const CONTROL_BUT_LINES: &str = r"\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f";

/// Free text that the server trims, then takes if it has `min` to `max`
/// characters and no control character (line breaks allowed if `lines`).
fn text(object: &mut Object, min: usize, max: usize, lines: bool) {
    let control = if lines { CONTROL_BUT_LINES } else { CONTROL };
    let edge = format!(r"[^\s{control}]");
    let inner = format!("[^{control}]");
    let body = match min {
        0 => format!("(?:{edge}(?:{inner}{{0,{}}}{edge})?)?", max - 2),
        1 => format!("{edge}(?:{inner}{{0,{}}}{edge})?", max - 2),
        _ => format!("{edge}{inner}{{{},{}}}{edge}", min - 2, max - 2),
    };
    object.pattern = Some(format!("^{TRIMMED}*{body}{TRIMMED}*$"));
}

/// PostgreSQL text cannot hold U+0000, so no string ChainPay takes may
/// carry it (400): said of every string the rules below leave unpatterned.
fn no_nul(object: &mut Object) {
    let string = matches!(object.schema_type, SchemaType::Type(Type::String))
        || matches!(&object.schema_type, SchemaType::Array(types) if types.contains(&Type::String));
    // A ChainPay format says what its values look like; a pattern beside
    // it would only make schemathesis's boundary cases ignore the format.
    let own_format = matches!(object.format, Some(SchemaFormat::Custom(_)));
    if string && !own_format && object.pattern.is_none() && object.enum_values.is_none() {
        object.pattern = Some(r"^[^\x00]*$".to_owned());
    }
}

/// Whole shillings from `min_kes` to the M-Pesa maximum, in cents.
fn kes_cents(object: &mut Object, min_kes: i64) {
    object.minimum = Some(((min_kes * 100) as f64).into());
    object.maximum = Some(((MAX_KES * 100) as f64).into());
    object.multiple_of = Some(100.into());
}

/// Applies [`RULES`] to every schema property and parameter that names one.
pub fn complete(openapi: &mut OpenApi) {
    let forms = form_schemas(openapi);
    if let Some(components) = openapi.components.as_mut() {
        for (name, schema) in components.schemas.iter_mut() {
            if let RefOr::T(Schema::Object(object)) = schema {
                for property in object.properties.values_mut() {
                    apply(property, !forms.contains(name));
                }
            }
        }
    }
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                let idempotency_key = super::docs::is_idempotency_key(parameter);
                if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut() {
                    if idempotency_key {
                        object.pattern = Some(format!("^[!-~]{{1,{MAX_KEY_LEN}}}$"));
                    }
                }
                if let Some(schema) = parameter.schema.as_mut() {
                    apply(schema, true);
                }
            }
        }
    }
}

/// Africa's Talking's forms: their text is the carrier's, taken as sent
/// (a NUL in it is refused only where it would be stored).
fn form_schemas(openapi: &OpenApi) -> Vec<String> {
    let bodies = openapi.paths.paths.values().flat_map(|item| {
        [&item.get, &item.put, &item.post, &item.delete, &item.patch]
            .into_iter()
            .flatten()
            .filter_map(|operation| operation.request_body.as_ref())
    });
    bodies
        .filter_map(|body| body.content.get("application/x-www-form-urlencoded"))
        .filter_map(|content| match &content.schema {
            Some(RefOr::Ref(reference)) => reference.ref_location.rsplit('/').next(),
            _ => None,
        })
        .map(str::to_owned)
        .collect()
}

/// Completes one schema: its format's rule, and the NUL rule where it holds.
fn apply(schema: &mut RefOr<Schema>, stored_text: bool) {
    let RefOr::T(Schema::Object(object)) = schema else {
        return;
    };
    if stored_text {
        no_nul(object);
    }
    let Some(SchemaFormat::Custom(format)) = object.format.as_ref() else {
        return;
    };
    if let Some(rule) = RULES.iter().find(|rule| rule.format == format) {
        (rule.apply)(object);
        object.description = Some(match object.description.take() {
            Some(own) => format!("{own}\n\n{}", rule.meaning),
            None => rule.meaning.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_custom_format_in_the_document_has_a_rule() {
        let (_, openapi) = super::super::api();
        let document = serde_json::to_string(&openapi).unwrap();
        let known: Vec<&str> = RULES.iter().map(|rule| rule.format).collect();
        for format in document.split("\"format\":\"").skip(1) {
            let name = &format[..format.find('"').unwrap()];
            let standard = [
                "int32",
                "int64",
                "uuid",
                "date-time",
                "date",
                "double",
                "uri",
            ];
            assert!(
                known.contains(&name) || standard.contains(&name),
                "format {name} has no rule"
            );
        }
        assert!(document.contains(r#""format":"phone""#));
    }
}
