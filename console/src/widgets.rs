//! Pieces every page uses: loading, empty and error states, money, dates,
//! status badges, and the one way a page shows a resource.

use std::collections::BTreeMap;

use leptos::prelude::*;

use crate::api::{ApiError, ApiResult};

/// Where the gateway serves the console; the router's base.
pub const BASE: &str = "/console";

/// The URL of the console page at `path` (`/users` → `/console/users`):
/// links are not resolved against the router's base.
pub fn link(path: &str) -> String {
    format!("{BASE}{path}")
}

/// Minor-unit digits per currency, from the rate book (2 until it is read).
#[derive(Clone, Copy)]
pub struct Currencies(pub RwSignal<BTreeMap<String, u32>>);

impl Currencies {
    pub fn exponent(&self, currency: &str) -> u32 {
        self.0
            .with(|known| known.get(currency).copied().unwrap_or(2))
    }
}

/// `KES 1,250.75`, with the currency's own minor-unit digits.
pub fn money(currency: &str, minor: i64) -> String {
    let exponent = use_context::<Currencies>().map_or(2, |c| c.exponent(currency));
    chainpay_core::money::show(currency, minor, exponent)
}

/// `2026-12-01 14:51` from an RFC 3339 time.
pub fn when(at: &str) -> String {
    at.get(..16).unwrap_or(at).replace('T', " ")
}

/// A short form of a long id or hash.
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading">"Loading…"</p> }
}

/// A refusal or failure, with the server's own explanation.
#[component]
pub fn Failed(error: ApiError) -> impl IntoView {
    view! {
        <div class="problem" role="alert">
            <strong>"Could not load this: "</strong>
            <span>{error.detail}</span>
        </div>
    }
}

/// A status as a coloured label (`PENDING`, `COMPLETED`, …).
#[component]
pub fn Badge(#[prop(into)] status: String) -> impl IntoView {
    let class = format!("badge badge-{}", status.to_ascii_lowercase());
    view! { <span class=class>{status}</span> }
}

/// Renders `resource` with `render`, showing the loading state meanwhile and
/// the problem's detail when the call failed.
pub fn loaded<T, V>(
    resource: LocalResource<ApiResult<T>>,
    render: impl Fn(T) -> V + Clone + Send + Sync + 'static,
) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    view! {
        <Transition fallback=|| view! { <Loading/> }>
            {move || {
                let render = render.clone();
                Suspend::new(async move {
                    match resource.await {
                        Ok(value) => render(value).into_any(),
                        Err(error) => view! { <Failed error/> }.into_any(),
                    }
                })
            }}
        </Transition>
    }
}

/// What an action came to: nothing yet, done, or the server's refusal.
pub fn outcome<T, S>(value: S, done: &'static str) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    S: Get<Value = Option<ApiResult<T>>> + Send + Sync + 'static,
{
    move || {
        value.get().map(|result| match result {
            Ok(_) => view! { <p class="done" role="status">{done}</p> }.into_any(),
            Err(error) => view! { <p class="problem" role="alert">{error.detail}</p> }.into_any(),
        })
    }
}

/// A labelled text input bound to `value`.
#[component]
pub fn Field(
    /// The visible label.
    #[prop(into)]
    label: String,
    value: RwSignal<String>,
    /// `text`, `password`, `search`…
    #[prop(into, default = "text".to_string())]
    kind: String,
    #[prop(into, default = String::new())] placeholder: String,
) -> impl IntoView {
    view! {
        <label class="field">
            <span>{label}</span>
            <input
                type=kind
                placeholder=placeholder
                prop:value=move || value.get()
                on:input:target=move |ev| value.set(ev.target().value())
            />
        </label>
    }
}
