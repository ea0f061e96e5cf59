//! The chain explorer: blocks, proofs, authorities, validation and mining.
//!
//! Public reads show hashes and counts only: a block's leaf hashes without
//! the transaction ids (admins see those too). A proof, which carries the
//! transaction's leaf, is given to the transaction's parties and to admins;
//! an independent verifier gets it from the customer, as a receipt.
//! Validation (heavy) and mining are for admins.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Missing, Problem};
use super::extract::{ApiPath, ApiQuery};
use super::session::{AdminUser, AuthUser, MaybeAuthUser};
use super::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::chain::authority::{self, Authority};
use crate::chain::blocks::{self, Block, ChainStats};
use crate::chain::proof::{self, InclusionProof, NoProof};
use crate::chain::seal;
use crate::chain::validate::{self, ChainReport};
use crate::transactions;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(list_blocks))
        .routes(routes!(get_block))
        .routes(routes!(mine))
        .routes(routes!(validate_chain))
        .routes(routes!(get_proof))
        .routes(routes!(authorities))
}

/// Height, sealed and pending transactions, head hash.
#[utoipa::path(get, path = "/blockchain/stats", tag = "blockchain", responses((status = 200, body = ChainStats)))]
async fn stats(State(state): State<AppState>) -> ApiResult<Json<ChainStats>> {
    Ok(Json(
        blocks::stats(state.read_pool(), &state.sealed_count).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlocksQuery {
    /// How many of the newest blocks, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub n: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockList {
    pub blocks: Vec<Block>,
}

/// The newest blocks, newest first.
#[utoipa::path(get, path = "/blockchain/blocks", tag = "blockchain", params(BlocksQuery),
    responses((status = 200, body = BlockList), (status = 400, body = Problem)))]
async fn list_blocks(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BlocksQuery>,
) -> ApiResult<Json<BlockList>> {
    let n = query.n.unwrap_or(20);
    if !(1..=100).contains(&n) {
        return Err(ApiError::Validation("n must be between 1 and 100".into()));
    }
    Ok(Json(BlockList {
        blocks: blocks::latest(state.read_pool(), n).await?,
    }))
}

/// One block with its leaf hashes (and, for an admin, its transactions' ids).
#[utoipa::path(get, path = "/blockchain/blocks/{index}", tag = "blockchain",
    params(("index" = i64, Path, description = "Block index (0 is genesis)")),
    responses((status = 200, body = Block), (status = 404, body = Problem)))]
async fn get_block(
    State(state): State<AppState>,
    MaybeAuthUser(user): MaybeAuthUser,
    ApiPath(index): ApiPath<i64>,
) -> ApiResult<Json<Block>> {
    let block = blocks::by_index(state.read_pool(), index)
        .await?
        .ok_or(ApiError::NotFound(Missing::Block))?;
    let admin = user.is_some_and(|u| u.is_admin());
    Ok(Json(if admin { block } else { block.public() }))
}

/// Seal the pending transactions into a block now (up to 50).
#[utoipa::path(post, path = "/blockchain/mine", tag = "blockchain", security(("bearer" = [])),
    responses((status = 201, body = Block), (status = 200, description = "`{\"block\": null}`: nothing pending"),
              (status = 403, body = Problem)))]
async fn mine(State(state): State<AppState>, admin: AdminUser) -> ApiResult<Response> {
    let block = seal::seal_next(&state.pool, &state.sealer).await?;
    let mut conn = state.pool.acquire().await?;
    AuditEvent::new("admin.mine", Outcome::Success)
        .actor(admin.0.user_id)
        .detail(serde_json::json!({"block": block.as_ref().map(|b| b.index)}))
        .record(&mut conn)
        .await?;
    Ok(match block {
        Some(block) => (StatusCode::CREATED, Json(block)).into_response(),
        None => (StatusCode::OK, Json(serde_json::json!({"block": null}))).into_response(),
    })
}

/// Recompute every leaf, Merkle root, link and signature from the stored
/// rows; name the first invalid block and why.
#[utoipa::path(get, path = "/blockchain/validate", tag = "blockchain", security(("bearer" = [])),
    responses((status = 200, body = ChainReport), (status = 403, body = Problem)))]
async fn validate_chain(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> ApiResult<Json<ChainReport>> {
    Ok(Json(
        validate::validate(&state.pool, &state.keys.master).await?,
    ))
}

/// The RFC 9162 inclusion proof of a transaction, for its parties and admins.
#[utoipa::path(get, path = "/blockchain/proof/{tx_id}", tag = "blockchain", security(("bearer" = [])),
    params(("tx_id" = Uuid, Path, description = "Transaction id from the receipt")),
    responses((status = 200, body = InclusionProof), (status = 401, body = Problem),
              (status = 404, description = "unknown, not the caller's, or not sealed into a block yet", body = Problem)))]
async fn get_proof(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(tx_id): ApiPath<Uuid>,
) -> ApiResult<Json<InclusionProof>> {
    let party = transactions::find(&state.pool, tx_id)
        .await?
        .is_some_and(|tx| {
            user.is_admin()
                || tx.from_user_id == Some(user.user_id)
                || tx.to_user_id == Some(user.user_id)
        });
    if !party {
        return Err(ApiError::NotFound(Missing::Transaction));
    }
    match proof::inclusion_proof(&state.pool, tx_id).await? {
        Ok(proof) => Ok(Json(proof)),
        Err(NoProof::Unknown) => Err(ApiError::NotFound(Missing::Transaction)),
        Err(NoProof::Pending) => Err(ApiError::NotFound(Missing::UnsealedTransaction)),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthorityList {
    pub authorities: Vec<Authority>,
}

/// The authorities whose Ed25519 signatures seal blocks.
#[utoipa::path(get, path = "/blockchain/authorities", tag = "blockchain", responses((status = 200, body = AuthorityList)))]
async fn authorities(State(state): State<AppState>) -> ApiResult<Json<AuthorityList>> {
    Ok(Json(AuthorityList {
        authorities: authority::list(state.read_pool(), &state.keys.master).await?,
    }))
}
