//! Merchants: register a business (a till or a paybill) for a verified
//! customer, see every business with its balances, suspend and reinstate.

use leptos::prelude::*;
use serde_json::json;

use crate::api::{self, ApiResult, Merchant, MerchantList};
use crate::session::Auth;
use crate::widgets::{loaded, money, outcome, when, Badge, Field};

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
    let balances: Vec<String> = merchant
        .balances
        .iter()
        .filter(|b| b.balance != 0)
        .map(|b| money(&b.currency, b.balance))
        .collect();
    view! {
        <tr data-merchant=merchant.number.clone()>
            <td class="mono">{merchant.number.clone()}</td>
            <td>{merchant.kind.clone()}</td>
            <td>{merchant.name.clone()}</td>
            <td>{merchant.owner_phone.clone()}</td>
            <td>{if balances.is_empty() { "none".to_string() } else { balances.join(", ") }}</td>
            <td><Badge status=merchant.status.clone()/></td>
            <td>{when(&merchant.created_at)}</td>
            <td>
                <button class="link" on:click=move |_| { toggle.dispatch(()); }>{if active { "Suspend" } else { "Reinstate" }}</button>
                {outcome(toggle.value(), "Saved.")}
            </td>
        </tr>
    }
}
