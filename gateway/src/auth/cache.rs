//! Who tokens belong to, remembered between requests so that most requests
//! authenticate without a database round trip.
//!
//! A remembered answer is used only while this instance is listening on
//! [`CHANNEL`], which triggers in the database notify, as the changing
//! transaction commits, whenever a user's row changes in a way that matters
//! to authentication (suspension, token epoch, role, KYC status, name,
//! phone), a user is deleted, or a token is logged out. Each notification
//! forgets that user. A notification sent while the listening connection is
//! down is lost, so losing the connection forgets everyone, and nothing is
//! remembered again until a new listening connection is up. Every entry also expires
//! after [`MAX_AGE`], a bound for whatever the notifications could miss.
//!
//! Between a change committing and its notification arriving (a
//! millisecond or so) a remembered answer may still be used once more.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// The channel the auth triggers notify; the payload is the user's id.
pub const CHANNEL: &str = "chainpay_auth";
/// Longest an answer is remembered.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Most tokens remembered; beyond it the cache starts afresh.
const MAX_TOKENS: usize = 100_000;
/// How often the listener checks it still hears what is notified.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Payload prefix of a heartbeat (user ids are bare UUIDs).
const BEAT_PREFIX: &str = "beat:";
/// Wait before listening again after the connection failed.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);
/// Listening connections given up on a silent server that may still be
/// open at once (see [`listen`]).
const MAX_LINGERING: usize = 2;

/// What authentication reads of a user.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub phone: String,
    pub name: String,
    pub role: String,
    pub kyc_status: String,
    pub suspended: bool,
    pub token_epoch: i32,
}

#[derive(Default)]
pub struct SessionCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    listening: bool,
    /// Moves on with every forgetting, so an answer read from the database
    /// before a change is not remembered after it.
    generation: u64,
    tokens: usize,
    /// user → token id → (row, when it was read).
    users: HashMap<Uuid, HashMap<Uuid, (UserRow, Instant)>>,
}

impl SessionCache {
    /// The remembered answer for token `jti` of `user`, while listening.
    pub fn get(&self, user: Uuid, jti: Uuid) -> Option<UserRow> {
        let inner = self.lock();
        if !inner.listening {
            return None;
        }
        let (row, read) = inner.users.get(&user)?.get(&jti)?;
        (read.elapsed() < MAX_AGE).then(|| row.clone())
    }

    /// Whether answers are being remembered (the listener is up).
    pub fn is_listening(&self) -> bool {
        self.lock().listening
    }

    /// Where the cache stands before a database read; `None` while not
    /// listening (nothing will be remembered).
    pub fn generation(&self) -> Option<u64> {
        let inner = self.lock();
        inner.listening.then_some(inner.generation)
    }

    /// Remembers an answer read at `generation`, unless something was
    /// forgotten since.
    pub fn remember(&self, generation: u64, user: Uuid, jti: Uuid, row: UserRow) {
        let mut inner = self.lock();
        if !inner.listening || inner.generation != generation {
            return;
        }
        if inner.tokens >= MAX_TOKENS {
            inner.users.clear();
            inner.tokens = 0;
        }
        let tokens = inner.users.entry(user).or_default();
        let fresh = tokens.insert(jti, (row, Instant::now())).is_none();
        inner.tokens += usize::from(fresh);
    }

    /// Forgets everything remembered about `user`.
    pub fn forget(&self, user: Uuid) {
        let mut inner = self.lock();
        inner.generation += 1;
        if let Some(tokens) = inner.users.remove(&user) {
            inner.tokens -= tokens.len();
        }
    }

