//! The words of the voucher and agent screens, in English and Swahili.
//! (Kept beside `text.rs`, which holds every other screen; each sentence
//! has one home.)

use super::text::Texts;
use crate::lang::Lang;

impl Texts {
    pub(super) fn pick(&self, en: &'static str, sw: &'static str) -> &'static str {
        match self.0 {
            Lang::En => en,
            Lang::Sw => sw,
        }
    }

    pub fn vouchers_menu(&self) -> &'static str {
        self.pick(
            "Vouchers\n1. Buy a voucher\n2. Redeem a voucher\n0 Back",
            "Vocha\n1. Nunua vocha\n2. Tumia vocha\n0 Nyuma",
        )
    }

    pub fn confirm_voucher(&self, amount: &str, fee: &str, days: i64) -> String {
        match self.0 {
            Lang::En => format!("Buy a voucher of {amount}, valid {days} days?\nFee {fee}.\nEnter PIN to confirm or 0 to cancel:"),
            Lang::Sw => format!("Nunua vocha ya {amount}, siku {days}?\nAda {fee}.\nWeka PIN kuthibitisha au 0 kusitisha:"),
        }
    }

    pub fn voucher_bought(&self, reference: &str) -> String {
        match self.0 {
            Lang::En => format!("{reference} Voucher bought. Its code is on its way by SMS: whoever has the code can redeem it, so share it only with the person you pay."),
            Lang::Sw => format!("{reference} Vocha imenunuliwa. Namba yake inakuja kwa SMS: mwenye namba anaweza kuitumia, mpe tu unayemlipa."),
        }
    }

    pub fn enter_voucher_code(&self) -> &'static str {
        self.pick(
            "Enter the 16-digit voucher code:",
            "Weka namba ya vocha ya tarakimu 16:",
        )
    }

    pub fn voucher_code_hint(&self) -> &'static str {
        self.pick(
            "That is not a voucher code (16 digits). Check it and enter it again:",
            "Hiyo si namba ya vocha (tarakimu 16). Iangalie na uiweke tena:",
        )
    }

    pub fn voucher_redeemed(&self, reference: &str, amount: &str, balance: &str) -> String {
        match self.0 {
            Lang::En => {
                format!("{reference} Voucher redeemed: {amount} added. New balance {balance}.")
            }
            Lang::Sw => {
                format!("{reference} Vocha imetumika: {amount} imeongezwa. Salio jipya {balance}.")
            }
        }
    }

    pub fn voucher_cashed(&self, reference: &str, amount: &str, float: &str) -> String {
        match self.0 {
            Lang::En => format!("{reference} Voucher redeemed. Give the bearer {amount} in cash. Float balance {float}."),
            Lang::Sw => format!("{reference} Vocha imetumika. Mpe mwenye vocha {amount} taslimu. Salio la float {float}."),
        }
    }

    pub fn enter_agent_number(&self) -> &'static str {
        self.pick("Enter agent number:", "Weka namba ya wakala:")
    }

    pub fn agent_number_hint(&self) -> &'static str {
        self.pick(
            "An agent number is 6 digits. Enter agent number:",
            "Namba ya wakala ni tarakimu 6. Weka namba ya wakala:",
        )
    }

    pub fn confirm_cash_out(
        &self,
        amount: &str,
        agent_name: &str,
        agent: &str,
        fee: &str,
    ) -> String {
        match self.0 {
            Lang::En => format!("Withdraw {amount} at agent {agent} {agent_name}?\nFee {fee}.\nEnter PIN to confirm or 0 to cancel:"),
            Lang::Sw => format!("Toa {amount} kwa wakala {agent} {agent_name}?\nAda {fee}.\nWeka PIN kuthibitisha au 0 kusitisha:"),
        }
    }

    pub fn cashed_out(
        &self,
        reference: &str,
        amount: &str,
        agent_name: &str,
        balance: &str,
    ) -> String {
        match self.0 {
            Lang::En => format!("{reference} Confirmed. Collect {amount} from {agent_name}. New balance {balance}. SMS to follow."),
            Lang::Sw => format!("{reference} Imethibitishwa. Chukua {amount} kwa {agent_name}. Salio jipya {balance}."),
        }
    }

    pub fn agent_menu(&self, number: &str) -> String {
        match self.0 {
            Lang::En => format!("Agent {number}\n1. Cash in for a customer\n2. Float balance\n3. Voucher for cash\n0 Back"),
            Lang::Sw => format!("Wakala {number}\n1. Weka pesa kwa mteja\n2. Salio la float\n3. Vocha kwa taslimu\n0 Nyuma"),
        }
    }

    pub fn enter_customer_phone(&self) -> &'static str {
        self.pick(
            "Enter customer phone number:",
            "Weka namba ya simu ya mteja:",
        )
    }

    pub fn confirm_cash_in(
        &self,
        amount: &str,
        name: &str,
        phone: &str,
        commission: &str,
    ) -> String {
        match self.0 {
            Lang::En => format!("Cash in {amount} to {name} {phone}?\nCommission {commission}.\nEnter PIN to confirm or 0 to cancel:"),
            Lang::Sw => format!("Weka {amount} kwa {name} {phone}?\nKamisheni {commission}.\nWeka PIN kuthibitisha au 0 kusitisha:"),
        }
    }

    pub fn cashed_in(&self, reference: &str, amount: &str, name: &str, float: &str) -> String {
        match self.0 {
            Lang::En => format!("{reference} Confirmed. {amount} paid in to {name}. Float balance {float}. SMS to follow."),
            Lang::Sw => format!("{reference} Imethibitishwa. {amount} imewekwa kwa {name}. Salio la float {float}."),
        }
    }

    pub fn float(&self, lines: &str) -> String {
        match self.0 {
            Lang::En => format!("Float balance:\n{lines}"),
            Lang::Sw => format!("Salio la float:\n{lines}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ussd::text::MAX_SCREEN_CHARS;

    #[test]
    fn counter_screens_fit_one_ussd_page_in_both_languages() {
        for lang in [Lang::En, Lang::Sw] {
            let t = Texts(lang);
            for screen in [
                t.confirm_cash_out(
                    "KES 1,000,000.00",
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ ABCDEFGHIJKL",
                    "204815",
                    "KES 5,000.00",
                ),
                t.confirm_cash_in(
                    "KES 1,000,000.00",
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ ABCDEFGHIJKL",
                    "+254712345678",
                    "KES 2,000.00",
                ),
                t.voucher_bought("215F8C51F7"),
                t.confirm_voucher("KES 1,000,000.00", "KES 2,000.00", 30),
                t.agent_menu("204815"),
            ] {
                assert!(
                    screen.chars().count() + 4 <= MAX_SCREEN_CHARS,
                    "{lang:?}: {screen}"
                );
            }
        }
    }
}
