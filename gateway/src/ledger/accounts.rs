//! Looking up, and locking, the accounts a movement touches.

use sqlx::PgConnection;
use uuid::Uuid;

use super::post::Locked;

/// Shards of the fee revenue account per currency (see the accounts migration).
pub const FEE_REVENUE_SHARDS: u128 = 32;

/// The fee revenue shard a transaction posts to: spread by its id so that
/// concurrent transfers rarely wait on the same row lock.
pub fn fee_shard(tx_id: Uuid) -> i16 {
    (tx_id.as_u128() % FEE_REVENUE_SHARDS) as i16
}

/// Names one ledger account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRef<'a> {
    Wallet {
        user_id: Uuid,
        currency: &'a str,
    },
    /// An agent's e-money in one currency.
    AgentFloat {
        user_id: Uuid,
        currency: &'a str,
    },
    /// A merchant's money in one currency, held under its owner's id.
    Merchant {
        owner_id: Uuid,
        currency: &'a str,
    },
    House {
        kind: &'static str,
        channel: &'static str,
        currency: &'a str,
        shard: i16,
    },
}

impl<'a> AccountRef<'a> {
    /// What names the account's row: its kind, owner (none for the house's
    /// accounts), channel (empty for owned ones), currency and shard.
    fn key(&self) -> (&'static str, Option<Uuid>, &'static str, &'a str, i16) {
        match *self {
            AccountRef::Wallet { user_id, currency } => ("wallet", Some(user_id), "", currency, 0),
            AccountRef::AgentFloat { user_id, currency } => {
                ("agent_float", Some(user_id), "", currency, 0)
            }
            AccountRef::Merchant { owner_id, currency } => {
                ("merchant", Some(owner_id), "", currency, 0)
            }
            AccountRef::House {
                kind,
                channel,
                currency,
                shard,
            } => (kind, None, channel, currency, shard),
        }
    }

    pub fn wallet(user_id: Uuid, currency: &'a str) -> Self {
        AccountRef::Wallet { user_id, currency }
    }

    pub fn agent_float(user_id: Uuid, currency: &'a str) -> Self {
        AccountRef::AgentFloat { user_id, currency }
    }

    pub fn merchant(owner_id: Uuid, currency: &'a str) -> Self {
        AccountRef::Merchant { owner_id, currency }
    }

    /// What vouchers issued and not yet redeemed or refunded hold.
    pub fn voucher_liability(currency: &'a str) -> Self {
        Self::house("voucher_liability", currency)
    }

    pub fn house(kind: &'static str, currency: &'a str) -> Self {
        AccountRef::House {
            kind,
            channel: "",
            currency,
            shard: 0,
        }
    }

    pub fn float(channel: &'static str, currency: &'a str) -> Self {
        AccountRef::House {
            kind: "float",
            channel,
            currency,
            shard: 0,
        }
    }

    /// Money on its way out through `channel`, held until it is paid or refunded.
    pub fn payout_hold(channel: &'static str, currency: &'a str) -> Self {
        AccountRef::House {
            kind: "payout_hold",
            channel,
            currency,
            shard: 0,
        }
    }

    pub fn fee_revenue(currency: &'a str, tx_id: Uuid) -> Self {
        AccountRef::House {
            kind: "fee_revenue",
            channel: "",
            currency,
            shard: fee_shard(tx_id),
        }
    }
}

/// What a customer's, agent's or business's account can spend now (its
/// balance less what is reserved on it), read without a lock, for a message
/// about a movement that did not touch it; `None` for the house's accounts
/// and for an account that does not exist.
pub async fn available(
    conn: &mut PgConnection,
    account: &AccountRef<'_>,
) -> sqlx::Result<Option<i64>> {
    let (kind, Some(owner), _, currency, _) = account.key() else {
        return Ok(None);
    };
    sqlx::query_scalar!(
        r#"SELECT balance - locked AS "available!" FROM accounts WHERE kind = $1 AND user_id = $2 AND currency = $3"#,
        kind,
        owner,
        currency
    )
    .fetch_optional(conn)
    .await
}

/// The accounts `refs` name, in the same order, locked in ascending id
/// order (one global order, so two posters never wait on each other in a
/// cycle) with their balances, in one round trip (none for no `refs`: a
/// batch whose every transfer was refused or replayed); `None` if any
/// account does not exist (an unsupported currency, an unknown user).
/// (Longer than most: one array per column and one query with a branch per
/// account index; split up, the single round trip would be harder to see.)
pub async fn resolve_and_lock(
    conn: &mut PgConnection,
    refs: &[AccountRef<'_>],
) -> sqlx::Result<Option<Vec<Locked>>> {
    if refs.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let mut kinds = Vec::with_capacity(refs.len());
    let mut users = Vec::with_capacity(refs.len());
    let mut channels = Vec::with_capacity(refs.len());
    let mut currencies = Vec::with_capacity(refs.len());
    let mut shards = Vec::with_capacity(refs.len());
    for account in refs {
        let (kind, user_id, channel, currency, shard) = account.key();
        kinds.push(kind.to_owned());
        users.push(user_id);
        channels.push(channel.to_owned());
        currencies.push(currency.to_owned());
        shards.push(shard);
    }
    // Each branch matches one of the four partial unique indexes exactly,
    // so every reference is a single index probe however many accounts
    // exist; the rows are then locked as the sort hands them over, in id
    // order.
    let mut rows = sqlx::query!(
        r#"
        SELECT r.ord AS "ord!", l.id, l.kind, l.balance, l.locked
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::smallint[])
             WITH ORDINALITY AS r (kind, user_id, channel, currency, shard, ord)
        CROSS JOIN LATERAL (
            SELECT w.id FROM accounts w
            WHERE r.kind = 'wallet' AND w.kind = 'wallet' AND w.user_id = r.user_id AND w.currency = r.currency
            UNION ALL
            SELECT f.id FROM accounts f
            WHERE r.kind = 'agent_float' AND f.kind = 'agent_float' AND f.user_id = r.user_id AND f.currency = r.currency
            UNION ALL
            SELECT m.id FROM accounts m
            WHERE r.kind = 'merchant' AND m.kind = 'merchant' AND m.user_id = r.user_id AND m.currency = r.currency
            UNION ALL
            SELECT h.id FROM accounts h
            WHERE r.kind NOT IN ('wallet', 'agent_float', 'merchant') AND h.kind NOT IN ('wallet', 'agent_float', 'merchant')
              AND h.kind = r.kind AND h.channel = r.channel AND h.currency = r.currency AND h.shard = r.shard
        ) a
        JOIN accounts l ON l.id = a.id
        ORDER BY l.id
        FOR NO KEY UPDATE OF l
        "#,
        &kinds,
        &users as &[Option<Uuid>],
        &channels,
        &currencies,
        &shards,
    )
    .fetch_all(conn)
    .await?;
    if rows.len() != refs.len() {
        return Ok(None);
    }
    rows.sort_unstable_by_key(|row| row.ord);
    let locked = rows.into_iter().map(|row| Locked {
        id: row.id,
        kind: row.kind,
        balance: row.balance,
        locked: row.locked,
    });
    Ok(Some(locked.collect()))
}
