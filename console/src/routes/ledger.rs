//! Money settings and checks: the rate book (editable, audited), the fee
//! bands, and the ledger check with every discrepancy.

use leptos::prelude::*;
use serde_json::json;

use crate::api::{self, ApiResult, FeeBands, LedgerReport, RateBook};
use crate::session::Auth;
use crate::widgets::{loaded, short, when, Field};

#[component]
pub fn FxPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let saved = RwSignal::new(0usize);
    let book = LocalResource::new(move || {
        saved.track();
        api::get::<RateBook>(auth, "/admin/fx/rates")
    });
    let bands = LocalResource::new(move || api::get::<FeeBands>(auth, "/admin/fees"));
    let (currency, mid, spread) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let save = Action::new_local(move |_: &()| {
        let (c, m, s) = (
            currency.get_untracked(),
            mid.get_untracked(),
            spread.get_untracked(),
        );
        let mut body = json!({});
        if !c.trim().is_empty() {
            body["rates"] = json!([{"currency": c.trim(), "usd_mid": m.trim()}]);
        }
        if !s.trim().is_empty() {
            body["spread"] = json!(s.trim());
        }
        async move {
            let done: ApiResult<RateBook> = api::put(auth, "/admin/fx/rates", body).await;
            if done.is_ok() {
                saved.update(|n| *n += 1);
            }
            done.map(|book| in_force(&book, c.trim(), m.trim(), s.trim()))
        }
    });
    view! {
        <h1>"FX and fees"</h1>
        {loaded(book, |b: RateBook| view! {
            <p class="summary">{format!("Spread {} (each conversion applies half), quotes held {} s. A rate or the spread one admin sets waits for a second admin to set the same value.",
                b.spread, b.quote_ttl_seconds)}</p>
            <table class="rates"><thead><tr><th>"Currency"</th><th>"Units per US dollar"</th><th>"Source"</th><th>"Updated"</th></tr></thead>
            <tbody>{b.legs.into_iter().map(|l| view! {
                <tr><td>{l.currency}</td><td>{l.usd_mid}</td><td>{l.source}</td><td>{when(&l.updated_at)}</td></tr>
            }).collect_view()}</tbody></table>
            {(!b.proposals.is_empty()).then(|| view! {
                <h3>"Waiting for a second admin"</h3>
                <table class="rate-proposals"><thead><tr><th>"Rate of"</th><th>"Value"</th><th>"Proposed by"</th><th>"Until"</th></tr></thead>
                <tbody>{b.proposals.into_iter().map(|p| view! {
                    <tr><td>{p.subject}</td><td>{p.value}</td><td>{short(&p.proposed_by)}</td><td>{when(&p.expires_at)}</td></tr>
                }).collect_view()}</tbody></table>
            })}
        })}
        <section class="actions">
            <h3>"Set a rate or the spread (audited)"</h3>
            <Field label="Currency" value=currency placeholder="KES"/>
            <Field label="Units per US dollar" value=mid placeholder="129.50"/>
            <Field label="Spread" value=spread placeholder="0.015"/>
            <button on:click=move |_| { save.dispatch(()); }>"Save"</button>
            {move || save.value().get().map(|result| match result {
                Ok(true) => view! { <p class="done" role="status">"Saved."</p> }.into_any(),
                Ok(false) => view! { <p class="done" role="status">"Proposed: a second admin must set the same value."</p> }.into_any(),
                Err(error) => view! { <p class="problem" role="alert">{error.detail}</p> }.into_any(),
            })}
        </section>
        <h2>"Fee bands"</h2>
        {loaded(bands, |f: FeeBands| view! {
            <table class="fees"><thead><tr><th>"Kind"</th><th>"From (USD)"</th><th>"Rate"</th><th>"Minimum (USD)"</th><th>"Maximum (USD)"</th></tr></thead>
            <tbody>{f.bands.into_iter().map(|b| view! {
                <tr><td>{b.kind}</td><td>{usd(b.from_usd_cents)}</td><td>{b.rate}</td>
                    <td>{b.min_fee_usd_cents.map(usd).unwrap_or_default()}</td><td>{b.max_fee_usd_cents.map(usd).unwrap_or_default()}</td></tr>
            }).collect_view()}</tbody></table>
        })}
    }
}

/// Whether what was just set (a rate for `currency`, the spread) is in
/// force; otherwise it waits for a second admin.
fn in_force(book: &RateBook, currency: &str, mid: &str, spread: &str) -> bool {
    let number = |raw: &str| raw.parse::<rust_decimal::Decimal>().ok();
    let same = |a: &str, b: &str| number(a).is_some() && number(a) == number(b);
    let leg = currency.is_empty()
        || book
            .legs
            .iter()
            .any(|leg| leg.currency.eq_ignore_ascii_case(currency) && same(&leg.usd_mid, mid));
    leg && (spread.is_empty() || same(&book.spread, spread))
}

fn usd(cents: i64) -> String {
    chainpay_core::money::format_minor(cents, 2)
}

#[component]
pub fn LedgerPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let run = Action::new_local(move |_: &()| async move {
        api::get::<LedgerReport>(auth, "/admin/ledger/check").await
    });
    view! {
        <h1>"Ledger"</h1>
        <p>"Checks that every account balance is the sum of its postings, that every journal entry and every currency sums to zero, and that no wallet is negative."</p>
        <button id="run-ledger-check" on:click=move |_| { run.dispatch(()); }>"Run the ledger check"</button>
        {move || run.pending().get().then(|| view! { <p class="loading">"Checking…"</p> })}
        {move || run.value().get().map(|result| match result {
            Ok(report) => view! { <Report report/> }.into_any(),
            Err(error) => view! { <p class="problem">{error.detail}</p> }.into_any(),
        })}
    }
}

#[component]
fn Report(report: LedgerReport) -> impl IntoView {
    let summary = format!(
        "{}: {} accounts and {} transactions checked.",
        if report.balanced {
            "Balanced"
        } else {
            "Discrepancies found"
        },
        report.accounts_checked,
        report.transactions_checked
    );
    view! {
        <p class=if report.balanced { "done" } else { "problem" } id="ledger-verdict">{summary}</p>
        {(!report.discrepancies.is_empty()).then(|| view! {
            <ul class="discrepancies">{report.discrepancies.into_iter().map(|d| view! {
                <li class="mono">{d.to_string()}</li>
            }).collect_view()}</ul>
        })}
    }
}
