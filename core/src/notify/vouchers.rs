//! Messages of vouchers: the code to its buyer, the redemption to both
//! sides, the refund at cancellation or expiry.

use chrono::{DateTime, Utc};

use super::{eat_date, Receipt, Shown, Sms};
use crate::lang::Lang;

/// How a voucher's money went back to its buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Cancelled,
    Expired,
}

impl Sms {
    /// To the buyer: the code (or, for the copy operators see, the code
    /// masked), its validity and what it cost.
    pub fn voucher_created(
        &self,
        r: Receipt,
        amount: &Shown,
        code: &str,
        expires_at: DateTime<Utc>,
        balance: &Shown,
        fee: &Shown,
    ) -> String {
        let (head, id, until) = (r.head(), r.tx_id, eat_date(expires_at));
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. Voucher of {amount}, code {code}, valid until {until}. Whoever has the code can redeem it once: share it only with the person you are paying. Fee {fee}. New balance is {balance}. Receipt {id}"
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. Vocha ya {amount}, namba {code}, hadi {until}. Mwenye namba anaweza kuitumia mara moja: mpe tu unayemlipa. Ada {fee}. Salio jipya ni {balance}. Risiti {id}"
            ),
        }
    }

    /// To whoever redeemed it into their wallet.
    pub fn voucher_redeemed(
        &self,
        r: Receipt,
        amount: &Shown,
        hint: &str,
        balance: &Shown,
    ) -> String {
        let (head, when, id) = (r.head(), r.when(), r.tx_id);
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. Voucher ending {hint} of {amount} redeemed on {when}. New balance is {balance}. Receipt {id}"
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. Vocha inayoishia {hint} ya {amount} imetumika tarehe {when}. Salio jipya ni {balance}. Risiti {id}"
            ),
        }
    }

    /// To an agent who redeemed it at the counter: hand over the cash.
    pub fn voucher_cashed(
        &self,
        r: Receipt,
        amount: &Shown,
        hint: &str,
        float_balance: &Shown,
    ) -> String {
        let (head, id) = (r.head(), r.tx_id);
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. Voucher ending {hint} redeemed: give the bearer {amount} in cash. Float balance is {float_balance}. Receipt {id}"
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. Vocha inayoishia {hint} imetumika: mpe mwenye vocha {amount} taslimu. Salio la float ni {float_balance}. Risiti {id}"
            ),
        }
    }

    /// To the buyer: their voucher was used.
    pub fn voucher_used(&self, r: Receipt, amount: &Shown, hint: &str, by: &str) -> String {
        let (when, id, by) = (r.when(), r.tx_id, by.to_uppercase());
        match self.0 {
            Lang::En => format!("Your ChainPay voucher ending {hint} of {amount} was redeemed by {by} on {when}. Receipt {id}"),
            Lang::Sw => format!("Vocha yako ya ChainPay inayoishia {hint} ya {amount} imetumiwa na {by} tarehe {when}. Risiti {id}"),
        }
    }

    /// To the buyer: the voucher's amount is back in their wallet.
    pub fn voucher_returned(
        &self,
        r: Receipt,
        amount: &Shown,
        hint: &str,
        why: Return,
        balance: &Shown,
    ) -> String {
        let (head, when, id) = (r.head(), r.when(), r.tx_id);
        match (self.0, why) {
            (Lang::En, Return::Cancelled) => format!(
                "{head} Confirmed. Voucher ending {hint} cancelled; {amount} returned on {when}. New balance is {balance}. Receipt {id}"
            ),
            (Lang::En, Return::Expired) => format!(
                "{head} Confirmed. Voucher ending {hint} expired unused; {amount} returned on {when}. New balance is {balance}. Receipt {id}"
            ),
            (Lang::Sw, Return::Cancelled) => format!(
                "{head} Imethibitishwa. Vocha inayoishia {hint} imefutwa; {amount} imerudishwa tarehe {when}. Salio jipya ni {balance}. Risiti {id}"
            ),
            (Lang::Sw, Return::Expired) => format!(
                "{head} Imethibitishwa. Vocha inayoishia {hint} imeisha muda bila kutumika; {amount} imerudishwa tarehe {when}. Salio jipya ni {balance}. Risiti {id}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::receipt;

    #[test]
    fn the_code_message_warns_that_the_code_is_money() {
        let expires = DateTime::from_timestamp(1_764_082_268 + 7 * 86_400, 0).unwrap();
        let text = Sms(Lang::En).voucher_created(
            receipt(),
            "KES 500.00",
            "4539 1488 0343 6467",
            expires,
            "KES 9,497.50",
            "KES 2.50",
        );
        assert!(
            text.contains("code 4539 1488 0343 6467, valid until 2/12/25"),
            "{text}"
        );
        assert!(text.contains("share it only with the person you are paying"));
        assert!(text.chars().count() <= 918);
    }
}
