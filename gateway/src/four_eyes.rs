//! The four-eyes rule for proposals that move or correct money (treasury
//! issuances, payout resolutions, payout corrections, suspense): one admin
//! proposes, another decides. The proposer, and anyone the proposal is
//! about, cannot decide it; an admin who decides it again as they did
//! answers as the first time (a retried request), and any other decision
//! of a decided proposal is a conflict. A proposal can be approved only
//! while its proposer stands behind it ([`proposer_stands`]): still an
//! admin in good standing, and for [`PROPOSAL_HOURS`]; a lapsed one can
//! still be rejected. The database holds the rule too (each table's CHECK
//! that the decider is not the proposer).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Error;

/// The status a pending proposal takes when decided.
pub fn status(approve: bool) -> &'static str {
    if approve {
        "APPROVED"
    } else {
        "REJECTED"
    }
}

/// How long a proposal waits for its second admin.
pub const PROPOSAL_HOURS: i32 = 72;

/// Whether the admin who proposed at `proposed_at` still stands behind the
/// proposal: an admin, not suspended, and within [`PROPOSAL_HOURS`] of it
/// (a proposal of unknown age has lapsed). Otherwise one admin could leave
/// proposals behind that a single remaining admin books after the proposer
/// was suspended or demoted.
pub async fn proposer_stands(
    conn: &mut PgConnection,
    proposed_by: Uuid,
    proposed_at: Option<DateTime<Utc>>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND role = 'admin' AND NOT suspended)
                  AND coalesce($2 > now() - make_interval(hours => $3), false) AS "stands!""#,
        proposed_by,
        proposed_at,
        PROPOSAL_HOURS
    )
    .fetch_one(conn)
    .await
}

/// Where a proposal stands, as its locked row says.
pub struct Standing<'a> {
    /// `PENDING`, `APPROVED` or `REJECTED`.
    pub status: &'a str,
    pub proposed_by: Uuid,
    pub decided_by: Option<Uuid>,
    /// Whom it is about (a payout's customer), who cannot decide it either.
    pub party: Option<Uuid>,
    /// Whether its proposer still stands behind it ([`proposer_stands`]).
    pub proposer_stands: bool,
}

/// Whether `admin` is to decide the proposal now (`true`: it is pending) or
/// decided it so already (`false`: answer as it stands); `what` names it in
/// the conflict's message.
pub fn to_decide(
    standing: &Standing<'_>,
    admin: Uuid,
    approve: bool,
    what: &str,
) -> Result<bool, Error> {
    if standing.proposed_by == admin || standing.party == Some(admin) {
        return Err(Error::SecondAdminNeeded);
    }
    match standing.status {
        "PENDING" if approve && !standing.proposer_stands => Err(lapsed(what)),
        "PENDING" => Ok(true),
        done if done == status(approve) && standing.decided_by == Some(admin) => Ok(false),
        done => Err(Error::Conflict(format!(
            "this {what} was already {}",
            done.to_lowercase()
        ))),
    }
}

/// A proposal whose proposer no longer stands behind it.
pub fn lapsed(what: &str) -> Error {
    Error::Conflict(format!(
        "this {what} has lapsed: its proposer is no longer an admin in good standing, or it is older than {PROPOSAL_HOURS} hours; propose it again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(status: &str, decided_by: Option<Uuid>) -> Standing<'_> {
        Standing {
            status,
            proposed_by: Uuid::from_u128(1),
            decided_by,
            party: Some(Uuid::from_u128(2)),
            proposer_stands: true,
        }
    }

    #[test]
    fn neither_the_proposer_nor_the_party_decides() {
        for admin in [1, 2] {
            let refused = to_decide(
                &standing("PENDING", None),
                Uuid::from_u128(admin),
                true,
                "x",
            );
            assert!(matches!(refused, Err(Error::SecondAdminNeeded)));
        }
        assert!(to_decide(&standing("PENDING", None), Uuid::from_u128(3), false, "x").unwrap());
    }

    #[test]
    fn a_lapsed_proposal_is_rejected_but_never_approved() {
        let lapsed = Standing {
            proposer_stands: false,
            ..standing("PENDING", None)
        };
        let third = Uuid::from_u128(3);
        assert!(matches!(
            to_decide(&lapsed, third, true, "issuance"),
            Err(Error::Conflict(m)) if m.starts_with("this issuance has lapsed")
        ));
        assert!(to_decide(&lapsed, third, false, "issuance").unwrap());
    }

    #[test]
    fn deciding_again_as_before_answers_and_otherwise_conflicts() {
        let second = Uuid::from_u128(3);
        let approved = standing("APPROVED", Some(second));
        assert!(!to_decide(&approved, second, true, "proposal").unwrap());
        let rejected = to_decide(&approved, second, false, "proposal");
        assert!(
            matches!(&rejected, Err(Error::Conflict(m)) if m == "this proposal was already approved")
        );
        let other = to_decide(&approved, Uuid::from_u128(4), true, "proposal");
        assert!(matches!(other, Err(Error::Conflict(_))));
    }
}
