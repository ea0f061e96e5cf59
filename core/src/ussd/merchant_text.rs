//! The words of the Pay merchant screens, in English and Swahili.

use super::text::Texts;
use crate::lang::Lang;

impl Texts {
    pub fn pay_menu(&self) -> &'static str {
        self.pick(
            "Pay merchant\n1. Buy Goods (till)\n2. Paybill\n3. Pending requests\n0 Back",
            "Lipa biashara\n1. Nunua bidhaa (till)\n2. Lipa bili (paybill)\n3. Maombi ya malipo\n0 Nyuma",
        )
    }

    pub fn enter_till(&self) -> &'static str {
        self.pick("Enter till number:", "Weka namba ya till:")
    }

    pub fn enter_paybill(&self) -> &'static str {
        self.pick("Enter business number:", "Weka namba ya biashara:")
    }

    pub fn pay_number_hint(&self) -> &'static str {
        self.pick(
            "A till or business number is 6 digits. Enter it again:",
            "Namba ya till au biashara ni tarakimu 6. Iweke tena:",
        )
    }

    pub fn enter_pay_account(&self) -> &'static str {
        self.pick("Enter account number:", "Weka namba ya akaunti:")
    }

    pub fn pay_account_hint(&self) -> &'static str {
        self.pick(
            "Account: up to 20 letters or digits. Enter it again:",
            "Akaunti: hadi herufi au tarakimu 20. Iweke tena:",
        )
    }

    pub fn confirm_pay(
        &self,
        amount: &str,
        merchant: &str,
        number: &str,
        account: Option<&str>,
    ) -> String {
        let account = match (self.0, account) {
            (_, None) => String::new(),
            (Lang::En, Some(a)) => format!(" account {a}"),
            (Lang::Sw, Some(a)) => format!(" akaunti {a}"),
        };
        match self.0 {
            Lang::En => format!("Pay {amount} to {merchant} {number}{account}?\nNo fee.\nEnter PIN to confirm or 0 to cancel:"),
            Lang::Sw => format!("Lipa {amount} kwa {merchant} {number}{account}?\nHakuna ada.\nWeka PIN kuthibitisha au 0 kusitisha:"),
        }
    }

    pub fn paid_merchant(
        &self,
        reference: &str,
        amount: &str,
        merchant: &str,
        balance: &str,
    ) -> String {
        match self.0 {
            Lang::En => format!("{reference} Confirmed. {amount} paid to {merchant}. New balance {balance}. SMS to follow."),
            Lang::Sw => format!("{reference} Imethibitishwa. {amount} imelipwa kwa {merchant}. Salio jipya {balance}."),
        }
    }

    pub fn pending_requests(&self) -> &'static str {
        self.pick("Pending requests:", "Maombi ya malipo:")
    }

    pub fn no_requests(&self) -> &'static str {
        self.pick(
            "You have no pending payment requests.",
            "Huna maombi ya malipo yanayosubiri.",
        )
    }

    /// A request in the list: the business and the amount.
    pub fn request_line(&self, merchant: &str, amount: &str) -> String {
        format!("{merchant} {amount}")
    }

    pub fn request_action(&self, merchant: &str, amount: &str, reference: &str) -> String {
        match self.0 {
            Lang::En => format!("{merchant} asks you to pay {amount}, ref {reference}.\n1. Pay\n2. Decline\n0 Back"),
            Lang::Sw => format!("{merchant} anakuomba ulipe {amount}, kumb. {reference}.\n1. Lipa\n2. Kataa\n0 Nyuma"),
        }
    }

    pub fn request_declined(&self) -> &'static str {
        self.pick(
            "Request declined. Nothing was paid.",
            "Ombi limekataliwa. Hakuna kilicholipwa.",
        )
    }
}
