//! Double-entry rules, independent of storage.
//!
//! Every account's balance is the sum of its postings, and every journal
//! entry's postings sum to zero in each currency, so the whole ledger sums to
//! zero per currency. With this sign convention a customer wallet holds a
//! positive balance and the system account that funded it (a float) holds the
//! matching negative one: money is only ever *moved*, never created.

use std::collections::BTreeMap;

use crate::money::CurrencyCode;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LedgerError {
    #[error("a journal entry needs at least two postings")]
    TooFewPostings,
    #[error("a posting of zero moves nothing")]
    ZeroPosting,
    #[error("postings in {0} do not sum to zero")]
    Unbalanced(CurrencyCode),
    #[error("amounts overflow")]
    Overflow,
}

/// One side of a movement: `amount_minor` is added to the account's balance
/// (negative takes money out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account_id: i64,
    pub currency: CurrencyCode,
    pub amount_minor: i64,
}

/// A balanced set of postings. Existing means balanced: the constructor is
/// the only way to make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    postings: Vec<Posting>,
}

impl JournalEntry {
    pub fn new(postings: Vec<Posting>) -> Result<Self, LedgerError> {
        if postings.len() < 2 {
            return Err(LedgerError::TooFewPostings);
        }
        let mut sums: BTreeMap<&CurrencyCode, i64> = BTreeMap::new();
        for posting in &postings {
            if posting.amount_minor == 0 {
                return Err(LedgerError::ZeroPosting);
            }
            let sum = sums.entry(&posting.currency).or_insert(0);
            *sum = sum
                .checked_add(posting.amount_minor)
                .ok_or(LedgerError::Overflow)?;
        }
        if let Some((currency, _)) = sums.into_iter().find(|(_, sum)| *sum != 0) {
            return Err(LedgerError::Unbalanced(currency.clone()));
        }
        Ok(Self { postings })
    }

    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// Net change per account, in ascending account-id order. Applying
    /// balance updates (and taking row locks) in this one global order is what
    /// keeps concurrent entries from deadlocking.
    pub fn net_by_account(&self) -> Vec<(i64, i64)> {
        let mut net: BTreeMap<i64, i64> = BTreeMap::new();
        for posting in &self.postings {
            *net.entry(posting.account_id).or_insert(0) += posting.amount_minor;
        }
        net.into_iter().collect()
    }
}

/// The accounts a same-currency transfer touches.
#[derive(Debug, Clone, Copy)]
pub struct TransferAccounts {
    pub source_wallet: i64,
    pub target_wallet: i64,
    pub fee_revenue: i64,
}

/// Postings for "source pays `amount` to target plus `fee` to the house".
pub fn transfer_entry(
    accounts: TransferAccounts,
    currency: &CurrencyCode,
    amount_minor: i64,
    fee_minor: i64,
) -> Result<JournalEntry, LedgerError> {
    let total = amount_minor
        .checked_add(fee_minor)
        .ok_or(LedgerError::Overflow)?;
    let posting = |account_id, amount_minor| Posting {
        account_id,
        currency: currency.clone(),
        amount_minor,
    };
    let mut postings = vec![
        posting(accounts.source_wallet, -total),
        posting(accounts.target_wallet, amount_minor),
    ];
    if fee_minor > 0 {
        postings.push(posting(accounts.fee_revenue, fee_minor));
    }
    JournalEntry::new(postings)
}

/// The accounts a conversion touches: the customer's two wallets, the FX
/// position account of each currency, and a fee revenue account in the
/// source currency.
#[derive(Debug, Clone, Copy)]
pub struct ConversionAccounts {
    pub source_wallet: i64,
    pub target_wallet: i64,
    pub source_position: i64,
    pub target_position: i64,
    pub fee_revenue: i64,
}

