//! Test harness: the real application on a random port, over real HTTP,
//! against a fresh PostgreSQL database per test.
//!
//! The database server is `CHAINPAY_TEST_DATABASE_URL` when set; otherwise a
//! throw-away embedded cluster in the system temp directory, started by
//! whichever test process gets there first (the same code path as
//! `chainpay serve`'s embedded default). Each test gets its own database,
//! cloned from a template migrated once per migration set.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[allow(unused_imports)]
pub use chainpay_gateway::config::{FxFeed, Settings};
use chainpay_gateway::db::{self, ClusterOptions, EmbeddedPostgres, MIGRATOR};
use chainpay_gateway::http::AppState;
use chainpay_gateway::startup;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgPool};
use tokio::sync::{oneshot, OnceCell};

pub const ADMIN_PHONE: &str = "+254700000000";
pub const USER_PHONE: &str = "+254700000001";
pub const DEMO_PIN: &str = "1234";
/// `CHAINPAY_METRICS_TOKEN` of every test app.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// Where test databases live, once per test process.
struct Server {
    options: PgConnectOptions,
    /// URL form, for child processes (the `chainpay` binary under test).
    url_base: String,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

async fn server() -> &'static Server {
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("CHAINPAY_TEST_DATABASE_URL") {
                let options = PgConnectOptions::from_str(&url).unwrap();
                let url_base = url.rsplit_once('/').unwrap().0.to_owned();
                return Server {
                    options,
                    url_base: format!("{url_base}/{{db}}"),
                };
            }
            let dir = std::env::temp_dir().join("chainpay-test-pg");
            let cluster = EmbeddedPostgres::ensure_running(
                &dir,
                ClusterOptions {
                    durability_off: true,
                },
            )
            .await
            .expect("start the embedded test PostgreSQL");
            let socket = dir.canonicalize().unwrap().join("pg");
            Server {
                options: cluster.connect_options("postgres"),
                url_base: format!(
                    "postgres://chainpay@localhost/{{db}}?host={}",
                    socket.display()
                ),
            }
        })
        .await
}

fn migrations_fingerprint() -> String {
    let mut all = Vec::new();
    for migration in MIGRATOR.iter() {
        all.extend_from_slice(&migration.checksum);
    }
    chainpay_core::crypto::sha3_256_hex(&all)[..16].to_owned()
}

