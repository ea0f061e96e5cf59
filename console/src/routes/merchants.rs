//! Merchants: register a business (a till or a paybill) for a verified
//! customer, see every business with its balances, suspend and reinstate;
//! and one business's page: its payments, refunds, webhook endpoints and
//! deliveries, and its API keys by prefix and last use.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use serde_json::json;

use crate::api::{
    self, ApiResult, BusinessBalance, Merchant, MerchantDetail, MerchantKey, MerchantList,
    MerchantPayment, MerchantRefund, WebhookDelivery, WebhookEndpoint,
};
use crate::session::Auth;
use crate::widgets::{link, loaded, money, outcome, short, when, Badge, Field};

#[component]
pub fn MerchantsPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let changed = RwSignal::new(0usize);
    let list = LocalResource::new(move || {
        changed.track();
        api::get::<MerchantList>(auth, "/admin/merchants")
    });
    let (name, phone, kind) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new("till".to_string()),
    );
    let register = Action::new_local(move |_: &()| {
        let body = json!({"name": name.get_untracked(), "owner_phone": phone.get_untracked(), "kind": kind.get_untracked()});
        async move {
            let done: ApiResult<Merchant> = api::post(auth, "/admin/merchants", body).await;
            if done.is_ok() {
                changed.update(|n| *n += 1);
            }
            done
        }
    });
    view! {
        <h1>"Merchants"</h1>
        <section class="actions">
            <h3>"Register a business for a verified customer"</h3>
            <Field label="Business name" value=name/>
            <Field label="Owner phone" value=phone placeholder="0712345678"/>
            <label class="field"><span>"Kind"</span>
                <select on:change:target=move |ev| kind.set(ev.target().value())>
                    <option value="till">"Buy Goods (till)"</option>
                    <option value="paybill">"Paybill"</option>
                </select>
            </label>
            <button id="register-merchant" on:click=move |_| { register.dispatch(()); }>"Register"</button>
            {outcome(register.value(), "Registered.")}
        </section>
        {loaded(list, move |list: MerchantList| {
            if list.merchants.is_empty() {
                return view! { <p class="empty">"No merchants yet."</p> }.into_any();
            }
            view! {
                <table class="merchants">
                    <thead><tr><th>"Number"</th><th>"Kind"</th><th>"Name"</th><th>"Owner"</th><th>"Balances"</th><th>"Status"</th><th>"Since"</th><th></th></tr></thead>
                    <tbody>{list.merchants.into_iter().map(|m| view! { <MerchantRow merchant=m changed/> }).collect_view()}</tbody>
                </table>
            }.into_any()
        })}
    }
}

#[component]
fn MerchantRow(merchant: Merchant, changed: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let active = merchant.status == "ACTIVE";
    let path = format!(
        "/admin/merchants/{}/{}",
        merchant.merchant_id,
        if active { "suspend" } else { "reinstate" }
    );
    let toggle = Action::new_local(move |_: &()| {
        let path = path.clone();
        async move {
            let done: ApiResult<Merchant> = api::post(auth, &path, json!({})).await;
            if done.is_ok() {
                changed.update(|n| *n += 1);
            }
            done
        }
    });
    let balances = holdings(&merchant.balances);
    view! {
        <tr data-merchant=merchant.number.clone()>
            <td class="mono">{merchant.number.clone()}</td>
            <td>{merchant.kind.clone()}</td>
            <td><A href=link(&format!("/merchants/{}", merchant.merchant_id))>{merchant.name.clone()}</A></td>
            <td>{merchant.owner_phone.clone()}</td>
            <td>{balances}</td>
            <td><Badge status=merchant.status.clone()/></td>
            <td>{when(&merchant.created_at)}</td>
            <td>
                <button class="link" on:click=move |_| { toggle.dispatch(()); }>{if active { "Suspend" } else { "Reinstate" }}</button>
                {outcome(toggle.value(), "Saved.")}
            </td>
        </tr>
    }
}

#[component]
pub fn MerchantPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let params = use_params_map();
    let detail = LocalResource::new(move || {
        let id = params.read().get("id").unwrap_or_default();
        async move { api::get::<MerchantDetail>(auth, &format!("/admin/merchants/{id}")).await }
    });
    view! {
        {loaded(detail, move |d: MerchantDetail| {
            let m = d.merchant.clone();
            let balances = holdings(&m.balances);
            view! {
                <h1>{m.name.clone()}</h1>
                <dl class="facts">
                    <dt>{if m.kind == "paybill" { "Paybill" } else { "Till" }}</dt><dd class="mono">{m.number.clone()}</dd>
                    <dt>"Owner"</dt><dd>{m.owner_phone.clone()}</dd>
                    <dt>"Status"</dt><dd><Badge status=m.status.clone()/></dd>
                    <dt>"Balances"</dt><dd>{balances}</dd>
                    <dt>"Since"</dt><dd>{when(&m.created_at)}</dd>
                </dl>
                <h2>"Payments"</h2>
                <Payments payments=d.payments.clone()/>
                <h2>"Refunds"</h2>
                <Refunds refunds=d.refunds.clone()/>
                <h2>"Webhook endpoints"</h2>
                <Endpoints endpoints=d.endpoints.clone()/>
                <h2>"Latest deliveries"</h2>
                <Deliveries deliveries=d.deliveries.clone()/>
                <h2>"API keys"</h2>
                <Keys keys=d.keys.clone()/>
            }
        })}
    }
}

fn tx_link(tx_id: &str) -> impl IntoView {
    let (href, label) = (link(&format!("/transactions/{tx_id}")), short(tx_id));
    view! { <A href=href>{label}</A> }
}

