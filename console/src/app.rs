//! The console's frame: sign-in until an admin is signed in, then the
//! sidebar and the pages.

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;

use crate::api::{self, RateBook};
use crate::routes::*;
use crate::session::Auth;
use crate::widgets::{link, Currencies, BASE};

#[component]
pub fn App() -> impl IntoView {
    let auth = Auth::restore();
    provide_context(auth);
    let currencies = Currencies(RwSignal::new(Default::default()));
    provide_context(currencies);
    view! {
        <Router base=BASE>
            {move || match auth.session() {
                None => view! { <SignIn/> }.into_any(),
                Some(_) => view! { <Shell currencies/> }.into_any(),
            }}
        </Router>
    }
}

#[component]
fn Shell(currencies: Currencies) -> impl IntoView {
    let auth = expect_context::<Auth>();
    // The currencies' minor-unit digits, for showing money.
    let book = LocalResource::new(move || api::get::<RateBook>(auth, "/admin/fx/rates"));
    Effect::new(move || {
        if let Some(Ok(book)) = book.get() {
            currencies.0.set(
                book.legs
                    .iter()
                    .map(|l| (l.currency.clone(), l.exponent))
                    .collect(),
            );
        }
    });
    view! {
        <div class="shell">
            <Sidebar/>
            <main class="content">
                <Routes fallback=|| view! { <p class="empty">"This page does not exist."</p> }>
                    <Route path=path!("/") view=OverviewPage/>
                    <Route path=path!("/users") view=UsersPage/>
                    <Route path=path!("/users/:id") view=UserPage/>
                    <Route path=path!("/transactions") view=TransactionsPage/>
                    <Route path=path!("/transactions/:id") view=TransactionPage/>
                    <Route path=path!("/audit") view=AuditPage/>
                    <Route path=path!("/sars") view=SarsPage/>
                    <Route path=path!("/sars/:id") view=SarPage/>
                    <Route path=path!("/reversals") view=ReversalsPage/>
                    <Route path=path!("/chain") view=ChainPage/>
                    <Route path=path!("/chain/blocks/:index") view=BlockPage/>
                    <Route path=path!("/chain/proof/:tx_id") view=ProofPage/>
                    <Route path=path!("/mpesa") view=MpesaPage/>
                    <Route path=path!("/sms") view=SmsPage/>
                    <Route path=path!("/sanctions") view=SanctionsPage/>
                    <Route path=path!("/fx") view=FxPage/>
                    <Route path=path!("/ledger") view=LedgerPage/>
                    <Route path=path!("/reconciliation") view=ReconciliationPage/>
                    <Route path=path!("/agents") view=AgentsPage/>
                    <Route path=path!("/merchants") view=MerchantsPage/>
                    <Route path=path!("/merchants/:id") view=MerchantPage/>
                    <Route path=path!("/kyc") view=KycPage/>
                    <Route path=path!("/treasury") view=TreasuryPage/>
                    <Route path=path!("/vouchers") view=VouchersPage/>
                </Routes>
            </main>
        </div>
    }
}

#[component]
fn Sidebar() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let name = move || auth.session().map(|s| s.name).unwrap_or_default();
    let sign_out = move |_| {
        let token_holder = auth;
        leptos::task::spawn_local(async move {
            let _: api::ApiResult<()> =
                api::post(token_holder, "/auth/logout", serde_json::json!({})).await;
            token_holder.sign_out(None);
        });
    };
    let links = [
        ("/", "Overview"),
        ("/users", "Users"),
        ("/kyc", "KYC"),
        ("/agents", "Agents"),
        ("/merchants", "Merchants"),
        ("/treasury", "Treasury"),
        ("/vouchers", "Vouchers"),
        ("/transactions", "Transactions"),
        ("/audit", "Audit log"),
        ("/sars", "Suspicious activity"),
        ("/reversals", "Reversals"),
        ("/chain", "Chain explorer"),
        ("/mpesa", "M-Pesa"),
        ("/sms", "SMS"),
        ("/sanctions", "Sanctions"),
        ("/fx", "FX and fees"),
        ("/ledger", "Ledger"),
        ("/reconciliation", "Reconciliation"),
    ];
    view! {
        <nav class="sidebar">
            <div class="brand">"ChainPay"<small>"operations"</small></div>
            <ul>
                {links
                    .into_iter()
                    .map(|(href, label)| view! { <li><A href=link(href) exact=true>{label}</A></li> })
                    .collect_view()}
            </ul>
            <div class="who">
                <span>{name}</span>
                <button class="link" on:click=sign_out>"Sign out"</button>
            </div>
        </nav>
    }
}
