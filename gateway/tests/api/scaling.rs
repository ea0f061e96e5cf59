//! Past one machine: gateways through PgBouncer, and lag-tolerant reads on
//! a streaming replica.

use std::path::{Path, PathBuf};
use std::process::Command;

use chainpay_gateway::db::pgbouncer::PgBouncer;
use chainpay_gateway::db::{self, ClusterOptions, EmbeddedPostgres};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::support::*;

/// A directory of this test run's own, short enough for socket paths.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cp-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_gateway_works_through_pgbouncer_in_session_mode() {
    let app = spawn_app().await;
    let pool_size = 6;
    let bouncer = PgBouncer::start(
        &scratch("bouncer"),
        &database_options(&app.database).await,
        pool_size + 1,
    )
    .await
    .unwrap();
    // The gateway's own pool, and the auth cache's listening connection,
    // must fit in the pooler's: in session mode each of its connections
    // holds a server connection while it is open.
    let through = app
        .instance_via(bouncer.connect_options(&app.database), |settings| {
            settings.db_pool_size = pool_size
        })
        .await;

    let token = through.token(USER_PHONE, DEMO_PIN).await;
    let before = through.balance(&token, "KES").await;
    let send = |key: &'static str| {
        through
            .request(Method::POST, "/api/v1/wallet/send", Some(&token))
            .header("Idempotency-Key", key)
            .json(&json!({"to_phone": ADMIN_PHONE, "amount": 10_000, "currency": "KES"}))
            .send()
    };
    let first = send("through-the-pooler").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    // A retry through the pooler answers with the same transfer.
    let again: Value = send("through-the-pooler")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["tx_id"], first["tx_id"]);
    let fee = first["fee"].as_i64().unwrap();
    assert_eq!(through.balance(&token, "KES").await, before - 10_000 - fee);
    // Seen the same by the instance connected directly.
    assert_eq!(app.balance(&token, "KES").await, before - 10_000 - fee);

    // The auth cache listens through the pooler too: once it remembers the
    // token, a logout on the direct instance reaches it.
    eventually("the pooled instance listens", secs(10), async || {
        through.state.sessions.is_listening().then_some(())
    })
    .await;
    let claims = through.state.jwt.verify(&token).unwrap();
    eventually(
        "the pooled instance remembers the token",
        secs(5),
        async || {
            let answer = through.get("/api/v1/wallet/balances", &token).await;
            assert_eq!(answer.status(), StatusCode::OK);
            through.state.sessions.get(claims.sub, claims.jti)
        },
    )
    .await;
    app.logout(&token).await;
    through
        .refuses_eventually(&token, "the logout reaches the pooled instance")
        .await;

    // The pooled instance's queries went through the pooler.
    let servers = bouncer.server_connections(&app.database).await.unwrap();
    assert!(servers >= 1, "no server connections through the pooler");
}

/// A PostgreSQL cluster stopped when dropped: a hot standby of a primary,
/// made with `pg_basebackup` and streaming from it, or the primary itself.
struct Replica {
    cluster: PathBuf,
    run_as: Option<(u32, u32)>,
}

impl Replica {
    /// A guard that stops the cluster in `dir` when dropped.
    fn stopping(dir: &Path) -> Replica {
        Replica {
            cluster: dir.to_owned(),
            run_as: postgres_user(),
        }
    }

