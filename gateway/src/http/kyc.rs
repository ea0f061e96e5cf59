//! A customer's identity documents: submit one, see what was submitted
//! (masked).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chainpay_core::kyc::DocumentType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::ApiJson;
use super::session::AuthUser;
use super::AppState;
use crate::kyc::{self, DocumentView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(submit, list))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SubmitRequest {
    /// `national_id`, `passport` or `alien_id`.
    #[schema(schema_with = document_types)]
    pub document_type: String,
    /// Stored sealed (AES-256-GCM); only the last three characters are ever shown.
    pub document_number: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentList {
    pub documents: Vec<DocumentView>,
}

/// Submit an identity document for review; the result comes by SMS.
#[utoipa::path(post, path = "/kyc/documents", tag = "kyc", security(("bearer" = [])), request_body = SubmitRequest,
    responses((status = 201, body = DocumentView), (status = 400, description = "validation_error", body = Problem),
              (status = 401, body = Problem),
              (status = 409, description = "conflict: already under review or verified, or the document is another account's", body = Problem),
              (status = 429, description = "rate_limited: five submissions a day", body = Problem)))]
async fn submit(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<SubmitRequest>,
) -> ApiResult<(StatusCode, Json<DocumentView>)> {
    let kind = DocumentType::parse(&body.document_type).ok_or_else(|| {
        ApiError::Validation("document_type must be national_id, passport or alien_id".into())
    })?;
    let document = kyc::submit(&state, user.user_id, kind, &body.document_number).await?;
    Ok((StatusCode::CREATED, Json(document.for_customer())))
}

fn document_types() -> utoipa::openapi::schema::Object {
    super::formats::one_of(DocumentType::ALL.map(DocumentType::as_str))
}

/// The caller's documents, newest first (numbers masked).
#[utoipa::path(get, path = "/kyc/documents", tag = "kyc", security(("bearer" = [])),
    responses((status = 200, body = DocumentList), (status = 401, body = Problem)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<DocumentList>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(DocumentList {
        documents: kyc::list(&mut conn, Some(user.user_id), None)
            .await?
            .into_iter()
            .map(DocumentView::for_customer)
            .collect(),
    }))
}
