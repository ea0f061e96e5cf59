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

/// Where the gateway runs: `production` refuses to start insecurely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    Development,
    Production,
}

/// `Debug` leaves out the secrets (JWT secret, master key, database URL
/// with its password): settings may be logged.
#[derive(Clone)]
pub struct Settings {
    /// `CHAINPAY_ENV`: `development` (default) or `production`.
    pub deployment: Deployment,
    /// `CHAINPAY_METRICS_TOKEN`: `/metrics` on the main listener answers
    /// only a bearer of this token.
    pub metrics_token: Option<String>,
    /// `CHAINPAY_METRICS_ADDR`: a separate listener serving only `/metrics`
    /// (without a token), for a private network.
    pub metrics_addr: Option<SocketAddr>,
    /// `CHAINPAY_ADDR`: where `serve` listens.
    pub listen_addr: SocketAddr,
    /// `DATABASE_URL`: an external PostgreSQL; `None` starts the embedded default.
    pub database_url: Option<String>,
    /// `DATABASE_READ_URL`: a streaming replica of that database for reads
    /// that tolerate a little lag (history, statements, admin lists, chain
    /// browsing); `None` reads everything from the primary.
    pub database_read_url: Option<String>,
    /// `CHAINPAY_READ_MAX_LAG_MS`: how far behind the replica may be and
    /// still serve reads (otherwise they go to the primary).
    pub read_max_lag_ms: u32,
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
    /// `CHAINPAY_DB_POOL`: maximum pooled connections per instance (the auth
    /// cache listens on one more of its own).
    pub db_pool_size: u32,
    /// `CHAINPAY_POSTING_WORKERS`: transfer batches one instance commits at
    /// once (each holds one pooled connection while it does).
    pub posting_workers: u32,
    /// `CHAINPAY_POSTING_BATCH`: most transfers decided in one batch.
    pub posting_batch: u32,
    /// `CHAINPAY_POSTING_WINDOW_US`: how long a batch stays open for more
    /// transfers once the worker's last batch held more than one (0: never).
    pub posting_window_us: u32,
    /// `CHAINPAY_POSTING_PATIENCE_MS`: how long a batch may wait on the
    /// database before it is given up and its requests answered with an
    /// error (see `movements::engine`): a batch waiting on a server that
    /// went silent would otherwise hold its worker for as long as the kernel
    /// keeps the socket. The SMS worker waits as long for each claim of
    /// messages and for its record.
    pub posting_patience_ms: u32,
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
    /// `CHAINPAY_RECON_INTERVAL_S`: seconds between scheduled reconciliation
    /// runs (one run across all instances).
    pub recon_interval_s: u32,
    /// `CHAINPAY_REFUND_WINDOW_DAYS`: how long after a payment its merchant
    /// may refund it.
    pub refund_window_days: u32,
    /// `CHAINPAY_WEBHOOK_ALLOW_PRIVATE=1`: webhook endpoints may be on
    /// loopback or private addresses, over plain http (development, tests).
    pub webhook_allow_private: bool,
    /// `CHAINPAY_WEBHOOK_FIRST_RETRY_MS`: the wait before a failed webhook
    /// is tried again; each further wait doubles.
    pub webhook_first_retry_ms: u64,
    /// Africa's Talking credentials (`AT_USERNAME`, `AT_API_KEY`,
    /// `AT_SENDER_ID`, `AT_BASE_URL`); `None` runs the SMS simulator.
    pub africastalking: Option<AfricasTalking>,
    /// `AT_WEBHOOK_TOKEN`: when set, the USSD and SMS webhooks must carry
    /// `?token=<it>` (Africa's Talking does not sign its callbacks).
    pub at_webhook_token: Option<String>,
    /// M-Pesa (Daraja) settings: environment first, then `mpesa_config.json`.
    pub mpesa: Mpesa,
}

/// Which Daraja ChainPay talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpesaEnv {
    Sandbox,
    Production,
    /// The built-in simulator on this gateway's own listener.
    Simulator,
}

