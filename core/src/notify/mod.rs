//! Every SMS a customer receives, in English and Swahili, in one place.
//!
//! Confirmations read like M-Pesa's: the reference first, then what
//! happened, the counterparty, the time (East Africa Time), the new balance
//! and the fee. Each ends with the full transaction id, the receipt a
//! customer can check against the chain. Amounts arrive already shown with
//! their currency ([`crate::money::show`]).

mod agents;
mod desk;
mod merchants;
mod vouchers;

pub use agents::{Agent, Float};
pub use merchants::Business;
pub use vouchers::Return;

use chrono::{DateTime, FixedOffset, Utc};
use uuid::Uuid;

use crate::lang::Lang;
use crate::transaction::reference;
use crate::ussd::SERVICE_CODE;

/// Kenya time: UTC+3, no daylight saving.
fn eat(at: DateTime<Utc>) -> String {
    let offset = FixedOffset::east_opt(3 * 3600)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
    at.with_timezone(&offset)
        .format("%-d/%-m/%y at %-I:%M %p")
        .to_string()
}

/// A date in Kenya time (`1/12/26`), as an expiry is shown.
fn eat_date(at: DateTime<Utc>) -> String {
    let offset = FixedOffset::east_opt(3 * 3600)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
    at.with_timezone(&offset).format("%-d/%-m/%y").to_string()
}

/// An amount already formatted with its currency (`KES 250.00`).
pub type Shown = str;

/// The other side of a movement, as a message names them.
pub struct Party<'a> {
    pub name: &'a str,
    pub phone: &'a str,
}

/// What a movement message says about itself: its id and when it happened.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub tx_id: Uuid,
    pub at: DateTime<Utc>,
}

impl Receipt {
    fn head(&self) -> String {
        reference(self.tx_id)
    }

    fn when(&self) -> String {
        eat(self.at)
    }
}

/// The messages of one language.
pub struct Sms(pub Lang);

