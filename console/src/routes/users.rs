//! Finding a user, and a user's page: wallets, recent transactions, and the
//! operator's actions (KYC status, suspension, unlocking).

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use serde_json::json;

use super::TxTable;
use crate::api::{self, encode, ApiResult, UserDetail, UserList, UserSummary};
use crate::session::Auth;
use crate::widgets::{link, loaded, money, outcome, when, Badge, Field};

#[component]
pub fn UsersPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let query = RwSignal::new(String::new());
    let searched = RwSignal::new(String::new());
    let users = LocalResource::new(move || {
        let q = searched.get();
        async move { api::get::<UserList>(auth, &format!("/admin/users?q={}", encode(&q))).await }
    });
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        searched.set(query.get_untracked());
    };
    view! {
        <h1>"Users"</h1>
        <form class="toolbar" on:submit=search>
            <Field label="Phone or name" value=query kind="search"/>
            <button type="submit">"Search"</button>
        </form>
        {loaded(users, |list: UserList| {
            if list.users.is_empty() {
                return view! { <p class="empty">"No user matches."</p> }.into_any();
            }
            view! {
                <table class="users">
                    <thead><tr><th>"Name"</th><th>"Phone"</th><th>"Role"</th><th>"KYC"</th><th>"Status"</th></tr></thead>
                    <tbody>{list.users.into_iter().map(user_row).collect_view()}</tbody>
                </table>
            }.into_any()
        })}
    }
}

fn user_row(user: UserSummary) -> impl IntoView {
    let href = link(&format!("/users/{}", user.user_id));
    view! {
        <tr>
            <td><A href=href>{user.name}</A></td>
            <td>{user.phone}</td>
            <td>{user.role}</td>
            <td><Badge status=user.kyc_status/></td>
            <td>{if user.suspended { view! { <Badge status="SUSPENDED"/> }.into_any() } else { view! { <Badge status="ACTIVE"/> }.into_any() }}</td>
        </tr>
    }
}

#[component]
pub fn UserPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let changes = RwSignal::new(0usize);
    let detail = LocalResource::new(move || {
        changes.track();
        let id = id();
        async move { api::get::<UserDetail>(auth, &format!("/admin/users/{id}")).await }
    });
    view! {
        {loaded(detail, move |d: UserDetail| view! {
            <h1>{d.user.name.clone()}</h1>
            <Profile detail=d.clone()/>
            <Actions user=d.user.clone() changes/>
            <h2>"Identity documents"</h2>
            <Documents documents=d.documents.clone()/>
            <h2>"Wallets"</h2>
            <table><thead><tr><th>"Currency"</th><th>"Balance"</th><th>"Reserved"</th></tr></thead>
                <tbody>{d.wallets.iter().map(|w| view! {
                    <tr><td>{w.currency.clone()}</td><td>{money(&w.currency, w.balance)}</td><td>{money(&w.currency, w.locked)}</td></tr>
                }).collect_view()}</tbody></table>
            <h2>"Recent transactions"</h2>
            <TxTable transactions=d.transactions.clone()/>
        })}
    }
}

#[component]
fn Profile(detail: UserDetail) -> impl IntoView {
    let user = detail.user;
    view! {
        <dl class="facts">
            <dt>"Phone"</dt><dd>{user.phone}</dd>
            <dt>"Role"</dt><dd>{user.role}</dd>
            <dt>"KYC"</dt><dd><Badge status=user.kyc_status/></dd>
            <dt>"Status"</dt><dd id="user-status">{if user.suspended { "Suspended" } else { "Active" }}</dd>
            <dt>"Locked until"</dt><dd>{user.locked_until.map(|t| when(&t)).unwrap_or_else(|| "not locked".into())}</dd>
            <dt>"Wrong PINs in a row"</dt><dd>{detail.failed_pin_attempts}</dd>
            <dt>"Language"</dt><dd>{detail.language}</dd>
            <dt>"Registered"</dt><dd>{when(&user.created_at)}</dd>
            <dt>"Last sign-in"</dt><dd>{user.last_login_at.map(|t| when(&t)).unwrap_or_else(|| "never".into())}</dd>
        </dl>
    }
}

/// An action on the user, posted with `body`; bumps `changes` when done.
fn user_action(
    auth: Auth,
    changes: RwSignal<usize>,
    path: String,
) -> Action<serde_json::Value, ApiResult<UserSummary>> {
    Action::new_local(move |body: &serde_json::Value| {
        let (path, body) = (path.clone(), body.clone());
        async move {
            let done = api::post::<UserSummary>(auth, &path, body).await;
            if done.is_ok() {
                changes.update(|n| *n += 1);
            }
            done
        }
    })
}

