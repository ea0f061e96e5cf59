//! P3: USSD sessions stepping through *Send money* as Africa's Talking posts
//! them (a fresh `sessionId` per dial, `text` carrying every input so far),
//! and the bound Argon2id alone puts on PIN-confirmed sends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chainpay_core::crypto::pin_hash;
use chainpay_core::Pin;
use rand::Rng;
use uuid::Uuid;

/// The PIN every bench user has (see [`super::funded_users`]).
pub const PIN: &str = "5831";

/// PIN verifications per second this machine's cores manage with nothing
/// else to do: one thread per core verifying for `during`.
pub fn argon2_bound(during: Duration) -> f64 {
    let pin = Pin::parse(PIN).unwrap();
    let stored = pin_hash::hash_pin(&pin);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let began = Instant::now();
    let verified: usize = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| {
                    let mut count = 0;
                    while began.elapsed() < during {
                        assert!(pin_hash::verify_pin(&pin, &stored));
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    verified as f64 / began.elapsed().as_secs_f64()
}

/// Sessions dialled from the bench's users.
pub struct Sessions {
    pub client: reqwest::Client,
    pub base: String,
    /// The gateway's `AT_WEBHOOK_TOKEN`.
    pub token: String,
    /// `(phone, token)` of every funded user, as the transfers phases use them.
    pub accounts: Arc<Vec<(String, String)>>,
    pub next: Arc<AtomicUsize>,
}

/// What the sessions of one phase did.
#[derive(Default)]
pub struct Outcome {
    /// Every step's response time.
    pub steps: Vec<Duration>,
    /// Sessions that ended in a confirmed send, counted from the first
    /// quarter's end (once every caller is under way) to the deadline.
    pub sends: usize,
    /// The seconds `sends` were counted over.
    pub counted_s: f64,
    /// Sessions that ended any other way, or a step that failed.
    pub failures: usize,
}

impl Sessions {
    /// `concurrent` callers each dial, send and dial again until `during`
    /// is over, pausing for a random `think` (±50 %) before each key press
    /// (`Duration::ZERO`: no pause).
    pub async fn run(&self, concurrent: usize, during: Duration, think: Duration) -> Outcome {
        let began = Instant::now();
        let deadline = began + during;
        let window = (began + during / 4, deadline);
        let callers: Vec<_> = (0..concurrent)
            .map(|_| {
                let sessions = self.clone_handle();
                // Callers start at random points of a session's length, as
                // people do, not all at once.
                let start = think.mul_f64(4.0 * rand::thread_rng().gen_range(0.0..1.0));
                tokio::spawn(async move {
                    tokio::time::sleep(start).await;
                    let mut outcome = Outcome::default();
                    while Instant::now() < deadline {
                        sessions.one_send(think, window, &mut outcome).await;
                    }
                    outcome
                })
            })
            .collect();
        let mut total = Outcome {
            counted_s: (during - during / 4).as_secs_f64(),
            ..Outcome::default()
        };
        for caller in callers {
            let outcome = caller.await.unwrap();
            total.steps.extend(outcome.steps);
            total.sends += outcome.sends;
            total.failures += outcome.failures;
        }
        total.steps.sort();
        total
    }

    fn clone_handle(&self) -> Self {
        Self {
            client: self.client.clone(),
            base: self.base.clone(),
            token: self.token.clone(),
            accounts: self.accounts.clone(),
            next: self.next.clone(),
        }
    }

    /// One dial through *Send money*: 1, the recipient, KES 100, the PIN. A
    /// send is counted when it is confirmed inside `window`.
    async fn one_send(&self, think: Duration, window: (Instant, Instant), outcome: &mut Outcome) {
        let n = self.accounts.len();
        let from = self.next.fetch_add(1, Ordering::Relaxed) % (n - 1) + 1;
        let national = |phone: &str| format!("0{}", &phone[4..]);
        let to = national(&self.accounts[(from + n / 2) % n].0);
        let keys = ["1", to.as_str(), "100", PIN];
        let session = format!("ATUid_{}", Uuid::new_v4().simple());
        let mut typed: Vec<&str> = Vec::new();
        for step in 0..=keys.len() {
            if step > 0 && !think.is_zero() {
                let pause = think.mul_f64(rand::thread_rng().gen_range(0.5..1.5));
                tokio::time::sleep(pause).await;
            }
            let began = Instant::now();
            let page = self
                .post(&session, &self.accounts[from].0, &typed.join("*"))
                .await;
            outcome.steps.push(began.elapsed());
            let last = step == keys.len();
            match page {
                // `END <reference> Confirmed. KES 100.00 sent to …`
                Some(page) if last && page.starts_with("END ") && page.contains(" Confirmed. ") => {
                    let now = Instant::now();
                    if window.0 <= now && now <= window.1 {
                        outcome.sends += 1;
                    }
                }
                Some(page) if !last && page.starts_with("CON ") => typed.push(keys[step]),
                Some(page) => {
                    if outcome.failures == 0 {
                        eprintln!("USSD step {step} answered {page:?}");
                    }
                    outcome.failures += 1;
                    return;
                }
                None => {
                    outcome.failures += 1;
                    return;
                }
            }
        }
    }

    async fn post(&self, session: &str, phone: &str, text: &str) -> Option<String> {
        let response = self
            .client
            .post(format!("{}/api/v1/ussd?token={}", self.base, self.token))
            .form(&[
                ("sessionId", session),
                ("serviceCode", "*384*123#"),
                ("phoneNumber", phone),
                ("networkCode", "63902"),
                ("text", text),
            ])
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            // The first such answer is enough to tell what went wrong.
            static TOLD: std::sync::Once = std::sync::Once::new();
            TOLD.call_once(|| eprintln!("USSD answered {}", response.status()));
            return None;
        }
        response.text().await.ok()
    }
}