/// M-Pesa settings. `Debug` hides the secrets.
#[derive(Clone)]
pub struct Mpesa {
    pub env: MpesaEnv,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub shortcode: String,
    pub passkey: String,
    /// Where Daraja posts STK callbacks; default this instance's
    /// `/api/v1/mpesa/callback`. The token is appended as `?token=`.
    pub callback_url: Option<String>,
    /// Shared secret in the callback URL; generated and stored once when unset.
    pub callback_token: Option<String>,
    pub b2c_shortcode: String,
    pub b2c_initiator_name: String,
    pub b2c_security_credential: String,
    /// How long the simulated customer takes to accept a prompt.
    pub sim_delay_ms: u64,
    /// How long a deposit waits for its callback before STK Query is asked.
    pub pending_timeout_s: u64,
    /// `MPESA_QUERY_DEADLINE_S`: a deposit with no definitive answer this
    /// long after its prompt becomes `EXPIRED`.
    pub query_deadline_s: u64,
    /// `MPESA_BASE_URL`: any Daraja-compatible host (a staging proxy, a test
    /// double); unset keeps the sandbox, production or simulator choice.
    pub base_url: Option<String>,
    /// `MPESA_PROMPT_OTHER_PHONES`: allow a deposit to prompt a phone other
    /// than the customer's own (off: a customer could prompt anyone).
    pub prompt_other_phones: bool,
    /// `MPESA_PROMPTS_PER_PHONE_HOUR`: STK prompts one phone receives per hour.
    pub prompts_per_phone_hour: u32,
}

impl std::fmt::Debug for Mpesa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpesa")
            .field("env", &self.env)
            .field("shortcode", &self.shortcode)
            .field("callback_url", &self.callback_url)
            .finish_non_exhaustive()
    }
}

impl Default for Mpesa {
    fn default() -> Self {
        Self {
            env: MpesaEnv::Simulator,
            consumer_key: "simulator".into(),
            consumer_secret: "simulator".into(),
            shortcode: chainpay_core::daraja::SANDBOX_SHORTCODE.into(),
            passkey: chainpay_core::daraja::SANDBOX_PASSKEY.into(),
            callback_url: None,
            callback_token: None,
            b2c_shortcode: "600000".into(),
            b2c_initiator_name: "testapi".into(),
            b2c_security_credential: "simulated-credential".into(),
            sim_delay_ms: 2000,
            pending_timeout_s: 120,
            query_deadline_s: 900,
            base_url: None,
            prompt_other_phones: false,
            prompts_per_phone_hour: 5,
        }
    }
}

/// `mpesa_config.json`, in the original ChainPay's keys.
#[derive(Debug, Default, serde::Deserialize)]
struct MpesaFile {
    environment: Option<String>,
    consumer_key: Option<String>,
    consumer_secret: Option<String>,
    shortcode: Option<String>,
    passkey: Option<String>,
    callback_url: Option<String>,
    callback_token: Option<String>,
    b2c_shortcode: Option<String>,
    b2c_initiator_name: Option<String>,
    b2c_security_credential: Option<String>,
}

/// Shortest callback token accepted: it is all that tells Safaricom's
/// callbacks from forged ones (a generated one is 64 hex digits).
const CALLBACK_TOKEN_MIN: usize = 32;

/// A configured callback token must be long enough to guess at no better
/// than chance, and be sent in Daraja's callback URLs exactly as typed
/// (unreserved URL characters only: anything else would come back encoded
/// and no real callback would match).
fn check_callback_token(token: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_url_token(token),
        "MPESA_CALLBACK_TOKEN must be at least {CALLBACK_TOKEN_MIN} characters of A-Z, a-z, 0-9, \
         '-', '.', '_' and '~' (it is put as it is in Daraja's callback URLs)"
    );
    Ok(())
}

/// Whether `token` is long enough to guess at no better than chance and
/// travels in a URL exactly as typed (unreserved characters only).
fn is_url_token(token: &str) -> bool {
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
    token.len() >= CALLBACK_TOKEN_MIN && token.chars().all(unreserved)
}

