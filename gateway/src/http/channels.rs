//! Africa's Talking webhooks: USSD requests, inbound SMS and delivery
//! reports. Not rate limited (the carrier retries on its own schedule) and
//! not signed by Africa's Talking: when `AT_WEBHOOK_TOKEN` is set, each call
//! must carry it as `?token=`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chainpay_core::africastalking::webhooks::{DeliveryReport, FormError, InboundSms, UssdForm};
use chainpay_core::ussd::{Screen, Texts};
use chainpay_core::Lang;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiForm, ApiQuery};
use super::AppState;
use crate::sms::commands;
use crate::sms::outbox::Report;
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

fn refused(error: FormError) -> ApiError {
    ApiError::Validation(error.0)
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
    let step = form.step().map_err(refused)?;
    let request = UssdRequest {
        session_id: step.session_id,
        phone: step.phone,
        inputs: step.inputs,
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
    let (from, id) = form.sender().map_err(refused)?;
    commands::answer(&state.pool, id, from.as_str(), &form.to, &form.text).await?;
    Ok(StatusCode::OK)
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
    let known = match report.message_id() {
        Some(id) => {
            let report = Report {
                at_message_id: id.to_owned(),
                status: report.status.clone(),
                failure_reason: report.failureReason.clone(),
            };
            state.reports.apply(&state.pool, report).await?
        }
        None => false,
    };
    if !known {
        tracing::warn!(message_id = %report.id.escape_debug(), "delivery report for an unknown message");
    }
    Ok(StatusCode::OK)
}
