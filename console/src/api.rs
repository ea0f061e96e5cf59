//! Typed calls to `/api/v1` with the admin's bearer token, and the shapes
//! the console reads. A 401 ends the session; any other refusal arrives as
//! the problem+json `detail` the server wrote.

use gloo_net::http::{Request, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::session::Auth;

/// A refused or failed call, as the server explained it.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub detail: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Deserialize)]
struct Problem {
    detail: String,
    code: String,
}

fn unreachable(error: impl std::fmt::Display) -> ApiError {
    ApiError {
        status: 0,
        code: "network".into(),
        detail: format!("ChainPay could not be reached: {error}"),
    }
}

async fn send<T: DeserializeOwned>(
    auth: Auth,
    builder: RequestBuilder,
    body: Option<&Value>,
) -> ApiResult<T> {
    let builder = match auth.token() {
        Some(token) => builder.header("Authorization", &format!("Bearer {token}")),
        None => builder,
    };
    let request = match body {
        Some(body) => builder.json(body).map_err(unreachable)?,
        None => builder.build().map_err(unreachable)?,
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    if status == 401 && auth.token().is_some() {
        auth.sign_out(Some("Your session ended. Sign in again."));
    }
    if !response.ok() {
        let problem: Option<Problem> = response.json().await.ok();
        return Err(match problem {
            Some(problem) => ApiError {
                status,
                code: problem.code,
                detail: problem.detail,
            },
            None => ApiError {
                status,
                code: "unknown".into(),
                detail: format!("the server answered {status}"),
            },
        });
    }
    // 204 carries no body (a logout), nor does every 202 (a PIN reset code
    // on its way); a 202 that waits for a second admin does.
    let body = match status {
        204 => String::new(),
        _ => response.text().await.map_err(unreachable)?,
    };
    if body.trim().is_empty() {
        return serde_json::from_value(Value::Null).map_err(unreachable);
    }
    serde_json::from_str(&body).map_err(unreachable)
}

fn url(path: &str) -> String {
    format!("/api/v1{path}")
}

pub async fn get<T: DeserializeOwned>(auth: Auth, path: &str) -> ApiResult<T> {
    send(auth, Request::get(&url(path)), None).await
}

pub async fn post<T: DeserializeOwned>(auth: Auth, path: &str, body: Value) -> ApiResult<T> {
    send(auth, Request::post(&url(path)), Some(&body)).await
}

pub async fn put<T: DeserializeOwned>(auth: Auth, path: &str, body: Value) -> ApiResult<T> {
    send(auth, Request::put(&url(path)), Some(&body)).await
}

/// `application/x-www-form-urlencoded`-safe query value.
pub fn encode(value: &str) -> String {
    js_sys::encode_uri_component(value).into()
}

#[derive(Clone, Debug, Deserialize)]
pub struct LoginUser {
    pub phone: String,
    pub name: String,
    pub role: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct LoginResponse {
    pub access_token: String,
    pub expires_in: i64,
    pub user: LoginUser,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DayVolume {
    pub currency: String,
    pub amount: i64,
    pub count: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Overview {
    pub users: i64,
    pub volume_today: Vec<DayVolume>,
    pub pending_reversals: i64,
    pub open_sars: i64,
    pub pending_deposits: i64,
    pub chain_height: i64,
    pub chain_pending: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct LedgerReport {
    pub balanced: bool,
    pub accounts_checked: i64,
    pub transactions_checked: i64,
    pub discrepancies: Vec<Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AuditVerification {
    pub valid: bool,
    pub entries_checked: i64,
    pub unsealed: i64,
    pub first_broken_id: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct UserSummary {
    pub user_id: String,
    pub phone: String,
    pub name: String,
    pub role: String,
    pub kyc_status: String,
    pub suspended: bool,
    pub locked_until: Option<String>,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct UserList {
    pub users: Vec<UserSummary>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Wallet {
    pub currency: String,
    pub balance: i64,
    pub locked: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct UserDetail {
    pub user: UserSummary,
    pub language: String,
    pub failed_pin_attempts: i32,
    pub wallets: Vec<Wallet>,
    pub transactions: Vec<Tx>,
    pub documents: Vec<KycDocument>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct KycDocument {
    pub user_id: String,
    pub phone: String,
    pub name: String,
    pub document_type: String,
    pub number_masked: String,
    pub status: String,
    pub also_claimed_by: i64,
    pub review_note: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct KycDocumentList {
    pub documents: Vec<KycDocument>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Tx {
    pub tx_id: String,
    #[serde(rename = "type")]
    pub tx_type: String,
    pub status: String,
    pub amount: i64,
    pub fee: i64,
    pub currency: String,
    pub from_phone: Option<String>,
    pub to_phone: Option<String>,
    pub note: Option<String>,
    pub created_at: String,
    pub signature: String,
    pub to_currency: Option<String>,
    pub converted_amount: Option<i64>,
    pub rate: Option<String>,
    pub block_index: Option<i64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor_user_id: Option<String>,
    pub action: String,
    pub outcome: String,
    pub subject: Option<String>,
    pub detail: Value,
    pub request_id: Option<String>,
    pub entry_hash: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SarNote {
    pub from_status: String,
    pub to_status: String,
    pub note: String,
    pub at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Sar {
    pub id: i64,
    pub user_id: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub rule: String,
    pub status: String,
    pub tx_ids: Vec<String>,
    pub detail: Value,
    pub created_at: String,
    pub updated_at: String,
    pub notes: Vec<SarNote>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SarList {
    pub sars: Vec<Sar>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Reversal {
    pub reversal_id: String,
    pub tx_id: String,
    pub requester_phone: String,
    pub amount: i64,
    pub currency: String,
    pub reason: String,
    pub status: String,
    pub first_approved_by: Option<String>,
    pub first_note: Option<String>,
    pub admin_note: Option<String>,
    pub reversal_tx_id: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ReversalList {
    pub reversals: Vec<Reversal>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Leaf {
    pub tx_id: Option<String>,
    pub leaf_hash: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Block {
    pub index: i64,
    pub previous_hash: String,
    pub merkle_root: String,
    pub timestamp: String,
    pub tx_count: i32,
    pub sealer: String,
    pub header: String,
    pub block_hash: String,
    pub signature: String,
    pub transactions: Option<Vec<Leaf>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct BlockList {
    pub blocks: Vec<Block>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ChainStats {
    pub height: i64,
    pub transactions: i64,
    pub pending: i64,
    pub head_hash: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Proof {
    pub tx_id: String,
    pub block_index: i64,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub leaf: String,
    pub leaf_hash: String,
    pub audit_path: Vec<String>,
    pub merkle_root: String,
    pub block_hash: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Authority {
    pub name: String,
    pub public_key: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Authorities {
    pub authorities: Vec<Authority>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Deposit {
    #[serde(rename = "ref")]
    pub reference: String,
    pub status: String,
    pub amount: i64,
    pub phone: String,
    pub mpesa_receipt: Option<String>,
    pub result_desc: Option<String>,
    pub created_at: String,
    pub settled_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Withdrawal {
    #[serde(rename = "ref")]
    pub reference: String,
    pub status: String,
    pub amount: i64,
    pub fee: i64,
    pub phone: String,
    pub mpesa_receipt: Option<String>,
    pub result_desc: Option<String>,
    pub created_at: String,
    pub settled_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MpesaTransactions {
    pub deposits: Vec<Deposit>,
    pub withdrawals: Vec<Withdrawal>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct OutboxMessage {
    pub to: String,
    pub message: String,
    pub status: String,
    pub attempts: i32,
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Outbox {
    pub messages: Vec<OutboxMessage>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SanctionEntry {
    pub name: String,
    pub phone: Option<String>,
    pub source: String,
    pub program: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SanctionList {
    pub entries: Vec<SanctionEntry>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct UsdLeg {
    pub currency: String,
    pub usd_mid: String,
    pub source: String,
    pub updated_at: String,
    pub exponent: u32,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RateBook {
    pub spread: String,
    pub quote_ttl_seconds: i32,
    pub legs: Vec<UsdLeg>,
    pub proposals: Vec<RateProposal>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RateProposal {
    /// A currency (its USD leg) or `spread`.
    pub subject: String,
    pub value: String,
    pub proposed_by: String,
    pub expires_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FeeBand {
    pub kind: String,
    pub from_usd_cents: i64,
    pub rate: String,
    pub min_fee_usd_cents: Option<i64>,
    pub max_fee_usd_cents: Option<i64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FeeBands {
    pub bands: Vec<FeeBand>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FloatBalance {
    pub currency: String,
    pub balance: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Agent {
    pub agent_number: String,
    pub phone: String,
    pub name: String,
    pub status: String,
    pub created_at: String,
    pub float: Vec<FloatBalance>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AgentList {
    pub agents: Vec<Agent>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Issuance {
    pub id: String,
    pub agent_number: String,
    pub agent_phone: String,
    pub agent_name: String,
    pub amount: i64,
    pub currency: String,
    pub reference: String,
    pub status: String,
    pub proposal_note: Option<String>,
    pub decision_note: Option<String>,
    pub tx_id: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct IssuanceList {
    pub issuances: Vec<Issuance>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Voucher {
    pub serial: i64,
    pub code_hint: String,
    pub amount: i64,
    pub fee: i64,
    pub currency: String,
    pub status: String,
    pub expires_at: String,
    pub created_at: String,
    pub signed: String,
    pub issuer_phone: String,
    pub redeemed_by_phone: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct VoucherList {
    pub vouchers: Vec<Voucher>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct VoucherAuthority {
    pub public_key: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ReconciliationItem {
    pub id: i64,
    pub check: String,
    pub subject: String,
    pub detail: Value,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ReconciliationRun {
    pub id: i64,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub clean: bool,
    pub discrepancies: i32,
    #[serde(default)]
    pub checks: Value,
    #[serde(default)]
    pub items: Vec<ReconciliationItem>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RunList {
    pub runs: Vec<ReconciliationRun>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SuspenseItem {
    pub id: i64,
    pub subject: String,
    pub detail: Value,
    pub status: String,
    pub resolution: Option<String>,
    pub proposal_note: Option<String>,
    pub proposal_version: i32,
    pub resolution_note: Option<String>,
    pub tx_id: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PayoutResolution {
    pub id: String,
    pub withdrawal: String,
    pub outcome: String,
    pub receipt: Option<String>,
    pub status: String,
    pub proposal_note: String,
    pub decision_note: Option<String>,
    pub settle_tx_id: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PayoutResolutionList {
    pub resolutions: Vec<PayoutResolution>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Contradiction {
    pub id: i64,
    pub withdrawal: String,
    pub kind: String,
    pub problem: String,
    pub receipt: Option<String>,
    pub recorded_receipt: Option<String>,
    pub result: Value,
    pub found_at: String,
    pub status: String,
    pub amount: i64,
    pub fee: i64,
    pub pending_correction: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ContradictionList {
    /// The oldest 500 open.
    pub contradictions: Vec<Contradiction>,
    /// How many are open in all.
    pub open: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PayoutCorrection {
    pub id: String,
    pub withdrawal: String,
    pub kind: String,
    pub action: String,
    pub status: String,
    pub proposal_note: String,
    pub decision_note: Option<String>,
    pub correction_tx_id: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PayoutCorrectionList {
    pub corrections: Vec<PayoutCorrection>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SuspenseList {
    pub items: Vec<SuspenseItem>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Merchant {
    pub merchant_id: String,
    pub name: String,
    pub kind: String,
    pub number: String,
    pub owner_phone: String,
    pub status: String,
    pub created_at: String,
    pub balances: Vec<BusinessBalance>,
}

/// One currency of a business's account.
#[derive(Clone, Debug, Deserialize)]
pub struct BusinessBalance {
    pub currency: String,
    pub balance: i64,
    /// Owed back for a payout M-Pesa reported paid after its refund.
    pub locked: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MerchantList {
    pub merchants: Vec<Merchant>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MerchantPayment {
    pub tx_id: String,
    pub amount: i64,
    pub fee: i64,
    pub currency: String,
    pub account: Option<String>,
    pub note: Option<String>,
    pub customer_name: String,
    pub customer_phone: String,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MerchantRefund {
    pub tx_id: String,
    pub payment_id: String,
    pub amount: i64,
    pub currency: String,
    pub requested_by: String,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct WebhookEndpoint {
    pub webhook_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub status: String,
    pub failing_since: Option<String>,
    pub delivered: i64,
    pub pending: i64,
    pub failed: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct WebhookDelivery {
    pub delivery_id: i64,
    pub url: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MerchantKey {
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MerchantDetail {
    pub merchant: Merchant,
    pub payments: Vec<MerchantPayment>,
    pub refunds: Vec<MerchantRefund>,
    pub endpoints: Vec<WebhookEndpoint>,
    pub deliveries: Vec<WebhookDelivery>,
    pub keys: Vec<MerchantKey>,
}
