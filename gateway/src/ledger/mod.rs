//! The ledger in PostgreSQL: finding accounts, posting balanced journal
//! entries, and proving afterwards that the books still balance.

pub mod accounts;
pub mod check;
pub mod post;

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::{Builder, Uuid};

/// A new transaction id: a UUIDv7 (RFC 9562), its first 48 bits the
/// millisecond it was made and 74 of the rest random. Ids made close in time
/// sit side by side in every index keyed by them (transactions, postings, the
/// chain's queue and entries), so an insert touches an index's newest pages
/// instead of a random page of the whole index; the random bits keep an id
/// unguessable, since chain proofs are served by id.
pub fn new_tx_id() -> Uuid {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn transaction_ids_are_version_7_distinct_and_ordered_by_their_millisecond() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ids: Vec<_> = (0..1_000).map(|_| super::new_tx_id()).collect();
        let (seconds, _) = ids[0].get_timestamp().unwrap().to_unix();
        assert!(seconds.abs_diff(now.as_secs()) <= 1);
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(ids
            .iter()
            .all(|id| id.get_variant() == uuid::Variant::RFC4122));
        assert!(ids
            .windows(2)
            .all(|w| w[0].as_bytes()[..6] <= w[1].as_bytes()[..6]));
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    }
}
