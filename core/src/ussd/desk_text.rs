//! The words of the identity-document and Forgot-PIN screens, in English
//! and Swahili.

use super::text::Texts;

impl Texts {
    pub fn id_type_menu(&self) -> &'static str {
        self.pick(
            "Your identity document:\n1. National ID\n2. Passport\n3. Alien ID\n0 Back",
            "Kitambulisho chako:\n1. Kitambulisho cha taifa\n2. Pasipoti\n3. Kitambulisho cha mgeni\n0 Nyuma",
        )
    }

    pub fn enter_id_number(&self) -> &'static str {
        self.pick("Enter the document number:", "Weka namba ya kitambulisho:")
    }

    pub fn id_number_hint(&self) -> &'static str {
        self.pick(
            "That is not a valid document number. Enter it again:",
            "Hiyo si namba sahihi ya kitambulisho. Iweke tena:",
        )
    }

    pub fn id_submitted(&self) -> &'static str {
        self.pick(
            "Thank you. Your document will be checked; we will SMS you the result.",
            "Asante. Kitambulisho chako kitakaguliwa; tutakutumia SMS ya matokeo.",
        )
    }

    pub fn enter_reset_code(&self) -> &'static str {
        self.pick(
            "Enter the 6-digit reset code ChainPay sent you by SMS:",
            "Weka namba ya tarakimu 6 ChainPay ilikutumia kwa SMS:",
        )
    }

    pub fn reset_code_hint(&self) -> &'static str {
        self.pick(
            "The reset code is 6 digits. Enter it again:",
            "Namba ya kubadilisha ni tarakimu 6. Iweke tena:",
        )
    }

    pub fn pin_reset_done(&self) -> &'static str {
        self.pick(
            "Your new PIN is set. Dial again to use ChainPay.",
            "PIN yako mpya imewekwa. Piga tena kutumia ChainPay.",
        )
    }
}
