//! Reversal requests, the pending queue first; approving or rejecting with
//! a note. The server enforces four eyes (an approval is booked by a
//! second admin's); the console shows its answer.

use leptos::prelude::*;
use leptos_router::components::A;
use serde_json::json;

use crate::api::{self, ApiResult, Reversal, ReversalList};
use crate::session::Auth;
use crate::widgets::{link, loaded, money, short, when, Badge};

#[component]
pub fn ReversalsPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let status = RwSignal::new("PENDING".to_string());
    let decided = RwSignal::new(0usize);
    let list = LocalResource::new(move || {
        decided.track();
        let status = status.get();
        async move { api::get::<ReversalList>(auth, &format!("/admin/reversals?status={status}")).await }
    });
    view! {
        <h1>"Reversals"</h1>
        <div class="tabs">
            {["PENDING", "APPROVED", "REJECTED"].into_iter().map(|s| view! {
                <button class:active=move || status.get() == s on:click=move |_| status.set(s.to_string())>{s}</button>
            }).collect_view()}
        </div>
        {loaded(list, move |list: ReversalList| {
            if list.reversals.is_empty() {
                return view! { <p class="empty">"No requests here."</p> }.into_any();
            }
            list.reversals.into_iter().map(|r| view! { <Request request=r decided/> }).collect_view().into_any()
        })}
    }
}

#[component]
fn Request(request: Reversal, decided: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let note = RwSignal::new(String::new());
    let id = request.reversal_id.clone();
    let decide = Action::new_local(move |approve: &bool| {
        let path = format!(
            "/admin/reversals/{id}/{}",
            if *approve { "approve" } else { "reject" }
        );
        let body = json!({"note": note.get_untracked()});
        async move {
            let done: ApiResult<Reversal> = api::post(auth, &path, body).await;
            if done.is_ok() {
                decided.update(|n| *n += 1);
            }
            done
        }
    });
    let pending = request.status == "PENDING";
    view! {
        <article class="request" data-reversal=request.reversal_id.clone()>
            <header>
                <strong>{money(&request.currency, request.amount)}</strong>
                " requested by " {request.requester_phone.clone()} " on " {when(&request.created_at)}
                " " <Badge status=request.status.clone()/>
            </header>
            <p>"Transaction " <A href=link(&format!("/transactions/{}", request.tx_id))>{short(&request.tx_id)}</A> ": “" {request.reason.clone()} "”"</p>
            {request.first_approved_by.clone().map(|by| view! {
                <p class="first-approval">"Approved by one admin (" {short(&by)} ")"
                    {request.first_note.clone().map(|n| format!(": {n}"))}
                    {pending.then_some(". A second admin's approval books it.")}</p>
            })}
            {request.admin_note.clone().map(|n| view! { <p>"Operator's note: " {n}</p> })}
            {request.reversal_tx_id.clone().map(|tx| view! {
                <p>"Corrected by " <A href=link(&format!("/transactions/{tx}"))>{short(&tx)}</A></p>
            })}
            {pending.then(|| view! {
                <div class="decide">
                    <label class="field"><span>"Note"</span>
                        <input prop:value=move || note.get() on:input:target=move |ev| note.set(ev.target().value())/></label>
                    <button class="approve" on:click=move |_| { decide.dispatch(true); }>"Approve"</button>
                    <button class="reject" on:click=move |_| { decide.dispatch(false); }>"Reject"</button>
                </div>
            })}
            {move || decide.value().get().map(|result| match result {
                Ok(r) if r.status == "PENDING" => view! { <p class="done" role="status">"Approved once: a second admin must approve too."</p> }.into_any(),
                Ok(_) => view! { <p class="done" role="status">"Decided."</p> }.into_any(),
                Err(error) => view! { <p class="problem" role="alert">{error.detail}</p> }.into_any(),
            })}
        </article>
    }
}
