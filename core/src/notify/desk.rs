//! Messages of the operations desk: the PIN reset code and its use, and
//! the outcome of an identity check.

use super::Sms;
use crate::lang::Lang;
use crate::ussd::SERVICE_CODE;

impl Sms {
    /// The one-time code (or, for the copy operators see, the code masked).
    pub fn pin_reset_code(&self, code: &str, minutes: i64) -> String {
        match self.0 {
            Lang::En => format!(
                "ChainPay: your PIN reset code is {code}. Dial {SERVICE_CODE}, choose 8 My account, 5 Forgot PIN, and enter it within {minutes} minutes. Never share it: ChainPay staff will never ask for it."
            ),
            Lang::Sw => format!(
                "ChainPay: namba yako ya kubadilisha PIN ni {code}. Piga {SERVICE_CODE}, chagua 8 Akaunti yangu, 5 Nimesahau PIN, uiweke ndani ya dakika {minutes}. Usimpe mtu: wafanyakazi wa ChainPay hawataiuliza."
            ),
        }
    }

    pub fn pin_was_reset(&self) -> String {
        self.pick_owned(
            "ChainPay: your PIN was changed with a reset code. If this was not you, call ChainPay support now.",
            "ChainPay: PIN yako imebadilishwa kwa namba ya kubadilisha. Kama si wewe, piga huduma ya ChainPay sasa.",
        )
    }

    /// The identity check's outcome; `note` is the operator's, if any.
    pub fn kyc_reviewed(&self, verified: bool, note: Option<&str>) -> String {
        let reason = match (self.0, note.filter(|n| !n.is_empty())) {
            (_, None) => String::new(),
            (Lang::En, Some(n)) => format!(" Note: {n}"),
            (Lang::Sw, Some(n)) => format!(" Maelezo: {n}"),
        };
        match (self.0, verified) {
            (Lang::En, true) => format!("ChainPay: your identity is verified; your higher limits apply now.{reason}"),
            (Lang::En, false) => format!("ChainPay: we could not verify your identity document. Dial {SERVICE_CODE} to submit another.{reason}"),
            (Lang::Sw, true) => format!("ChainPay: utambulisho wako umethibitishwa; viwango vyako vya juu vinatumika sasa.{reason}"),
            (Lang::Sw, false) => format!("ChainPay: hatukuweza kuthibitisha kitambulisho chako. Piga {SERVICE_CODE} kuwasilisha kingine.{reason}"),
        }
    }

    /// A payment that reached us but not the wallet (it came after the
    /// request expired, or did not match it): held until an operator decides.
    pub fn payment_held(&self, amount: &str, mpesa_receipt: Option<&str>) -> String {
        let receipt = mpesa_receipt.unwrap_or("-");
        match self.0 {
            Lang::En => format!(
                "ChainPay: we received your M-Pesa payment of {amount} ({receipt}) but could not match it to an open deposit. It is held safely: we will credit your wallet or refund you after review."
            ),
            Lang::Sw => format!(
                "ChainPay: tumepokea malipo yako ya M-Pesa ya {amount} ({receipt}) lakini hatukuweza kuyaunganisha na ombi la kuweka pesa lililo wazi. Yamehifadhiwa salama: tutaweka kwenye pochi yako au kukurudishia baada ya ukaguzi."
            ),
        }
    }

    /// Money held in suspense, returned to the payer through M-Pesa.
    pub fn held_payment_refunded(&self, amount: &str, mpesa_receipt: Option<&str>) -> String {
        let receipt = mpesa_receipt.unwrap_or("-");
        match self.0 {
            Lang::En => format!("ChainPay: your M-Pesa payment of {amount} ({receipt}) that we held has been refunded to your M-Pesa."),
            Lang::Sw => format!("ChainPay: malipo yako ya M-Pesa ya {amount} ({receipt}) tuliyoyashikilia yamerudishwa kwenye M-Pesa yako."),
        }
    }

    fn pick_owned(&self, en: &str, sw: &str) -> String {
        match self.0 {
            Lang::En => en.to_owned(),
            Lang::Sw => sw.to_owned(),
        }
    }
}
