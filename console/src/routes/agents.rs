//! Agents and their float, and treasury issuance: one admin proposes float
//! for an agent who paid by bank transfer, another approves or rejects it.
//! The server refuses the proposer's own decision; the console shows why.

use leptos::prelude::*;
use serde_json::json;

use crate::api::{self, Agent, AgentList, ApiResult, Issuance, IssuanceList};
use crate::session::Auth;
use crate::widgets::{link, loaded, money, outcome, when, Badge, Field};

#[component]
pub fn AgentsPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let changed = RwSignal::new(0usize);
    let list = LocalResource::new(move || {
        changed.track();
        api::get::<AgentList>(auth, "/admin/agents")
    });
    let phone = RwSignal::new(String::new());
    let appoint = Action::new_local(move |_: &()| {
        let body = json!({"phone": phone.get_untracked()});
        async move {
            let done: ApiResult<Agent> = api::post(auth, "/admin/agents", body).await;
            if done.is_ok() {
                changed.update(|n| *n += 1);
            }
            done
        }
    });
    view! {
        <h1>"Agents"</h1>
        <section class="actions">
            <h3>"Appoint a verified customer"</h3>
            <Field label="Customer phone" value=phone placeholder="0712345678"/>
            <button id="appoint-agent" on:click=move |_| { appoint.dispatch(()); }>"Appoint"</button>
            {outcome(appoint.value(), "Appointed.")}
        </section>
        {loaded(list, move |list: AgentList| {
            if list.agents.is_empty() {
                return view! { <p class="empty">"No agents yet."</p> }.into_any();
            }
            view! {
                <table class="agents">
                    <thead><tr><th>"Agent"</th><th>"Name"</th><th>"Phone"</th><th>"Float"</th><th>"Status"</th><th>"Since"</th><th></th></tr></thead>
                    <tbody>{list.agents.into_iter().map(|a| view! { <AgentRow agent=a changed/> }).collect_view()}</tbody>
                </table>
            }.into_any()
        })}
    }
}

#[component]
fn AgentRow(agent: Agent, changed: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let active = agent.status == "ACTIVE";
    let path = format!(
        "/admin/agents/{}/{}",
        agent.agent_number,
        if active { "suspend" } else { "reinstate" }
    );
    let toggle = Action::new_local(move |_: &()| {
        let path = path.clone();
        async move {
            let done: ApiResult<Agent> = api::post(auth, &path, json!({})).await;
            if done.is_ok() {
                changed.update(|n| *n += 1);
            }
            done
        }
    });
    let float: Vec<String> = agent
        .float
        .iter()
        .filter(|f| f.balance != 0)
        .map(|f| money(&f.currency, f.balance))
        .collect();
    view! {
        <tr data-agent=agent.agent_number.clone()>
            <td class="mono">{agent.agent_number.clone()}</td>
            <td>{agent.name.clone()}</td>
            <td>{agent.phone.clone()}</td>
            <td>{if float.is_empty() { "none".to_string() } else { float.join(", ") }}</td>
            <td><Badge status=agent.status.clone()/></td>
            <td>{when(&agent.created_at)}</td>
            <td>
                <button class="link" on:click=move |_| { toggle.dispatch(()); }>{if active { "Suspend" } else { "Reinstate" }}</button>
                {outcome(toggle.value(), "Saved.")}
            </td>
        </tr>
    }
}

#[component]
pub fn TreasuryPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let status = RwSignal::new("PENDING".to_string());
    let changed = RwSignal::new(0usize);
    let list = LocalResource::new(move || {
        changed.track();
        let status = status.get();
        async move {
            api::get::<IssuanceList>(auth, &format!("/admin/treasury/issuances?status={status}"))
                .await
        }
    });
    view! {
        <h1>"Treasury"</h1>
        <p>"E-money enters only here: an agent buys float by bank transfer, one admin proposes the issuance, another approves it."</p>
        <Propose changed/>
        <div class="tabs">
            {["PENDING", "APPROVED", "REJECTED"].into_iter().map(|s| view! {
                <button class:active=move || status.get() == s on:click=move |_| status.set(s.to_string())>{s}</button>
            }).collect_view()}
        </div>
        {loaded(list, move |list: IssuanceList| {
            if list.issuances.is_empty() {
                return view! { <p class="empty">"No issuances here."</p> }.into_any();
            }
            list.issuances.into_iter().map(|i| view! { <IssuanceCard issuance=i changed/> }).collect_view().into_any()
        })}
    }
}

