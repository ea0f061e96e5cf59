//! Who is signed in: the admin's bearer token, kept in `sessionStorage` so
//! a reload keeps the session and closing the tab ends it. The session ends
//! on sign-out, when the token expires, and on any 401 from the API.

use gloo_storage::{SessionStorage, Storage};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

const STORAGE_KEY: &str = "chainpay.console.session";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    pub name: String,
    pub phone: String,
    /// Milliseconds since the epoch, as `Date.now()` counts them.
    pub expires_at_ms: f64,
}

/// The session signal and the sentence shown on the sign-in page when a
/// session ended by itself.
#[derive(Clone, Copy)]
pub struct Auth {
    session: RwSignal<Option<Session>>,
    pub notice: RwSignal<Option<String>>,
}

impl Auth {
    /// The session kept in this tab, if it has not expired.
    pub fn restore() -> Self {
        let auth = Self {
            session: RwSignal::new(None),
            notice: RwSignal::new(None),
        };
        if let Ok(session) = SessionStorage::get::<Session>(STORAGE_KEY) {
            auth.sign_in(session);
        }
        auth
    }

    pub fn session(&self) -> Option<Session> {
        self.session.get()
    }

    pub fn token(&self) -> Option<String> {
        self.session
            .with_untracked(|s| s.as_ref().map(|s| s.token.clone()))
    }

    /// Starts the session and ends it by itself when the token expires.
    pub fn sign_in(&self, session: Session) {
        let left_ms = session.expires_at_ms - js_sys::Date::now();
        if left_ms <= 0.0 {
            self.sign_out(Some("Your session expired. Sign in again."));
            return;
        }
        let _ = SessionStorage::set(STORAGE_KEY, &session);
        let token = session.token.clone();
        self.notice.set(None);
        self.session.set(Some(session));
        let auth = *self;
        set_timeout(
            move || {
                if auth.token().as_deref() == Some(token.as_str()) {
                    auth.sign_out(Some("Your session expired. Sign in again."));
                }
            },
            std::time::Duration::from_millis(left_ms as u64),
        );
    }

    pub fn sign_out(&self, notice: Option<&str>) {
        SessionStorage::delete(STORAGE_KEY);
        self.notice.set(notice.map(str::to_owned));
        self.session.set(None);
    }
}
