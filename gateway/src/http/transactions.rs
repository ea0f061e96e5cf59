//! Looking up one transaction by id.

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Missing, Problem};
use super::extract::ApiPath;
use super::session::AuthUser;
use super::AppState;
use crate::transactions::{self, TxView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_transaction))
}

/// One transaction. Only its sender, its recipient and admins may read it;
/// anyone else gets 404, so ids reveal nothing.
#[utoipa::path(get, path = "/transactions/{tx_id}", tag = "wallet", security(("bearer" = [])),
    params(("tx_id" = Uuid, Path, description = "Transaction id")),
    responses((status = 200, body = TxView), (status = 404, body = Problem)))]
async fn get_transaction(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(tx_id): ApiPath<Uuid>,
) -> ApiResult<Json<TxView>> {
    let tx = transactions::find(&state.pool, tx_id)
        .await?
        .filter(|tx| {
            user.is_admin()
                || tx.from_user_id == Some(user.user_id)
                || tx.to_user_id == Some(user.user_id)
        })
        .ok_or(ApiError::NotFound(Missing::Transaction))?;
    Ok(Json(tx))
}
