//! The language a customer reads ChainPay in: every screen and every SMS
//! is written in both, and the customer's choice is kept on their account.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Sw,
}

impl Lang {
    /// The code stored in `users.language`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Sw => "sw",
        }
    }

    /// Reads a stored code; anything unknown is English.
    pub fn parse(code: &str) -> Self {
        if code == "sw" {
            Lang::Sw
        } else {
            Lang::En
        }
    }
}
