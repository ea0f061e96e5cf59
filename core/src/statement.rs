//! Mini-statement lines, short enough for a USSD screen or an SMS:
//! `25/11 -KES 255.00 to BARAKA`. One wording for both channels, in
//! English and Swahili.

use chrono::{DateTime, Utc};

use crate::lang::Lang;

/// What one movement was, from the statement owner's side. Amounts are
/// already shown with their currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Sent {
        amount: String,
        to: String,
    },
    Received {
        amount: String,
        from: String,
    },
    Converted {
        paid: String,
        got: String,
    },
    Deposit {
        amount: String,
    },
    Withdrawal {
        amount: String,
    },
    /// A reversal that took money back from the owner.
    ReversedOut {
        amount: String,
    },
    /// A reversal that returned money to the owner.
    ReversedIn {
        amount: String,
    },
    /// Cash paid in at an agent.
    CashIn {
        amount: String,
        agent: String,
    },
    /// Cash taken out at an agent (amount and fee).
    CashOut {
        amount: String,
        agent: String,
    },
    /// A payment to a business.
    PaidMerchant {
        amount: String,
        merchant: String,
    },
    /// A business's refund of a payment.
    MerchantRefund {
        amount: String,
        merchant: String,
    },
    /// A voucher bought (amount and fee).
    VoucherBought {
        amount: String,
    },
    /// A voucher redeemed into the owner's wallet.
    VoucherRedeemed {
        amount: String,
    },
    /// A voucher's amount returned to its buyer (cancelled or expired).
    VoucherReturned {
        amount: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub at: DateTime<Utc>,
    pub entry: Entry,
}

/// The first name, upper-cased, as statements show counterparties.
pub fn first_name(name: &str) -> String {
    name.split_whitespace().next().unwrap_or("").to_uppercase()
}

impl Line {
    /// One line of the mini statement. (A table with an arm per kind of
    /// entry, so longer than most functions.)
    pub fn render(&self, lang: Lang) -> String {
        let date = self.at.format("%d/%m");
        let sw = lang == Lang::Sw;
        let text = match &self.entry {
            Entry::Sent { amount, to } => {
                format!("-{amount} {} {to}", if sw { "kwa" } else { "to" })
            }
            Entry::Received { amount, from } => {
                format!("+{amount} {} {from}", if sw { "kutoka" } else { "from" })
            }
            Entry::Converted { paid, got } => {
                format!("{paid} {} {got}", if sw { "kuwa" } else { "to" })
            }
            Entry::Deposit { amount } => {
                format!("+{amount} {}", if sw { "kuweka" } else { "deposit" })
            }
            Entry::Withdrawal { amount } => {
                format!("-{amount} {}", if sw { "kutoa" } else { "withdrawal" })
            }
            Entry::ReversedOut { amount } => {
                format!("-{amount} {}", if sw { "imerudishwa" } else { "reversed" })
            }
            Entry::ReversedIn { amount } => {
                format!("+{amount} {}", if sw { "marejesho" } else { "reversal" })
            }
            Entry::CashIn { amount, agent } => {
                format!(
                    "+{amount} {} {agent}",
                    if sw { "taslimu kwa" } else { "cash in at" }
                )
            }
            Entry::MerchantRefund { amount, merchant } => {
                format!(
                    "+{amount} {} {merchant}",
                    if sw {
                        "marejesho kutoka"
                    } else {
                        "refund from"
                    }
                )
            }
            Entry::PaidMerchant { amount, merchant } => {
                format!(
                    "-{amount} {} {merchant}",
                    if sw { "malipo kwa" } else { "paid" }
                )
            }
            Entry::CashOut { amount, agent } => {
                format!(
                    "-{amount} {} {agent}",
                    if sw { "kutoa kwa" } else { "cash out at" }
                )
            }
            Entry::VoucherBought { amount } => {
                format!("-{amount} {}", if sw { "vocha" } else { "voucher" })
            }
            Entry::VoucherRedeemed { amount } => {
                format!("+{amount} {}", if sw { "vocha" } else { "voucher" })
            }
            Entry::VoucherReturned { amount } => {
                format!(
                    "+{amount} {}",
                    if sw {
                        "vocha imerudishwa"
                    } else {
                        "voucher refund"
                    }
                )
            }
        };
        format!("{date} {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_short_and_in_the_customers_language() {
        let line = Line {
            at: DateTime::from_timestamp(1_764_082_268, 0).unwrap(),
            entry: Entry::Sent {
                amount: "KES 255.00".into(),
                to: first_name("Baraka Juma"),
            },
        };
        assert_eq!(line.render(Lang::En), "25/11 -KES 255.00 to BARAKA");
        assert_eq!(line.render(Lang::Sw), "25/11 -KES 255.00 kwa BARAKA");
    }
}
