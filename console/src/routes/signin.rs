//! Signing in with phone and PIN; only admins get in.

use leptos::prelude::*;
use serde_json::json;

use crate::api::{self, LoginResponse};
use crate::session::{Auth, Session};
use crate::widgets::Field;

#[component]
pub fn SignIn() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let (phone, pin) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let refusal = RwSignal::new(None::<String>);
    let sign_in = Action::new_local(move |_: &()| {
        let body = json!({"phone": phone.get_untracked(), "pin": pin.get_untracked()});
        async move { api::post::<LoginResponse>(auth, "/auth/login", body).await }
    });
    Effect::new(move || {
        let Some(result) = sign_in.value().get() else {
            return;
        };
        pin.set(String::new());
        match result {
            Ok(login) if login.user.role == "admin" => {
                let expires_at_ms = js_sys::Date::now() + login.expires_in as f64 * 1000.0;
                auth.sign_in(Session {
                    token: login.access_token,
                    name: login.user.name,
                    phone: login.user.phone,
                    expires_at_ms,
                });
            }
            Ok(login) => {
                refusal.set(Some(format!(
                    "{} is not an operator: the console is for ChainPay admins only.",
                    login.user.name
                )));
                // The token is of no use here: end it.
                leptos::task::spawn_local(async move {
                    let _ = gloo_net::http::Request::post("/api/v1/auth/logout")
                        .header("Authorization", &format!("Bearer {}", login.access_token))
                        .send()
                        .await;
                });
            }
            Err(error) => refusal.set(Some(error.detail)),
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        refusal.set(None);
        sign_in.dispatch(());
    };
    view! {
        <div class="signin">
            <form on:submit=submit>
                <h1>"ChainPay operations"</h1>
                {move || auth.notice.get().map(|notice| view! { <p class="notice">{notice}</p> })}
                <Field label="Phone" value=phone placeholder="0700000000"/>
                <Field label="PIN" value=pin kind="password"/>
                <button type="submit" disabled=move || sign_in.pending().get()>"Sign in"</button>
                {move || refusal.get().map(|text| view! { <p class="problem" role="alert">{text}</p> })}
            </form>
        </div>
    }
}