fn mpesa_from_env() -> anyhow::Result<Mpesa> {
    let path = env_or("CHAINPAY_MPESA_CONFIG", "mpesa_config.json");
    let file: MpesaFile = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{path} is not valid M-Pesa configuration"))?,
        Err(_) => MpesaFile::default(),
    };
    let pick = |name: &str, from_file: &Option<String>| env_opt(name).or_else(|| from_file.clone());
    let defaults = Mpesa::default();
    let consumer_key = pick("MPESA_CONSUMER_KEY", &file.consumer_key);
    let consumer_secret = pick("MPESA_CONSUMER_SECRET", &file.consumer_secret);
    let env = match pick("MPESA_ENV", &file.environment).as_deref() {
        Some("sandbox") => MpesaEnv::Sandbox,
        Some("production") => MpesaEnv::Production,
        Some("simulator") => MpesaEnv::Simulator,
        None if consumer_key.is_some() => MpesaEnv::Sandbox,
        None => MpesaEnv::Simulator,
        Some(other) => {
            anyhow::bail!("MPESA_ENV must be sandbox, production or simulator, not `{other}`")
        }
    };
    let callback_token = pick("MPESA_CALLBACK_TOKEN", &file.callback_token);
    if let Some(token) = &callback_token {
        check_callback_token(token)?;
    }
    if env != MpesaEnv::Simulator && (consumer_key.is_none() || consumer_secret.is_none()) {
        anyhow::bail!("MPESA_ENV={env:?} needs MPESA_CONSUMER_KEY and MPESA_CONSUMER_SECRET");
    }
    Ok(Mpesa {
        env,
        consumer_key: consumer_key.unwrap_or(defaults.consumer_key),
        consumer_secret: consumer_secret.unwrap_or(defaults.consumer_secret),
        shortcode: pick("MPESA_SHORTCODE", &file.shortcode).unwrap_or(defaults.shortcode),
        passkey: pick("MPESA_PASSKEY", &file.passkey).unwrap_or(defaults.passkey),
        callback_url: pick("MPESA_CALLBACK_URL", &file.callback_url),
        callback_token,
        b2c_shortcode: pick("MPESA_B2C_SHORTCODE", &file.b2c_shortcode)
            .unwrap_or(defaults.b2c_shortcode),
        b2c_initiator_name: pick("MPESA_B2C_INITIATOR_NAME", &file.b2c_initiator_name)
            .unwrap_or(defaults.b2c_initiator_name),
        b2c_security_credential: pick(
            "MPESA_B2C_SECURITY_CREDENTIAL",
            &file.b2c_security_credential,
        )
        .unwrap_or(defaults.b2c_security_credential),
        sim_delay_ms: u64::from(env_u32("MPESA_SIM_DELAY_MS", 2000)?),
        pending_timeout_s: u64::from(env_u32("MPESA_PENDING_TIMEOUT_S", 120)?.max(1)),
        query_deadline_s: u64::from(env_u32("MPESA_QUERY_DEADLINE_S", 900)?.max(1)),
        base_url: env_opt("MPESA_BASE_URL").map(|url| url.trim_end_matches('/').to_owned()),
        prompt_other_phones: env_flag("MPESA_PROMPT_OTHER_PHONES")?,
        prompts_per_phone_hour: env_u32("MPESA_PROMPTS_PER_PHONE_HOUR", 5)?,
    })
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

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen_addr", &self.listen_addr)
            .field("database_url", &self.database_url.as_ref().map(|_| "(set)"))
            .field(
                "database_read_url",
                &self.database_read_url.as_ref().map(|_| "(set)"),
            )
            .field("data_dir", &self.data_dir)
            .field("rate_limit_per_user", &self.rate_limit_per_user)
            .field("rate_limit_per_ip", &self.rate_limit_per_ip)
            .field("fx_feed", &self.fx_feed)
            .field("node_name", &self.node_name)
            .field("block_interval_s", &self.block_interval_s)
            .field("recon_interval_s", &self.recon_interval_s)
            .field("refund_window_days", &self.refund_window_days)
            .field("webhook_allow_private", &self.webhook_allow_private)
            .field("africastalking", &self.africastalking)
            .field("mpesa", &self.mpesa)
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
/// Default `CHAINPAY_POSTING_PATIENCE_MS`: five seconds under the HTTP
/// timeout (30 s), so a batch given up answers its requests itself (a keyed
/// one `503` with `Retry-After`) before the timeout's bare `408` would.
pub const POSTING_PATIENCE_MS: u32 = 25_000;
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