    /// Forgets everyone; remembers again only if `listening`.
    fn reset(&self, listening: bool) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.users.clear();
        inner.tokens = 0;
        inner.listening = listening;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The data stays consistent at every await-free step; a panic
        // elsewhere while holding it leaves nothing half-done.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Listens for auth changes until `stopped`, keeping `cache` honest.
pub async fn listen(pool: PgPool, cache: &SessionCache, mut stopped: watch::Receiver<bool>) {
    // Listeners given up whose connection sqlx's `UNLISTEN` may still hold
    // (see [`own_connection`]); each holds a server connection meanwhile, so
    // while there are MAX_LINGERING of them this instance does not listen
    // again (every request reads the database) until one lets go.
    let mut lingering: Vec<PgPool> = Vec::new();
    loop {
        lingering.retain(|own| own.size() > own.num_idle() as u32);
        if lingering.len() < MAX_LINGERING {
            let own = own_connection(&pool);
            tokio::select! {
                error = listen_once(&pool, &own, cache) => {
                    cache.reset(false);
                    tracing::warn!(error = %error, "auth cache: not listening; every request reads the database");
                    lingering.push(own);
                }
                _ = stopped.changed() => break,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RELISTEN_AFTER) => {}
            _ = stopped.changed() => break,
        }
    }
    cache.reset(false);
}

/// One listening connection, on `own` ([`own_connection`]), for as long as
/// it works. A connection can die without a word (a half-open TCP
/// connection), so every [`HEARTBEAT`] this instance notifies itself on
/// `pool`; a beat not heard back within the next one ends the connection.
async fn listen_once(pool: &PgPool, own: &PgPool, cache: &SessionCache) -> sqlx::Error {
    let listening = async {
        let mut listener = PgListener::connect_with(own).await?;
        listener.listen(CHANNEL).await?;
        sqlx::Result::Ok(listener)
    };
    // Bounded as a beat is: a server gone silent would otherwise keep this
    // instance from ever listening again (and so remembering anyone).
    let mut listener = match tokio::time::timeout(HEARTBEAT, listening).await {
        Ok(Ok(listener)) => listener,
        Ok(Err(error)) => return error,
        Err(_) => return sqlx::Error::Protocol("LISTEN was not answered".into()),
    };
    cache.reset(true);
    // The listener is read by a task of its own, so that waiting for the
    // heartbeat never cancels a read half-way.
    let (heard, mut hearing) = mpsc::channel(1024);
    let reader = Reader(tokio::spawn(async move {
        loop {
            let received = listener.try_recv().await;
            let lost = !matches!(received, Ok(Some(_)));
            if heard.send(received).await.is_err() || lost {
                return;
            }
        }
    }));
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut awaited: Option<String> = None;
    loop {
        tokio::select! {
            received = hearing.recv() => match received {
                Some(Ok(Some(notification))) => {
                    let payload = notification.payload();
                    if let Some(id) = payload.strip_prefix(BEAT_PREFIX) {
                        if awaited.as_deref() == Some(id) {
                            awaited = None;
                        }
                    } else {
                        match payload.parse::<Uuid>() {
                            Ok(user) => cache.forget(user),
                            Err(_) => cache.reset(true),
                        }
                    }
                }
                // The connection was lost: what was sent meanwhile is gone.
                Some(Ok(None)) | None => return lost(),
                Some(Err(error)) => return error,
            },
            _ = beat.tick() => {
                if awaited.is_some() {
                    drop(reader);
                    return sqlx::Error::Protocol("the auth heartbeat was not heard back".into());
                }
                let id = Uuid::new_v4().simple().to_string();
                let beat = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(format!("{BEAT_PREFIX}{id}"))
                    .execute(pool);
                // A beat the server does not take within a period (a
                // server gone silent) ends the connection as one not heard
                // back does.
                match tokio::time::timeout(HEARTBEAT, beat).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return error,
                    Err(_) => {
                        return sqlx::Error::Protocol("the auth heartbeat was not taken".into())
                    }
                }
                awaited = Some(id);
            }
        }
    }
}

/// A pool of one connection for the listener, apart from `pool`: a dropped
/// listener sends `UNLISTEN *` on its connection before letting it go, which
/// on a server gone silent waits until the kernel gives up on the socket
/// (about fifteen minutes). On a connection of its own that wait holds no
/// place of the pool requests are served from. It runs as the restricted
/// application role, as the pool's connections do.
fn own_connection(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .after_connect(|conn, _| Box::pin(crate::db::take_app_role_if_allowed(conn)))
        .connect_lazy_with((*pool.connect_options()).clone())
}

fn lost() -> sqlx::Error {
    sqlx::Error::Protocol("the listening connection was lost".into())
}

/// Stops the listener's reader when the connection is given up.
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}
