//! Looking up the accounts a movement touches.

use sqlx::PgConnection;
use uuid::Uuid;

/// Shards of the fee revenue account per currency (see the accounts migration).
pub const FEE_REVENUE_SHARDS: u128 = 8;

/// The fee revenue shard a transaction posts to: spread by its id so that
/// concurrent transfers rarely wait on the same row lock.
pub fn fee_shard(tx_id: Uuid) -> i16 {
    (tx_id.as_u128() % FEE_REVENUE_SHARDS) as i16
}

/// Names one ledger account.
#[derive(Debug, Clone)]
pub enum AccountRef<'a> {
    Wallet {
        user_id: Uuid,
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
    pub fn wallet(user_id: Uuid, currency: &'a str) -> Self {
        AccountRef::Wallet { user_id, currency }
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

    pub fn fee_revenue(currency: &'a str, tx_id: Uuid) -> Self {
        AccountRef::House {
            kind: "fee_revenue",
            channel: "",
            currency,
            shard: fee_shard(tx_id),
        }
    }
}

/// The ids of `refs`, in the same order, in one round trip; `None` if any
/// account does not exist (an unsupported currency, an unknown user).
pub async fn resolve(
    conn: &mut PgConnection,
    refs: &[AccountRef<'_>],
) -> sqlx::Result<Option<Vec<i64>>> {
    let mut kinds = Vec::with_capacity(refs.len());
    let mut users = Vec::with_capacity(refs.len());
    let mut channels = Vec::with_capacity(refs.len());
    let mut currencies = Vec::with_capacity(refs.len());
    let mut shards = Vec::with_capacity(refs.len());
    for account in refs {
        match account {
            AccountRef::Wallet { user_id, currency } => {
                kinds.push("wallet".to_owned());
                users.push(Some(*user_id));
                channels.push(String::new());
                currencies.push((*currency).to_owned());
                shards.push(0i16);
            }
            AccountRef::House {
                kind,
                channel,
                currency,
                shard,
            } => {
                kinds.push((*kind).to_owned());
                users.push(None);
                channels.push((*channel).to_owned());
                currencies.push((*currency).to_owned());
                shards.push(*shard);
            }
        }
    }
    let rows = sqlx::query!(
        r#"
        SELECT r.ord AS "ord!", a.id
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::smallint[])
             WITH ORDINALITY AS r (kind, user_id, channel, currency, shard, ord)
        JOIN accounts a ON a.kind = r.kind AND a.currency = r.currency
         AND CASE WHEN r.kind = 'wallet' THEN a.user_id = r.user_id
                  ELSE a.channel = r.channel AND a.shard = r.shard END
        ORDER BY r.ord
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
    Ok(Some(rows.into_iter().map(|row| row.id).collect()))
}
