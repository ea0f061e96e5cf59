//! Driving the USSD menu machine ([`chainpay_core::ussd`]) for Africa's
//! Talking requests.
//!
//! A session's state lives in `ussd_sessions`, keyed by `sessionId`, with
//! the number of inputs consumed so far. Africa's Talking resends every
//! input of the session in `text`; inputs beyond that count are new and are
//! fed to the machine one by one. A request with nothing new is a retry and
//! gets the stored reply, and money moves under an idempotency key made of
//! the session and the input's position, so a retry never acts twice — even
//! when two instances race on the same step (the session row is updated only
//! if nobody else advanced it first).
//!
//! Neither the PIN nor the raw `text` is logged or stored: the state holds
//! no PIN (see the machine's docs) and logs name only the step.

mod counter;
mod effects;
mod merchant;
mod pin_step;

use chainpay_core::ussd::{self, Caller, Ctx, Screen, State, Step, Texts};
use chainpay_core::{Lang, Msisdn};
use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::state::AppState;

/// Most inputs one session may carry; a real session is a handful.
const MAX_INPUTS: usize = 64;
/// A USSD session's lifetime on Kenyan networks; a stored session idle for
/// longer is over, and the same `sessionId` starts afresh.
const SESSION_LIFETIME_S: f64 = 180.0;

/// One Africa's Talking USSD request, validated.
#[derive(Debug, Clone)]
pub struct UssdRequest {
    pub session_id: String,
    pub phone: Msisdn,
    /// Every input of the session so far (from `text`, split on `*`).
    pub inputs: Vec<String>,
}

/// A registered caller as the effects need them.
#[derive(Debug, Clone)]
pub struct CallerRow {
    pub user_id: Uuid,
    pub phone: String,
    pub caller: Caller,
    pub suspended: bool,
}