fn env_flag(name: &str) -> anyhow::Result<bool> {
    match env_or(name, "0").as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        other => anyhow::bail!("{name} must be 1 or 0, not `{other}`"),
    }
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
            deployment: Deployment::Development,
            metrics_token: None,
            metrics_addr: None,
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            database_url: None,
            database_read_url: None,
            read_max_lag_ms: 2000,
            data_dir: PathBuf::from("./.chainpay"),
            rate_limit_per_user: 30,
            rate_limit_per_ip: 30,
            jwt_secret: None,
            master_key_hex: None,
            db_pool_size: 32,
            posting_workers: 3,
            posting_batch: 256,
            posting_window_us: 1000,
            posting_patience_ms: POSTING_PATIENCE_MS,
            log_format: LogFormat::Pretty,
            fx_feed: FxFeed::Table,
            fx_feed_interval_s: 30,
            sanctions_csv: None,
            node_name: "chainpay-node-1".to_owned(),
            block_interval_s: 10,
            recon_interval_s: 3600,
            refund_window_days: 30,
            webhook_allow_private: false,
            webhook_first_retry_ms: 5_000,
            africastalking: None,
            at_webhook_token: None,
            mpesa: Mpesa::default(),
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
        let deployment = match env_or("CHAINPAY_ENV", "development").as_str() {
            "development" => Deployment::Development,
            "production" => Deployment::Production,
            other => {
                anyhow::bail!("CHAINPAY_ENV must be `development` or `production`, not `{other}`")
            }
        };
        let metrics_addr = match env_opt("CHAINPAY_METRICS_ADDR") {
            Some(addr) => Some(
                addr.parse()
                    .context("CHAINPAY_METRICS_ADDR must be host:port")?,
            ),
            None => None,
        };
        Ok(Self {
            deployment,
            metrics_token: env_opt("CHAINPAY_METRICS_TOKEN"),
            metrics_addr,
            listen_addr: env_or("CHAINPAY_ADDR", "127.0.0.1:8443")
                .parse()
                .context("CHAINPAY_ADDR must be host:port, e.g. 127.0.0.1:8443")?,
            database_url: env_opt("DATABASE_URL"),
            database_read_url: env_opt("DATABASE_READ_URL"),
            read_max_lag_ms: env_u32("CHAINPAY_READ_MAX_LAG_MS", 2000)?,
            data_dir: PathBuf::from(env_or("CHAINPAY_DATA_DIR", "./.chainpay")),
            rate_limit_per_user: env_u32("CHAINPAY_RATE_LIMIT", 30)?,
            rate_limit_per_ip: env_u32("CHAINPAY_AUTH_RATE_LIMIT", 30)?,
            jwt_secret: env_opt("CHAINPAY_JWT_SECRET"),
            master_key_hex: env_opt("CHAINPAY_MASTER_KEY"),
            db_pool_size: env_u32("CHAINPAY_DB_POOL", 32)?,
            posting_workers: env_u32("CHAINPAY_POSTING_WORKERS", 3)?.clamp(1, 64),
            posting_batch: env_u32("CHAINPAY_POSTING_BATCH", 256)?.clamp(1, 4096),
            posting_window_us: env_u32("CHAINPAY_POSTING_WINDOW_US", 1000)?.min(50_000),
            posting_patience_ms: env_u32("CHAINPAY_POSTING_PATIENCE_MS", POSTING_PATIENCE_MS)?
                .clamp(1_000, 600_000),
            log_format,
            fx_feed,
            fx_feed_interval_s: env_u32("CHAINPAY_FX_FEED_INTERVAL_S", 30)?.max(1),
            sanctions_csv: env_opt("CHAINPAY_SANCTIONS_CSV").map(PathBuf::from),
            node_name: env_or("CHAINPAY_NODE_NAME", "chainpay-node-1"),
            block_interval_s: env_u32("CHAINPAY_BLOCK_INTERVAL_S", 10)?.max(1),
            recon_interval_s: env_u32("CHAINPAY_RECON_INTERVAL_S", 3600)?.max(1),
            refund_window_days: env_u32("CHAINPAY_REFUND_WINDOW_DAYS", 30)?.min(3650),
            webhook_allow_private: env_opt("CHAINPAY_WEBHOOK_ALLOW_PRIVATE").as_deref()
                == Some("1"),
            webhook_first_retry_ms: u64::from(
                env_u32("CHAINPAY_WEBHOOK_FIRST_RETRY_MS", 5_000)?.max(1),
            ),
            africastalking: africastalking_from_env()?,
            at_webhook_token: env_opt("AT_WEBHOOK_TOKEN"),
            mpesa: mpesa_from_env()?,
        })
    }
}

