//! Reconciliation: the runs (scheduled, on demand and from the command
//! line) with every item they found, a button to run all checks now, and
//! M-Pesa money held in suspense, resolved by one admin's proposal and a
//! second admin's approval (the server refuses the proposer's own).

use leptos::prelude::*;
use serde_json::{json, Value};

use crate::api::{self, ApiResult, ReconciliationRun, RunList, SuspenseItem, SuspenseList};
use crate::session::Auth;
use crate::widgets::{link, loaded, money, outcome, when, Badge, Field};

#[component]
pub fn ReconciliationPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let changed = RwSignal::new(0usize);
    let runs = LocalResource::new(move || {
        changed.track();
        api::get::<RunList>(auth, "/admin/reconciliation/runs?limit=20")
    });
    let start = Action::new_local(move |_: &()| async move {
        let run: ApiResult<ReconciliationRun> =
            api::post(auth, "/admin/reconciliation/runs", json!({})).await;
        if run.is_ok() {
            changed.update(|n| *n += 1);
        }
        run
    });
    view! {
        <h1>"Reconciliation"</h1>
        <p>"Every check: ledger balances against postings, the transaction chain, the audit chain, M-Pesa deposits, callbacks and payouts, the M-Pesa float against Daraja's Account Balance, and SMS stuck in the outbox."</p>
        <button id="run-reconciliation" on:click=move |_| { start.dispatch(()); }>"Run all checks now"</button>
        {move || start.pending().get().then(|| view! { <p class="loading">"Reconciling…"</p> })}
        {move || start.value().get().map(|result| match result {
            Ok(run) => view! { <RunDetail run/> }.into_any(),
            Err(error) => view! { <p class="problem">{error.detail}</p> }.into_any(),
        })}
        <h2>"Runs"</h2>
        {loaded(runs, |list: RunList| view! {
            <table class="runs"><thead><tr><th>"Run"</th><th>"Started"</th><th>"By"</th><th>"Result"</th></tr></thead>
            <tbody>{list.runs.into_iter().map(|r| view! {
                <tr><td><RunLink id=r.id/></td><td>{when(&r.started_at)}</td><td>{r.trigger}</td>
                    <td>{match (&r.finished_at, r.clean) {
                        (None, _) => "running".to_owned(),
                        (Some(_), true) => "clean".to_owned(),
                        (Some(_), false) => format!("{} discrepancies", r.discrepancies),
                    }}</td></tr>
            }).collect_view()}</tbody></table>
        })}
        <Suspense changed/>
    }
}

#[component]
fn RunLink(id: i64) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let open = Action::new_local(move |_: &()| async move {
        api::get::<ReconciliationRun>(auth, &format!("/admin/reconciliation/runs/{id}")).await
    });
    view! {
        <button class="link" on:click=move |_| { open.dispatch(()); }>{format!("#{id}")}</button>
        {move || open.value().get().map(|result| match result {
            Ok(run) => view! { <RunDetail run/> }.into_any(),
            Err(error) => view! { <p class="problem">{error.detail}</p> }.into_any(),
        })}
    }
}

#[component]
fn RunDetail(run: ReconciliationRun) -> impl IntoView {
    let verdict = if run.clean {
        format!("Run #{}: clean.", run.id)
    } else {
        format!("Run #{}: {} discrepancies.", run.id, run.discrepancies)
    };
    let checks: Vec<(String, Value)> = run
        .checks
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    view! {
        <div class="run" data-run=run.id>
            <p class=if run.clean { "done" } else { "problem" } id="reconciliation-verdict">{verdict}</p>
            <ul class="checks">{checks.into_iter().map(|(name, check)| view! {
                <li><strong>{name}</strong>" " <span class="mono">{check["looked_at"].to_string()}</span></li>
            }).collect_view()}</ul>
            {(!run.items.is_empty()).then(|| view! {
                <table class="items"><thead><tr><th>"Check"</th><th>"About"</th><th>"Detail"</th></tr></thead>
                <tbody>{run.items.into_iter().map(|i| view! {
                    <tr class="item" data-item=i.id><td>{i.check}</td><td>{i.subject}</td><td class="mono">{i.detail.to_string()}</td></tr>
                }).collect_view()}</tbody></table>
            })}
        </div>
    }
}

