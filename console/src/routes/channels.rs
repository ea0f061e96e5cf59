//! The channels: M-Pesa deposits and withdrawals (and the payouts settled
//! by hand), and the SMS outbox.

use leptos::prelude::*;

use super::corrections::PayoutCorrections;
use super::payouts::PayoutResolutions;
use crate::api::{self, encode, MpesaTransactions, Outbox};
use crate::session::Auth;
use crate::widgets::{loaded, money, short, when, Badge, Field};

const MPESA_STATUSES: [&str; 8] = [
    "",
    "PENDING",
    "CONFIRMED",
    "COMPLETED",
    "FAILED",
    "EXPIRED",
    "DUPLICATE",
    "SUSPENSE",
];

#[component]
pub fn MpesaPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let status = RwSignal::new(String::new());
    let (withdrawal, changed) = (RwSignal::new(String::new()), RwSignal::new(0usize));
    let found = LocalResource::new(move || {
        changed.track();
        let status = status.get();
        async move {
            api::get::<MpesaTransactions>(
                auth,
                &format!("/admin/mpesa-transactions?status={status}"),
            )
            .await
        }
    });
    view! {
        <h1>"M-Pesa"</h1>
        <label class="field"><span>"Status"</span>
            <select on:change:target=move |ev| status.set(ev.target().value())>
                {MPESA_STATUSES.into_iter().map(|s| view! { <option value=s>{if s.is_empty() { "any" } else { s }}</option> }).collect_view()}
            </select>
        </label>
        {loaded(found, move |m: MpesaTransactions| view! {
            <h2>"Deposits (STK Push)"</h2>
            {if m.deposits.is_empty() { view! { <p class="empty">"No deposits."</p> }.into_any() } else { view! {
                <table class="deposits"><thead><tr><th>"Ref"</th><th>"Asked"</th><th>"Phone"</th><th>"Amount"</th><th>"Status"</th><th>"Receipt"</th><th>"Settled"</th><th>"Note"</th></tr></thead>
                <tbody>{m.deposits.into_iter().map(|d| view! {
                    <tr><td class="mono">{short(&d.reference)}</td><td>{when(&d.created_at)}</td><td>{d.phone}</td><td>{money("KES", d.amount)}</td><td><Badge status=d.status/></td>
                        <td>{d.mpesa_receipt.unwrap_or_default()}</td><td>{d.settled_at.map(|t| when(&t)).unwrap_or_default()}</td>
                        <td>{d.result_desc.unwrap_or_default()}</td></tr>
                }).collect_view()}</tbody></table>
            }.into_any() }}
            <h2>"Withdrawals (B2C)"</h2>
            {if m.withdrawals.is_empty() { view! { <p class="empty">"No withdrawals."</p> }.into_any() } else { view! {
                <table class="withdrawals"><thead><tr><th>"Ref"</th><th>"Asked"</th><th>"Phone"</th><th>"Amount"</th><th>"Fee"</th><th>"Status"</th><th>"Receipt"</th><th>"Settled"</th><th>"Note"</th><th></th></tr></thead>
                <tbody>{m.withdrawals.into_iter().map(|w| { let (reference, pending) = (w.reference.clone(), w.status == "PENDING"); view! {
                    <tr><td class="mono">{short(&w.reference)}</td><td>{when(&w.created_at)}</td><td>{w.phone}</td><td>{money("KES", w.amount)}</td><td>{money("KES", w.fee)}</td>
                        <td><Badge status=w.status/></td><td>{w.mpesa_receipt.unwrap_or_default()}</td>
                        <td>{w.settled_at.map(|t| when(&t)).unwrap_or_default()}</td><td>{w.result_desc.unwrap_or_default()}</td>
                        <td>{pending.then(|| view! {
                            <button class="link" on:click=move |_| withdrawal.set(reference.clone())>"Settle by hand"</button>
                        })}</td></tr>
                }}).collect_view()}</tbody></table>
            }.into_any() }}
        })}
        <PayoutResolutions withdrawal changed/>
        <PayoutCorrections changed/>
    }
}

#[component]
pub fn SmsPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let (phone, shown) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let outbox = LocalResource::new(move || {
        let to = shown.get();
        async move {
            api::get::<Outbox>(
                auth,
                &format!("/admin/sms-outbox?limit=100&to={}", encode(to.trim())),
            )
            .await
        }
    });
    let filter = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        shown.set(phone.get_untracked());
    };
    view! {
        <h1>"SMS outbox"</h1>
        <form class="toolbar" on:submit=filter>
            <Field label="To phone" value=phone kind="search"/>
            <button type="submit">"Filter"</button>
        </form>
        {loaded(outbox, |o: Outbox| {
            if o.messages.is_empty() {
                return view! { <p class="empty">"No messages."</p> }.into_any();
            }
            view! {
                <table class="sms"><thead><tr><th>"Queued"</th><th>"To"</th><th>"Message"</th><th>"Status"</th><th>"Tries"</th><th>"Delivered"</th></tr></thead>
                <tbody>{o.messages.into_iter().map(|m| view! {
                    <tr><td>{when(&m.created_at)}</td><td>{m.to}</td><td class="message">{m.message}</td>
                        <td><Badge status=m.status/>{m.failure_reason.map(|r| view! { <small>{r}</small> })}</td>
                        <td>{m.attempts}</td><td>{m.delivered_at.map(|t| when(&t)).unwrap_or_default()}</td></tr>
                }).collect_view()}</tbody></table>
            }.into_any()
        })}
    }
}
