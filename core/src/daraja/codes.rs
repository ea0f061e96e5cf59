//! Daraja's result and error codes and what they mean: the one place the
//! gateway (deciding what a deposit's answer means) and the simulator
//! (giving those answers) read them from.

/// A `ResultCode` of an STK Push or B2C result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultCode(pub i64);

impl ResultCode {
    pub const SUCCESS: ResultCode = ResultCode(0);
    pub const INSUFFICIENT_FUNDS: ResultCode = ResultCode(1);
    pub const RECEIVER_UNAVAILABLE: ResultCode = ResultCode(17);
    pub const SUBSCRIBER_BUSY: ResultCode = ResultCode(1001);
    pub const EXPIRED: ResultCode = ResultCode(1019);
    pub const PROMPT_NOT_SENT: ResultCode = ResultCode(1025);
    pub const CANCELLED: ResultCode = ResultCode(1032);
    pub const UNREACHABLE: ResultCode = ResultCode(1037);
    pub const WRONG_PIN: ResultCode = ResultCode(2001);
    /// A B2C result that says the request sat in Safaricom's queue too long.
    pub const QUEUE_TIMEOUT: ResultCode = ResultCode(1);

    pub fn is_success(self) -> bool {
        self == ResultCode::SUCCESS
    }

    /// The prompt timed out (or could not reach the phone) rather than
    /// being refused: the deposit is `EXPIRED`, not `FAILED`.
    pub fn is_expiry(self) -> bool {
        matches!(self, ResultCode::EXPIRED | ResultCode::UNREACHABLE)
    }

    /// Safaricom's own wording of the code.
    pub fn description(self) -> &'static str {
        match self {
            ResultCode::SUCCESS => "The service request is processed successfully.",
            ResultCode::INSUFFICIENT_FUNDS => "The balance is insufficient for the transaction.",
            ResultCode::RECEIVER_UNAVAILABLE => "The receiving party is unavailable.",
            ResultCode::SUBSCRIBER_BUSY => {
                "Unable to lock subscriber, a transaction is already in process."
            }
            ResultCode::EXPIRED => "Transaction has expired.",
            ResultCode::PROMPT_NOT_SENT => "Unable to send the payment prompt.",
            ResultCode::CANCELLED => "Request cancelled by user.",
            ResultCode::UNREACHABLE => "DS timeout user cannot be reached.",
            ResultCode::WRONG_PIN => "The initiator information is invalid.",
            _ => "The transaction could not be completed.",
        }
    }
}

/// Error codes in Daraja's `{requestId, errorCode, errorMessage}` body.
pub mod error {
    /// STK Query while the customer has not answered: pending, not failed.
    /// Daraja also uses it for its own internal errors.
    pub const STILL_PROCESSING: &str = "500.001.1001";
    /// A field of the request is invalid.
    pub const BAD_REQUEST: &str = "400.002.02";
    pub const INVALID_CREDENTIALS: &str = "400.008.01";
    pub const INVALID_GRANT_TYPE: &str = "400.008.02";
    pub const INVALID_ACCESS_TOKEN: &str = "404.001.03";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_expire_while_refusals_fail() {
        assert!(ResultCode(1037).is_expiry());
        assert!(ResultCode(1019).is_expiry());
        assert!(!ResultCode::CANCELLED.is_expiry());
        assert!(!ResultCode::SUCCESS.is_expiry());
        assert!(ResultCode(0).is_success());
    }
}