/// Postings for "the customer sells `amount` (+ `fee`) of `source` and
/// receives `converted` of `target`": the house's FX position takes the
/// source money and pays out the target money, so each currency balances
/// on its own.
pub fn conversion_entry(
    accounts: ConversionAccounts,
    source: &CurrencyCode,
    target: &CurrencyCode,
    amount_minor: i64,
    converted_minor: i64,
    fee_minor: i64,
) -> Result<JournalEntry, LedgerError> {
    let total = amount_minor
        .checked_add(fee_minor)
        .ok_or(LedgerError::Overflow)?;
    let posting = |account_id, currency: &CurrencyCode, amount_minor| Posting {
        account_id,
        currency: currency.clone(),
        amount_minor,
    };
    let mut postings = vec![
        posting(accounts.source_wallet, source, -total),
        posting(accounts.source_position, source, amount_minor),
        posting(accounts.target_position, target, -converted_minor),
        posting(accounts.target_wallet, target, converted_minor),
    ];
    if fee_minor > 0 {
        postings.push(posting(accounts.fee_revenue, source, fee_minor));
    }
    JournalEntry::new(postings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kes() -> CurrencyCode {
        CurrencyCode::parse("KES").unwrap()
    }

    fn usd() -> CurrencyCode {
        CurrencyCode::parse("USD").unwrap()
    }

    fn posting(account_id: i64, currency: CurrencyCode, amount_minor: i64) -> Posting {
        Posting {
            account_id,
            currency,
            amount_minor,
        }
    }

    #[test]
    fn an_entry_whose_postings_do_not_sum_to_zero_cannot_exist() {
        let entry = JournalEntry::new(vec![posting(1, kes(), -100), posting(2, kes(), 99)]);
        assert_eq!(entry, Err(LedgerError::Unbalanced(kes())));
    }

    #[test]
    fn each_currency_must_balance_on_its_own() {
        let entry = JournalEntry::new(vec![posting(1, kes(), -100), posting(2, usd(), 100)]);
        assert!(matches!(entry, Err(LedgerError::Unbalanced(_))));
    }

    #[test]
    fn single_and_zero_postings_are_refused() {
        assert_eq!(
            JournalEntry::new(vec![posting(1, kes(), 0)]),
            Err(LedgerError::TooFewPostings)
        );
        assert_eq!(
            JournalEntry::new(vec![posting(1, kes(), 0), posting(2, kes(), 0)]),
            Err(LedgerError::ZeroPosting)
        );
    }

    #[test]
    fn overflowing_sums_are_refused_not_wrapped() {
        let entry = JournalEntry::new(vec![
            posting(1, kes(), i64::MAX),
            posting(2, kes(), 1),
            posting(3, kes(), 1),
        ]);
        assert_eq!(entry, Err(LedgerError::Overflow));
    }

    #[test]
    fn a_transfer_debits_amount_plus_fee_and_credits_target_and_house() {
        let accounts = TransferAccounts {
            source_wallet: 9,
            target_wallet: 3,
            fee_revenue: 5,
        };
        let entry = transfer_entry(accounts, &kes(), 10_000, 150).unwrap();
        assert_eq!(
            entry.net_by_account(),
            vec![(3, 10_000), (5, 150), (9, -10_150)]
        );
    }

    #[test]
    fn a_conversion_balances_in_each_currency_through_the_fx_positions() {
        let accounts = ConversionAccounts {
            source_wallet: 1,
            target_wallet: 2,
            source_position: 3,
            target_position: 4,
            fee_revenue: 5,
        };
        let entry = conversion_entry(accounts, &usd(), &kes(), 1_000, 128_528, 20).unwrap();
        assert_eq!(
            entry.net_by_account(),
            vec![
                (1, -1_020),
                (2, 128_528),
                (3, 1_000),
                (4, -128_528),
                (5, 20)
            ]
        );
    }

    #[test]
    fn a_free_transfer_has_no_fee_posting() {
        let accounts = TransferAccounts {
            source_wallet: 1,
            target_wallet: 2,
            fee_revenue: 3,
        };
        let entry = transfer_entry(accounts, &kes(), 500, 0).unwrap();
        assert_eq!(entry.postings().len(), 2);
    }
}
