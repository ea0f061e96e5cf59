//! Vouchers by status (never their codes), and a signed voucher checked
//! here in the browser with core's `voucher::verify` against the published
//! voucher key, as anyone holding one could.

use chainpay_core::voucher;
use leptos::prelude::*;

use crate::api::{self, VoucherAuthority, VoucherList};
use crate::session::Auth;
use crate::widgets::{loaded, money, when, Badge};

const STATUSES: [&str; 4] = ["ACTIVE", "REDEEMED", "CANCELLED", "EXPIRED"];

#[component]
pub fn VouchersPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let status = RwSignal::new("ACTIVE".to_string());
    let list = LocalResource::new(move || {
        let status = status.get();
        async move { api::get::<VoucherList>(auth, &format!("/admin/vouchers?status={status}")).await }
    });
    let signed = RwSignal::new(String::new());
    view! {
        <h1>"Vouchers"</h1>
        <Verifier signed/>
        <div class="tabs">
            {STATUSES.into_iter().map(|s| view! {
                <button class:active=move || status.get() == s on:click=move |_| status.set(s.to_string())>{s}</button>
            }).collect_view()}
        </div>
        {loaded(list, move |list: VoucherList| {
            if list.vouchers.is_empty() {
                return view! { <p class="empty">"No vouchers in this status."</p> }.into_any();
            }
            view! {
                <table class="vouchers">
                    <thead><tr><th>"Serial"</th><th>"Code ends"</th><th>"Amount"</th><th>"Fee"</th><th>"Bought by"</th><th>"Redeemed by"</th><th>"Status"</th><th>"Bought"</th><th>"Expires"</th><th></th></tr></thead>
                    <tbody>{list.vouchers.into_iter().map(|v| view! {
                        <tr>
                            <td>{v.serial}</td><td class="mono">{v.code_hint.clone()}</td>
                            <td>{money(&v.currency, v.amount)}</td><td>{money(&v.currency, v.fee)}</td>
                            <td>{v.issuer_phone.clone()}</td><td>{v.redeemed_by_phone.clone().unwrap_or_default()}</td>
                            <td><Badge status=v.status.clone()/></td><td>{when(&v.created_at)}</td><td>{when(&v.expires_at)}</td>
                            <td><button class="link" on:click={
                                let form = v.signed.clone();
                                move |_| signed.set(form.clone())
                            }>"Check signature"</button></td>
                        </tr>
                    }).collect_view()}</tbody>
                </table>
            }.into_any()
        })}
    }
}

/// Checks the signed form in `signed` (typed, or picked from the list).
#[component]
fn Verifier(signed: RwSignal<String>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let key = LocalResource::new(move || api::get::<VoucherAuthority>(auth, "/vouchers/authority"));
    let verdict = RwSignal::new(None::<Result<String, String>>);
    let check = move |_| {
        let Some(Ok(authority)) = key.get_untracked() else {
            verdict.set(Some(Err("the voucher key could not be read".into())));
            return;
        };
        verdict.set(Some(
            match voucher::verify(&signed.get_untracked(), &authority.public_key) {
                Ok(terms) => Ok(format!(
                    "Genuine: voucher {} for {}, expires {}.",
                    terms.serial,
                    money(&terms.currency, terms.amount_minor),
                    terms.expires_at.format("%Y-%m-%d %H:%M UTC")
                )),
                Err(error) => Err(format!("Not genuine: {error}.")),
            },
        ));
    };
    view! {
        <section class="actions">
            <h3>"Check a signed voucher (in the browser)"</h3>
            <label class="field wide"><span>"Signed voucher (cpv1.…)"</span>
                <textarea id="signed-voucher" prop:value=move || signed.get() on:input:target=move |ev| signed.set(ev.target().value())></textarea>
            </label>
            <button id="verify-voucher" on:click=check>"Verify"</button>
            {move || verdict.get().map(|v| match v {
                Ok(text) => view! { <p class="done" id="voucher-verdict">{text}</p> }.into_any(),
                Err(text) => view! { <p class="problem" id="voucher-verdict">{text}</p> }.into_any(),
            })}
        </section>
    }
}
