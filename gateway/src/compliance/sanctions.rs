//! Sanctions screening against the list in PostgreSQL.
//!
//! Each user row remembers the list version it was last screened against
//! and the entry it matched. A movement whose parties were screened against
//! the current version reads that answer; a party screened against an older
//! version is screened again on the spot (and the background job brings
//! every user up to date, opening a report for anyone a new entry matches).

use chainpay_core::sanctions::{self, Hit};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::sars;
use crate::audit::{AuditEvent, Outcome};
use crate::rules::ListCache;

/// The OFAC sample that ships with ChainPay (see `data/README.md`).
pub const BUNDLED_SDN_SAMPLE: &[u8] = include_bytes!("../../../data/ofac_sdn_sample.csv");
/// `source` of entries loaded from an OFAC SDN file.
pub const OFAC_SOURCE: &str = "OFAC-SDN";
/// Users re-screened per pass of the background job.
const RESCREEN_BATCH: i64 = 500;

/// A party to a movement, with their stored screening result.
#[derive(Debug, Clone)]
pub struct Party {
    pub user_id: Uuid,
    pub name: String,
    pub phone: String,
    pub screened_list_version: i64,
    pub sanctions_match_id: Option<i64>,
}

/// The current list version.
pub async fn list_version(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar!("SELECT version FROM sanctions_list")
        .fetch_one(conn)
        .await
}

/// Screens a person who is not (yet) a user, e.g. at registration.
pub async fn screen_person(
    conn: &mut PgConnection,
    cache: &ListCache,
    threshold: f64,
    name: &str,
    phone: &str,
) -> sqlx::Result<(i64, Option<Hit>)> {
    let version = list_version(conn).await?;
    let list = cache.get(conn, version).await?;
    Ok((version, sanctions::screen(name, phone, &list, threshold)))
}

/// The first of `parties` that is on the list, with what matched.
pub async fn first_listed<'a>(
    conn: &mut PgConnection,
    cache: &ListCache,
    threshold: f64,
    version: i64,
    parties: &[&'a Party],
) -> sqlx::Result<Option<(&'a Party, Hit)>> {
    for party in parties {
        if party.screened_list_version == version {
            if let Some(listed_id) = party.sanctions_match_id {
                let hit = Hit {
                    listed_id,
                    listed_name: String::new(),
                    score: 1.0,
                    matched_on: "screened",
                };
                return Ok(Some((party, hit)));
            }
            continue;
        }
        let list = cache.get(conn, version).await?;
        if let Some(hit) = sanctions::screen(&party.name, &party.phone, &list, threshold) {
            return Ok(Some((party, hit)));
        }
    }
    Ok(None)
}

/// Loads SDN rows that are not in the database yet; returns how many.
pub async fn import_sdn(pool: &PgPool, data: &[u8]) -> anyhow::Result<usize> {
    let records = sanctions::parse_sdn_csv(data)?;
    let ent_nums: Vec<i64> = records.iter().map(|r| r.ent_num).collect();
    let known: Vec<i64> = sqlx::query_scalar!(
        r#"SELECT ent_num AS "ent_num!" FROM sanctions_entries WHERE source = $1 AND ent_num = ANY($2)"#,
        OFAC_SOURCE,
        &ent_nums
    )
    .fetch_all(pool)
    .await?;
    let fresh: Vec<_> = records
        .into_iter()
        .filter(|r| !known.contains(&r.ent_num))
        .collect();
    if fresh.is_empty() {
        return Ok(0);
    }
    let column =
        |f: fn(&chainpay_core::sanctions::SdnRecord) -> Option<String>| -> Vec<Option<String>> {
            fresh.iter().map(f).collect()
        };
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query!(
        r#"INSERT INTO sanctions_entries (name, source, ent_num, sdn_type, program, remarks)
           SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
           ON CONFLICT (source, ent_num) DO NOTHING"#,
        &fresh.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        &vec![OFAC_SOURCE.to_owned(); fresh.len()],
        &fresh.iter().map(|r| r.ent_num).collect::<Vec<_>>(),
        &column(|r| r.sdn_type.clone()) as &[Option<String>],
        &column(|r| r.program.clone()) as &[Option<String>],
        &column(|r| r.remarks.clone()) as &[Option<String>],
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    AuditEvent::new("compliance.sanctions_import", Outcome::Success)
        .detail(json!({"source": OFAC_SOURCE, "entries": inserted}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(inserted as usize)
}

/// Screens users whose last screening predates the current list, in one
/// batch; returns how many were screened. Run by the background job.
pub async fn rescreen_stale(
    pool: &PgPool,
    cache: &ListCache,
    threshold: f64,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let version = list_version(&mut tx).await?;
    let stale = sqlx::query!(
        r#"SELECT id, name, phone, sanctions_match_id FROM users
           WHERE screened_list_version < $1 ORDER BY id LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED"#,
        version,
        RESCREEN_BATCH
    )
    .fetch_all(&mut *tx)
    .await?;
    let list = cache.get(&mut tx, version).await?;
    for user in &stale {
        let hit = sanctions::screen(&user.name, &user.phone, &list, threshold);
        let match_id = hit.as_ref().map(|h| h.listed_id);
        sqlx::query!(
            "UPDATE users SET screened_list_version = $2, sanctions_match_id = $3 WHERE id = $1",
            user.id,
            version,
            match_id
        )
        .execute(&mut *tx)
        .await?;
        if let (Some(hit), true) = (hit, match_id != user.sanctions_match_id) {
            let detail = json!({"listed_id": hit.listed_id, "listed_name": hit.listed_name,
                                "score": hit.score, "matched_on": hit.matched_on, "list_version": version});
            sars::open_or_append(&mut tx, Some(user.id), "sanctions", None, detail.clone()).await?;
            AuditEvent::new("compliance.sanctions_hit", Outcome::Rejected)
                .subject(user.id)
                .detail(detail)
                .record(&mut tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(stale.len())
}
