//! The money rules (rates, fees, AML settings) and the sanctions list, as
//! read from PostgreSQL and cached per instance.
//!
//! They are small tables read by every money movement, so each instance
//! keeps the last snapshot for at most [`MAX_AGE`] and drops it at once when
//! it changes them itself. Another instance's change is seen within
//! `MAX_AGE`; a conversion never depends on that, because it executes at its
//! locked quote.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chainpay_core::compliance::StructuringRule;
use chainpay_core::fees::{FeeBand, FeeKind, FeeSchedule};
use chainpay_core::fx::RateBook;
use chainpay_core::sanctions::{self, ListedName};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Mutex;

/// How long a snapshot is used before it is read again.
const MAX_AGE: Duration = Duration::from_secs(1);

/// One consistent snapshot of the rules.
#[derive(Debug)]
pub struct Rules {
    pub rates: RateBook,
    pub fees: FeeSchedule,
    /// What agents earn per cash-in and cash-out (`commission_bands`).
    pub commissions: FeeSchedule,
    pub structuring: StructuringRule,
    pub sanctions_threshold: f64,
    pub quote_ttl_seconds: i64,
}

impl Rules {
    /// Minor-unit digits of `currency` (2 when it is unknown).
    pub fn exponent(&self, currency: &str) -> u32 {
        self.rates.leg(currency).map_or(2, |leg| leg.exponent)
    }

    /// `KES 1,250.75`: an amount as customers read it.
    pub fn show(&self, currency: &str, minor: i64) -> String {
        chainpay_core::money::show(currency, minor, self.exponent(currency))
    }
}

#[derive(Default)]
pub struct RulesCache {
    current: Mutex<Option<(Instant, Arc<Rules>)>>,
}

impl RulesCache {
    /// The current rules, read from the database when the snapshot is stale.
    pub async fn get(&self, pool: &PgPool) -> anyhow::Result<Arc<Rules>> {
        let mut current = self.current.lock().await;
        if let Some((loaded, rules)) = current.as_ref() {
            if loaded.elapsed() < MAX_AGE {
                return Ok(rules.clone());
            }
        }
        let rules = Arc::new(load(pool).await?);
        *current = Some((Instant::now(), rules.clone()));
        Ok(rules)
    }

    /// Forgets the snapshot after this instance changed the rules.
    pub async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
}

async fn load(pool: &PgPool) -> anyhow::Result<Rules> {
    let settings = sqlx::query!(
        r#"SELECT f.spread, f.quote_ttl_seconds, c.structuring_min_usd_cents, c.structuring_max_usd_cents,
                  c.structuring_count, c.sanctions_threshold
           FROM fx_settings f, compliance_settings c"#
    )
    .fetch_one(pool)
    .await?;
    let legs = sqlx::query!(
        "SELECT r.currency, r.usd_mid, c.exponent FROM fx_rates r JOIN currencies c ON c.code = r.currency"
    )
    .fetch_all(pool)
    .await?;
    let mut rates = RateBook::new(settings.spread)?;
    for leg in legs {
        rates = rates.with_leg(&leg.currency, leg.usd_mid, leg.exponent.max(0) as u32)?;
    }
    let (fees, commissions) = schedules(pool).await?;
    Ok(Rules {
        rates,
        fees,
        commissions,
        structuring: StructuringRule {
            band_min_usd_cents: settings.structuring_min_usd_cents,
            band_max_usd_cents: settings.structuring_max_usd_cents,
            count: i64::from(settings.structuring_count),
        },
        sanctions_threshold: settings
            .sanctions_threshold
            .to_f64()
            .unwrap_or(sanctions::MATCH_THRESHOLD),
        quote_ttl_seconds: i64::from(settings.quote_ttl_seconds),
    })
}

/// The fee schedule and the commission schedule (same shape), in one read.
async fn schedules(pool: &PgPool) -> anyhow::Result<(FeeSchedule, FeeSchedule)> {
    let rows = sqlx::query!(
        r#"SELECT false AS "commission!", kind, from_usd_cents, rate, min_fee_usd_cents AS min, max_fee_usd_cents AS max
           FROM fee_bands
           UNION ALL
           SELECT true, kind, from_usd_cents, rate, min_usd_cents, max_usd_cents FROM commission_bands"#
    )
    .fetch_all(pool)
    .await?;
    let (mut fees, mut commissions) = (Vec::new(), Vec::new());
    for row in rows {
        let (Some(kind), Some(from_usd_cents), Some(rate)) = (
            row.kind.as_deref().and_then(FeeKind::parse),
            row.from_usd_cents,
            row.rate,
        ) else {
            continue;
        };
        let band = FeeBand {
            kind,
            from_usd_cents,
            rate,
            min_fee_usd_cents: row.min,
            max_fee_usd_cents: row.max,
        };
        if row.commission {
            commissions.push(band);
        } else {
            fees.push(band);
        }
    }
    Ok((FeeSchedule::new(fees), FeeSchedule::new(commissions)))
}

/// Parses a decimal from an API string, e.g. a rate `"129.50"`.
pub fn parse_decimal(raw: &str) -> Option<Decimal> {
    raw.trim().parse::<Decimal>().ok()
}

/// The tokenised list of the version last read, shared by requests.
#[derive(Default)]
pub struct ListCache {
    current: Mutex<Option<(i64, Arc<Vec<ListedName>>)>>,
}

impl ListCache {
    /// The list at `version`, read from the database unless already held.
    pub async fn get(
        &self,
        conn: &mut PgConnection,
        version: i64,
    ) -> sqlx::Result<Arc<Vec<ListedName>>> {
        let mut current = self.current.lock().await;
        if let Some((held, list)) = current.as_ref() {
            if *held == version {
                return Ok(list.clone());
            }
        }
        let rows = sqlx::query!("SELECT id, name, phone FROM sanctions_entries ORDER BY id")
            .fetch_all(conn)
            .await?;
        let list = Arc::new(
            rows.into_iter()
                .map(|row| ListedName {
                    id: row.id,
                    tokens: sanctions::normalize(&row.name),
                    name: row.name,
                    phone: row.phone,
                })
                .collect::<Vec<_>>(),
        );
        *current = Some((version, list.clone()));
        Ok(list)
    }
}
