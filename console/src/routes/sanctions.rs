//! The sanctions list, and adding a party to it.

use leptos::prelude::*;
use serde_json::json;

use crate::api::{self, ApiResult, SanctionEntry, SanctionList};
use crate::session::Auth;
use crate::widgets::{loaded, outcome, when, Field};

#[component]
pub fn SanctionsPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let added = RwSignal::new(0usize);
    let list = LocalResource::new(move || {
        added.track();
        api::get::<SanctionList>(auth, "/admin/sanctions?limit=200")
    });
    let (name, phone) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let add = Action::new_local(move |_: &()| {
        let phone_value = phone.get_untracked();
        let body = json!({"name": name.get_untracked(), "phone": (!phone_value.trim().is_empty()).then_some(phone_value)});
        async move {
            let done: ApiResult<SanctionEntry> = api::post(auth, "/admin/sanctions", body).await;
            if done.is_ok() {
                added.update(|n| *n += 1);
            }
            done
        }
    });
    view! {
        <h1>"Sanctions"</h1>
        <section class="actions">
            <h3>"Add a listed party"</h3>
            <Field label="Name" value=name/>
            <Field label="Phone (optional)" value=phone/>
            <button on:click=move |_| { add.dispatch(()); }>"Add to the list"</button>
            {outcome(add.value(), "Added; every customer is screened again.")}
        </section>
        {loaded(list, |list: SanctionList| {
            if list.entries.is_empty() {
                return view! { <p class="empty">"The list is empty."</p> }.into_any();
            }
            view! {
                <table class="sanctions"><thead><tr><th>"Name"</th><th>"Phone"</th><th>"Source"</th><th>"Programme"</th><th>"Added"</th></tr></thead>
                <tbody>{list.entries.into_iter().map(|e| view! {
                    <tr><td>{e.name}</td><td>{e.phone.unwrap_or_default()}</td><td>{e.source}</td>
                        <td>{e.program.unwrap_or_default()}</td><td>{when(&e.created_at)}</td></tr>
                }).collect_view()}</tbody></table>
            }.into_any()
        })}
    }
}
