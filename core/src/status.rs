//! The lifecycles of ChainPay's records: each status as it is stored, and
//! the one place that says which move from one status to another is allowed.
//! The gateway asks [`can_become`](DepositStatus::can_become) before it
//! writes a new status, and its SQL only moves rows that are still in the
//! status it read.

macro_rules! statuses {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every status, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored form, e.g. `PENDING`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Reads a stored or typed status (case-insensitive).
            pub fn parse(raw: &str) -> Option<Self> {
                let raw = raw.trim();
                Self::ALL.iter().copied().find(|s| s.as_str().eq_ignore_ascii_case(raw))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

statuses!(
    /// A transaction (journal entry header). Only a status ever changes on
    /// a posted transaction; its amounts are facts.
    TxStatus { Pending = "PENDING", Completed = "COMPLETED", Failed = "FAILED", Reversed = "REVERSED" }
);

impl TxStatus {
    /// A held movement completes or fails once; a completed one may be reversed once.
    pub fn can_become(self, next: TxStatus) -> bool {
        matches!(
            (self, next),
            (TxStatus::Pending, TxStatus::Completed | TxStatus::Failed)
                | (TxStatus::Completed, TxStatus::Reversed)
        )
    }
}

statuses!(
    /// An M-Pesa STK Push deposit. `DUPLICATE`: a receipt already credited
    /// on another deposit; `SUSPENSE`: money arrived that did not match the
    /// request, or arrived after it had expired, and is held for review,
    /// never credited to the wallet automatically; `REFUNDED`: money held in
    /// suspense that was returned to the payer.
    DepositStatus {
        Pending = "PENDING",
        Confirmed = "CONFIRMED",
        Failed = "FAILED",
        Expired = "EXPIRED",
        Duplicate = "DUPLICATE",
        Suspense = "SUSPENSE",
        Refunded = "REFUNDED",
    }
);

impl DepositStatus {
    /// A deposit is settled once, from `PENDING`, by whichever answer comes
    /// first. A payment that arrives after the deposit expired or failed
    /// goes to suspense; money in suspense is credited or refunded once.
    pub fn can_become(self, next: DepositStatus) -> bool {
        use DepositStatus::*;
        match self {
            Pending => !matches!(next, Pending | Refunded),
            Expired | Failed => next == Suspense,
            Suspense => matches!(next, Confirmed | Refunded),
            Confirmed | Duplicate | Refunded => false,
        }
    }

    /// Whether money was booked for it (to the wallet, to suspense, or from
    /// suspense back to the payer): its receipt must never be booked again.
    pub fn booked(self) -> bool {
        matches!(
            self,
            DepositStatus::Confirmed | DepositStatus::Suspense | DepositStatus::Refunded
        )
    }
}

statuses!(
    /// A B2C withdrawal: the money is held while `PENDING`, then paid out
    /// (`COMPLETED`) or refunded (`FAILED`) exactly once.
    WithdrawalStatus { Pending = "PENDING", Completed = "COMPLETED", Failed = "FAILED" }
);

impl WithdrawalStatus {
    pub fn can_become(self, next: WithdrawalStatus) -> bool {
        self == WithdrawalStatus::Pending && next != WithdrawalStatus::Pending
    }
}

statuses!(
    /// A suspicious-activity report case.
    SarStatus { Open = "OPEN", UnderReview = "UNDER_REVIEW", Filed = "FILED", Dismissed = "DISMISSED" }
);

impl SarStatus {
    /// Cases move forward only; staying in an open status adds a note.
    pub fn can_become(self, next: SarStatus) -> bool {
        matches!(
            (self, next),
            (SarStatus::Open, SarStatus::Open | SarStatus::UnderReview)
                | (
                    SarStatus::UnderReview,
                    SarStatus::UnderReview | SarStatus::Filed | SarStatus::Dismissed
                )
        )
    }

    /// Whether new findings may still join the case.
    pub fn is_open(self) -> bool {
        matches!(self, SarStatus::Open | SarStatus::UnderReview)
    }
}

statuses!(
    /// A customer's request to reverse a transfer.
    ReversalStatus { Pending = "PENDING", Approved = "APPROVED", Rejected = "REJECTED" }
);

impl ReversalStatus {
    /// An operator decides a pending request once.
    pub fn can_become(self, next: ReversalStatus) -> bool {
        self == ReversalStatus::Pending && next != ReversalStatus::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_what_they_store_in_any_case() {
        for status in DepositStatus::ALL {
            assert_eq!(DepositStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(
            SarStatus::parse(" under_review "),
            Some(SarStatus::UnderReview)
        );
        assert_eq!(ReversalStatus::parse("MAYBE"), None);
    }

    #[test]
    fn money_that_came_late_waits_in_suspense_and_leaves_it_once() {
        use DepositStatus::*;
        assert!(Expired.can_become(Suspense) && Failed.can_become(Suspense));
        assert!(
            !Expired.can_become(Confirmed),
            "a late payment is never credited automatically"
        );
        assert!(Suspense.can_become(Confirmed) && Suspense.can_become(Refunded));
        assert!(!Refunded.can_become(Confirmed) && !Pending.can_become(Refunded));
        assert!(
            Refunded.booked(),
            "a refunded receipt must not be credited again"
        );
    }

    #[test]
    fn settled_records_never_move_again() {
        for next in DepositStatus::ALL {
            assert!(!DepositStatus::Confirmed.can_become(*next));
        }
        assert!(DepositStatus::Pending.can_become(DepositStatus::Suspense));
        assert!(!WithdrawalStatus::Failed.can_become(WithdrawalStatus::Completed));
        assert!(!ReversalStatus::Approved.can_become(ReversalStatus::Rejected));
        assert!(TxStatus::Completed.can_become(TxStatus::Reversed));
        assert!(!TxStatus::Reversed.can_become(TxStatus::Completed));
    }

    #[test]
    fn sar_cases_move_forward_only() {
        use SarStatus::*;
        assert!(Open.can_become(UnderReview));
        assert!(UnderReview.can_become(Filed));
        assert!(UnderReview.can_become(Dismissed));
        assert!(!Open.can_become(Dismissed));
        assert!(!Open.can_become(Filed));
        assert!(!Filed.can_become(Open));
        assert!(!Dismissed.can_become(UnderReview));
        assert!(!UnderReview.can_become(Open));
    }
}