    async fn of(primary_socket: &Path, dir: &Path) -> Replica {
        let run_as = postgres_user();
        std::fs::create_dir_all(dir).unwrap();
        let cluster = dir.join("pg");
        if let Some((uid, gid)) = run_as {
            nix::unistd::chown(dir, Some(uid.into()), Some(gid.into())).unwrap();
        }
        let replica = Replica { cluster, run_as };
        replica.run(
            "pg_basebackup",
            &[
                "-D",
                &replica.cluster.display().to_string(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-h",
                &primary_socket.display().to_string(),
                "-U",
                "chainpay",
            ],
        );
        // The primary's socket lives in its data directory: the copy holds
        // its lock file, which names the primary's (live) postmaster.
        let _ = std::fs::remove_file(replica.cluster.join(".s.PGSQL.5432.lock"));
        // Its own socket (the copied settings name the primary's).
        let conf = replica.cluster.join("postgresql.conf");
        let mut settings = std::fs::read_to_string(&conf).unwrap();
        settings.push_str(&format!(
            "\nunix_socket_directories = '{}'\n",
            replica.cluster.display()
        ));
        std::fs::write(&conf, settings).unwrap();
        let log = replica.cluster.join("replica.log").display().to_string();
        let data = replica.cluster.display().to_string();
        replica.run("pg_ctl", &["start", "-w", "-D", &data, "-l", &log]);
        replica
    }

    fn options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.cluster)
            .username("chainpay")
            .database(database)
    }

    fn url(&self, database: &str) -> String {
        format!(
            "postgres://chainpay@localhost/{database}?host={}",
            self.cluster.display()
        )
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let output = self.command(tool).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `tool` from the installation whose `initdb` the clusters use (`PATH`
    /// may hold links to `initdb` and `pg_ctl` alone).
    fn command(&self, tool: &str) -> Command {
        let initdb = db::embedded::find_binaries().unwrap().join("initdb");
        let bin = initdb.canonicalize().unwrap().parent().unwrap().to_owned();
        let mut command = Command::new(bin.join(tool));
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        command
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let data = self.cluster.display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D", &data])
            .output();
    }
}

/// The `postgres` account's ids when we are root (PostgreSQL refuses root).
fn postgres_user() -> Option<(u32, u32)> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres").unwrap().unwrap();
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

#[tokio::test]
async fn history_is_read_from_the_replica_and_balances_from_the_primary() {
    let root = scratch("replica");
    let primary = EmbeddedPostgres::ensure_running(
        &root.join("primary"),
        ClusterOptions {
            durability_off: true,
        },
    )
    .await
    .unwrap();
    // Stopped however the test ends.
    let _primary = Replica::stopping(primary.socket_dir());
    let options = primary.connect_options("chainpay");
    db::create_database_if_missing(&options).await.unwrap();
    db::migrate(&options).await.unwrap();
    let replica = Replica::of(primary.socket_dir(), &root.join("replica")).await;
    let read_url = replica.url("chainpay");
    let app = spawn_on(options, |settings| {
        settings.database_read_url = Some(read_url);
        settings.read_max_lag_ms = 3000;
    })
    .await;
    let mut standby = replica.options("chainpay").connect().await.unwrap();
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let history = async || history_ids(&app, &token).await;
    eventually("reads go to the replica", secs(20), async || {
        app.state.reads.on_replica().then_some(())
    })
    .await;

    // With replay paused, a transfer commits on the primary only.
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut standby)
        .await
        .unwrap();
    let before = app.balance(&token, "KES").await;
    let sent = app.send(&token, ADMIN_PHONE, 10_000, "KES").await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let sent: Value = sent.json().await.unwrap();
    let tx_id = sent["tx_id"].as_str().unwrap().to_owned();
    let fee = sent["fee"].as_i64().unwrap();
    // The balance is fresh (primary); the history lags (replica).
    assert_eq!(app.balance(&token, "KES").await, before - 10_000 - fee);
    assert!(
        !history().await.contains(&tx_id),
        "history read the primary"
    );
    // Once the paused replica is further behind than allowed, reads leave
    // it: the history shows the transfer though replay is still paused.
    eventually("reads leave the stalled replica", secs(20), async || {
        history().await.contains(&tx_id).then_some(())
    })
    .await;
    assert!(!app.state.reads.on_replica());

    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut standby)
        .await
        .unwrap();
    eventually("reads come back to the replica", secs(20), async || {
        app.state.reads.on_replica().then_some(())
    })
    .await;
    assert!(history().await.contains(&tx_id));
    standby.close().await.unwrap();
    drop(app);
    drop(replica);
    let _ = std::fs::remove_dir_all(&root);
}