/// Creates a fresh, migrated database and returns its name.
pub async fn fresh_database() -> String {
    let server = server().await;
    let mut admin = server
        .options
        .clone()
        .database("postgres")
        .connect()
        .await
        .unwrap();
    let template = format!("chainpay_tpl_{}", migrations_fingerprint());
    admin
        .execute("SELECT pg_advisory_lock(727274)")
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        let building = format!("{template}_building");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {building}").as_str())
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE {building}").as_str())
            .await
            .unwrap();
        let mut conn = server
            .options
            .clone()
            .database(&building)
            .connect()
            .await
            .unwrap();
        MIGRATOR.run(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        admin
            .execute(format!("ALTER DATABASE {building} RENAME TO {template}").as_str())
            .await
            .unwrap();
        drop_stale_databases(&mut admin).await;
    }
    admin
        .execute("SELECT pg_advisory_unlock(727274)")
        .await
        .unwrap();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let name = format!("test_{created}_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(format!("CREATE DATABASE {name} TEMPLATE {template}").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();
    name
}

/// Test databases older than two hours belong to finished runs.
async fn drop_stale_databases(admin: &mut sqlx::PgConnection) {
    let cutoff = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 7200;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap();
    for name in names {
        let created: u64 = name
            .split('_')
            .nth(1)
            .and_then(|t| t.parse().ok())
            .unwrap_or(u64::MAX);
        if created < cutoff {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    }
}

/// Connection options for a test database, as the superuser.
pub async fn database_options(name: &str) -> PgConnectOptions {
    server().await.options.clone().database(name)
}

/// A URL for the test database that a child process can use as DATABASE_URL.
pub async fn database_url(name: &str) -> String {
    server().await.url_base.replace("{db}", name)
}

pub struct TestOptions {
    pub rate_limit_per_user: u32,
    pub rate_limit_per_ip: u32,
    pub seed_demo: bool,
    /// Any other setting, applied last.
    pub configure: fn(&mut Settings),
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            rate_limit_per_user: 0,
            rate_limit_per_ip: 0,
            seed_demo: true,
            configure: |_| {},
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// A superuser connection to the test database, for set-up, inspection
    /// and tampering; the application itself runs as `chainpay_app`.
    pub pool: PgPool,
    pub database: String,
    pub state: AppState,
    pub settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

async fn superuser_pool(database: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect_with(database_options(database).await)
        .await
        .unwrap()
}

/// The application's state on a test database, exactly as `serve` builds it.
async fn build_state(settings: &Settings, database: &str) -> AppState {
    let pool = db::connect_pool(database_options(database).await, settings.db_pool_size)
        .await
        .unwrap();
    startup::build_state(settings.clone(), pool).await.unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_with(TestOptions::default()).await
}

/// Logs go through the test writer, so only failing tests show them.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

pub async fn spawn_with(options: TestOptions) -> TestApp {
    init_logging();
    let database = fresh_database().await;
    let pool = superuser_pool(&database).await;
    let mut settings = Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: std::env::temp_dir(),
        rate_limit_per_user: options.rate_limit_per_user,
        rate_limit_per_ip: options.rate_limit_per_ip,
        // Fixed per test database, so a "restart" sees the same keys.
        master_key_hex: Some("11".repeat(32)),
        db_pool_size: 60,
        metrics_token: Some(METRICS_TOKEN.to_owned()),
        ..Settings::defaults()
    };
    // Tests prompt the demo phone many times; the limit has its own test.
    settings.mpesa.prompts_per_phone_hour = 1_000;
    (options.configure)(&mut settings);
    let state = build_state(&settings, &database).await;
    if options.seed_demo {
        chainpay_gateway::seed::seed_demo(&pool, &state.keys.tx_signing)
            .await
            .unwrap();
    }
    TestApp::serving(pool, database, state, settings).await
}

/// An app with demo data on a database of its own server (`options`, a
/// migrated database), with `configure` applied to the test settings.
pub async fn spawn_on(options: PgConnectOptions, configure: impl FnOnce(&mut Settings)) -> TestApp {
    init_logging();
    let mut settings = Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: std::env::temp_dir(),
        master_key_hex: Some("11".repeat(32)),
        db_pool_size: 10,
        rate_limit_per_user: 0,
        rate_limit_per_ip: 0,
        ..Settings::defaults()
    };
    configure(&mut settings);
    let pool = db::connect_pool(options.clone(), settings.db_pool_size)
        .await
        .unwrap();
    let state = startup::build_state(settings.clone(), pool).await.unwrap();
    let owner = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.clone())
        .await
        .unwrap();
    chainpay_gateway::seed::seed_demo(&owner, &state.keys.tx_signing)
        .await
        .unwrap();
    TestApp::serving(
        owner,
        options.get_database().unwrap_or("postgres").to_owned(),
        state,
        settings,
    )
    .await
}

impl TestApp {
    /// Serves `state` on a fresh local port.
    async fn serving(
        pool: PgPool,
        database: String,
        state: AppState,
        settings: Settings,
    ) -> TestApp {
        let mut app = TestApp {
            base: String::new(),
            client: reqwest::Client::new(),
            pool,
            database,
            state,
            settings,
            shutdown: None,
            server: None,
        };
        app.start().await;
        app
    }

    async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let state = self.state.clone();
        self.server = Some(tokio::spawn(async move {
            chainpay_gateway::http::server::serve(listener, state, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        }));
        self.shutdown = Some(tx);
    }