impl Sms {
    pub fn sent(
        &self,
        r: Receipt,
        amount: &Shown,
        to: Party,
        balance: &Shown,
        fee: &Shown,
    ) -> String {
        let (head, when, id, name) = (r.head(), r.when(), r.tx_id, to.name.to_uppercase());
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. {amount} sent to {name} {} on {when}. New balance is {balance}. Fee {fee}. Receipt {id}",
                to.phone
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. {amount} imetumwa kwa {name} {} tarehe {when}. Salio jipya ni {balance}. Ada {fee}. Risiti {id}",
                to.phone
            ),
        }
    }

    pub fn received(&self, r: Receipt, amount: &Shown, from: Party, balance: &Shown) -> String {
        let (head, when, id, name) = (r.head(), r.when(), r.tx_id, from.name.to_uppercase());
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. You have received {amount} from {name} {} on {when}. New balance is {balance}. Receipt {id}",
                from.phone
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. Umepokea {amount} kutoka kwa {name} {} tarehe {when}. Salio jipya ni {balance}. Risiti {id}",
                from.phone
            ),
        }
    }

    pub fn converted(
        &self,
        r: Receipt,
        amount: &Shown,
        got: &Shown,
        rate: &str,
        balance: &Shown,
        fee: &Shown,
    ) -> String {
        let (head, when, id) = (r.head(), r.when(), r.tx_id);
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. {amount} converted to {got} at {rate} on {when}. New balance is {balance}. Fee {fee}. Receipt {id}"
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. {amount} imebadilishwa kuwa {got} kwa kiwango {rate} tarehe {when}. Salio jipya ni {balance}. Ada {fee}. Risiti {id}"
            ),
        }
    }

    pub fn deposited(
        &self,
        r: Receipt,
        amount: &Shown,
        mpesa_receipt: Option<&str>,
        balance: &Shown,
    ) -> String {
        let (head, when, id) = (r.head(), r.when(), r.tx_id);
        match (self.0, mpesa_receipt) {
            (Lang::En, Some(m)) => format!(
                "{head} Confirmed. {amount} deposited from M-Pesa ({m}) on {when}. New balance is {balance}. Receipt {id}"
            ),
            (Lang::En, None) => format!(
                "{head} Confirmed. {amount} deposited from M-Pesa on {when}. New balance is {balance}. Receipt {id}"
            ),
            (Lang::Sw, Some(m)) => format!(
                "{head} Imethibitishwa. {amount} imewekwa kutoka M-Pesa ({m}) tarehe {when}. Salio jipya ni {balance}. Risiti {id}"
            ),
            (Lang::Sw, None) => format!(
                "{head} Imethibitishwa. {amount} imewekwa kutoka M-Pesa tarehe {when}. Salio jipya ni {balance}. Risiti {id}"
            ),
        }
    }

    pub fn withdrawn(
        &self,
        r: Receipt,
        amount: &Shown,
        to_phone: &str,
        balance: &Shown,
        fee: &Shown,
    ) -> String {
        let (head, when, id) = (r.head(), r.when(), r.tx_id);
        match self.0 {
            Lang::En => format!(
                "{head} Confirmed. {amount} withdrawn to M-Pesa {to_phone} on {when}. New balance is {balance}. Fee {fee}. Receipt {id}"
            ),
            Lang::Sw => format!(
                "{head} Imethibitishwa. {amount} imetolewa kwenda M-Pesa {to_phone} tarehe {when}. Salio jipya ni {balance}. Ada {fee}. Risiti {id}"
            ),
        }
    }

    /// A payout M-Pesa did not make; `reason` is Safaricom's own wording.
    pub fn withdrawal_failed(
        &self,
        amount: &Shown,
        reason: &str,
        returned: &Shown,
        balance: &Shown,
    ) -> String {
        match self.0 {
            Lang::En => format!(
                "ChainPay: your withdrawal of {amount} to M-Pesa did not go through ({reason}). {returned} has been returned. New balance is {balance}."
            ),
            Lang::Sw => format!(
                "ChainPay: utoaji wako wa {amount} kwenda M-Pesa haukufanikiwa ({reason}). {returned} imerudishwa. Salio jipya ni {balance}."
            ),
        }
    }

    /// A payout returned as failed that M-Pesa reports made after all:
    /// part of the balance is held while operators check.
    pub fn withdrawal_paid_after_refund_held(
        &self,
        amount: &Shown,
        to_phone: &str,
        held: &Shown,
    ) -> String {
        match self.0 {
            Lang::En => format!(
                "ChainPay: M-Pesa reports your withdrawal of {amount} to {to_phone}, which was returned to you, as paid. {held} of your balance is held while we check."
            ),
            Lang::Sw => format!(
                "ChainPay: M-Pesa inaripoti kuwa utoaji wako wa {amount} kwenda {to_phone}, uliorudishiwa, ulilipwa. {held} ya salio lako imezuiliwa tunapohakiki."
            ),
        }
    }

    /// What was held while operators checked is the customer's to spend
    /// again (the payout's settlement stands).
    pub fn hold_released(&self, released: &Shown) -> String {
        match self.0 {
            Lang::En => format!(
                "ChainPay: we have checked your withdrawal with M-Pesa. The {released} held on your balance is released."
            ),
            Lang::Sw => format!(
                "ChainPay: tumehakiki utoaji wako na M-Pesa. {released} iliyozuiliwa kwenye salio lako imeachiliwa."
            ),
        }
    }

    /// A payout returned as failed that M-Pesa made after all: amount and
    /// fee, returned earlier, are taken back (approved by two operators).
    pub fn withdrawal_paid_after_all(
        &self,
        amount: &Shown,
        to_phone: &str,
        taken: &Shown,
        balance: &Shown,
    ) -> String {
        match self.0 {
            Lang::En => format!(
                "ChainPay: M-Pesa has confirmed your withdrawal of {amount} to {to_phone} was paid after all. The {taken} returned to you has been taken back. New balance is {balance}."
            ),
            Lang::Sw => format!(
                "ChainPay: M-Pesa imethibitisha kuwa utoaji wako wa {amount} kwenda {to_phone} ulilipwa. {taken} uliyorudishiwa imechukuliwa tena. Salio jipya ni {balance}."
            ),
        }
    }

    pub fn reversed(
        &self,
        r: Receipt,
        original: Uuid,
        amount: &Shown,
        credited: bool,
        balance: &Shown,
    ) -> String {
        let (head, when, id, original) = (r.head(), r.when(), r.tx_id, reference(original));
        match (self.0, credited) {
            (Lang::En, true) => format!(
                "{head} Confirmed. Transaction {original} was reversed on {when}: {amount} returned to you. New balance is {balance}. Receipt {id}"
            ),
            (Lang::En, false) => format!(
                "{head} Confirmed. Transaction {original} was reversed on {when}: {amount} taken back from you. New balance is {balance}. Receipt {id}"
            ),
            (Lang::Sw, true) => format!(
                "{head} Imethibitishwa. Muamala {original} umerudishwa tarehe {when}: {amount} imerudishwa kwako. Salio jipya ni {balance}. Risiti {id}"
            ),
            (Lang::Sw, false) => format!(
                "{head} Imethibitishwa. Muamala {original} umerudishwa tarehe {when}: {amount} imechukuliwa kutoka kwako. Salio jipya ni {balance}. Risiti {id}"
            ),
        }
    }

    /// An operator turned a reversal request down; `note` is theirs, if any.
    pub fn reversal_declined(&self, original: Uuid, amount: &Shown, note: &str) -> String {
        let original = reference(original);
        let reason = match (self.0, note.is_empty()) {
            (_, true) => String::new(),
            (Lang::En, false) => format!(" Reason: {note}"),
            (Lang::Sw, false) => format!(" Sababu: {note}"),
        };
        match self.0 {
            Lang::En => format!(
                "ChainPay: your request to reverse {original} ({amount}) was declined.{reason}"
            ),
            Lang::Sw => format!(
                "ChainPay: ombi lako la kurudisha {original} ({amount}) limekataliwa.{reason}"
            ),
        }
    }

    /// The owner's account just locked after too many wrong PINs; `minutes`
    /// is how long, or `None` until support unlocks it or the PIN is reset.
    pub fn account_locked(&self, minutes: Option<i64>) -> String {
        match (self.0, minutes) {
            (Lang::En, Some(m)) => format!(
                "ChainPay: your account is locked for {m} minutes after too many wrong PINs. If this was not you, call ChainPay support. ChainPay never asks for your PIN."
            ),
            (Lang::En, None) => "ChainPay: your account is locked after too many wrong PINs. Call ChainPay support to unlock it or reset your PIN. ChainPay never asks for your PIN.".to_owned(),
            (Lang::Sw, Some(m)) => format!(
                "ChainPay: akaunti yako imefungwa kwa dakika {m} baada ya PIN zisizo sahihi mara nyingi. Kama si wewe, piga huduma ya ChainPay. ChainPay haitakuuliza PIN."
            ),
            (Lang::Sw, None) => "ChainPay: akaunti yako imefungwa baada ya PIN zisizo sahihi mara nyingi. Piga huduma ya ChainPay kuifungua au kubadilisha PIN. ChainPay haitakuuliza PIN.".to_owned(),
        }
    }

    pub fn help(&self) -> String {
        match self.0 {
            Lang::En => format!(
                "ChainPay: text BAL for your balance, MINI for your last 5 transactions. Dial {SERVICE_CODE} to send money. ChainPay never asks for your PIN by SMS."
            ),
            Lang::Sw => format!(
                "ChainPay: tuma BAL kupata salio, MINI kwa miamala 5 ya mwisho. Piga {SERVICE_CODE} kutuma pesa. ChainPay haitakuuliza PIN kwa SMS."
            ),
        }
    }

    /// The `BAL` reply: each non-empty wallet, already shown.
    pub fn balances(&self, wallets: &[String]) -> String {
        match (self.0, wallets.is_empty()) {
            (Lang::En, true) => "ChainPay balance: you have no money in any wallet yet.".to_owned(),
            (Lang::Sw, true) => "Salio la ChainPay: huna pesa kwenye pochi yoyote bado.".to_owned(),
            (Lang::En, false) => format!("ChainPay balance: {}.", wallets.join(", ")),
            (Lang::Sw, false) => format!("Salio la ChainPay: {}.", wallets.join(", ")),
        }
    }

    /// The `MINI` reply: statement lines, newest first.
    pub fn mini_statement(&self, lines: &[String]) -> String {
        match (self.0, lines.is_empty()) {
            (Lang::En, true) => "ChainPay: no transactions yet.".to_owned(),
            (Lang::Sw, true) => "ChainPay: hakuna miamala bado.".to_owned(),
            (Lang::En, false) => format!("ChainPay last {}: {}", lines.len(), lines.join("; ")),
            (Lang::Sw, false) => format!(
                "ChainPay miamala {} ya mwisho: {}",
                lines.len(),
                lines.join("; ")
            ),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn receipt() -> Receipt {
        Receipt {
            tx_id: Uuid::parse_str("215f8c51-f7b1-4401-bcb4-2ceae6a0a31b").unwrap(),
            at: DateTime::from_timestamp(1_764_082_268, 0).unwrap(), // 2025-11-25 14:51:08 UTC
        }
    }

    fn baraka() -> Party<'static> {
        Party {
            name: "Baraka Juma",
            phone: "+254712345678",
        }
    }

    #[test]
    fn messages_read_like_mpesa_and_carry_the_receipt() {
        let text = Sms(Lang::En).sent(receipt(), "KES 250.00", baraka(), "KES 745.00", "KES 5.00");
        assert_eq!(
            text,
            "215F8C51F7 Confirmed. KES 250.00 sent to BARAKA JUMA +254712345678 on 25/11/25 at 5:51 PM. \
             New balance is KES 745.00. Fee KES 5.00. Receipt 215f8c51-f7b1-4401-bcb4-2ceae6a0a31b"
        );
    }

    #[test]
    fn a_swahili_customer_reads_swahili_with_the_same_facts() {
        let text = Sms(Lang::Sw).received(receipt(), "KES 250.00", baraka(), "KES 745.00");
        assert!(
            text.starts_with(
                "215F8C51F7 Imethibitishwa. Umepokea KES 250.00 kutoka kwa BARAKA JUMA"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("Risiti 215f8c51-f7b1-4401-bcb4-2ceae6a0a31b"),
            "{text}"
        );
    }

    #[test]
    fn no_message_asks_for_a_pin() {
        for lang in [Lang::En, Lang::Sw] {
            assert!(Sms(lang).help().contains(SERVICE_CODE));
        }
    }
}