/// The ids on the first page of the caller's history.
async fn history_ids(app: &TestApp, token: &str) -> Vec<String> {
    let page = app.get_json("/api/v1/wallet/transactions", token).await;
    page["transactions"]
        .as_array()
        .unwrap_or_else(|| panic!("history answered {page}"))
        .iter()
        .map(|tx| tx["tx_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn when_the_database_ends_every_connection_only_the_first_to_meet_one_fails() {
    let app = spawn_app().await;
    let pool = db::connect_pool(database_options(&app.database).await, 3)
        .await
        .unwrap();
    // Every connection used a moment ago, so none would be pinged when next
    // handed out (one idle for under a second is not).
    let mut held = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..3 {
        let mut conn = pool.acquire().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        pids.push(pid);
        held.push(conn);
    }
    drop(held);
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM unnest($1::int4[]) pid",
    )
    .bind(&pids)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(ended, 3);
    let mut failed = 0;
    for _ in 0..10 {
        if let Err(error) = sqlx::query("SELECT 1").execute(&pool).await {
            // As every database error reaches the gateway's own.
            let _ = chainpay_gateway::error::Error::from(error);
            failed += 1;
        }
    }
    // None when another test of this process lost a connection just now.
    assert!(
        failed <= 1,
        "{failed} failed: after the first, every connection is pinged"
    );
}

/// Writes that record something already done outside the database
/// (`db::write_surely`): one that meets a lost connection is made again on
/// another; any other failure is returned at once, never repeated.
#[tokio::test]
async fn a_write_that_meets_a_lost_connection_is_made_again_on_another() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let app = spawn_app().await;
    let attempts = AtomicUsize::new(0);
    let written = db::write_surely(&app.pool, "a test write", |mut conn| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst);
        async move {
            if attempt == 0 {
                // What a restart of PostgreSQL does to it mid-write.
                sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(sqlx::query_scalar::<_, i32>("SELECT 7")
                .fetch_one(&mut *conn)
                .await?)
        }
    })
    .await
    .unwrap();
    assert_eq!((written, attempts.load(Ordering::SeqCst)), (7, 2));

    let attempts = AtomicUsize::new(0);
    let refused = db::write_surely(&app.pool, "a test write", |mut conn| {
        attempts.fetch_add(1, Ordering::SeqCst);
        async move {
            sqlx::query("SELECT 1 / 0").execute(&mut *conn).await?;
            Ok(())
        }
    })
    .await;
    assert!(refused.is_err_and(|error| !error.is_lost_connection()));
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

/// A write that waits on a lock (one the server's end of a dropped link
/// may hold until the server notices) gives up when its patience ends,
/// and its connection, set to stop waiting, never returns to the pool.
#[tokio::test]
async fn a_write_waiting_on_a_lock_gives_up_when_its_patience_ends() {
    let app = spawn_app().await;
    let mut holder = app.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(16016)")
        .execute(&mut *holder)
        .await
        .unwrap();
    let backend = std::sync::Mutex::new(None);
    let started = std::time::Instant::now();
    let waited = db::write_surely_within(&app.pool, "a test write", secs(1), |mut conn| {
        let backend = &backend;
        async move {
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await?;
            *backend.lock().unwrap() = Some(pid);
            sqlx::query("SELECT pg_advisory_xact_lock(16016)")
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
    })
    .await;
    assert!(waited.is_err_and(|error| !error.is_lost_connection()));
    assert!(
        started.elapsed() < secs(5),
        "gave up after {:?}",
        started.elapsed()
    );
    let pid = backend.lock().unwrap().expect("the write ran");
    eventually("the write's connection to close", secs(10), async || {
        let open: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(pid)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        (!open).then_some(())
    })
    .await;
    sqlx::query("SELECT pg_advisory_unlock(16016)")
        .execute(&mut *holder)
        .await
        .unwrap();
}

/// Connections whose server goes silent (no reset, no answer) give their
/// places in the pool back within `db::PING_PATIENCE`, whether on their way
/// back to the pool or out of it, so the pool serves again on new ones.
/// (sqlx's own release ping would keep each place for as long as the kernel
/// keeps the socket, about fifteen minutes; its ping on acquire, the whole
/// acquire timeout.)
#[tokio::test]
async fn connections_whose_server_went_silent_give_their_places_in_the_pool_back() {
    let app = spawn_app().await;
    let upstream = database_options(&app.database).await;
    let link = SilentLink::to(&upstream).await;
    let pool = db::connect_pool(link.options(&upstream), 2).await.unwrap();
    let serves_again = |since: std::time::Instant| {
        let pool = pool.clone();
        async move {
            // Within the pool's acquire timeout (10 s), so on the first try.
            let answer: i32 = sqlx::query_scalar("SELECT 7")
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("not served after {:?}: {e}", since.elapsed()));
            assert_eq!(answer, 7);
            since.elapsed()
        }
    };

    // Going back: both places are held by connections whose server falls
    // silent while they are out.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SELECT 1").execute(&mut *conn).await.unwrap();
        held.push(conn);
    }
    link.silence();
    let released = std::time::Instant::now();
    drop(held);
    let waited = serves_again(released).await;
    assert!(
        waited >= db::PING_PATIENCE,
        "served on a silent connection after {waited:?}"
    );

    // Coming out: the server falls silent on connections idle in the pool.
    let idle = tokio::try_join!(pool.acquire(), pool.acquire()).unwrap();
    drop(idle);
    eventually(
        "both connections are back in the pool",
        secs(10),
        async || (pool.num_idle() == 2).then_some(()),
    )
    .await;
    link.silence();
    tokio::time::sleep(secs(2)).await;
    let waited = serves_again(std::time::Instant::now()).await;
    assert!(
        waited >= db::PING_PATIENCE,
        "served on a silent connection after {waited:?}"
    );
}

