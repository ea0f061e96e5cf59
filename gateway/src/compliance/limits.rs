//! KYC tier limits and the rolling AML windows, read and decided inside the
//! movement's own transaction: [`check_outgoing`] for money leaving a
//! wallet, [`check_incoming`] for deposits into it.
//!
//! The caller must already hold the sender's row lock (taken by
//! [`crate::movements::parties::load`], `FOR NO KEY UPDATE`, which does not
//! block the foreign-key checks of other movements) from an earlier
//! statement of the same transaction: this statement's fresh snapshot then
//! includes every movement by the sender that committed before the lock was
//! granted, so two concurrent movements cannot both slip under a limit. The
//! windows read only the sender's last 24 hours through
//! `transactions_limits_window`, however long their history.

use std::collections::HashMap;

use chainpay_core::compliance::{self, Activity, Decision, TierLimits};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::rules::Rules;

/// Decides an outgoing movement worth `usd_cents` by `user_id`.
pub async fn check_outgoing(
    conn: &mut PgConnection,
    rules: &Rules,
    user_id: Uuid,
    usd_cents: i64,
) -> sqlx::Result<Decision> {
    let mut windows = outgoing_windows(conn, rules, &[user_id]).await?;
    let window = windows.remove(&user_id).ok_or(sqlx::Error::RowNotFound)?;
    Ok(window.decide(rules, usd_cents))
}

/// A sender's tier and what they sent in their rolling windows.
#[derive(Debug, Clone)]
pub struct Window {
    pub limits: TierLimits,
    pub activity: Activity,
}

impl Window {
    /// Decides one more outgoing movement worth `usd_cents`.
    pub fn decide(&self, rules: &Rules, usd_cents: i64) -> Decision {
        compliance::evaluate(&self.limits, &rules.structuring, self.activity, usd_cents)
    }

    /// Counts a movement decided since the windows were read, as the next
    /// read would.
    pub fn add(&mut self, rules: &Rules, usd_cents: i64) {
        let activity = &mut self.activity;
        activity.count_last_hour += 1;
        activity.volume_last_24h_usd_cents =
            activity.volume_last_24h_usd_cents.saturating_add(usd_cents);
        if rules.structuring.in_band(usd_cents) {
            activity.in_band_last_24h += 1;
        }
    }
}

/// The outgoing windows of each of `user_ids` (their row locks held), in
/// one round trip.
pub async fn outgoing_windows(
    conn: &mut PgConnection,
    rules: &Rules,
    user_ids: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, Window>> {
    let rows = sqlx::query!(
        r#"
        SELECT u.id, t.can_transact, t.single_max_usd_cents, t.daily_max_usd_cents, t.hourly_max_count,
               w.count_last_hour AS "count_last_hour!", w.volume AS "volume!", w.in_band AS "in_band!"
        FROM users u
        JOIN compliance_tiers t ON t.kyc_status = u.kyc_status
        CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS count_last_hour,
                   coalesce(sum(usd_cents), 0)::bigint AS volume,
                   count(*) FILTER (WHERE usd_cents BETWEEN $2 AND $3) AS in_band
            FROM transactions
            WHERE from_user_id = u.id AND usd_cents IS NOT NULL AND tx_type NOT IN ('cash_in', 'redemption')
              AND created_at > now() - interval '24 hours'
        ) w
        WHERE u.id = ANY($1)
        "#,
        user_ids,
        rules.structuring.band_min_usd_cents,
        rules.structuring.band_max_usd_cents,
    )
    .fetch_all(conn)
    .await?;
    let windows = rows.into_iter().map(|row| {
        let limits = TierLimits {
            can_transact: row.can_transact,
            single_max_usd_cents: row.single_max_usd_cents,
            daily_max_usd_cents: row.daily_max_usd_cents,
            hourly_max_count: i64::from(row.hourly_max_count),
        };
        let activity = Activity {
            count_last_hour: row.count_last_hour,
            volume_last_24h_usd_cents: row.volume,
            in_band_last_24h: row.in_band,
        };
        (row.id, Window { limits, activity })
    });
    Ok(windows.collect())
}

/// Decides money coming in from outside — an M-Pesa deposit, a cash-in at
/// an agent, a voucher redeemed — worth `usd_cents` into `user_id`'s wallet
/// against their tier: the single limit, the daily limit over the last 24
/// hours of deposits still pending or credited plus cash-ins and
/// redemptions, and the hourly count of all three. The caller holds the
/// user's row lock, so concurrent ones are decided one at a time.
pub async fn check_incoming(
    conn: &mut PgConnection,
    rules: &Rules,
    user_id: Uuid,
    usd_cents: i64,
) -> sqlx::Result<Decision> {
    let row = sqlx::query!(
        r#"
        SELECT t.can_transact, t.single_max_usd_cents, t.daily_max_usd_cents, t.hourly_max_count,
               (SELECT coalesce(sum(amount), 0) FROM mpesa_deposits d
                WHERE d.user_id = u.id AND d.status IN ('PENDING', 'CONFIRMED')
                  AND d.created_at > now() - interval '24 hours')::bigint AS "kes_last_24h!",
               (SELECT count(*) FROM mpesa_deposits d
                WHERE d.user_id = u.id AND d.created_at > now() - interval '1 hour') AS "count_last_hour!",
               x.usd AS "other_usd_last_24h!", x.recent AS "other_count_last_hour!", x.in_band AS "in_band!"
        FROM users u JOIN compliance_tiers t ON t.kyc_status = u.kyc_status
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(usd_cents), 0)::bigint AS usd,
                   count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS recent,
                   count(*) FILTER (WHERE usd_cents BETWEEN $2 AND $3) AS in_band
            FROM transactions
            WHERE to_user_id = u.id AND usd_cents IS NOT NULL AND tx_type IN ('cash_in', 'redemption')
              AND created_at > now() - interval '24 hours'
        ) x
        WHERE u.id = $1
        "#,
        user_id,
        rules.structuring.band_min_usd_cents,
        rules.structuring.band_max_usd_cents,
    )
    .fetch_one(conn)
    .await?;
    let limits = TierLimits {
        can_transact: row.can_transact,
        single_max_usd_cents: row.single_max_usd_cents,
        daily_max_usd_cents: row.daily_max_usd_cents,
        hourly_max_count: i64::from(row.hourly_max_count),
    };
    // A rate book that cannot price KES cannot have priced this deposit either.
    let deposits_usd = rules
        .rates
        .usd_cents("KES", row.kes_last_24h)
        .unwrap_or(i64::MAX);
    let activity = Activity {
        count_last_hour: row.count_last_hour + row.other_count_last_hour,
        volume_last_24h_usd_cents: deposits_usd.saturating_add(row.other_usd_last_24h),
        // Cash placed in amounts just under the reporting band is structuring too.
        in_band_last_24h: row.in_band,
    };
    Ok(compliance::evaluate(
        &limits,
        &rules.structuring,
        activity,
        usd_cents,
    ))
}
