//! Every word a USSD screen shows, in English and Swahili, in one place.
//!
//! Screens are short on purpose: a USSD page holds 182 characters of the
//! GSM 7-bit alphabet. [`fit`] enforces both before anything is sent.

use crate::compliance::Rule;
pub use crate::lang::Lang;
use crate::refusal::Refusal;

/// Longest screen body Africa's Talking delivers (GSM USSD limit).
pub const MAX_SCREEN_CHARS: usize = 182;

/// Folds text into printable ASCII (a subset of GSM-7: accents dropped,
/// anything else `?`) and cuts it to fit one screen after the 4-character
/// `CON `/`END ` prefix.
pub fn fit(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let ascii: String = text
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .map(|c| {
            if c == '\n' || (' '..='~').contains(&c) && !"[]{}\\^~|`".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect();
    let budget = MAX_SCREEN_CHARS - 4;
    if ascii.chars().count() <= budget {
        ascii
    } else {
        ascii.chars().take(budget).collect()
    }
}

/// The phrases of one language.
pub struct Texts(pub Lang);

macro_rules! phrase {
    ($name:ident, $en:expr, $sw:expr) => {
        pub fn $name(&self) -> &'static str {
            match self.0 {
                Lang::En => $en,
                Lang::Sw => $sw,
            }
        }
    };
}

impl Texts {
    phrase!(
        welcome_new,
        "Welcome to ChainPay.\nEnter your full name:",
        "Karibu ChainPay.\nWeka jina lako kamili:"
    );
    phrase!(
        name_hint,
        "Name must be 2-50 letters. Enter your full name:",
        "Jina liwe herufi 2-50. Weka jina lako kamili:"
    );
    phrase!(
        choose_pin,
        "Choose a 4-digit PIN:",
        "Chagua PIN ya tarakimu 4:"
    );
    phrase!(
        weak_pin,
        "PIN too easy to guess (like 1234 or 1111). Choose another 4-digit PIN:",
        "PIN ni rahisi kukisia (kama 1234 au 1111). Chagua PIN nyingine:"
    );
    phrase!(
        pin_format,
        "PIN must be 4 digits. Try again:",
        "PIN iwe tarakimu 4. Jaribu tena:"
    );
    phrase!(confirm_pin, "Confirm your PIN:", "Thibitisha PIN yako:");
    phrase!(
        pins_differ,
        "PINs did not match. Choose a 4-digit PIN:",
        "PIN hazilingani. Chagua PIN ya tarakimu 4:"
    );
    phrase!(
        enter_phone,
        "Enter recipient phone number:",
        "Weka namba ya simu ya mpokeaji:"
    );
    phrase!(
        phone_hint,
        "Invalid number. Enter phone e.g. 0712345678:",
        "Namba si sahihi. Weka namba k.m. 0712345678:"
    );
    phrase!(
        not_registered,
        "That number is not on ChainPay. Enter another number:",
        "Namba hiyo haiko ChainPay. Weka namba nyingine:"
    );
    phrase!(choose_currency, "Choose currency:", "Chagua sarafu:");
    phrase!(invalid_choice, "Invalid choice.", "Chaguo si sahihi.");
    phrase!(
        amount_hint,
        "Invalid amount. Enter amount e.g. 250 or 250.50:",
        "Kiasi si sahihi. Weka kiasi k.m. 250 au 250.50:"
    );
    phrase!(enter_pin, "Enter PIN:", "Weka PIN:");
    phrase!(
        wrong_pin_try,
        "Wrong PIN. Try again:",
        "PIN si sahihi. Jaribu tena:"
    );
    phrase!(
        wrong_pin_end,
        "Wrong PIN entered 3 times. Session ended.",
        "PIN si sahihi mara 3. Kipindi kimeisha."
    );
    phrase!(
        locked,
        "Too many wrong PINs. Your account is locked; we have sent you an SMS.",
        "PIN si sahihi mara nyingi. Akaunti imefungwa; tumekutumia SMS."
    );
    phrase!(no_funds, "Insufficient balance.", "Salio halitoshi.");
    phrase!(
        try_later,
        "Service is busy. Please try again later.",
        "Huduma ina shughuli. Tafadhali jaribu baadaye."
    );
    phrase!(
        no_balance,
        "You have no money in any wallet yet.",
        "Huna pesa kwenye pochi yoyote bado."
    );
    phrase!(
        no_transactions,
        "No transactions yet.",
        "Hakuna miamala bado."
    );
    phrase!(more, "98 More", "98 Zaidi");
    phrase!(nav, "0 Back 00 Home", "0 Nyuma 00 Mwanzo");
    phrase!(convert_from, "Convert from:", "Badilisha kutoka:");
    phrase!(convert_to, "Convert to:", "Badilisha kwenda:");
    phrase!(
        pin_changed,
        "Your PIN has been changed.",
        "PIN yako imebadilishwa."
    );
    phrase!(old_pin, "Enter current PIN:", "Weka PIN ya sasa:");
    phrase!(
        new_pin,
        "Enter new 4-digit PIN:",
        "Weka PIN mpya ya tarakimu 4:"
    );
    phrase!(
        same_pin,
        "New PIN must differ from the old one. Enter new PIN:",
        "PIN mpya iwe tofauti na ya zamani. Weka PIN mpya:"
    );
    phrase!(
        language_menu,
        "Language:\n1. English\n2. Kiswahili",
        "Lugha:\n1. English\n2. Kiswahili"
    );
    phrase!(language_set, "Language saved.", "Lugha imehifadhiwa.");
    phrase!(
        none_eligible,
        "No transactions can be reversed. Only your transfers of the last 24 hours can.",
        "Hakuna muamala unaoweza kurudishwa. Ni uhamisho wako wa saa 24 tu."
    );
    phrase!(choose_tx, "Choose transaction:", "Chagua muamala:");
    phrase!(reason, "Reason for reversal:", "Sababu ya kurudisha:");
    phrase!(
        withdraw_menu,
        "Withdraw:\n1. To M-Pesa\n2. At an agent",
        "Toa pesa:\n1. Kwenda M-Pesa\n2. Kwa wakala"
    );
    phrase!(
        suspended,
        "This account is suspended. Please contact ChainPay support.",
        "Akaunti hii imesimamishwa. Tafadhali wasiliana na huduma ya ChainPay."
    );
    phrase!(
        invalid_request,
        "Not completed: the details were not accepted. Please try again.",
        "Haikukamilika: maelezo hayakukubaliwa. Tafadhali jaribu tena."
    );
    phrase!(
        reason_hint,
        "Give a reason of 3-100 characters:",
        "Toa sababu ya herufi 3-100:"
    );

    /// The home screen; an agent also sees their counter (`10`).
    pub fn main_menu(&self, name: &str, agent: bool) -> String {
        // A long first name is cut so the whole menu fits one screen.
        let first: String = name
            .split_whitespace()
            .next()
            .unwrap_or(name)
            .chars()
            .take(12)
            .collect();
        let menu = match self.0 {
            Lang::En => format!(
                "Hi {first}\n1. Send money\n2. Deposit (M-Pesa)\n3. Withdraw\n4. Balance\n5. Convert currency\n6. Mini statement\n7. Reverse\n8. My account\n9. Vouchers\n10. Pay merchant"
            ),
            Lang::Sw => format!(
                "Habari {first}\n1. Tuma pesa\n2. Weka (M-Pesa)\n3. Toa pesa\n4. Salio\n5. Badilisha sarafu\n6. Taarifa fupi\n7. Rudisha\n8. Akaunti yangu\n9. Vocha\n10. Lipa biashara"
            ),
        };
        match (agent, self.0) {
            (false, _) => menu,
            (true, Lang::En) => format!("{menu}\n11. Agent"),
            (true, Lang::Sw) => format!("{menu}\n11. Wakala"),
        }
    }

    pub fn account_menu(&self) -> &'static str {
        match self.0 {
            Lang::En => "My account\n1. Change PIN\n2. Language\n3. KYC status\n4. Submit ID document\n5. Forgot PIN\n0 Back",
            Lang::Sw => "Akaunti yangu\n1. Badilisha PIN\n2. Lugha\n3. Hali ya KYC\n4. Wasilisha kitambulisho\n5. Nimesahau PIN\n0 Nyuma",
        }
    }

    pub fn registered(&self, name: &str) -> String {
        match self.0 {
            Lang::En => format!("Welcome to ChainPay, {name}! Dial again to send money, check your balance and more."),
            Lang::Sw => format!("Karibu ChainPay, {name}! Piga tena kutuma pesa, kuangalia salio na zaidi."),
        }
    }

    pub fn enter_amount(&self, currency: &str) -> String {
        match self.0 {
            Lang::En => format!("Enter amount ({currency}):"),
            Lang::Sw => format!("Weka kiasi ({currency}):"),
        }
    }

    pub fn confirm_send(&self, amount: &str, name: &str, phone: &str, fee: &str) -> String {
        match self.0 {
            Lang::En => format!("Send {amount} to {name} {phone}?\nFee {fee}.\nEnter PIN to confirm or 0 to cancel:"),
            Lang::Sw => format!("Tuma {amount} kwa {name} {phone}?\nAda {fee}.\nWeka PIN kuthibitisha au 0 kusitisha:"),
        }
    }

    pub fn sent(&self, reference: &str, amount: &str, name: &str, balance: &str) -> String {
        match self.0 {
            Lang::En => format!("{reference} Confirmed. {amount} sent to {name}. New balance {balance}. SMS to follow."),
            Lang::Sw => format!("{reference} Imethibitishwa. {amount} imetumwa kwa {name}. Salio jipya {balance}."),
        }
    }

    pub fn deposit_started(&self, amount: &str) -> String {
        match self.0 {
            Lang::En => format!("Check your phone: enter your M-Pesa PIN to deposit {amount}. We will SMS you when it arrives."),
            Lang::Sw => format!("Angalia simu yako: weka PIN ya M-Pesa kuweka {amount}. Tutakutumia SMS ikifika."),
        }
    }

    pub fn confirm_withdraw(&self, amount: &str, fee: &str) -> String {
        match self.0 {
            Lang::En => format!("Withdraw {amount} to your M-Pesa?\nFee {fee}.\nEnter PIN to confirm or 0 to cancel:"),
            Lang::Sw => format!("Toa {amount} kwenda M-Pesa yako?\nAda {fee}.\nWeka PIN kuthibitisha au 0 kusitisha:"),
        }
    }

    pub fn withdrawn(&self, reference: &str, amount: &str, balance: &str) -> String {
        match self.0 {
            Lang::En => format!("{reference} {amount} is on its way to your M-Pesa. New balance {balance}. SMS to follow."),
            Lang::Sw => format!("{reference} {amount} inatumwa kwa M-Pesa yako. Salio jipya {balance}."),
        }
    }

    pub fn kyc_status(&self, status: &str) -> String {
        match self.0 {
            Lang::En => format!("Your KYC status: {status}."),
            Lang::Sw => format!("Hali yako ya KYC: {status}."),
        }
    }

    pub fn balances(&self, lines: &str) -> String {
        match self.0 {
            Lang::En => format!("Your balance:\n{lines}"),
            Lang::Sw => format!("Salio lako:\n{lines}"),
        }
    }

    pub fn confirm_convert(&self, amount: &str, converted: &str, rate: &str, fee: &str) -> String {
        match self.0 {
            Lang::En => format!("Convert {amount} to {converted}?\nRate {rate}. Fee {fee}.\nEnter PIN or 0 to cancel:"),
            Lang::Sw => format!("Badilisha {amount} kuwa {converted}?\nKiwango {rate}. Ada {fee}.\nWeka PIN au 0 kusitisha:"),
        }
    }

    pub fn converted(&self, reference: &str, converted: &str, balance: &str) -> String {
        match self.0 {
            Lang::En => {
                format!("{reference} Confirmed. You received {converted}. New balance {balance}.")
            }
            Lang::Sw => {
                format!("{reference} Imethibitishwa. Umepokea {converted}. Salio jipya {balance}.")
            }
        }
    }

    pub fn reversal_requested(&self, reference: &str) -> String {
        match self.0 {
            Lang::En => {
                format!("Reversal of {reference} requested. We will SMS you when it is reviewed.")
            }
            Lang::Sw => {
                format!("Ombi la kurudisha {reference} limepokelewa. Tutakutumia SMS likikaguliwa.")
            }
        }
    }

    pub fn refused(&self, refusal: Refusal) -> String {
        let reason = self.refusal(refusal);
        match self.0 {
            Lang::En => format!("Not completed: {reason}."),
            Lang::Sw => format!("Haikukamilika: {reason}."),
        }
    }

    /// Why something was refused, as the tail of a sentence.
    pub fn refusal(&self, refusal: Refusal) -> &'static str {
        let sw = self.0 == Lang::Sw;
        let pick = |en: &'static str, sw_text: &'static str| if sw { sw_text } else { en };
        match refusal {
            Refusal::InsufficientFunds => {
                pick("your balance is not enough", "salio lako halitoshi")
            }
            Refusal::AccountSuspended => {
                pick("this account is suspended", "akaunti hii imesimamishwa")
            }
            Refusal::RecipientCannotReceive => pick(
                "the recipient cannot receive payments",
                "mpokeaji hawezi kupokea malipo",
            ),
            Refusal::SelfPayment => {
                pick("you cannot send money to yourself", "huwezi kujitumia pesa")
            }
            Refusal::AmountNotPriceable => pick(
                "that amount cannot be converted",
                "kiasi hicho hakiwezi kubadilishwa",
            ),
            Refusal::QuoteUsed => pick("this rate was already used", "bei hii imeshatumika"),
            Refusal::QuoteExpired => pick(
                "the rate has expired; please start again",
                "bei imepitwa na muda; tafadhali anza tena",
            ),
            Refusal::ReversalNotEligible => pick(
                "this transfer cannot be reversed",
                "muamala huu hauwezi kurudishwa",
            ),
            Refusal::ReversalAlreadyRequested => pick(
                "a reversal was already requested",
                "ombi la kurudisha limeshatumwa",
            ),
            Refusal::ReversalAlreadyDecided => pick(
                "this request was already decided",
                "ombi hili limeshaamuliwa",
            ),
            Refusal::AgentUnknown => pick(
                "no active agent has that number",
                "hakuna wakala hai mwenye namba hiyo",
            ),
            Refusal::InsufficientFloat => pick(
                "the agent's float is not enough",
                "float ya wakala haitoshi",
            ),
            Refusal::MerchantUnknown => pick(
                "no active business has that number",
                "hakuna biashara hai yenye namba hiyo",
            ),
            Refusal::RequestNotPending => pick(
                "this request was already paid, declined or has expired",
                "ombi hili limeshalipwa, limekataliwa au limepitwa na muda",
            ),
            Refusal::BelowMinimum => pick(
                "the amount is below the minimum",
                "kiasi ni chini ya kiwango cha chini",
            ),
            Refusal::VoucherUnknown => pick(
                "that voucher code is not valid",
                "namba hiyo ya vocha si sahihi",
            ),
            Refusal::VoucherSpent => pick(
                "that voucher was already used or has expired",
                "vocha hiyo imeshatumika au muda wake umeisha",
            ),
            Refusal::VoucherOnHold => pick(
                "that voucher cannot be redeemed now; ask whoever gave it to you",
                "vocha hiyo haiwezi kutumika sasa; muulize aliyekupa",
            ),
            Refusal::VoucherGuessesExhausted => pick(
                "too many wrong codes; try again tomorrow",
                "namba nyingi zisizo sahihi; jaribu kesho",
            ),
            Refusal::DocumentClaimed => pick(
                "that document is registered to another account",
                "kitambulisho hicho kimesajiliwa kwa akaunti nyingine",
            ),
            Refusal::DocumentAlreadySubmitted => pick(
                "your document is already being reviewed",
                "kitambulisho chako tayari kinakaguliwa",
            ),
            Refusal::ResetCodeInvalid => pick(
                "the reset code is wrong or has expired",
                "namba ya kubadilisha si sahihi au imeisha muda",
            ),
            Refusal::PromptOwnPhoneOnly => pick(
                "a deposit prompts only your own phone",
                "kuweka pesa hutumia simu yako tu",
            ),
            Refusal::MpesaRefused => pick("M-Pesa refused the request", "M-Pesa imekataa ombi"),
            Refusal::MpesaUnreachable => pick(
                "M-Pesa cannot be reached; try again shortly",
                "M-Pesa haipatikani; jaribu tena baadaye",
            ),
            Refusal::PhoneTaken => pick(
                "this number is already registered",
                "namba hii imeshasajiliwa",
            ),
            Refusal::Compliance(rule) => self.rule(rule),
        }
    }

    fn rule(&self, rule: Rule) -> &'static str {
        let sw = self.0 == Lang::Sw;
        let pick = |en: &'static str, sw_text: &'static str| if sw { sw_text } else { en };
        match rule {
            Rule::KycTier => pick(
                "your account cannot move money until your identity is verified",
                "akaunti yako haiwezi kutuma pesa hadi utambulisho wako uthibitishwe",
            ),
            Rule::SingleLimit => pick(
                "this amount is above your limit for one transaction",
                "kiasi hiki kinazidi kikomo chako cha muamala mmoja",
            ),
            Rule::DailyLimit => pick(
                "this would take you over your daily limit",
                "hii itazidi kikomo chako cha siku",
            ),
            Rule::HourlyVelocity => pick(
                "too many transactions in the last hour; try again later",
                "miamala mingi mno ndani ya saa moja; jaribu baadaye",
            ),
            Rule::Structuring => pick(
                "this transaction cannot be completed",
                "muamala huu hauwezi kukamilika",
            ),
            Rule::Sanctions => pick(
                "this transaction cannot be completed; contact support",
                "muamala huu hauwezi kukamilika; wasiliana na huduma kwa wateja",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens_fold_to_gsm_safe_ascii_and_fit_182_characters() {
        assert_eq!(fit("Karibu Zoë — ¡hola!"), "Karibu Zoe ? ?hola!");
        let long = "x".repeat(500);
        assert_eq!(fit(&long).chars().count(), MAX_SCREEN_CHARS - 4);
    }

    #[test]
    fn every_refusal_reads_in_both_languages_and_fits_a_screen() {
        let rules = [
            Rule::KycTier,
            Rule::SingleLimit,
            Rule::DailyLimit,
            Rule::HourlyVelocity,
            Rule::Structuring,
            Rule::Sanctions,
        ];
        let mut refusals = vec![
            Refusal::InsufficientFunds,
            Refusal::AccountSuspended,
            Refusal::RecipientCannotReceive,
            Refusal::SelfPayment,
            Refusal::AmountNotPriceable,
            Refusal::QuoteUsed,
            Refusal::QuoteExpired,
            Refusal::ReversalNotEligible,
            Refusal::ReversalAlreadyRequested,
            Refusal::ReversalAlreadyDecided,
            Refusal::AgentUnknown,
            Refusal::InsufficientFloat,
            Refusal::MerchantUnknown,
            Refusal::RequestNotPending,
            Refusal::BelowMinimum,
            Refusal::VoucherUnknown,
            Refusal::VoucherSpent,
            Refusal::VoucherOnHold,
            Refusal::VoucherGuessesExhausted,
            Refusal::DocumentClaimed,
            Refusal::DocumentAlreadySubmitted,
            Refusal::ResetCodeInvalid,
            Refusal::PromptOwnPhoneOnly,
            Refusal::MpesaRefused,
            Refusal::MpesaUnreachable,
            Refusal::PhoneTaken,
        ];
        refusals.extend(rules.map(Refusal::Compliance));
        for refusal in refusals {
            let (en, sw) = (
                Texts(Lang::En).refused(refusal),
                Texts(Lang::Sw).refused(refusal),
            );
            assert_ne!(en, sw, "{refusal:?} is not translated");
            assert!(sw.starts_with("Haikukamilika: "), "{sw}");
            assert!(
                en.chars().count() + 4 <= MAX_SCREEN_CHARS
                    && sw.chars().count() + 4 <= MAX_SCREEN_CHARS
            );
        }
    }

    #[test]
    fn every_menu_fits_one_screen_in_both_languages() {
        for lang in [Lang::En, Lang::Sw] {
            let t = Texts(lang);
            for screen in [
                t.main_menu("Wanjiku Kamau-Otieno", true),
                t.account_menu().to_owned(),
                t.weak_pin().to_owned(),
                t.confirm_send(
                    "KES 1,000,000.00",
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ ABCDEFGHIJKL",
                    "+254712345678",
                    "KES 5,000.00",
                ),
                t.confirm_convert("USD 2,000.00", "KES 257,057.50", "128.52875", "USD 10.00"),
            ] {
                assert!(
                    screen.chars().count() + 4 <= MAX_SCREEN_CHARS,
                    "{lang:?}: {} chars: {screen}",
                    screen.len()
                );
            }
        }
    }
}