impl Settings {
    /// What keeps these settings from being safe in production, each item
    /// naming what to set. Empty when they are.
    pub fn production_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.database_url.is_none() {
            problems.push("DATABASE_URL is unset: the embedded development database would be started and seeded with demo users whose PINs are public".to_owned());
        }
        match self.mpesa.env {
            MpesaEnv::Simulator => problems.push("M-Pesa would run on the simulator: set MPESA_CONSUMER_KEY, MPESA_CONSUMER_SECRET and MPESA_ENV=production".to_owned()),
            MpesaEnv::Sandbox => problems.push("M-Pesa would run on Daraja's sandbox: set MPESA_ENV=production".to_owned()),
            MpesaEnv::Production => {}
        }
        if self
            .mpesa
            .base_url
            .as_deref()
            .is_some_and(|url| !url.starts_with("https://"))
        {
            problems.push(
                "MPESA_BASE_URL must be an https:// URL: Daraja's credentials travel to it"
                    .to_owned(),
            );
        }
        match &self.africastalking {
            None => problems
                .push("SMS would go to the simulator: set AT_USERNAME and AT_API_KEY".to_owned()),
            Some(at) if !at.base_url.starts_with("https://") => problems
                .push("AT_BASE_URL must be an https:// URL: the API key travels to it".to_owned()),
            Some(at) if at.username == "sandbox" => problems.push(
                "SMS would go to Africa's Talking's sandbox (AT_USERNAME=sandbox): no customer would get one"
                    .to_owned(),
            ),
            Some(_) => {}
        }
        match self.at_webhook_token.as_deref() {
            None => problems.push(
                "AT_WEBHOOK_TOKEN is unset: anyone could drive USSD and SMS as any phone"
                    .to_owned(),
            ),
            Some(token) if !is_url_token(token) => problems.push(format!(
                "AT_WEBHOOK_TOKEN must be at least {CALLBACK_TOKEN_MIN} characters of A-Z, a-z, 0-9, \
                 '-', '.', '_' and '~': it is all that tells Africa's Talking from anyone, and it travels in a URL"
            )),
            Some(_) => {}
        }
        if self.fx_feed == FxFeed::Simulated {
            problems.push("CHAINPAY_FX_FEED=simulated: rates would wander at random instead of changing only when two operators set them".to_owned());
        }
        if self.webhook_allow_private {
            problems.push("CHAINPAY_WEBHOOK_ALLOW_PRIVATE is set: merchants' webhooks could reach this network's private addresses".to_owned());
        }
        if self.master_key_hex.is_none() && !self.data_dir.join("master.key").exists() {
            problems
                .push("CHAINPAY_MASTER_KEY is unset: a master key would be generated".to_owned());
        }
        match &self.mpesa.callback_url {
            Some(url) if url.starts_with("https://") => {}
            Some(_) => problems.push("MPESA_CALLBACK_URL must be an https:// URL".to_owned()),
            None => problems.push("MPESA_CALLBACK_URL is unset: Daraja would be told to call this instance over plain HTTP".to_owned()),
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let settings = Settings {
            jwt_secret: Some("jwt-secret-value-0123456789abcdef".into()),
            master_key_hex: Some("ab".repeat(32)),
            database_url: Some("postgres://app:hunter2@db/chainpay".into()),
            database_read_url: Some("postgres://app:hunter3@replica/chainpay".into()),
            at_webhook_token: Some("hook-token".into()),
            ..Settings::defaults()
        };
        let shown = format!("{settings:?}");
        for secret in [
            "jwt-secret-value",
            &"ab".repeat(32),
            "hunter2",
            "hunter3",
            "hook-token",
            "simulated-credential",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn a_callback_token_is_long_and_travels_in_a_url_unchanged() {
        assert!(check_callback_token(&"a1-._~".repeat(6)).is_ok());
        for weak in ["", "short", &"x".repeat(31)] {
            assert!(check_callback_token(weak).is_err(), "{weak:?} accepted");
        }
        for unsafe_in_url in ["&", "#", "+", "%", " ", "/", "?", "é"] {
            let token = format!("{}{unsafe_in_url}", "x".repeat(40));
            assert!(check_callback_token(&token).is_err(), "{token:?} accepted");
        }
    }

    #[test]
    fn production_names_every_insecure_setting_and_none_once_fixed() {
        let mut settings = Settings {
            deployment: Deployment::Production,
            data_dir: std::env::temp_dir().join("chainpay-no-such-dir"),
            ..Settings::defaults()
        };
        let problems = settings.production_problems().join("\n");
        for named in [
            "DATABASE_URL",
            "MPESA_CONSUMER_KEY",
            "AT_USERNAME",
            "AT_WEBHOOK_TOKEN",
            "CHAINPAY_MASTER_KEY",
            "MPESA_CALLBACK_URL",
        ] {
            assert!(problems.contains(named), "{named} not named in {problems}");
        }
        settings.database_url = Some("postgres://app@db/chainpay".into());
        settings.mpesa.env = MpesaEnv::Sandbox;
        assert!(settings.production_problems().join(" ").contains("sandbox"));
        settings.mpesa.env = MpesaEnv::Production;
        settings.mpesa.callback_url = Some("http://pay.example.com/api/v1/mpesa/callback".into());
        assert!(settings.production_problems().join(" ").contains("https"));
        settings.mpesa.callback_url = Some("https://pay.example.com/api/v1/mpesa/callback".into());
        settings.africastalking = Some(AfricasTalking {
            base_url: "https://api.africastalking.com".into(),
            username: "chainpay".into(),
            api_key: "key".into(),
            sender_id: None,
        });
        settings.at_webhook_token = Some("hook".into());
        settings.master_key_hex = Some("ab".repeat(32));
        assert_eq!(
            settings.production_problems().len(),
            1,
            "a guessable webhook token"
        );
        settings.at_webhook_token = Some("hook-".repeat(8));
        assert_eq!(settings.production_problems(), Vec::<String>::new());
        // Each insecure choice on its own is named.
        type Spoil = fn(&mut Settings);
        let insecure: [(&str, Spoil); 5] = [
            ("CHAINPAY_FX_FEED", |s| s.fx_feed = FxFeed::Simulated),
            ("MPESA_BASE_URL", |s| {
                s.mpesa.base_url = Some("http://daraja.example".into())
            }),
            ("AT_BASE_URL", |s| {
                if let Some(at) = s.africastalking.as_mut() {
                    at.base_url = "http://api.africastalking.com".into();
                }
            }),
            ("CHAINPAY_WEBHOOK_ALLOW_PRIVATE", |s| {
                s.webhook_allow_private = true
            }),
            ("AT_USERNAME=sandbox", |s| {
                if let Some(at) = s.africastalking.as_mut() {
                    at.username = "sandbox".into();
                }
            }),
        ];
        for (named, spoil) in insecure {
            let mut spoiled = settings.clone();
            spoil(&mut spoiled);
            let problems = spoiled.production_problems().join(" ");
            assert!(problems.contains(named), "{named} not named in {problems}");
        }
    }
}
