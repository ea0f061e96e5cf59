//! Payouts M-Pesa's results contradict (paid after a refund, failed after
//! operators settled them paid, paid under another receipt): one admin
//! proposes to correct the payout as M-Pesa says or to dismiss the result,
//! and a second approves (the server refuses the proposer and the payout's
//! customer).

use leptos::prelude::*;
use serde_json::json;

use super::payouts::Decide;
use crate::api::{
    self, ApiResult, Contradiction, ContradictionList, PayoutCorrection, PayoutCorrectionList,
};
use crate::session::Auth;
use crate::widgets::{link, loaded, money, outcome, when, Badge, Field};

/// The contradictions still open, and the proposals to settle them;
/// `changed` moves on with every proposal and decision made here.
#[component]
pub fn PayoutCorrections(changed: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let status = RwSignal::new("PENDING".to_string());
    let open = LocalResource::new(move || {
        changed.track();
        async move { api::get::<ContradictionList>(auth, "/admin/mpesa/contradictions").await }
    });
    let proposals = LocalResource::new(move || {
        changed.track();
        let status = status.get();
        async move {
            api::get::<PayoutCorrectionList>(
                auth,
                &format!("/admin/mpesa/corrections?status={status}"),
            )
            .await
        }
    });
    view! {
        <section class="corrections">
        <h2>"Payouts M-Pesa contradicts"</h2>
        <p>"A result of M-Pesa's that contradicts how a payout was settled moves nothing by itself. Check it against M-Pesa's statement: one admin proposes to correct the payout as M-Pesa says, or to dismiss the result; another approves."</p>
        {loaded(open, move |list: ContradictionList| {
            if list.contradictions.is_empty() {
                return view! { <p class="empty">"No contradictions."</p> }.into_any();
            }
            let shown = list.contradictions.len();
            let more = (list.open > shown as i64).then(|| view! {
                <p class="more">{format!("The oldest {shown} of {} open; settle these to see the rest.", list.open)}</p>
            });
            view! {
                {more}
                {list.contradictions.into_iter().map(|found| view! { <ContradictionCard found changed/> }).collect_view()}
            }.into_any()
        })}
        <h3>"Corrections"</h3>
        <div class="tabs">
            {["PENDING", "APPROVED", "REJECTED"].into_iter().map(|s| view! {
                <button class:active=move || status.get() == s on:click=move |_| status.set(s.to_string())>{s}</button>
            }).collect_view()}
        </div>
        {loaded(proposals, move |list: PayoutCorrectionList| {
            if list.corrections.is_empty() {
                return view! { <p class="empty">"Nothing here."</p> }.into_any();
            }
            list.corrections.into_iter().map(|proposal| view! { <CorrectionCard proposal changed/> }).collect_view().into_any()
        })}
        </section>
    }
}

/// What correcting a contradiction of `kind` does.
fn correction(kind: &str) -> &'static str {
    match kind {
        "PAID AFTER REFUND" => "take amount and fee back from the customer",
        "FAILED AFTER PAID" => "give amount and fee back to the customer",
        _ => "record M-Pesa's receipt on the payout",
    }
}

#[component]
fn ContradictionCard(found: Contradiction, changed: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let note = RwSignal::new(String::new());
    let id = found.id;
    let propose = Action::new_local(move |action: &&'static str| {
        let body = json!({"action": action, "note": note.get_untracked()});
        async move {
            let path = format!("/admin/mpesa/contradictions/{id}/corrections");
            let done: ApiResult<PayoutCorrection> = api::post(auth, &path, body).await;
            if done.is_ok() {
                changed.update(|n| *n += 1);
            }
            done
        }
    });
    let said = match (found.kind.as_str(), &found.receipt) {
        ("FAILED AFTER PAID", _) => format!(
            "M-Pesa says not paid: {}",
            found.result["desc"].as_str().unwrap_or("no reason given")
        ),
        (_, Some(receipt)) => format!("M-Pesa says paid, receipt {receipt}"),
        (_, None) => "M-Pesa says paid, naming no receipt".to_owned(),
    };
    let recorded = found
        .recorded_receipt
        .clone()
        .unwrap_or_else(|| "none".into());
    let (waiting, corrects) = (found.pending_correction.is_some(), correction(&found.kind));
    view! {
        <article class="contradiction" data-payout=found.withdrawal.clone()>
            <header>
                {found.kind.clone()} " — withdrawal " <span class="mono">{found.withdrawal.clone()}</span>
                " of " {money("KES", found.amount)} " (fee " {money("KES", found.fee)} "), now " <Badge status=found.status.clone()/>
                " — " {when(&found.found_at)}
            </header>
            <p>{found.problem.clone()}</p>
            <p>{said} "; receipt recorded: " {recorded}</p>
            {if waiting {
                view! { <p>"A correction is waiting for a second admin."</p> }.into_any()
            } else {
                view! {
                    <div class="decide">
                        <Field label="Statement note" value=note/>
                        <button class="approve" on:click=move |_| { propose.dispatch("CORRECT"); }>
                            "Propose: " {corrects}
                        </button>
                        <button class="reject" on:click=move |_| { propose.dispatch("DISMISS"); }>"Propose: dismiss"</button>
                    </div>
                }.into_any()
            }}
            {outcome(propose.value(), "Proposed; another admin must approve it.")}
        </article>
    }
}

#[component]
fn CorrectionCard(proposal: PayoutCorrection, changed: RwSignal<usize>) -> impl IntoView {
    let what = if proposal.action == "CORRECT" {
        correction(&proposal.kind)
    } else {
        "dismiss M-Pesa's result: the settlement stands"
    };
    let pending = proposal.status == "PENDING";
    let path = format!("/admin/mpesa/corrections/{}", proposal.id);
    view! {
        <article class="request" data-payout=proposal.withdrawal.clone()>
            <header>
                {proposal.kind.clone()} " — withdrawal " <span class="mono">{proposal.withdrawal.clone()}</span> " — " {what}
                " — proposed " {when(&proposal.created_at)} " " <Badge status=proposal.status.clone()/>
            </header>
            <p>{proposal.proposal_note.clone()}</p>
            {proposal.decision_note.clone().map(|n| view! { <p>"Decision note: " {n}</p> })}
            {proposal.correction_tx_id.clone().map(|tx| view! { <p>"Booked as " <a href=link(&format!("/transactions/{tx}"))>{tx.clone()}</a></p> })}
            {pending.then(|| view! { <Decide path changed/> })}
        </article>
    }
}