    /// Stops the server and starts a brand-new application (fresh state,
    /// keys reloaded from the database) on the same database: what survives
    /// is only what PostgreSQL holds.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.state = build_state(&self.settings, &self.database).await;
        self.client = reqwest::Client::new();
        self.start().await;
    }

    /// Stops serving, and this instance's background jobs with it; the
    /// database stays, as does `pool`.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    /// Another gateway instance on the same database (as a second process
    /// behind a load balancer would be), with its own settings tweaks.
    pub async fn second_instance(&self, configure: fn(&mut Settings)) -> TestApp {
        self.instance_via(database_options(&self.database).await, configure)
            .await
    }

    /// Another gateway instance on the same database whose pool connects
    /// with `options` (through PgBouncer, say), with `configure` applied to a
    /// copy of the settings.
    pub async fn instance_via(
        &self,
        options: PgConnectOptions,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = self.settings.clone();
        configure(&mut settings);
        let pool = db::connect_pool(options, settings.db_pool_size)
            .await
            .unwrap();
        let state = startup::build_state(settings.clone(), pool).await.unwrap();
        TestApp::serving(
            superuser_pool(&self.database).await,
            self.database.clone(),
            state,
            settings,
        )
        .await
    }

    /// Logs `token` out on this instance.
    pub async fn logout(&self, token: &str) {
        let answer = self
            .request(Method::POST, "/api/v1/auth/logout", Some(token))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    }

    /// Waits until this instance refuses `token` (a logout or a change made
    /// elsewhere reaching it).
    pub async fn refuses_eventually(&self, token: &str, what: &str) {
        eventually(what, secs(5), async || {
            let answer = self.get("/api/v1/wallet/balances", token).await;
            (answer.status() == StatusCode::UNAUTHORIZED).then_some(())
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, phone: &str, name: &str, pin: &str) -> Response {
        self.post(
            "/api/v1/auth/register",
            None,
            json!({"phone": phone, "name": name, "pin": pin}),
        )
        .await
    }

    pub async fn login(&self, phone: &str, pin: &str) -> Response {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"phone": phone, "pin": pin}),
        )
        .await
    }

    /// Logs in and returns the bearer token; panics if login fails.
    pub async fn token(&self, phone: &str, pin: &str) -> String {
        let response = self.login(phone, pin).await;
        assert_eq!(response.status(), StatusCode::OK, "login {phone}");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Registers a user with a strong PIN and returns their token.
    pub async fn new_user(&self, phone: &str, name: &str) -> String {
        let response = self.register(phone, name, "5831").await;
        assert_eq!(response.status(), StatusCode::CREATED, "register {phone}");
        self.token(phone, "5831").await
    }

    /// Registers a user, marks their KYC `VERIFIED` through the admin API,
    /// funds them with `usd_cents` US cents, and returns their token.
    pub async fn verified_user(&self, phone: &str, name: &str, usd_cents: i64) -> String {
        let token = self.new_user(phone, name).await;
        let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
            .bind(phone)
            .fetch_one(&self.pool)
            .await
            .unwrap();
        let admin = self.admin_token().await;
        let response = self
            .post(
                &format!("/api/v1/admin/users/{user_id}/kyc"),
                Some(&admin),
                json!({"status": "VERIFIED"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        if usd_cents > 0 {
            self.fund(phone, "USD", usd_cents).await;
        }
        token
    }

    /// The body of a successful GET of a public endpoint, as JSON.
    pub async fn get_public(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// The body of a successful GET as JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let response = self.get(path, token).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn admin_token(&self) -> String {
        self.token(ADMIN_PHONE, DEMO_PIN).await
    }

    /// Another admin (four eyes), registered and promoted on first use;
    /// returns their token.
    pub async fn second_admin(&self) -> String {
        self.admin_at("+254799000099", "Second Admin").await
    }

    /// An admin at `phone` (PIN 5831), registered and promoted on first
    /// use; returns their token.
    pub async fn admin_at(&self, phone: &str, name: &str) -> String {
        // The second call finds the number registered already.
        let _ = self.register(phone, name, "5831").await;
        sqlx::query("UPDATE users SET role = 'admin', kyc_status = 'VERIFIED' WHERE phone = $1")
            .bind(phone)
            .execute(&self.pool)
            .await
            .unwrap();
        self.token(phone, "5831").await
    }

    /// Appoints a new verified customer at `phone` as an agent and has two
    /// admins issue them `amount` of `currency` float; returns the agent's
    /// token and agent number.
    pub async fn agent_with_float(
        &self,
        phone: &str,
        currency: &str,
        amount: i64,
    ) -> (String, String) {
        let token = self.verified_user(phone, "Mary Wanjiru", 0).await;
        let admin = self.admin_token().await;
        let appointed = self
            .post(
                "/api/v1/admin/agents",
                Some(&admin),
                serde_json::json!({"phone": phone}),
            )
            .await;
        assert_eq!(appointed.status(), StatusCode::CREATED);
        let number = appointed.json::<Value>().await.unwrap()["agent_number"]
            .as_str()
            .unwrap()
            .to_owned();
        if amount > 0 {
            let reference = format!("BANK-{}", uuid::Uuid::new_v4().simple());
            let body = serde_json::json!({"agent_phone": phone, "amount": amount, "currency": currency, "reference": reference});
            let proposed: Value = self
                .post("/api/v1/admin/treasury/issuances", Some(&admin), body)
                .await
                .json()
                .await
                .unwrap();
            let second = self.second_admin().await;
            let path = format!(
                "/api/v1/admin/treasury/issuances/{}/approve",
                proposed["id"].as_str().unwrap()
            );
            let approved = self
                .post(
                    &path,
                    Some(&second),
                    serde_json::json!({"note": "bank transfer seen"}),
                )
                .await;
            assert_eq!(approved.status(), StatusCode::OK);
        }
        (token, number)
    }

    /// An agent's float in `currency`.
    pub async fn float(&self, agent_phone: &str, currency: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT a.balance FROM accounts a JOIN users u ON u.id = a.user_id
             WHERE a.kind = 'agent_float' AND u.phone = $1 AND a.currency = $2",
        )
        .bind(agent_phone)
        .bind(currency)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// The simulated customer answers an STK prompt (an admin's control).
    pub async fn sim_answer(&self, checkout: &str, result_code: i64, deliver: bool) {
        let admin = self.admin_token().await;
        let response = self
            .post(
                &format!("/sim/daraja/stk/{checkout}"),
                Some(&admin),
                json!({"result_code": result_code, "deliver": deliver}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "simulator control");
    }

    /// Sets the Daraja simulator's faults (an admin's control), e.g.
    /// `{"stk": "lose_replies"}`; a null clears one.
    pub async fn sim_daraja_faults(&self, faults: Value) {
        let admin = self.admin_token().await;
        let response = self.post("/sim/daraja/faults", Some(&admin), faults).await;
        assert_eq!(response.status(), StatusCode::OK, "simulator control");
    }

    /// The simulated network settles a B2C payout (an admin's control).
    pub async fn sim_payout(&self, conversation: &str, control: Value) {
        let admin = self.admin_token().await;
        let response = self
            .post(
                &format!("/sim/daraja/b2c/{conversation}"),
                Some(&admin),
                control,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "simulator control");
    }

    /// The Prometheus text, as a bearer of the metrics token reads it.
    pub async fn metrics(&self) -> String {
        let response = self
            .request(Method::GET, "/metrics", Some(METRICS_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET /metrics");
        response.text().await.unwrap()
    }

    pub async fn balance(&self, token: &str, currency: &str) -> i64 {
        let body = self.get_json("/api/v1/wallet/balances", token).await;
        body["wallets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["currency"] == currency)
            .map(|w| w["balance"].as_i64().unwrap())
            .unwrap()
    }

    pub async fn send(&self, token: &str, to: &str, amount: i64, currency: &str) -> Response {
        self.post(
            "/api/v1/wallet/send",
            Some(token),
            json!({"to_phone": to, "amount": amount, "currency": currency}),
        )
        .await
    }

    /// Moves money from the treasury into a user's wallet (test set-up).
    pub async fn fund(&self, phone: &str, currency: &str, amount_minor: i64) {
        let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
            .bind(phone)
            .fetch_one(&self.pool)
            .await
            .unwrap();
        let mut conn = self.pool.acquire().await.unwrap();
        chainpay_gateway::seed::fund(
            &mut conn,
            &self.state.keys.tx_signing,
            user_id,
            currency,
            amount_minor,
        )
        .await
        .unwrap();
    }

    /// Raises every KYC tier's limits far out of reach, for tests about
    /// something other than AML (the limits are data, so this is one UPDATE).
    pub async fn lift_limits(&self) {
        sqlx::query(
            "UPDATE compliance_tiers SET single_max_usd_cents = 1000000000000, daily_max_usd_cents = 1000000000000,
                                         hourly_max_count = 1000000 WHERE can_transact",
        )
        .execute(&self.pool)
        .await
        .unwrap();
    }

    pub async fn ledger_check(&self) -> Value {
        let admin = self.admin_token().await;
        let response = self.get("/api/v1/admin/ledger/check", &admin).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn assert_balanced(&self) {
        let report = self.ledger_check().await;
        assert_eq!(report["balanced"], true, "ledger check: {report:#}");
    }

    /// Runs `statements` in one transaction as the superuser with the
    /// append-only triggers switched off, as an attacker with database
    /// access would.
    pub async fn tamper(&self, statements: &[&str]) {
        let mut tx = self.pool.begin().await.unwrap();
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await
            .unwrap();
        for statement in statements {
            sqlx::query(statement).execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    /// The newest SMS queued for `phone`.
    pub async fn last_sms(&self, phone: &str) -> String {
        sqlx::query_scalar(
            "SELECT message FROM sms_outbox WHERE to_phone = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(phone)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// Total of every account in `currency` straight from the database.
    pub async fn currency_total(&self, currency: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(sum(balance), 0)::bigint FROM accounts WHERE currency = $1",
        )
        .bind(currency)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

/// Asserts a problem+json response with the given status and code, and
/// returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body:#}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    body
}

/// How often [`eventually`] looks again.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Polls `check` until it yields a value, failing the test with `what` when
/// `timeout` passes first: the one way tests wait for background work.
pub async fn eventually<T>(
    what: &str,
    timeout: std::time::Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Runs a `chainpay` command to completion without blocking the test's
/// runtime: the app under test shares that thread, and a task of it frozen
/// while holding a lock (the reconciliation or sealing lock, say) would
/// leave the command waiting on it for ever. A command that has not ended
/// within two minutes is killed and fails the test.
pub async fn run_command(command: std::process::Command) -> std::process::Output {
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let program = format!("{:?}", command.as_std().get_args().collect::<Vec<_>>());
    tokio::time::timeout(secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("chainpay {program} did not end within 120 s"))
        .unwrap()
}

/// Seconds, for [`eventually`]'s timeouts.
pub fn secs(seconds: u64) -> std::time::Duration {
    std::time::Duration::from_secs(seconds)
}

/// A USSD session as Africa's Talking drives it: a fresh `sessionId` per
/// dial, `text` carrying every input so far.
/// One dialled session.
pub struct Session<'a> {
    pub app: &'a TestApp,
    pub id: String,
    pub phone: String,
    pub inputs: Vec<String>,
}

impl<'a> Session<'a> {
    pub async fn dial(app: &'a TestApp, phone: &str) -> (Session<'a>, String) {
        let session = Session {
            app,
            id: format!("ATUid_{}", uuid::Uuid::new_v4().simple()),
            phone: phone.to_owned(),
            inputs: Vec::new(),
        };
        let screen = session.post().await;
        (session, screen)
    }

    pub async fn post(&self) -> String {
        let response = self
            .app
            .client
            .post(self.app.url("/api/v1/ussd"))
            .form(&[
                ("sessionId", self.id.as_str()),
                ("serviceCode", "*384*123#"),
                ("phoneNumber", self.phone.as_str()),
                ("networkCode", "63902"),
                ("text", &self.inputs.join("*")),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let body = response.text().await.unwrap();
        assert!(
            body.starts_with("CON ") || body.starts_with("END "),
            "{body}"
        );
        assert!(
            body.chars().count() <= 182,
            "{} chars: {body}",
            body.chars().count()
        );
        assert!(body.is_ascii(), "{body}");
        body
    }

    pub async fn press(&mut self, input: &str) -> String {
        self.inputs.push(input.to_owned());
        self.post().await
    }

    /// Presses each input in turn; returns the last screen.
    pub async fn keys(&mut self, inputs: &[&str]) -> String {
        let mut last = String::new();
        for input in inputs {
            last = self.press(input).await;
        }
        last
    }
}

/// A TCP stand-in between the gateway and PostgreSQL that can go silent on
/// the links it carries, as a server behind a failover or a dropped NAT
/// mapping does (no reset, no answer; links opened afterwards are carried),
/// or cut one link at its `COMMIT` ([`SilentLink::cut_commit`]).
pub struct SilentLink {
    port: u16,
    /// Bumped by [`SilentLink::silence`]; a link carries bytes while this is
    /// the number it was opened under.
    epoch: tokio::sync::watch::Sender<u64>,
    /// The one cut armed, taken by the link that makes it.
    cut: Arc<std::sync::Mutex<Option<CommitCut>>>,
}

/// Where a link is cut at its `COMMIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The `COMMIT` reaches the server, which commits; its answer is thrown
    /// away and the gateway's side of the link closed.
    AnswerLost,
    /// The `COMMIT` never reaches the server: both sides are closed, and the
    /// server rolls the transaction back.
    NeverSent,
}

/// A cut armed: the first `COMMIT` on a link that has carried `marker` in
/// the same direction.
struct CommitCut {
    marker: Vec<u8>,
    cut: Cut,
}

/// `COMMIT` as sqlx sends it: a simple-protocol Query message.
const COMMIT_MESSAGE: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

impl SilentLink {
    pub async fn to(upstream: &PgConnectOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (epoch, _) = tokio::sync::watch::channel(0u64);
        let cut = Arc::new(std::sync::Mutex::new(None));
        let (socket, host, server_port) = (
            upstream.get_socket().cloned(),
            upstream.get_host().to_owned(),
            upstream.get_port(),
        );
        let (epochs, cuts) = (epoch.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                client.set_nodelay(true).unwrap();
                let (silenced, cut) = (epochs.subscribe(), cuts.clone());
                match &socket {
                    Some(dir) => {
                        let path = dir.join(format!(".s.PGSQL.{server_port}"));
                        let server = tokio::net::UnixStream::connect(path).await.unwrap();
                        tokio::spawn(carry(client, server, silenced, cut));
                    }
                    None => {
                        let server = tokio::net::TcpStream::connect((host.as_str(), server_port))
                            .await
                            .unwrap();
                        server.set_nodelay(true).unwrap();
                        tokio::spawn(carry(client, server, silenced, cut));
                    }
                }
            }
        });
        Self { port, epoch, cut }
    }

    /// Every link open now stops carrying bytes but stays open.
    pub fn silence(&self) {
        self.epoch.send_modify(|epoch| *epoch += 1);
    }

    /// Cuts, once, the first link that sends `COMMIT` after carrying
    /// `marker` (a transfer's note, say) towards the server.
    pub fn cut_commit(&self, marker: &str, cut: Cut) {
        let marker = marker.as_bytes().to_vec();
        *self.cut.lock().unwrap() = Some(CommitCut { marker, cut });
    }

    /// Whether the cut armed last has been made.
    pub fn cut_made(&self) -> bool {
        self.cut.lock().unwrap().is_none()
    }

    /// `upstream`'s options, reached through this link.
    pub fn options(&self, upstream: &PgConnectOptions) -> PgConnectOptions {
        match upstream.get_socket() {
            // A socket set cannot be unset: the embedded server's user and
            // database on fresh options (it trusts local connections).
            Some(_) => PgConnectOptions::new()
                .username(upstream.get_username())
                .database(upstream.get_database().unwrap_or("postgres")),
            None => upstream.clone(),
        }
        .host("127.0.0.1")
        .port(self.port)
    }
}

async fn carry<S>(
    client: tokio::net::TcpStream,
    server: S,
    mut silenced: tokio::sync::watch::Receiver<u64>,
    cut: Arc<std::sync::Mutex<Option<CommitCut>>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = tokio::io::split(server);
    let made = tokio::select! {
        made = towards_server(&mut from_client, &mut to_server, &cut) => made,
        _ = tokio::io::copy(&mut from_server, &mut to_client) => None,
        _ = silenced.changed() => std::future::pending().await,
    };
    drop((from_client, to_client));
    if made == Some(Cut::AnswerLost) {
        // The server is left to answer into the void: closing its side
        // with the answer unread could reset the link before it commits.
        let mut void = tokio::io::sink();
        let drain = tokio::io::copy(&mut from_server, &mut void);
        let _ = tokio::time::timeout(secs(5), drain).await;
    }
}

/// Carries the gateway's bytes to the server until the link closes or the
/// armed cut is made on it (then: which one).
async fn towards_server(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    cut: &std::sync::Mutex<Option<CommitCut>>,
) -> Option<Cut> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 64 * 1024];
    // The last bytes carried, so a marker split between reads is found.
    let mut recent: Vec<u8> = Vec::new();
    let mut marked = None;
    loop {
        let n = from.read(&mut buffer).await.ok().filter(|&n| n > 0)?;
        let chunk = &buffer[..n];
        recent.extend_from_slice(chunk);
        if let Some((made, upto)) = cut_here(cut, &recent, chunk, &mut marked) {
            to.write_all(&chunk[..upto]).await.ok()?;
            return Some(made);
        }
        recent.drain(..recent.len().saturating_sub(256));
        to.write_all(chunk).await.ok()?;
    }
}

/// Whether the armed cut is made at `chunk` (the last bytes of `recent`),
/// taking it if so: which, and how much of the chunk still goes through.
/// `marked`: the marker the link last carried, of the cuts armed.
fn cut_here(
    cut: &std::sync::Mutex<Option<CommitCut>>,
    recent: &[u8],
    chunk: &[u8],
    marked: &mut Option<Vec<u8>>,
) -> Option<(Cut, usize)> {
    let mut armed = cut.lock().unwrap();
    let marker = &armed.as_ref()?.marker;
    if marked.as_ref() != Some(marker) && find(recent, marker).is_some() {
        *marked = Some(marker.clone());
    }
    let at = find(chunk, COMMIT_MESSAGE).filter(|_| marked.as_ref() == Some(marker))?;
    let made = armed.take()?.cut;
    let upto = match made {
        Cut::AnswerLost => at + COMMIT_MESSAGE.len(),
        Cut::NeverSent => at,
    };
    Some((made, upto))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