/// The session cache's listening connection, gone silent with its server,
/// is given up within a heartbeat or two, however it shows (a beat not
/// heard back, or a beat or `LISTEN` not answered): a logout made on
/// another instance takes effect on this one before what it remembers
/// would expire, and it listens again on a new connection, keeping at most
/// two given-up connections open.
#[tokio::test]
async fn the_session_cache_gives_up_a_silent_listening_connection_and_listens_again() {
    let app = spawn_app().await;
    let token = app.new_user("+254712400500", "Quiet Listener").await;
    let upstream = database_options(&app.database).await;
    let link = SilentLink::to(&upstream).await;
    let via = app.instance_via(link.options(&upstream), |_| {}).await;
    let listening = async || via.state.sessions.is_listening().then_some(());
    eventually("the instance listens", secs(10), listening).await;
    let claims = via.state.jwt.verify(&token).unwrap();
    eventually("the instance remembers the token", secs(5), async || {
        let answer = via.get("/api/v1/wallet/balances", &token).await;
        assert_eq!(answer.status(), StatusCode::OK);
        via.state.sessions.get(claims.sub, claims.jti)
    })
    .await;
    let remembered = std::time::Instant::now();
    // The listening connection holds no place of the pool requests are
    // served from, so neither does the `UNLISTEN` sqlx sends on it when it
    // is given up (on a silent server, until the kernel gives up too).
    eventually("every pooled connection is idle", secs(10), async || {
        (via.state.pool.size() == via.state.pool.num_idle() as u32).then_some(())
    })
    .await;

    link.silence();
    app.logout(&token).await;
    eventually(
        "the silent instance refuses the token",
        secs(50),
        async || {
            // A request that meets one of the silent connections waits for the
            // HTTP timeout; the next is asked meanwhile.
            let answer = via
                .request(Method::GET, "/api/v1/wallet/balances", Some(&token))
                .timeout(secs(3))
                .send()
                .await;
            answer
                .is_ok_and(|answer| answer.status() == StatusCode::UNAUTHORIZED)
                .then_some(())
        },
    )
    .await;
    assert!(
        remembered.elapsed() < chainpay_gateway::auth::cache::MAX_AGE,
        "refused only once the remembered answer expired"
    );
    eventually("the instance listens again", secs(30), listening).await;

    // Given up a second time, while the first one's `UNLISTEN` still waits
    // on its silent link: two such connections are as many as it keeps
    // open, so it stops listening (every request reads the database) rather
    // than open a third.
    link.silence();
    eventually("the second listener given up", secs(30), async || {
        (!via.state.sessions.is_listening()).then_some(())
    })
    .await;
    let watched = std::time::Instant::now();
    while watched.elapsed() < secs(4) {
        assert!(
            !via.state.sessions.is_listening(),
            "listened on a third connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
