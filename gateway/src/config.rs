//! Typed settings, read once from the environment at start-up.
//!
//! Every knob has its default written here, so the defaults an operator gets
//! are visible in one place (and in the README's configuration table).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `CHAINPAY_ADDR`: where `serve` listens.
    pub listen_addr: SocketAddr,
    /// `DATABASE_URL`: an external PostgreSQL; `None` starts the embedded default.
    pub database_url: Option<String>,
    /// `CHAINPAY_DATA_DIR`: home of the embedded cluster and the generated master key.
    pub data_dir: PathBuf,
    /// `CHAINPAY_RATE_LIMIT`: requests per 60 s per authenticated user; 0 = off.
    pub rate_limit_per_user: u32,
    /// `CHAINPAY_AUTH_RATE_LIMIT`: requests per 60 s per client IP on the
    /// unauthenticated auth routes (register, login); 0 = off.
    pub rate_limit_per_ip: u32,
    /// `CHAINPAY_JWT_SECRET`: HS256 secret; generated once and stored
    /// (encrypted) in the database when unset.
    pub jwt_secret: Option<String>,
    /// `CHAINPAY_MASTER_KEY`: 64 hex chars; AES-256-GCM key for secrets at
    /// rest. Generated into `CHAINPAY_DATA_DIR/master.key` when unset.
    pub master_key_hex: Option<String>,
    /// `CHAINPAY_DB_POOL`: maximum connections per instance.
    pub db_pool_size: u32,
    /// `CHAINPAY_LOG_FORMAT`: `pretty` (default) or `json`.
    pub log_format: LogFormat,
    /// `CHAINPAY_FX_FEED`: `table` (rates change only when an operator sets
    /// them; the default) or `simulated` (a demo random walk).
    pub fx_feed: FxFeed,
    /// `CHAINPAY_FX_FEED_INTERVAL_S`: seconds between simulated ticks.
    pub fx_feed_interval_s: u32,
    /// `CHAINPAY_SANCTIONS_CSV`: an OFAC `sdn.csv` loaded at start, in
    /// addition to the bundled sample.
    pub sanctions_csv: Option<PathBuf>,
    /// `CHAINPAY_NODE_NAME`: this instance's name as a chain sealing
    /// authority; instances with different names seal with different keys.
    pub node_name: String,
    /// `CHAINPAY_BLOCK_INTERVAL_S`: the longest a committed transaction
    /// waits to be sealed when fewer than 50 are pending.
    pub block_interval_s: u32,
    /// Africa's Talking credentials (`AT_USERNAME`, `AT_API_KEY`,
    /// `AT_SENDER_ID`, `AT_BASE_URL`); `None` runs the SMS simulator.
    pub africastalking: Option<AfricasTalking>,
    /// `AT_WEBHOOK_TOKEN`: when set, the USSD and SMS webhooks must carry
    /// `?token=<it>` (Africa's Talking does not sign its callbacks).
    pub at_webhook_token: Option<String>,
}

/// How to reach Africa's Talking. `Debug` hides the key.
#[derive(Clone)]
pub struct AfricasTalking {
    pub base_url: String,
    pub username: String,
    pub api_key: String,
    pub sender_id: Option<String>,
}

impl std::fmt::Debug for AfricasTalking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfricasTalking")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Where exchange rates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FxFeed {
    Table,
    Simulated,
}

/// Token lifetime fixed by the API contract.
pub const JWT_TTL_SECONDS: i64 = 3600;
/// Wrong PINs in a row that lock an account, and for how long.
pub const LOCKOUT_THRESHOLD: i32 = 5;
pub const LOCKOUT_MINUTES: i64 = 5;
/// Width of the rate-limit sliding window.
pub const RATE_WINDOW_SECONDS: i64 = 60;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn env_opt(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_u32(name: &str, default: u32) -> anyhow::Result<u32> {
    env_or(name, &default.to_string())
        .trim()
        .parse()
        .with_context(|| format!("{name} must be a non-negative whole number"))
}

/// Africa's Talking credentials, when both the username and key are set.
fn africastalking_from_env() -> anyhow::Result<Option<AfricasTalking>> {
    match (env_opt("AT_USERNAME"), env_opt("AT_API_KEY")) {
        (Some(username), Some(api_key)) => {
            let default_base = if username == "sandbox" {
                "https://api.sandbox.africastalking.com"
            } else {
                "https://api.africastalking.com"
            };
            Ok(Some(AfricasTalking {
                base_url: env_or("AT_BASE_URL", default_base),
                username,
                api_key,
                sender_id: env_opt("AT_SENDER_ID"),
            }))
        }
        (None, None) => Ok(None),
        _ => {
            anyhow::bail!("set both AT_USERNAME and AT_API_KEY, or neither (to use the simulator)")
        }
    }
}

impl Settings {
    /// Every default, ignoring the environment (tests and benchmarks start here).
    pub fn defaults() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            database_url: None,
            data_dir: PathBuf::from("./.chainpay"),
            rate_limit_per_user: 30,
            rate_limit_per_ip: 30,
            jwt_secret: None,
            master_key_hex: None,
            db_pool_size: 32,
            log_format: LogFormat::Pretty,
            fx_feed: FxFeed::Table,
            fx_feed_interval_s: 30,
            sanctions_csv: None,
            node_name: "chainpay-node-1".to_owned(),
            block_interval_s: 10,
            africastalking: None,
            at_webhook_token: None,
        }
    }

    pub fn from_env() -> anyhow::Result<Self> {
        let log_format = match env_or("CHAINPAY_LOG_FORMAT", "pretty").as_str() {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => anyhow::bail!("CHAINPAY_LOG_FORMAT must be `pretty` or `json`, not `{other}`"),
        };
        let fx_feed = match env_or("CHAINPAY_FX_FEED", "table").as_str() {
            "table" => FxFeed::Table,
            "simulated" => FxFeed::Simulated,
            other => {
                anyhow::bail!("CHAINPAY_FX_FEED must be `table` or `simulated`, not `{other}`")
            }
        };
        Ok(Self {
            listen_addr: env_or("CHAINPAY_ADDR", "127.0.0.1:8443")
                .parse()
                .context("CHAINPAY_ADDR must be host:port, e.g. 127.0.0.1:8443")?,
            database_url: env_opt("DATABASE_URL"),
            data_dir: PathBuf::from(env_or("CHAINPAY_DATA_DIR", "./.chainpay")),
            rate_limit_per_user: env_u32("CHAINPAY_RATE_LIMIT", 30)?,
            rate_limit_per_ip: env_u32("CHAINPAY_AUTH_RATE_LIMIT", 30)?,
            jwt_secret: env_opt("CHAINPAY_JWT_SECRET"),
            master_key_hex: env_opt("CHAINPAY_MASTER_KEY"),
            db_pool_size: env_u32("CHAINPAY_DB_POOL", 32)?,
            log_format,
            fx_feed,
            fx_feed_interval_s: env_u32("CHAINPAY_FX_FEED_INTERVAL_S", 30)?.max(1),
            sanctions_csv: env_opt("CHAINPAY_SANCTIONS_CSV").map(PathBuf::from),
            node_name: env_or("CHAINPAY_NODE_NAME", "chainpay-node-1"),
            block_interval_s: env_u32("CHAINPAY_BLOCK_INTERVAL_S", 10)?.max(1),
            africastalking: africastalking_from_env()?,
            at_webhook_token: env_opt("AT_WEBHOOK_TOKEN"),
        })
    }
}
