//! What the benchmarks share: the PostgreSQL they measure against.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::str::FromStr;

use chainpay_gateway::db::{ClusterOptions, EmbeddedPostgres};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

/// The server under test: connection options, plus the flags pgbench needs
/// to reach it.
pub struct Target {
    pub options: PgConnectOptions,
    pub pgbench_args: Vec<String>,
    pub url_for: Box<dyn Fn(&str) -> String>,
    _cluster: Option<EmbeddedPostgres>,
}

pub async fn target() -> Target {
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        let options = PgConnectOptions::from_str(&url).unwrap();
        let base = url.rsplit_once('/').unwrap().0.to_owned();
        let host = options.get_host().to_owned();
        let port = options.get_port().to_string();
        let user = options.get_username().to_owned();
        return Target {
            options,
            pgbench_args: vec!["-h".into(), host, "-p".into(), port, "-U".into(), user],
            url_for: Box::new(move |db| format!("{base}/{db}")),
            _cluster: None,
        };
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-pg");
    let cluster = EmbeddedPostgres::ensure_running(&dir, ClusterOptions::default())
        .await
        .unwrap();
    let socket = dir.canonicalize().unwrap().join("pg");
    let socket_text = socket.to_string_lossy().into_owned();
    Target {
        options: cluster.connect_options("postgres"),
        pgbench_args: vec![
            "-h".into(),
            socket_text.clone(),
            "-U".into(),
            "chainpay".into(),
        ],
        url_for: Box::new(move |db| {
            format!("postgres://chainpay@localhost/{db}?host={socket_text}")
        }),
        _cluster: Some(cluster),
    }
}

pub async fn recreate_database(target: &Target, name: &str) {
    let mut admin = target
        .options
        .clone()
        .database("postgres")
        .connect()
        .await
        .unwrap();
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
}

/// Opens (creating and migrating) `name` on the target and builds the
/// application state on it, as `chainpay serve` would.
pub async fn app_state(
    target: &Target,
    name: &str,
    master_key: &str,
) -> chainpay_gateway::http::AppState {
    let settings = chainpay_gateway::config::Settings {
        database_url: Some((target.url_for)(name)),
        data_dir: std::env::temp_dir(),
        master_key_hex: Some(master_key.to_owned()),
        db_pool_size: 4,
        ..chainpay_gateway::config::Settings::defaults()
    };
    let database = chainpay_gateway::db::Database::open(&settings, false)
        .await
        .unwrap();
    chainpay_gateway::startup::build_state(settings, database.pool)
        .await
        .unwrap()
}

/// Value at fraction `p` of sorted samples.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