#[component]
fn Propose(changed: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let fields = [(); 5].map(|_| RwSignal::new(String::new()));
    let [phone, amount, currency, reference, note] = fields;
    let currencies = use_context::<crate::widgets::Currencies>();
    let propose = Action::new_local(move |_: &()| {
        let currency_code = currency.get_untracked().trim().to_ascii_uppercase();
        let exponent = currencies.map_or(2, |c| c.exponent(&currency_code));
        let minor =
            chainpay_core::ussd::parse_amount(amount.get_untracked().trim(), exponent).unwrap_or(0);
        let body = json!({"agent_phone": phone.get_untracked(), "amount": minor, "currency": currency_code,
                          "reference": reference.get_untracked(), "note": note.get_untracked()});
        async move {
            let done: ApiResult<Issuance> =
                api::post(auth, "/admin/treasury/issuances", body).await;
            if done.is_ok() {
                changed.update(|n| *n += 1);
            }
            done
        }
    });
    view! {
        <section class="actions">
            <h3>"Propose an issuance"</h3>
            <Field label="Agent phone" value=phone/>
            <Field label="Amount" value=amount placeholder="100000.00"/>
            <Field label="Currency" value=currency placeholder="KES"/>
            <Field label="Bank reference" value=reference/>
            <Field label="Proposal note" value=note/>
            <button id="propose-issuance" on:click=move |_| { propose.dispatch(()); }>"Propose"</button>
            {outcome(propose.value(), "Proposed; another admin must approve it.")}
        </section>
    }
}

#[component]
fn IssuanceCard(issuance: Issuance, changed: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let note = RwSignal::new(String::new());
    let id = issuance.id.clone();
    let decide = Action::new_local(move |approve: &bool| {
        let path = format!(
            "/admin/treasury/issuances/{id}/{}",
            if *approve { "approve" } else { "reject" }
        );
        let body = json!({"note": note.get_untracked()});
        async move {
            let done: ApiResult<Issuance> = api::post(auth, &path, body).await;
            if done.is_ok() {
                changed.update(|n| *n += 1);
            }
            done
        }
    });
    let pending = issuance.status == "PENDING";
    view! {
        <article class="request" data-issuance=issuance.id.clone()>
            <header>
                <strong>{money(&issuance.currency, issuance.amount)}</strong>
                " for agent " {issuance.agent_number.clone()} " " {issuance.agent_name.clone()} " (" {issuance.agent_phone.clone()} ")"
                " on " {when(&issuance.created_at)} " " <Badge status=issuance.status.clone()/>
            </header>
            <p>"Bank reference " <span class="mono">{issuance.reference.clone()}</span></p>
            {issuance.proposal_note.clone().map(|n| view! { <p>"Proposer's note: " {n}</p> })}
            {issuance.decision_note.clone().map(|n| view! { <p>"Decision note: " {n}</p> })}
            {issuance.tx_id.clone().map(|tx| view! { <p>"Posted as " <a href=link(&format!("/transactions/{tx}"))>{tx.clone()}</a></p> })}
            {pending.then(|| view! {
                <div class="decide">
                    <label class="field"><span>"Note"</span>
                        <input prop:value=move || note.get() on:input:target=move |ev| note.set(ev.target().value())/></label>
                    <button class="approve" on:click=move |_| { decide.dispatch(true); }>"Approve"</button>
                    <button class="reject" on:click=move |_| { decide.dispatch(false); }>"Reject"</button>
                </div>
            })}
            {outcome(decide.value(), "Decided.")}
        </article>
    }
}
