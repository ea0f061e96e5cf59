//! What an operator looks at first.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::{self, AuditVerification, LedgerReport, Overview};
use crate::session::Auth;
use crate::widgets::{link, loaded, money};

#[component]
pub fn OverviewPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let overview = LocalResource::new(move || api::get::<Overview>(auth, "/admin/overview"));
    let ledger = LocalResource::new(move || api::get::<LedgerReport>(auth, "/admin/ledger/check"));
    let audit =
        LocalResource::new(move || api::get::<AuditVerification>(auth, "/admin/audit-log/verify"));
    view! {
        <h1>"Overview"</h1>
        {loaded(overview, |o: Overview| view! {
            <div class="cards">
                <div class="card"><h3>"Users"</h3><p class="figure" id="users-count">{o.users}</p></div>
                <div class="card"><h3><A href=link("/reversals")>"Pending reversals"</A></h3><p class="figure">{o.pending_reversals}</p></div>
                <div class="card"><h3><A href=link("/sars")>"Open SARs"</A></h3><p class="figure">{o.open_sars}</p></div>
                <div class="card"><h3><A href=link("/mpesa")>"Pending M-Pesa deposits"</A></h3><p class="figure">{o.pending_deposits}</p></div>
                <div class="card"><h3><A href=link("/chain")>"Chain"</A></h3>
                    <p class="figure">{o.chain_height}</p><p>{format!("blocks; {} transactions pending", o.chain_pending)}</p></div>
            </div>
            <h2>"Volume today"</h2>
            {if o.volume_today.is_empty() {
                view! { <p class="empty">"No movements yet today."</p> }.into_any()
            } else {
                view! {
                    <table><thead><tr><th>"Currency"</th><th>"Movements"</th><th>"Volume"</th></tr></thead>
                    <tbody>{o.volume_today.into_iter().map(|v| view! {
                        <tr><td>{v.currency.clone()}</td><td>{v.count}</td><td>{money(&v.currency, v.amount)}</td></tr>
                    }).collect_view()}</tbody></table>
                }.into_any()
            }}
        })}
        <div class="cards">
            <div class="card">
                <h3><A href=link("/ledger")>"Ledger balanced"</A></h3>
                {loaded(ledger, |l: LedgerReport| view! {
                    <p class="figure" id="ledger-balanced">{if l.balanced { "Yes" } else { "No" }}</p>
                    {(!l.balanced).then(|| view! { <A href=link("/ledger")>{format!("{} discrepancies", l.discrepancies.len())}</A> })}
                })}
            </div>
            <div class="card">
                <h3><A href=link("/audit")>"Audit chain valid"</A></h3>
                {loaded(audit, |a: AuditVerification| view! {
                    <p class="figure" id="audit-valid">{if a.valid { "Yes" } else { "No" }}</p>
                    <p>{format!("{} entries checked", a.entries_checked)}</p>
                })}
            </div>
        </div>
    }
}
