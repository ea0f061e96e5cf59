//! Africa's Talking webhooks: USSD requests, inbound SMS and delivery
//! reports. Not rate limited (the carrier retries on its own schedule) and
//! not signed by Africa's Talking: when `AT_WEBHOOK_TOKEN` is set, each call
//! must carry it as `?token=`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chainpay_core::ussd::{Screen, Texts};
use chainpay_core::{Lang, Msisdn};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiForm, ApiQuery};
use super::AppState;
use crate::sms::{commands, outbox};
use crate::ussd::{self, UssdRequest};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ussd_request))
        .routes(routes!(sms_inbound))
        .routes(routes!(sms_delivery))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookToken {
    /// Must equal `AT_WEBHOOK_TOKEN` when that is configured.
    /// Only compared, never stored: any text.
    #[param(pattern = r"^[\s\S]*$")]
    pub token: Option<String>,
}

fn check_token(state: &AppState, webhook: &str, given: &WebhookToken) -> ApiResult<()> {
    match &state.settings.at_webhook_token {
        Some(expected) if !crate::secrets::same_secret(given.token.as_deref(), expected) => {
            state.metrics.reject_webhook(webhook, "bad_token");
            Err(ApiError::Unauthorized)
        }
        _ => Ok(()),
    }
}

/// Longest `text` accepted: far beyond any real session.
const MAX_TEXT_CHARS: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct UssdForm {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub sessionId: String,
    pub serviceCode: Option<String>,
    #[schema(format = "phone")]
    pub phoneNumber: String,
    pub networkCode: Option<String>,
    /// Every input of the session joined by `*`; empty on dial.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub text: String,
}

fn plain(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// A USSD step from Africa's Talking. Answers `CON …` (more input) or
/// `END …` (session over), at most 182 characters. A retried request gets
/// the same answer and never acts twice.
#[utoipa::path(post, path = "/ussd", tag = "channels", params(WebhookToken),
    request_body(content = UssdForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "CON/END screen", content_type = "text/plain", body = String),
              (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn ussd_request(
    State(state): State<AppState>,
    ApiQuery(token): ApiQuery<WebhookToken>,
    ApiForm(form): ApiForm<UssdForm>,
) -> ApiResult<Response> {
    check_token(&state, "ussd", &token)?;
    let session_id = form.sessionId.trim().to_owned();
    if session_id.is_empty()
        || session_id.chars().count() > 100
        || form.text.chars().count() > MAX_TEXT_CHARS
    {
        return Err(ApiError::Validation(
            "sessionId must be 1 to 100 characters and text at most 1000".into(),
        ));
    }
    let phone = Msisdn::parse(&form.phoneNumber)
        .map_err(|e| ApiError::Validation(format!("phoneNumber: {e}")))?;
    let inputs = if form.text.is_empty() {
        Vec::new()
    } else {
        form.text.split('*').map(str::to_owned).collect()
    };
    let request = UssdRequest {
        session_id,
        phone,
        inputs,
    };
    match ussd::handle(&state, request).await {
        Ok(reply) => Ok(plain(reply)),
        Err(error) => {
            // An error status would end the session with a carrier error
            // message; an END screen at least tells the customer to retry.
            tracing::error!(error = format!("{error:#}"), "USSD step failed");
            let busy = Screen::End(Texts(Lang::En).try_later().to_owned());
            Ok(plain(busy.render()))
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct InboundSms {
    #[schema(format = "phone")]
    pub from: String,
    pub to: String,
    pub text: String,
    pub date: Option<String>,
    /// Africa's Talking's id; a retried callback repeats it.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub id: String,
    pub linkId: Option<String>,
}

/// An SMS a customer texted to the short code: `BAL`, `MINI` or `HELP`.
/// The reply goes out through the outbox; a repeated callback is ignored.
#[utoipa::path(post, path = "/sms/inbound", tag = "channels", params(WebhookToken),
    request_body(content = InboundSms, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Received"), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn sms_inbound(
    State(state): State<AppState>,
    ApiQuery(token): ApiQuery<WebhookToken>,
    ApiForm(form): ApiForm<InboundSms>,
) -> ApiResult<StatusCode> {
    check_token(&state, "sms_inbound", &token)?;
    let from = Msisdn::parse(&form.from).map_err(|e| ApiError::Validation(format!("from: {e}")))?;
    if form.id.trim().is_empty() || form.id.chars().count() > 200 {
        return Err(ApiError::Validation(
            "id must be 1 to 200 characters".into(),
        ));
    }
    commands::answer(
        &state.pool,
        form.id.trim(),
        from.as_str(),
        &form.to,
        &form.text,
    )
    .await?;
    Ok(StatusCode::OK)
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct DeliveryReport {
    /// The messageId Africa's Talking returned when it accepted the message.
    pub id: String,
    /// `Sent`, `Submitted`, `Buffered`, or final `Success`, `Failed`, `Rejected`.
    pub status: String,
    pub phoneNumber: Option<String>,
    pub networkCode: Option<String>,
    pub failureReason: Option<String>,
    pub retryCount: Option<String>,
}

/// A delivery report for a message we sent.
#[utoipa::path(post, path = "/sms/delivery", tag = "channels", params(WebhookToken),
    request_body(content = DeliveryReport, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Recorded"), (status = 401, body = Problem)))]
async fn sms_delivery(
    State(state): State<AppState>,
    ApiQuery(token): ApiQuery<WebhookToken>,
    ApiForm(report): ApiForm<DeliveryReport>,
) -> ApiResult<StatusCode> {
    check_token(&state, "sms_delivery", &token)?;
    if report.id.contains('\0') {
        // No id we issued holds NUL (nor can PostgreSQL text): unknown.
        tracing::warn!("delivery report for an unknown message");
        return Ok(StatusCode::OK);
    }
    let mut conn = state.pool.acquire().await?;
    let known = outbox::apply_delivery_report(
        &mut conn,
        &report.id,
        &report.status,
        report.failureReason.as_deref(),
    )
    .await?;
    if !known {
        tracing::warn!(message_id = %report.id, "delivery report for an unknown message");
    }
    Ok(StatusCode::OK)
}
