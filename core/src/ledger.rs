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
/// One leg of a journal entry: a signed change to an account's balance.
/// `A` names the account: an id once resolved, or whatever reference the
/// caller resolves later (the gateway's `AccountRef`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting<A = i64> {
    pub account: A,
    pub currency: CurrencyCode,
    pub amount_minor: i64,
}

/// Postings that sum to zero in every currency. A value of this type is
/// balanced by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry<A = i64> {
    postings: Vec<Posting<A>>,
}

impl<A> JournalEntry<A> {
    pub fn new(postings: Vec<Posting<A>>) -> Result<Self, LedgerError> {
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

    pub fn postings(&self) -> &[Posting<A>] {
        &self.postings
    }

    /// The same entry with each account named another way (references
    /// resolved to ids); still balanced, since amounts do not change.
    pub fn map_accounts<B, E>(
        self,
        mut resolve: impl FnMut(A) -> Result<B, E>,
    ) -> Result<JournalEntry<B>, E> {
        let postings = self
            .postings
            .into_iter()
            .map(|p| {
                Ok(Posting {
                    account: resolve(p.account)?,
                    currency: p.currency,
                    amount_minor: p.amount_minor,
                })
            })
            .collect::<Result<Vec<_>, E>>()?;
        Ok(JournalEntry { postings })
    }

    /// The entry that undoes this one: every posting with its sign flipped.
    pub fn reversed(self) -> Self {
        let postings = self
            .postings
            .into_iter()
            .map(|p| Posting {
                amount_minor: -p.amount_minor,
                ..p
            })
            .collect();
        Self { postings }
    }
}

impl<A: Ord + Clone> JournalEntry<A> {
    /// The net change per account, in ascending account order: the order
    /// rows are locked in, so two entries never wait on each other in a cycle.
    pub fn net_by_account(&self) -> Vec<(A, i64)> {
        let mut net: BTreeMap<A, i64> = BTreeMap::new();
        for posting in &self.postings {
            *net.entry(posting.account.clone()).or_insert(0) += posting.amount_minor;
        }
        net.into_iter().collect()
    }
}

/// `amount_minor` from one account to another: deposits, payouts,
/// reversals, funding.
pub fn move_entry<A>(
    from: A,
    to: A,
    currency: &CurrencyCode,
    amount_minor: i64,
) -> Result<JournalEntry<A>, LedgerError> {
    let posting = |account, amount_minor| Posting {
        account,
        currency: currency.clone(),
        amount_minor,
    };
    JournalEntry::new(vec![
        posting(from, -amount_minor),
        posting(to, amount_minor),
    ])
}

/// The accounts of a payment with a fee: the payer's wallet, whoever is
/// paid (a wallet, or a hold for money on its way out) and fee revenue.
#[derive(Debug, Clone)]
pub struct TransferAccounts<A = i64> {
    pub source_wallet: A,
    pub target_wallet: A,
    pub fee_revenue: A,
}

/// Source pays `amount + fee`; target receives `amount`; the house keeps the fee.
pub fn transfer_entry<A>(
    accounts: TransferAccounts<A>,
    currency: &CurrencyCode,
    amount_minor: i64,
    fee_minor: i64,
) -> Result<JournalEntry<A>, LedgerError> {
    let total = amount_minor
        .checked_add(fee_minor)
        .ok_or(LedgerError::Overflow)?;
    let posting = |account, amount_minor| Posting {
        account,
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

/// The accounts of a conversion between one customer's two wallets.
#[derive(Debug, Clone)]
pub struct ConversionAccounts<A = i64> {
    pub source_wallet: A,
    pub target_wallet: A,
    pub source_position: A,
    pub target_position: A,
    pub fee_revenue: A,
}

/// The customer pays `amount + fee` in the source currency and receives
/// `converted` in the target; the house's FX positions take the other side
/// of each, so each currency balances on its own.
pub fn conversion_entry<A>(
    accounts: ConversionAccounts<A>,
    source: &CurrencyCode,
    target: &CurrencyCode,
    amount_minor: i64,
    converted_minor: i64,
    fee_minor: i64,
) -> Result<JournalEntry<A>, LedgerError> {
    let total = amount_minor
        .checked_add(fee_minor)
        .ok_or(LedgerError::Overflow)?;
    let posting = |account, currency: &CurrencyCode, amount_minor| Posting {
        account,
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

/// The accounts of a movement at an agent's counter.
#[derive(Debug, Clone)]
pub struct AgentAccounts<A = i64> {
    pub customer_wallet: A,
    pub agent_float: A,
    pub fee_revenue: A,
}

/// Cash-in: the agent's float pays `amount` into the customer's wallet, and
/// fee revenue pays the agent's `commission` into the float, in one entry.
pub fn cash_in_entry<A>(
    accounts: AgentAccounts<A>,
    currency: &CurrencyCode,
    amount_minor: i64,
    commission_minor: i64,
) -> Result<JournalEntry<A>, LedgerError> {
    let posting = |account, amount_minor| Posting {
        account,
        currency: currency.clone(),
        amount_minor,
    };
    let float_change = commission_minor
        .checked_sub(amount_minor)
        .ok_or(LedgerError::Overflow)?;
    let mut postings = vec![
        posting(accounts.agent_float, float_change),
        posting(accounts.customer_wallet, amount_minor),
    ];
    if commission_minor > 0 {
        postings.push(posting(accounts.fee_revenue, -commission_minor));
    }
    JournalEntry::new(postings)
}

/// Cash-out: the customer pays `amount + fee`; the agent's float receives
/// `amount` and the `commission` (a share of the fee); fee revenue keeps
/// the rest of the fee.
pub fn cash_out_entry<A>(
    accounts: AgentAccounts<A>,
    currency: &CurrencyCode,
    amount_minor: i64,
    fee_minor: i64,
    commission_minor: i64,
) -> Result<JournalEntry<A>, LedgerError> {
    let posting = |account, amount_minor| Posting {
        account,
        currency: currency.clone(),
        amount_minor,
    };
    let total = amount_minor
        .checked_add(fee_minor)
        .ok_or(LedgerError::Overflow)?;
    let kept = fee_minor - commission_minor.min(fee_minor);
    let mut postings = vec![
        posting(accounts.customer_wallet, -total),
        posting(accounts.agent_float, total - kept),
    ];
    if kept > 0 {
        postings.push(posting(accounts.fee_revenue, kept));
    }
    JournalEntry::new(postings)
}

/// The accounts of a payment to a merchant.
#[derive(Debug, Clone)]
pub struct MerchantAccounts<A = i64> {
    pub customer_wallet: A,
    pub merchant: A,
    pub fee_revenue: A,
}

/// A merchant payment: the customer pays `amount`; the merchant receives
/// it less its `fee`, which goes to fee revenue, in one entry.
pub fn merchant_payment_entry<A>(
    accounts: MerchantAccounts<A>,
    currency: &CurrencyCode,
    amount_minor: i64,
    fee_minor: i64,
) -> Result<JournalEntry<A>, LedgerError> {
    let posting = |account, amount_minor| Posting {
        account,
        currency: currency.clone(),
        amount_minor,
    };
    let fee = fee_minor.clamp(0, amount_minor);
    let mut postings = vec![
        posting(accounts.customer_wallet, -amount_minor),
        posting(accounts.merchant, amount_minor - fee),
    ];
    if fee > 0 {
        postings.push(posting(accounts.fee_revenue, fee));
    }
    JournalEntry::new(postings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merchant_payment_costs_the_customer_the_amount_and_the_merchant_the_fee() {
        let accounts = MerchantAccounts {
            customer_wallet: 1,
            merchant: 2,
            fee_revenue: 3,
        };
        let entry = merchant_payment_entry(accounts, &kes(), 10_000, 100).unwrap();
        let amounts: Vec<i64> = entry.postings().iter().map(|p| p.amount_minor).collect();
        assert_eq!(amounts, vec![-10_000, 9_900, 100]);
    }

    fn kes() -> CurrencyCode {
        CurrencyCode::parse("KES").unwrap()
    }

    fn usd() -> CurrencyCode {
        CurrencyCode::parse("USD").unwrap()
    }

    fn posting(account: i64, currency: CurrencyCode, amount_minor: i64) -> Posting {
        Posting {
            account,
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
            JournalEntry::<i64>::new(vec![posting(1, kes(), 0)]),
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

    #[test]
    fn a_reversed_entry_undoes_the_original_exactly() {
        let accounts = TransferAccounts {
            source_wallet: 1,
            target_wallet: 2,
            fee_revenue: 3,
        };
        let entry = transfer_entry(accounts, &kes(), 500, 20).unwrap();
        let undone = entry.clone().reversed();
        assert_eq!(undone.net_by_account(), vec![(1, 520), (2, -500), (3, -20)]);
    }

    #[test]
    fn a_cash_in_pays_the_customer_from_the_float_and_the_commission_from_revenue() {
        let accounts = AgentAccounts {
            customer_wallet: 1,
            agent_float: 2,
            fee_revenue: 3,
        };
        let entry = cash_in_entry(accounts, &kes(), 50_000, 100).unwrap();
        assert_eq!(
            entry.net_by_account(),
            vec![(1, 50_000), (2, -49_900), (3, -100)]
        );
    }

    #[test]
    fn a_cash_out_shares_the_fee_between_agent_and_house() {
        let accounts = AgentAccounts {
            customer_wallet: 1,
            agent_float: 2,
            fee_revenue: 3,
        };
        let entry = cash_out_entry(accounts.clone(), &kes(), 50_000, 500, 200).unwrap();
        assert_eq!(
            entry.net_by_account(),
            vec![(1, -50_500), (2, 50_200), (3, 300)]
        );
        let all_to_agent = cash_out_entry(accounts, &kes(), 50_000, 500, 900).unwrap();
        assert_eq!(
            all_to_agent.net_by_account(),
            vec![(1, -50_500), (2, 50_500)],
            "a commission is never more than the fee"
        );
    }
}