#[component]
fn Suspense(changed: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let status = RwSignal::new("OPEN".to_string());
    let list = LocalResource::new(move || {
        changed.track();
        let status = status.get();
        async move {
            api::get::<SuspenseList>(
                auth,
                &format!("/admin/reconciliation/suspense?status={status}"),
            )
            .await
        }
    });
    view! {
        <h2>"Money in suspense"</h2>
        <p>"M-Pesa payments that arrived after their deposit expired, or did not match it. One admin proposes crediting the customer or refunding the payer; another approves."</p>
        <div class="tabs">
            {["OPEN", "PROPOSED", "RESOLVED"].into_iter().map(|s| view! {
                <button class:active=move || status.get() == s on:click=move |_| status.set(s.to_string())>{s}</button>
            }).collect_view()}
        </div>
        {loaded(list, move |list: SuspenseList| {
            if list.items.is_empty() {
                return view! { <p class="empty">"Nothing here."</p> }.into_any();
            }
            list.items.into_iter().map(|item| view! { <SuspenseCard item changed/> }).collect_view().into_any()
        })}
    }
}

#[component]
fn SuspenseCard(item: SuspenseItem, changed: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let (note, reference) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let (id, version) = (item.id, item.proposal_version);
    let act = Action::new_local(move |action: &&'static str| {
        let (path, body) = match *action {
            "approve" => (
                "approve",
                json!({"note": note.get_untracked(), "proposal_version": version}),
            ),
            "reject" => ("reject", json!({"note": note.get_untracked()})),
            resolution => (
                "propose",
                json!({"resolution": resolution, "note": note.get_untracked(),
                                             "mpesa_reference": Some(reference.get_untracked()).filter(|r| !r.trim().is_empty())}),
            ),
        };
        let path = format!("/admin/reconciliation/items/{id}/{path}");
        async move {
            let done: ApiResult<SuspenseItem> = api::post(auth, &path, body).await;
            if done.is_ok() {
                changed.update(|n| *n += 1);
            }
            done
        }
    });
    let amount = item.detail["amount"].as_i64().unwrap_or_default();
    let reason = match item.detail["reason"].as_str() {
        Some("late") => "arrived after the deposit expired",
        Some("mismatch") => "did not match the request",
        _ => "the customer could not receive it",
    };
    let (open, proposed) = (item.status == "OPEN", item.status == "PROPOSED");
    view! {
        <article class="request" data-suspense=item.id>
            <header>
                <strong>{money("KES", amount)}</strong> " — " {reason} " — M-Pesa "
                <span class="mono">{item.detail["receipt"].as_str().unwrap_or("-").to_owned()}</span>
                " on " {when(&item.created_at)} " " <Badge status=item.status.clone()/>
            </header>
            <p>"Deposit " <span class="mono">{item.subject.clone()}</span></p>
            {item.resolution.clone().map(|r| view! { <p>"Proposed: " {r} " — " {item.proposal_note.clone().unwrap_or_default()}</p> })}
            {item.resolution_note.clone().map(|n| view! { <p>"Approver's note: " {n}</p> })}
            {item.tx_id.clone().map(|tx| view! { <p>"Booked as " <a href=link(&format!("/transactions/{tx}"))>{tx.clone()}</a></p> })}
            {(open || proposed).then(|| view! {
                <div class="decide">
                    <Field label="Note" value=note/>
                    {open.then(|| view! {
                        <Field label="M-Pesa reversal receipt (refund)" value=reference/>
                        <button class="approve" on:click=move |_| { act.dispatch("credit"); }>"Propose credit"</button>
                        <button class="reject" on:click=move |_| { act.dispatch("refund"); }>"Propose refund"</button>
                    })}
                    {proposed.then(|| view! {
                        <button class="approve" on:click=move |_| { act.dispatch("approve"); }>"Approve"</button>
                        <button class="reject" on:click=move |_| { act.dispatch("reject"); }>"Send back"</button>
                    })}
                </div>
            })}
            {outcome(act.value(), "Done.")}
        </article>
    }
}