#[component]
fn Payments(payments: Vec<MerchantPayment>) -> impl IntoView {
    if payments.is_empty() {
        return view! { <p class="empty">"No payments yet."</p> }.into_any();
    }
    view! {
        <table class="payments">
            <thead><tr><th>"Payment"</th><th>"When"</th><th>"Customer"</th><th>"Amount"</th><th>"Fee"</th><th>"Account or note"</th></tr></thead>
            <tbody>{payments.into_iter().map(|p| view! {
                <tr>
                    <td class="mono">{tx_link(&p.tx_id)}</td>
                    <td>{when(&p.created_at)}</td>
                    <td>{format!("{} {}", p.customer_name, p.customer_phone)}</td>
                    <td>{money(&p.currency, p.amount)}</td>
                    <td>{money(&p.currency, p.fee)}</td>
                    <td>{p.account.or(p.note).unwrap_or_default()}</td>
                </tr>
            }).collect_view()}</tbody>
        </table>
    }.into_any()
}

#[component]
fn Refunds(refunds: Vec<MerchantRefund>) -> impl IntoView {
    if refunds.is_empty() {
        return view! { <p class="empty">"No refunds."</p> }.into_any();
    }
    view! {
        <table class="refunds">
            <thead><tr><th>"Refund"</th><th>"Of payment"</th><th>"When"</th><th>"Amount"</th><th>"By"</th></tr></thead>
            <tbody>{refunds.into_iter().map(|r| view! {
                <tr>
                    <td class="mono">{tx_link(&r.tx_id)}</td>
                    <td class="mono">{tx_link(&r.payment_id)}</td>
                    <td>{when(&r.created_at)}</td>
                    <td>{money(&r.currency, r.amount)}</td>
                    <td class="mono">{r.requested_by.clone()}</td>
                </tr>
            }).collect_view()}</tbody>
        </table>
    }.into_any()
}

#[component]
fn Endpoints(endpoints: Vec<WebhookEndpoint>) -> impl IntoView {
    if endpoints.is_empty() {
        return view! { <p class="empty">"No webhook endpoints."</p> }.into_any();
    }
    view! {
        <table class="endpoints">
            <thead><tr><th>"URL"</th><th>"Events"</th><th>"Status"</th><th>"Delivered"</th><th>"Pending"</th><th>"Failed"</th><th>"Failing since"</th></tr></thead>
            <tbody>{endpoints.into_iter().map(|e| view! {
                <tr data-webhook=e.webhook_id.clone()>
                    <td class="mono">{e.url.clone()}</td>
                    <td>{e.events.join(", ")}</td>
                    <td><Badge status=e.status.clone()/></td>
                    <td>{e.delivered}</td>
                    <td>{e.pending}</td>
                    <td>{e.failed}</td>
                    <td>{e.failing_since.as_deref().map(when).unwrap_or_default()}</td>
                </tr>
            }).collect_view()}</tbody>
        </table>
    }.into_any()
}

#[component]
fn Deliveries(deliveries: Vec<WebhookDelivery>) -> impl IntoView {
    if deliveries.is_empty() {
        return view! { <p class="empty">"No deliveries."</p> }.into_any();
    }
    view! {
        <table class="deliveries">
            <thead><tr><th>"#"</th><th>"Event"</th><th>"To"</th><th>"Status"</th><th>"Tries"</th><th>"Last answer"</th><th>"When"</th></tr></thead>
            <tbody>{deliveries.into_iter().map(|d| {
                let answer = match (d.last_status_code, d.last_error.clone()) {
                    (Some(code), _) => format!("HTTP {code}"),
                    (None, Some(error)) => error,
                    (None, None) => String::new(),
                };
                view! {
                    <tr>
                        <td>{d.delivery_id}</td>
                        <td><span class="mono">{d.event_type.clone()}</span>" "<span class="mono muted">{d.event_id.clone()}</span></td>
                        <td class="mono">{d.url.clone()}</td>
                        <td><Badge status=d.status.clone()/></td>
                        <td>{d.attempts}</td>
                        <td>{answer}</td>
                        <td>{when(&d.created_at)}</td>
                    </tr>
                }
            }).collect_view()}</tbody>
        </table>
    }.into_any()
}

#[component]
fn Keys(keys: Vec<MerchantKey>) -> impl IntoView {
    if keys.is_empty() {
        return view! { <p class="empty">"No API keys."</p> }.into_any();
    }
    view! {
        <table class="keys">
            <thead><tr><th>"Prefix"</th><th>"Name"</th><th>"Scopes"</th><th>"Created"</th><th>"Last used"</th><th>"Status"</th></tr></thead>
            <tbody>{keys.into_iter().map(|k| view! {
                <tr>
                    <td class="mono">{format!("cpk_{}_…", k.prefix)}</td>
                    <td>{k.name.clone()}</td>
                    <td>{k.scopes.join(", ")}</td>
                    <td>{when(&k.created_at)}</td>
                    <td>{k.last_used_at.as_deref().map(when).unwrap_or_else(|| "never".to_string())}</td>
                    <td><Badge status=if k.revoked_at.is_some() { "REVOKED" } else { "ACTIVE" }/></td>
                </tr>
            }).collect_view()}</tbody>
        </table>
    }.into_any()
}

/// What a business holds, per currency, and how much of it is reserved.
fn holdings(balances: &[BusinessBalance]) -> String {
    let shown: Vec<String> = balances
        .iter()
        .filter(|b| b.balance != 0)
        .map(|b| match b.locked {
            0 => money(&b.currency, b.balance),
            locked => format!(
                "{} ({} reserved)",
                money(&b.currency, b.balance),
                money(&b.currency, locked)
            ),
        })
        .collect();
    if shown.is_empty() {
        "none".to_string()
    } else {
        shown.join(", ")
    }
}
