//! Suspicious-activity reports by status, and a report's page: its rule,
//! findings, linked transactions, review history, and the review itself.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use serde_json::json;

use crate::api::{self, Sar, SarList};
use crate::session::Auth;
use crate::widgets::{link, loaded, outcome, short, when, Badge, Field};

const STATUSES: [&str; 4] = ["OPEN", "UNDER_REVIEW", "FILED", "DISMISSED"];

#[component]
pub fn SarsPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let status = RwSignal::new("OPEN".to_string());
    let list = LocalResource::new(move || {
        let status = status.get();
        async move { api::get::<SarList>(auth, &format!("/admin/suspicious?status={status}")).await }
    });
    view! {
        <h1>"Suspicious activity"</h1>
        <div class="tabs">
            {STATUSES.into_iter().map(|s| view! {
                <button class:active=move || status.get() == s on:click=move |_| status.set(s.to_string())>{s}</button>
            }).collect_view()}
        </div>
        {loaded(list, |list: SarList| {
            if list.sars.is_empty() {
                return view! { <p class="empty">"No reports in this status."</p> }.into_any();
            }
            view! {
                <table class="sars">
                    <thead><tr><th>"#"</th><th>"Rule"</th><th>"Customer"</th><th>"Transactions"</th><th>"Status"</th><th>"Opened"</th></tr></thead>
                    <tbody>{list.sars.into_iter().map(|sar| view! {
                        <tr>
                            <td><A href=link(&format!("/sars/{}", sar.id))>{format!("SAR {}", sar.id)}</A></td>
                            <td>{sar.rule}</td>
                            <td>{sar.name.unwrap_or_default()}" "{sar.phone.unwrap_or_default()}</td>
                            <td>{sar.tx_ids.len()}</td>
                            <td><Badge status=sar.status/></td>
                            <td>{when(&sar.created_at)}</td>
                        </tr>
                    }).collect_view()}</tbody>
                </table>
            }.into_any()
        })}
    }
}

#[component]
pub fn SarPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let version = RwSignal::new(0usize);
    let sar = LocalResource::new(move || {
        version.track();
        let id = id();
        async move { api::get::<Sar>(auth, &format!("/admin/sars/{id}")).await }
    });
    let (to, note) = (
        RwSignal::new("UNDER_REVIEW".to_string()),
        RwSignal::new(String::new()),
    );
    let review = Action::new_local(move |_: &()| {
        let body = json!({"status": to.get_untracked(), "note": note.get_untracked()});
        let path = format!("/admin/sars/{}", id());
        async move {
            let done = api::post::<Sar>(auth, &path, body).await;
            if done.is_ok() {
                version.update(|v| *v += 1);
            }
            done
        }
    });
    view! {
        {loaded(sar, move |sar: Sar| view! {
            <h1>{format!("SAR {}: {}", sar.id, sar.rule)}</h1>
            <dl class="facts">
                <dt>"Status"</dt><dd><Badge status=sar.status.clone()/></dd>
                <dt>"Customer"</dt><dd>{sar.user_id.clone().map(|u| view! {
                    <A href=link(&format!("/users/{u}"))>{format!("{} {}", sar.name.clone().unwrap_or_default(), sar.phone.clone().unwrap_or_default())}</A>
                })}</dd>
                <dt>"Opened"</dt><dd>{when(&sar.created_at)}</dd>
                <dt>"Updated"</dt><dd>{when(&sar.updated_at)}</dd>
            </dl>
            <h2>"Linked transactions"</h2>
            {if sar.tx_ids.is_empty() {
                view! { <p class="empty">"None (a refused attempt is in the findings)."</p> }.into_any()
            } else {
                view! { <ul>{sar.tx_ids.clone().into_iter().map(|tx| view! {
                    <li><A href=link(&format!("/transactions/{tx}"))>{short(&tx)}</A></li>
                }).collect_view()}</ul> }.into_any()
            }}
            <h2>"Findings"</h2>
            <pre class="detail">{serde_json::to_string_pretty(&sar.detail).unwrap_or_default()}</pre>
            <h2>"History"</h2>
            {if sar.notes.is_empty() {
                view! { <p class="empty">"Not reviewed yet."</p> }.into_any()
            } else {
                view! { <ol class="history">{sar.notes.clone().into_iter().map(|n| view! {
                    <li>{format!("{} {} → {}: {}", when(&n.at), n.from_status, n.to_status, n.note)}</li>
                }).collect_view()}</ol> }.into_any()
            }}
        })}
        <section class="actions">
            <h3>"Review"</h3>
            <select on:change:target=move |ev| to.set(ev.target().value())>
                {["UNDER_REVIEW", "FILED", "DISMISSED", "OPEN"].into_iter().map(|s| view! { <option value=s>{s}</option> }).collect_view()}
            </select>
            <Field label="Note" value=note/>
            <button id="review-sar" on:click=move |_| { review.dispatch(()); }>"Save review"</button>
            {outcome(review.value(), "Review saved.")}
        </section>
    }
}
