//! Operator endpoints for merchants: register a business for a verified
//! customer, list them with their balances, look one over, suspend and
//! reinstate.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chainpay_core::Msisdn;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::session::AdminUser;
use crate::http::AppState;
use crate::merchants::detail::{self, MerchantDetail};
use crate::merchants::{self, Kind, MerchantView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(detail))
        .routes(routes!(suspend))
        .routes(routes!(reinstate))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = NewMerchant)]
pub struct RegisterRequest {
    /// The business's name as customers see it (2 to 40 characters).
    #[schema(format = "business-name")]
    pub name: String,
    /// Its owner: a registered, KYC-verified customer.
    #[schema(format = "phone")]
    pub owner_phone: String,
    pub kind: Kind,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MerchantList {
    pub merchants: Vec<MerchantView>,
}

/// Register a business: a six-digit till or paybill number, role
/// `merchant` for its owner, and an account per currency.
#[utoipa::path(post, path = "/admin/merchants", tag = "admin", security(("bearer" = [])), request_body = RegisterRequest,
    responses((status = 201, body = MerchantView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, description = "no such customer", body = Problem),
              (status = 409, description = "the owner already has a business", body = Problem)))]
async fn register(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<MerchantView>)> {
    let phone = Msisdn::parse(&body.owner_phone)
        .map_err(|e| ApiError::Validation(format!("owner_phone: {e}")))?;
    let name = body.name.trim();
    if !(2..=40).contains(&name.chars().count()) || name.chars().any(char::is_control) {
        return Err(ApiError::Validation(
            "name must be 2 to 40 printable characters".into(),
        ));
    }
    let merchant =
        merchants::register(&state, admin.0.user_id, name, phone.as_str(), body.kind).await?;
    Ok((StatusCode::CREATED, Json(merchant)))
}

/// Every business with its balances, newest first.
#[utoipa::path(get, path = "/admin/merchants", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = MerchantList), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list(State(state): State<AppState>, _admin: AdminUser) -> ApiResult<Json<MerchantList>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(MerchantList {
        merchants: merchants::list(&mut conn).await?,
    }))
}

/// One business: its latest payments and refunds, webhook endpoints and
/// deliveries, and its API keys by prefix and last use.
#[utoipa::path(get, path = "/admin/merchants/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Merchant id")),
    responses((status = 200, body = MerchantDetail), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn detail(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<MerchantDetail>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(detail::detail(&mut conn, id).await?))
}

/// Suspend a business: it cannot be paid until reinstated.
#[utoipa::path(post, path = "/admin/merchants/{id}/suspend", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Merchant id")),
    responses((status = 200, body = MerchantView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn suspend(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<MerchantView>> {
    Ok(Json(
        merchants::set_active(&state, admin.0.user_id, id, false).await?,
    ))
}

/// Reinstate a suspended business.
#[utoipa::path(post, path = "/admin/merchants/{id}/reinstate", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Merchant id")),
    responses((status = 200, body = MerchantView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn reinstate(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<MerchantView>> {
    Ok(Json(
        merchants::set_active(&state, admin.0.user_id, id, true).await?,
    ))
}
