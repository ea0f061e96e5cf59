//! One page per file, each reachable from the sidebar.

mod agents;
mod audit;
mod chain;
mod channels;
mod corrections;
mod ledger;
mod merchants;
mod overview;
mod payouts;
mod reconciliation;
mod reversals;
mod sanctions;
mod sars;
mod signin;
mod transactions;
mod users;
mod vouchers;

pub use agents::{AgentsPage, TreasuryPage};
pub use audit::AuditPage;
pub use chain::{BlockPage, ChainPage, ProofPage};
pub use channels::{MpesaPage, SmsPage};
pub use ledger::{FxPage, LedgerPage};
pub use merchants::{MerchantPage, MerchantsPage};
pub use overview::OverviewPage;
pub use reconciliation::ReconciliationPage;
pub use reversals::ReversalsPage;
pub use sanctions::SanctionsPage;
pub use sars::{SarPage, SarsPage};
pub use signin::SignIn;
pub use transactions::{TransactionPage, TransactionsPage, TxTable};
pub use users::{KycPage, UserPage, UsersPage};
pub use vouchers::VouchersPage;
