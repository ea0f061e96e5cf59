//! What a running gateway holds: the pool, the settings, the server keys,
//! the caches of money rules and the sanctions list, the chain sealer, the
//! clients of Daraja and Africa's Talking, and the wake-ups of background
//! jobs. Cheap to clone. HTTP handlers, jobs and the CLI hand features what
//! they need from it; nothing here knows about HTTP.

use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

use crate::auth::cache::SessionCache;
use crate::chain::authority::Sealer;
use crate::chain::blocks::SealedCount;
use crate::clients::africastalking::{SmsClient, SmsConfig};
use crate::clients::daraja::{DarajaClient, DarajaConfig};
use crate::config::{MpesaEnv, Settings};
use crate::db::replica::ReadPool;
use crate::error::Error;
use crate::jwt::JwtKeys;
use crate::metrics::Metrics;
use crate::movements::engine::Engine;
use crate::rules::{ListCache, RulesCache};
use crate::secrets::ServerKeys;
use crate::sms::reports::Reports;

/// The username and key the built-in Africa's Talking simulator accepts.
pub const SMS_SIMULATOR_USERNAME: &str = "sandbox";
pub const SMS_SIMULATOR_API_KEY: &str = "chainpay-simulator";

/// One instance's state behind one reference count: handlers and jobs clone
/// it for every request and task, so a clone is a single atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every clone of an [`AppState`] shares.
pub struct Shared {
    pub pool: sqlx::PgPool,
    /// Where reads that tolerate a little lag go (see [`Shared::read_pool`]).
    pub reads: ReadPool,
    pub settings: Arc<Settings>,
    pub keys: Arc<ServerKeys>,
    pub jwt: Arc<JwtKeys>,
    pub metrics: Arc<Metrics>,
    /// Snapshot of the money rules (rates, fees, AML settings).
    pub rules: Arc<RulesCache>,
    /// The tokenised sanctions list of the current version.
    pub sanctions: Arc<ListCache>,
    /// Wake-ups for the background jobs.
    pub jobs: Arc<JobSignals>,
    /// This instance's chain sealing authority.
    pub sealer: Arc<Sealer>,
    /// Decides and commits transfers in batches.
    pub engine: Arc<Engine>,
    /// Who tokens belong to, between requests.
    pub sessions: Arc<SessionCache>,
    /// Delivery reports waiting to be applied together.
    pub reports: Arc<Reports>,
    /// Transactions already counted in sealed blocks, for the chain's stats.
    pub sealed_count: Arc<SealedCount>,
    /// `http://host:port` of this instance's listener, once bound: where the
    /// built-in simulators are reached, exactly as the real services would be.
    pub self_url: Arc<OnceLock<String>>,
    /// Required as `?token=` on every Daraja callback.
    pub mpesa_callback_token: Arc<String>,
    daraja: Arc<OnceLock<DarajaClient>>,
    sms: Arc<OnceLock<SmsClient>>,
}

/// Ways to wake a job before its next period.
#[derive(Default)]
pub struct JobSignals {
    pub rescreen: Notify,
}

impl JobSignals {
    /// The sanctions list changed: screen users again now.
    pub fn wake_rescreen(&self) {
        self.rescreen.notify_one();
    }
}

/// The parts [`AppState::new`] assembles.
impl Shared {
    /// The pool for reads that tolerate a little lag (history, statements,
    /// admin lists, chain browsing): `DATABASE_READ_URL`'s streaming replica
    /// while it keeps up, else the primary. Anything a movement decides on,
    /// and anything shown as a balance, reads `pool`.
    pub fn read_pool(&self) -> &sqlx::PgPool {
        self.reads.get()
    }
}

pub struct Parts {
    pub pool: sqlx::PgPool,
    pub reads: ReadPool,
    pub settings: Settings,
    pub keys: ServerKeys,
    pub metrics: Metrics,
    pub sealer: Sealer,
    pub mpesa_callback_token: String,
}

impl AppState {
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(Shared {
            jwt: Arc::new(JwtKeys::new(&parts.keys.jwt_secret)),
            pool: parts.pool,
            reads: parts.reads,
            settings: Arc::new(parts.settings),
            keys: Arc::new(parts.keys),
            metrics: Arc::new(parts.metrics),
            rules: Arc::new(RulesCache::default()),
            sanctions: Arc::new(ListCache::default()),
            jobs: Arc::new(JobSignals::default()),
            sealer: Arc::new(parts.sealer),
            engine: Arc::new(Engine::default()),
            sessions: Arc::new(SessionCache::default()),
            reports: Arc::new(Reports::default()),
            sealed_count: Arc::new(SealedCount::default()),
            self_url: Arc::new(OnceLock::new()),
            mpesa_callback_token: Arc::new(parts.mpesa_callback_token),
            daraja: Arc::new(OnceLock::new()),
            sms: Arc::new(OnceLock::new()),
        }))
    }

    /// This instance's own listener, once it is bound.
    pub fn self_url(&self) -> Result<&str, Error> {
        self.self_url
            .get()
            .map(String::as_str)
            .ok_or_else(|| Error::internal("the listener is not bound yet"))
    }

    /// The Daraja client: Safaricom's sandbox or production, or the
    /// simulator on this gateway's own listener.
    pub fn daraja(&self) -> Result<&DarajaClient, Error> {
        if let Some(client) = self.daraja.get() {
            return Ok(client);
        }
        let settings = &self.settings.mpesa;
        let base_url = match (&settings.base_url, settings.env) {
            (Some(url), _) => url.clone(),
            (None, MpesaEnv::Sandbox) => chainpay_core::daraja::SANDBOX_URL.to_owned(),
            (None, MpesaEnv::Production) => chainpay_core::daraja::PRODUCTION_URL.to_owned(),
            (None, MpesaEnv::Simulator) => format!("{}/sim/daraja", self.self_url()?),
        };
        let client = DarajaClient::new(DarajaConfig {
            base_url,
            consumer_key: settings.consumer_key.clone(),
            consumer_secret: settings.consumer_secret.clone(),
            shortcode: settings.shortcode.clone(),
            passkey: settings.passkey.clone(),
            b2c_shortcode: settings.b2c_shortcode.clone(),
            b2c_initiator_name: settings.b2c_initiator_name.clone(),
            b2c_security_credential: settings.b2c_security_credential.clone(),
        })
        .map_err(|e| Error::Internal(e.into()))?;
        Ok(self.daraja.get_or_init(|| client))
    }

    /// The SMS client: Africa's Talking when credentials are configured,
    /// otherwise the simulator on this gateway's own listener.
    pub fn sms(&self) -> Result<&SmsClient, Error> {
        if let Some(client) = self.sms.get() {
            return Ok(client);
        }
        let config = match &self.settings.africastalking {
            Some(at) => SmsConfig {
                base_url: at.base_url.clone(),
                username: at.username.clone(),
                api_key: at.api_key.clone(),
                sender_id: at.sender_id.clone(),
            },
            None => SmsConfig {
                base_url: format!("{}/sim/at", self.self_url()?),
                username: SMS_SIMULATOR_USERNAME.to_owned(),
                api_key: SMS_SIMULATOR_API_KEY.to_owned(),
                sender_id: None,
            },
        };
        let client = SmsClient::new(config).map_err(|e| Error::Internal(e.into()))?;
        Ok(self.sms.get_or_init(|| client))
    }
}
