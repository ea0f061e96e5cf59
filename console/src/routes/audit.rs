//! The audit log: paged, filtered by action and actor, and its hash chain
//! verified on demand.

use leptos::prelude::*;
use serde_json::Value;

use crate::api::{self, encode, ApiResult, AuditEntry, AuditPage as Page, AuditVerification};
use crate::session::Auth;
use crate::widgets::{loaded, short, when, Badge, Field};

#[component]
pub fn AuditPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let (action, actor) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    // (action, actor, before): the filter applied and the page shown.
    let shown = RwSignal::new((String::new(), String::new(), None::<String>));
    let page = LocalResource::new(move || {
        let (action, actor, before) = shown.get();
        let mut path = format!("/admin/audit-log?limit=50&action={}", encode(action.trim()));
        if !actor.trim().is_empty() {
            path.push_str(&format!("&user_id={}", encode(actor.trim())));
        }
        if let Some(before) = before {
            path.push_str(&format!("&before={before}"));
        }
        let path = path
            .replace("&action=&", "&")
            .trim_end_matches("&action=")
            .to_owned();
        async move { api::get::<Page>(auth, &path).await }
    });
    let filter = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        shown.set((action.get_untracked(), actor.get_untracked(), None));
    };
    let verify = Action::new_local(move |_: &()| async move {
        api::get::<AuditVerification>(auth, "/admin/audit-log/verify").await
    });
    view! {
        <h1>"Audit log"</h1>
        <section class="verify">
            <button id="verify-audit" on:click=move |_| { verify.dispatch(()); }>"Verify the hash chain"</button>
            {move || verify.pending().get().then(|| view! { <span class="loading">"Verifying…"</span> })}
            {move || verify.value().get().map(verification)}
        </section>
        <form class="toolbar" on:submit=filter>
            <Field label="Action" value=action placeholder="wallet.send"/>
            <Field label="Actor (user id)" value=actor/>
            <button type="submit">"Filter"</button>
        </form>
        {loaded(page, move |page: Page| {
            let next = page.next_cursor.clone();
            view! {
                {if page.entries.is_empty() {
                    view! { <p class="empty">"No entries."</p> }.into_any()
                } else {
                    view! {
                        <table class="audit">
                            <thead><tr><th>"#"</th><th>"When"</th><th>"Action"</th><th>"Outcome"</th><th>"Actor"</th><th>"Subject"</th><th>"Detail"</th><th>"Request"</th><th>"Linked"</th></tr></thead>
                            <tbody>{page.entries.into_iter().map(entry_row).collect_view()}</tbody>
                        </table>
                    }.into_any()
                }}
                {next.map(|cursor| view! {
                    <button on:click=move |_| shown.update(|s| s.2 = Some(cursor.clone()))>"Older entries"</button>
                })}
            }
        })}
    }
}

fn entry_row(entry: AuditEntry) -> impl IntoView {
    let detail = match &entry.detail {
        Value::Object(map) if map.is_empty() => String::new(),
        other => other.to_string(),
    };
    view! {
        <tr>
            <td>{entry.id}</td>
            <td>{when(&entry.at)}</td>
            <td>{entry.action}</td>
            <td><Badge status=entry.outcome/></td>
            <td class="mono">{entry.actor_user_id.map(|a| short(&a)).unwrap_or_default()}</td>
            <td class="mono">{entry.subject.map(|s| short(&s)).unwrap_or_default()}</td>
            <td class="detail">{detail}</td>
            <td class="mono">{entry.request_id.map(|r| short(&r)).unwrap_or_default()}</td>
            <td>{if entry.entry_hash.is_some() { "yes" } else { "pending" }}</td>
        </tr>
    }
}

fn verification(result: ApiResult<AuditVerification>) -> impl IntoView {
    match result {
        Ok(v) if v.valid => view! {
            <p class="done" id="audit-verdict">{format!("Valid: {} entries checked, {} not linked yet.", v.entries_checked, v.unsealed)}</p>
        }.into_any(),
        Ok(v) => view! {
            <p class="problem" id="audit-verdict">{format!(
                "Broken at entry {}: {} ({} entries checked before it).",
                v.first_broken_id.unwrap_or_default(),
                v.reason.unwrap_or_default(),
                v.entries_checked
            )}</p>
        }.into_any(),
        Err(error) => view! { <p class="problem">{error.detail}</p> }.into_any(),
    }
}