async fn load_caller(state: &AppState, phone: &Msisdn) -> Result<Option<CallerRow>, Error> {
    let row = sqlx::query!(
        r#"SELECT u.id, u.name, u.language, u.kyc_status, u.suspended, a.agent_number AS "agent_number?"
           FROM users u LEFT JOIN agents a ON a.user_id = u.id AND a.status = 'ACTIVE'
           WHERE u.phone = $1"#,
        phone.as_str()
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(row.map(|row| {
        let user = UserRow {
            id: row.id,
            name: row.name,
            language: row.language,
            kyc_status: row.kyc_status,
            suspended: row.suspended,
            agent_number: row.agent_number,
        };
        user.caller(phone)
    }))
}

/// The caller's columns of `users` (and an active agent's number).
struct UserRow {
    id: Uuid,
    name: String,
    language: String,
    kyc_status: String,
    suspended: bool,
    agent_number: Option<String>,
}

impl UserRow {
    fn caller(self, phone: &Msisdn) -> CallerRow {
        CallerRow {
            user_id: self.id,
            phone: phone.to_string(),
            caller: Caller {
                name: self.name,
                lang: Lang::parse(&self.language),
                home_currency: phone.home_currency().to_owned(),
                kyc_status: self.kyc_status,
                agent_number: self.agent_number,
            },
            suspended: self.suspended,
        }
    }
}

fn state_name(state: &State) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.get("at").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

/// The stored session a request continues, if it is still alive.
enum Session {
    /// No live session: this request dials in.
    New,
    /// A live session: its state and the inputs it has consumed.
    Continues(State, usize),
    /// Nothing new in this request (a retry): the stored reply.
    Replay(String),
    /// The `sessionId` belongs to another phone.
    Foreign,
}

/// The stored session a request continues and its caller, read together
/// in one round trip (every step needs both).
async fn load_session(
    state: &AppState,
    request: &UssdRequest,
) -> Result<(Session, Option<CallerRow>), Error> {
    let row = sqlx::query!(
        r#"SELECT s.phone AS "session_phone?", s.state AS "state?", s.step AS "step?",
                  s.last_reply AS "last_reply?",
                  u.id AS "id?", u.name AS "name?", u.language AS "language?",
                  u.kyc_status AS "kyc_status?", u.suspended AS "suspended?",
                  a.agent_number AS "agent_number?"
           FROM (SELECT) AS one
           LEFT JOIN ussd_sessions s
                  ON s.session_id = $1 AND s.updated_at > now() - make_interval(secs => $2)
           LEFT JOIN users u ON u.phone = $3
           LEFT JOIN agents a ON a.user_id = u.id AND a.status = 'ACTIVE'"#,
        request.session_id,
        SESSION_LIFETIME_S,
        request.phone.as_str()
    )
    .fetch_one(&state.pool)
    .await?;
    let session = match (row.session_phone, row.state, row.step, row.last_reply) {
        (Some(phone), Some(stored), Some(step), Some(reply)) => {
            if phone != request.phone.as_str() {
                Session::Foreign
            } else if request.inputs.len() <= step as usize {
                Session::Replay(reply)
            } else {
                let machine = serde_json::from_value::<State>(stored)
                    .map_err(|e| Error::Internal(e.into()))?;
                Session::Continues(machine, step as usize)
            }
        }
        _ => Session::New,
    };
    let caller = match (
        row.id,
        row.name,
        row.language,
        row.kyc_status,
        row.suspended,
    ) {
        (Some(id), Some(name), Some(language), Some(kyc_status), Some(suspended)) => Some(
            UserRow {
                id,
                name,
                language,
                kyc_status,
                suspended,
                agent_number: row.agent_number,
            }
            .caller(&request.phone),
        ),
        _ => None,
    };
    Ok((session, caller))
}

/// Answers one request with the `CON …`/`END …` body.
pub async fn handle(state: &AppState, request: UssdRequest) -> Result<String, Error> {
    if request.inputs.len() > MAX_INPUTS {
        return Ok(Screen::End(Texts(Lang::En).try_later().to_owned()).render());
    }
    let (session, mut caller) = load_session(state, &request).await?;
    let (mut machine, consumed) = match session {
        Session::Replay(reply) => return Ok(reply),
        Session::Foreign => return Ok(foreign()),
        Session::New => (None, 0),
        Session::Continues(machine, consumed) => (Some(machine), consumed),
    };
    if let Some(suspended) = caller.as_ref().filter(|c| c.suspended) {
        return Ok(Screen::End(Texts(suspended.caller.lang).suspended().to_owned()).render());
    }
    let rules = state.rules.get(&state.pool).await?;
    let currencies: Vec<String> = rules.rates.currencies().map(str::to_owned).collect();
    let exponent = |currency: &str| rules.exponent(currency);
    let env = Env {
        exponent: &exponent,
        currencies: &currencies,
    };
    let lang = caller.as_ref().map_or(Lang::En, |c| c.caller.lang);
    let mut screen = Screen::End(Texts(lang).try_later().to_owned());
    if machine.is_none() {
        let step = ussd::dial(&env.ctx(caller.as_ref(), &[]));
        let (shown, next) = match run(state, &request, &env, 0, &mut caller, step).await? {
            Ran::Shows(shown, next) => (shown, next),
            Ran::ServedElsewhere => return served_elsewhere(state, &request, 0, &caller).await,
        };
        screen = shown;
        machine = Some(next);
    }
    for position in consumed..request.inputs.len() {
        let current = machine.take().unwrap_or(State::Ended);
        let step = {
            let ctx = env.ctx(caller.as_ref(), &request.inputs[..=position]);
            ussd::input(current, &request.inputs[position], &ctx)
        };
        let (shown, next) =
            match run(state, &request, &env, position + 1, &mut caller, step).await? {
                Ran::Shows(shown, next) => (shown, next),
                Ran::ServedElsewhere => {
                    return served_elsewhere(state, &request, position + 1, &caller).await
                }
            };
        screen = shown;
        machine = Some(next);
    }
    let next = machine.unwrap_or(State::Ended);
    tracing::info!(session_id = %request.session_id, step = request.inputs.len(), at = %state_name(&next), "ussd step");
    save_session(state, &request, consumed, &next, screen.render()).await
}

/// Stores the session's new state and reply, unless another instance
/// answered this step first — then its reply is the answer.
///
/// The save waits for its WAL flush like any commit, so a screen is shown
/// only once the state behind it is durable. Committing it asynchronously
/// was measured (under load it about halved a step's median time) and not
/// kept: had PostgreSQL crashed just after a confirmation screen, the
/// caller's PIN would have confirmed terms recomputed from the state
/// before it (a conversion at a fresh quote) that they were never shown.
async fn save_session(
    state: &AppState,
    request: &UssdRequest,
    consumed: usize,
    next: &State,
    reply: String,
) -> Result<String, Error> {
    let saved = sqlx::query!(
        "INSERT INTO ussd_sessions (session_id, phone, state, step, last_reply) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (session_id) DO UPDATE SET phone = EXCLUDED.phone, state = EXCLUDED.state, step = EXCLUDED.step,
                last_reply = EXCLUDED.last_reply, updated_at = now()
         WHERE (ussd_sessions.step = $6 AND ussd_sessions.phone = EXCLUDED.phone)
            OR ussd_sessions.updated_at <= now() - make_interval(secs => $7)",
        request.session_id,
        request.phone.as_str(),
        serde_json::to_value(next).map_err(|e| Error::Internal(e.into()))?,
        request.inputs.len() as i32,
        reply,
        consumed as i32,
        SESSION_LIFETIME_S
    )
    .execute(&state.pool)
    .await?;
    if saved.rows_affected() == 1 {
        return Ok(reply);
    }
    // Another request of this session saved first: answer as it did. A
    // session another phone holds is never shown (a forged or colliding id).
    let theirs = sqlx::query_scalar!(
        "SELECT last_reply FROM ussd_sessions WHERE session_id = $1 AND phone = $2",
        request.session_id,
        request.phone.as_str()
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(theirs.unwrap_or_else(foreign))
}

/// What a request naming another phone's session is answered.
fn foreign() -> String {
    Screen::End(Texts(Lang::En).try_later().to_owned()).render()
}

/// What resolving a step came to.
enum Ran {
    /// The screen to show and the state after it.
    Shows(Screen, State),
    /// The step carries a PIN and another request of the session (a resend)
    /// is serving it: its reply is the answer ([`pin_step`]).
    ServedElsewhere,
}

/// The reply of the request serving input `position` of this session.
async fn served_elsewhere(
    state: &AppState,
    request: &UssdRequest,
    position: usize,
    caller: &Option<CallerRow>,
) -> Result<String, Error> {
    let lang = caller.as_ref().map_or(Lang::En, |c| c.caller.lang);
    pin_step::reply_of_first(state, request, position, lang).await
}

/// Resolves a step's effects until it shows a screen. `position` numbers
/// the input being handled (0 for the dial), for idempotency keys.
async fn run(
    state: &AppState,
    request: &UssdRequest,
    env: &Env<'_>,
    position: usize,
    caller: &mut Option<CallerRow>,
    mut step: Step,
) -> Result<Ran, Error> {
    let mut claimed = false;
    // An effect can lead to another (recipient → holdings); a handful at most.
    for _ in 0..4 {
        match step {
            Step::Show(screen, next) => return Ok(Ran::Shows(screen, next)),
            Step::Do(effect, waiting) => {
                if pin_step::carries_pin(&effect) && !claimed {
                    if !pin_step::claim(state, request, position).await? {
                        return Ok(Ran::ServedElsewhere);
                    }
                    claimed = true;
                }
                let key = format!("ussd:{}:{position}", request.session_id);
                let outcome = effects::perform(state, request, caller, effect, &key).await?;
                let inputs = &request.inputs[..position.min(request.inputs.len())];
                let ctx = env.ctx(caller.as_ref(), inputs);
                step = ussd::outcome(waiting, outcome, &ctx);
            }
        }
    }
    let lang = caller.as_ref().map_or(Lang::En, |c| c.caller.lang);
    Ok(Ran::Shows(
        Screen::End(Texts(lang).try_later().to_owned()),
        State::Ended,
    ))
}

/// What the machine reads about currencies, for this request.
struct Env<'a> {
    exponent: &'a (dyn Fn(&str) -> u32 + Sync),
    currencies: &'a [String],
}

impl Env<'_> {
    fn ctx<'c>(&'c self, caller: Option<&'c CallerRow>, inputs: &'c [String]) -> Ctx<'c> {
        Ctx {
            caller: caller.map(|c| &c.caller),
            inputs,
            exponent: self.exponent,
            currencies: self.currencies,
        }
    }
}
