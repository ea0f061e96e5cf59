//! Looking up a transaction, and a transaction's page with its parties,
//! fee, signature, block and inclusion proof.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::api::{self, encode, Tx, UserList};
use crate::session::Auth;
use crate::widgets::{link, loaded, money, short, when, Badge, Field};

/// Transactions as a table, each linking to its page.
#[component]
pub fn TxTable(transactions: Vec<Tx>) -> impl IntoView {
    if transactions.is_empty() {
        return view! { <p class="empty">"No transactions."</p> }.into_any();
    }
    view! {
        <table class="transactions">
            <thead><tr><th>"When"</th><th>"Type"</th><th>"Amount"</th><th>"Fee"</th><th>"From"</th><th>"To"</th><th>"Status"</th><th>"Id"</th></tr></thead>
            <tbody>{transactions.into_iter().map(|tx| {
                let href = link(&format!("/transactions/{}", tx.tx_id));
                view! {
                    <tr>
                        <td>{when(&tx.created_at)}</td>
                        <td>{tx.tx_type.clone()}</td>
                        <td>{money(&tx.currency, tx.amount)}</td>
                        <td>{money(&tx.currency, tx.fee)}</td>
                        <td>{tx.from_phone.clone().unwrap_or_default()}</td>
                        <td>{tx.to_phone.clone().unwrap_or_default()}</td>
                        <td><Badge status=tx.status.clone()/></td>
                        <td><A href=href>{short(&tx.tx_id)}</A></td>
                    </tr>
                }
            }).collect_view()}</tbody>
        </table>
    }.into_any()
}

#[component]
pub fn TransactionsPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let navigate = use_navigate();
    let (id, phone) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let problem = RwSignal::new(None::<String>);
    let by_id = {
        let navigate = navigate.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            navigate(
                &format!("/transactions/{}", id.get_untracked().trim()),
                Default::default(),
            );
        }
    };
    let by_phone = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (navigate, wanted) = (navigate.clone(), phone.get_untracked());
        leptos::task::spawn_local(async move {
            match api::get::<UserList>(auth, &format!("/admin/users?q={}", encode(wanted.trim())))
                .await
            {
                Ok(list) => match list.users.first() {
                    Some(user) => navigate(&format!("/users/{}", user.user_id), Default::default()),
                    None => problem.set(Some(format!("No user has the phone {wanted}."))),
                },
                Err(error) => problem.set(Some(error.detail)),
            }
        });
    };
    view! {
        <h1>"Transactions"</h1>
        <form class="toolbar" on:submit=by_id>
            <Field label="Transaction id" value=id/>
            <button type="submit">"Open"</button>
        </form>
        <form class="toolbar" on:submit=by_phone>
            <Field label="Phone" value=phone placeholder="0700000001"/>
            <button type="submit">"Their transactions"</button>
        </form>
        {move || problem.get().map(|text| view! { <p class="problem" role="alert">{text}</p> })}
    }
}

#[component]
pub fn TransactionPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let params = use_params_map();
    let tx = LocalResource::new(move || {
        let id = params.read().get("id").unwrap_or_default();
        async move { api::get::<Tx>(auth, &format!("/transactions/{id}")).await }
    });
    view! {
        <h1>"Transaction"</h1>
        {loaded(tx, |tx: Tx| {
            let proof = link(&format!("/chain/proof/{}", tx.tx_id));
            view! {
                <dl class="facts">
                    <dt>"Id"</dt><dd class="mono">{tx.tx_id.clone()}</dd>
                    <dt>"Type"</dt><dd>{tx.tx_type.clone()}</dd>
                    <dt>"Status"</dt><dd><Badge status=tx.status.clone()/></dd>
                    <dt>"Amount"</dt><dd>{money(&tx.currency, tx.amount)}</dd>
                    <dt>"Fee"</dt><dd>{money(&tx.currency, tx.fee)}</dd>
                    {tx.to_currency.clone().map(|to| view! {
                        <dt>"Converted"</dt>
                        <dd>{format!("{} at {}", money(&to, tx.converted_amount.unwrap_or(0)), tx.rate.clone().unwrap_or_default())}</dd>
                    })}
                    <dt>"From"</dt><dd>{tx.from_phone.clone().unwrap_or_else(|| "—".into())}</dd>
                    <dt>"To"</dt><dd>{tx.to_phone.clone().unwrap_or_else(|| "—".into())}</dd>
                    <dt>"Note"</dt><dd>{tx.note.clone().unwrap_or_default()}</dd>
                    <dt>"When"</dt><dd>{when(&tx.created_at)}</dd>
                    <dt>"Signature"</dt><dd class="mono">{tx.signature.clone()}</dd>
                    <dt>"Block"</dt>
                    <dd>{match tx.block_index {
                        Some(index) => view! {
                            <A href=link(&format!("/chain/blocks/{index}"))>{format!("#{index}")}</A>
                            " · "
                            <A href=proof>"inclusion proof"</A>
                        }.into_any(),
                        None => view! { <span>"not sealed yet"</span> }.into_any(),
                    }}</dd>
                </dl>
            }
        })}
    }
}
