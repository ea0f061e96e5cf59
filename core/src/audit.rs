//! The audit log's hash chain: the canonical bytes of an entry and the link
//! hash that ties it to the entry before it.
//!
//! `entry_hash = SHA3-256(prev_hash ‖ canonical bytes)` (hex), with 64 zeros
//! as the `prev_hash` of the first entry. Changing, removing or reordering
//! any entry changes every hash after it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha3::{Digest, Sha3_256};
use uuid::Uuid;

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of an audit entry that the chain protects.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<Uuid>,
    pub action: String,
    pub outcome: String,
    pub subject: Option<String>,
    pub detail: Value,
    pub request_id: Option<String>,
}

impl AuditRecord {
    /// `chainpay-audit-v1|id|at|actor|action|outcome|subject|detail|request_id`,
    /// `-` for an absent value, `detail` as canonical JSON.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        format!(
            "chainpay-audit-v1|{}|{}|{}|{}|{}|{}|{}|{}",
            self.id,
            self.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            or_dash(self.actor_user_id.map(|id| id.to_string())),
            self.action,
            self.outcome,
            or_dash(self.subject.clone()),
            canonical_json(&self.detail),
            or_dash(self.request_id.clone()),
        )
        .into_bytes()
    }

    /// This entry's hash when it follows `prev_hash`.
    pub fn link_hash(&self, prev_hash: &str) -> String {
        let mut hasher = Sha3_256::new();
        hasher.update(prev_hash.as_bytes());
        hasher.update(self.canonical_bytes());
        hex::encode(hasher.finalize())
    }
}

/// JSON with object keys sorted at every level and no insignificant
/// whitespace, so the same value always yields the same bytes.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    format!(
                        "{}:{}",
                        Value::String(key.clone()),
                        canonical_json(&map[key])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        scalar => scalar.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> AuditRecord {
        AuditRecord {
            id: 7,
            at: DateTime::from_timestamp_micros(1_700_000_000_000_001).unwrap(),
            actor_user_id: None,
            action: "auth.login".into(),
            outcome: "success".into(),
            subject: Some("+254700000001".into()),
            detail: json!({"b": 1, "a": {"d": [1, 2], "c": "x"}}),
            request_id: None,
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        assert_eq!(
            canonical_json(&record().detail),
            r#"{"a":{"c":"x","d":[1,2]},"b":1}"#
        );
    }

    #[test]
    fn any_change_to_an_entry_or_its_predecessor_changes_its_hash() {
        let hash = record().link_hash(GENESIS_HASH);
        assert_eq!(hash.len(), 64);
        let mut altered = record();
        altered.outcome = "failure".into();
        assert_ne!(altered.link_hash(GENESIS_HASH), hash);
        assert_ne!(record().link_hash(&hash), hash);
        assert_eq!(record().link_hash(GENESIS_HASH), hash);
    }
}
