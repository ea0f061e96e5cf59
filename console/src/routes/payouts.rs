//! Payouts M-Pesa never answered for, settled from M-Pesa's own records by
//! one admin's proposal and a second admin's approval (the server refuses
//! the proposer's own, and the payout's customer's).

use leptos::prelude::*;
use serde_json::json;

use crate::api::{self, ApiResult, PayoutResolution, PayoutResolutionList};
use crate::session::Auth;
use crate::widgets::{link, loaded, outcome, when, Badge, Field};

/// The proposal form and the proposals; `withdrawal` is filled in by a
/// pending withdrawal's "Settle by hand" button, and `changed` moves on
/// with every proposal and decision made here (the withdrawals reload).
#[component]
pub fn PayoutResolutions(withdrawal: RwSignal<String>, changed: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let status = RwSignal::new("PENDING".to_string());
    let list = LocalResource::new(move || {
        changed.track();
        let status = status.get();
        async move {
            api::get::<PayoutResolutionList>(
                auth,
                &format!("/admin/mpesa/resolutions?status={status}"),
            )
            .await
        }
    });
    let (paid, receipt, note) = (
        RwSignal::new(true),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let propose = Action::new_local(move |_: &()| {
        let reference = withdrawal.get_untracked().trim().to_owned();
        let body = if paid.get_untracked() {
            json!({"outcome": "PAID", "receipt": receipt.get_untracked(), "note": note.get_untracked()})
        } else {
            json!({"outcome": "NOT_PAID", "note": note.get_untracked()})
        };
        async move {
            let path = format!(
                "/admin/mpesa/withdrawals/{}/resolutions",
                api::encode(&reference)
            );
            let done: ApiResult<PayoutResolution> = api::post(auth, &path, body).await;
            if done.is_ok() {
                changed.update(|n| *n += 1);
            }
            done
        }
    });
    // A proposal's answer is about the payout it was made for.
    Effect::new(move |_| {
        withdrawal.track();
        propose.value().set(None);
    });
    view! {
        <section class="resolutions">
        <h2>"Payouts settled by hand"</h2>
        <p>"A payout still pending an hour after it was sent, and asked about, is settled as M-Pesa's own statement shows: one admin proposes, another approves."</p>
        <form class="toolbar" on:submit=move |ev| { ev.prevent_default(); propose.dispatch(()); }>
            <Field label="Withdrawal ref" value=withdrawal/>
            <label class="field"><span>"M-Pesa shows it"</span>
                <select on:change:target=move |ev| paid.set(ev.target().value() == "PAID")>
                    <option value="PAID">"paid"</option>
                    <option value="NOT_PAID">"not paid"</option>
                </select>
            </label>
            {move || paid.get().then(|| view! { <Field label="Payout receipt" value=receipt/> })}
            <Field label="Statement note" value=note/>
            <button type="submit" id="propose-payout">"Propose"</button>
        </form>
        {outcome(propose.value(), "Proposed; another admin must approve it.")}
        <div class="tabs">
            {["PENDING", "APPROVED", "REJECTED", "SUPERSEDED"].into_iter().map(|s| view! {
                <button class:active=move || status.get() == s on:click=move |_| status.set(s.to_string())>{s}</button>
            }).collect_view()}
        </div>
        {loaded(list, move |list: PayoutResolutionList| {
            if list.resolutions.is_empty() {
                return view! { <p class="empty">"Nothing here."</p> }.into_any();
            }
            list.resolutions.into_iter().map(|proposal| view! { <ResolutionCard proposal changed/> }).collect_view().into_any()
        })}
        </section>
    }
}

#[component]
fn ResolutionCard(proposal: PayoutResolution, changed: RwSignal<usize>) -> impl IntoView {
    let shown = match (proposal.outcome.as_str(), &proposal.receipt) {
        ("PAID", Some(receipt)) => format!("paid, receipt {receipt}"),
        ("PAID", None) => "paid".to_owned(),
        _ => "not paid".to_owned(),
    };
    let pending = proposal.status == "PENDING";
    let path = format!("/admin/mpesa/resolutions/{}", proposal.id);
    view! {
        <article class="request" data-payout=proposal.withdrawal.clone()>
            <header>
                "Withdrawal " <span class="mono">{proposal.withdrawal.clone()}</span> " — " {shown}
                " — proposed " {when(&proposal.created_at)} " " <Badge status=proposal.status.clone()/>
            </header>
            <p>{proposal.proposal_note.clone()}</p>
            {proposal.decision_note.clone().map(|n| view! { <p>"Decision note: " {n}</p> })}
            {proposal.settle_tx_id.clone().map(|tx| view! { <p>"Booked as " <a href=link(&format!("/transactions/{tx}"))>{tx.clone()}</a></p> })}
            {pending.then(|| view! { <Decide path changed/> })}
        </article>
    }
}

/// A second admin's approval or rejection of the proposal at `path`
/// (`…/approve`, `…/reject`), with a note; `changed` moves on once decided.
#[component]
pub(super) fn Decide(path: String, changed: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let note = RwSignal::new(String::new());
    let decide = Action::new_local(move |verb: &&'static str| {
        let path = format!("{path}/{verb}");
        let body = json!({"note": note.get_untracked()});
        async move {
            let done: ApiResult<serde_json::Value> = api::post(auth, &path, body).await;
            if done.is_ok() {
                changed.update(|n| *n += 1);
            }
            done
        }
    });
    view! {
        <div class="decide">
            <Field label="Note" value=note/>
            <button class="approve" on:click=move |_| { decide.dispatch("approve"); }>"Approve"</button>
            <button class="reject" on:click=move |_| { decide.dispatch("reject"); }>"Reject"</button>
        </div>
        {outcome(decide.value(), "Done.")}
    }
}
