//! Customers asking for a transfer to be reversed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiResult, Problem};
use super::extract::ApiJson;
use super::session::AuthUser;
use super::AppState;
use crate::reversals::{self, ReversalRequested};
use crate::transactions::{self, TxView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(eligible))
        .routes(routes!(request_reversal))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EligibleList {
    pub transactions: Vec<TxView>,
}

/// The caller's transfers of the last 24 hours that may still be reversed.
#[utoipa::path(get, path = "/reversal/eligible", tag = "reversal", security(("bearer" = [])),
    responses((status = 200, body = EligibleList), (status = 401, body = Problem)))]
async fn eligible(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<EligibleList>> {
    let mut views = Vec::new();
    for tx in reversals::eligible(&state.pool, user.user_id).await? {
        if let Some(view) = transactions::find(&state.pool, tx.tx_id).await? {
            views.push(view);
        }
    }
    Ok(Json(EligibleList {
        transactions: views,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReversalRequest {
    pub tx_id: Uuid,
    /// Why, in the customer's words (3 to 500 characters).
    #[schema(min_length = 3, max_length = 500)]
    pub reason: String,
}

/// Ask for a transfer to be reversed; an operator decides.
#[utoipa::path(post, path = "/reversal/request", tag = "reversal", security(("bearer" = [])), request_body = ReversalRequest,
    responses((status = 201, body = ReversalRequested), (status = 400, body = Problem),
              (status = 422, description = "not_eligible", body = Problem)))]
async fn request_reversal(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ReversalRequest>,
) -> ApiResult<(StatusCode, Json<ReversalRequested>)> {
    let requested = reversals::request(&state.pool, user.user_id, body.tx_id, &body.reason).await?;
    Ok((StatusCode::CREATED, Json(requested)))
}