#[component]
fn Actions(user: UserSummary, changes: RwSignal<usize>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let base = format!("/admin/users/{}", user.user_id);
    let suspension = if user.suspended {
        "unsuspend"
    } else {
        "suspend"
    };
    let suspend = user_action(auth, changes, format!("{base}/{suspension}"));
    let kyc = user_action(auth, changes, format!("{base}/kyc"));
    let unlock = user_action(auth, changes, format!("{base}/unlock"));
    let reset_path = format!("{base}/pin-reset");
    let reset_note = RwSignal::new(String::new());
    let reset = Action::new_local(move |_: &()| {
        let (path, note) = (reset_path.clone(), reset_note.get_untracked());
        async move { api::post::<()>(auth, &path, json!({ "note": note })).await }
    });
    let (status, kyc_note, unlock_note) = (
        RwSignal::new(user.kyc_status.clone()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    view! {
        <section class="actions">
            <div>
                <h3>"Suspension"</h3>
                <button id="suspend" on:click=move |_| { suspend.dispatch(json!({})); }>
                    {if user.suspended { "Unsuspend" } else { "Suspend" }}
                </button>
                {outcome(suspend.value(), "Saved.")}
            </div>
            <div>
                <h3>"KYC status"</h3>
                <select on:change:target=move |ev| status.set(ev.target().value())>
                    {["PENDING", "VERIFIED", "REJECTED"].into_iter().map(|s| view! {
                        <option value=s selected=user.kyc_status == s>{s}</option>
                    }).collect_view()}
                </select>
                <Field label="Note" value=kyc_note/>
                <button on:click=move |_| { kyc.dispatch(json!({"status": status.get_untracked(), "note": kyc_note.get_untracked()})); }>"Set KYC status"</button>
                {outcome(kyc.value(), "KYC status saved.")}
            </div>
            <div>
                <h3>"Wrong-PIN lock"</h3>
                <Field label="Note (why it is safe to unlock)" value=unlock_note/>
                <button on:click=move |_| { unlock.dispatch(json!({"note": unlock_note.get_untracked()})); }>"Unlock"</button>
                {outcome(unlock.value(), "Unlocked.")}
            </div>
            <div>
                <h3>"PIN reset"</h3>
                <Field label="Note (how they were verified)" value=reset_note/>
                <button id="pin-reset" on:click=move |_| { reset.dispatch(()); }>"Send a reset code by SMS"</button>
                {outcome(reset.value(), "Code sent; they set a new PIN through USSD My account, Forgot PIN.")}
            </div>
        </section>
    }
}

#[component]
fn Documents(documents: Vec<crate::api::KycDocument>) -> impl IntoView {
    if documents.is_empty() {
        return view! { <p class="empty">"None submitted."</p> }.into_any();
    }
    view! {
        <table class="documents"><thead><tr><th>"Type"</th><th>"Number"</th><th>"Status"</th><th>"Note"</th><th>"Submitted"</th></tr></thead>
        <tbody>{documents.into_iter().map(|d| view! {
            <tr><td>{d.document_type}</td><td class="mono">{d.number_masked}{claimed_elsewhere(d.also_claimed_by)}</td><td><Badge status=d.status/></td>
                <td>{d.review_note.unwrap_or_default()}</td><td>{when(&d.created_at)}</td></tr>
        }).collect_view()}</tbody></table>
    }.into_any()
}

/// A reviewer's cue that a document's number is claimed by other accounts
/// too: at most one of them is its owner.
fn claimed_elsewhere(others: i64) -> Option<impl IntoView> {
    (others > 0).then(|| {
        let accounts = if others == 1 { "account" } else { "accounts" };
        view! { <span class="problem">{format!(" (also claimed by {others} other {accounts})")}</span> }
    })
}

/// Identity documents waiting for review, each linking to its customer.
#[component]
pub fn KycPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let status = RwSignal::new("PENDING".to_string());
    let list = LocalResource::new(move || {
        let status = status.get();
        async move {
            api::get::<crate::api::KycDocumentList>(
                auth,
                &format!("/admin/kyc/documents?status={status}"),
            )
            .await
        }
    });
    view! {
        <h1>"KYC"</h1>
        <p>"Review a document on its customer's page: set the KYC status with a note; the customer gets an SMS."</p>
        <div class="tabs">
            {["PENDING", "VERIFIED", "REJECTED"].into_iter().map(|s| view! {
                <button class:active=move || status.get() == s on:click=move |_| status.set(s.to_string())>{s}</button>
            }).collect_view()}
        </div>
        {loaded(list, |list: crate::api::KycDocumentList| {
            if list.documents.is_empty() {
                return view! { <p class="empty">"No documents here."</p> }.into_any();
            }
            view! {
                <table class="kyc"><thead><tr><th>"Customer"</th><th>"Phone"</th><th>"Type"</th><th>"Number"</th><th>"Status"</th><th>"Submitted"</th></tr></thead>
                <tbody>{list.documents.into_iter().map(|d| view! {
                    <tr><td><A href=link(&format!("/users/{}", d.user_id))>{d.name}</A></td><td>{d.phone}</td><td>{d.document_type}</td>
                        <td class="mono">{d.number_masked}{claimed_elsewhere(d.also_claimed_by)}</td><td><Badge status=d.status/></td><td>{when(&d.created_at)}</td></tr>
                }).collect_view()}</tbody></table>
            }.into_any()
        })}
    }
}
