//! Operator endpoints for compliance: suspicious-activity reports and the
//! sanctions list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chainpay_core::Msisdn;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::http::error::{ApiError, ApiResult, Missing, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::paging::{next_cursor, PageQuery};
use crate::http::session::AdminUser;
use crate::http::AppState;
use chainpay_core::status::SarStatus;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sars))
        .routes(routes!(get_sar, review_sar))
        .routes(routes!(list_sanctions, add_sanction))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SarNote {
    pub author_id: Option<Uuid>,
    pub from_status: String,
    pub to_status: String,
    pub note: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Sar {
    pub id: i64,
    pub user_id: Option<Uuid>,
    pub phone: Option<String>,
    pub name: Option<String>,
    /// The rule that opened the case, e.g. `structuring` or `sanctions`.
    pub rule: String,
    pub status: String,
    pub tx_ids: Vec<Uuid>,
    /// `findings`: what each rule saw, newest last.
    #[schema(value_type = Object)]
    pub detail: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub notes: Vec<SarNote>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SarList {
    pub sars: Vec<Sar>,
    pub next_cursor: Option<String>,
}

fn sar_statuses() -> utoipa::openapi::schema::Object {
    crate::http::formats::status_of(SarStatus::ALL, SarStatus::as_str)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SarQuery {
    /// `OPEN`, `UNDER_REVIEW`, `FILED` or `DISMISSED`; all when absent.
    #[param(schema_with = sar_statuses)]
    pub status: Option<String>,
    #[param(format = "page-size")]
    pub limit: Option<i64>,
    #[param(format = "cursor")]
    pub before: Option<String>,
}

async fn load_sars(state: &AppState, ids: &[i64]) -> ApiResult<Vec<Sar>> {
    let rows = sqlx::query!(
        r#"SELECT s.id, s.user_id, u.phone AS "phone?", u.name AS "name?", s.rule, s.status, s.tx_ids, s.detail,
                  s.created_at, s.updated_at,
                  coalesce((SELECT jsonb_agg(jsonb_build_object('author_id', n.author_id, 'from_status', n.from_status,
                                                                 'to_status', n.to_status, 'note', n.note, 'at', n.at) ORDER BY n.id)
                            FROM sar_notes n WHERE n.sar_id = s.id), '[]') AS "notes!"
           FROM sars s LEFT JOIN users u ON u.id = s.user_id
           WHERE s.id = ANY($1) ORDER BY s.id DESC"#,
        ids
    )
    .fetch_all(&state.pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Sar {
                id: row.id,
                user_id: row.user_id,
                phone: row.phone,
                name: row.name,
                rule: row.rule,
                status: row.status,
                tx_ids: row.tx_ids,
                detail: row.detail,
                created_at: row.created_at,
                updated_at: row.updated_at,
                notes: serde_json::from_value(row.notes).map_err(anyhow::Error::from)?,
            })
        })
        .collect()
}

/// Suspicious-activity reports, newest first.
#[utoipa::path(get, path = "/admin/suspicious", tag = "admin", security(("bearer" = [])), params(SarQuery),
    responses((status = 200, body = SarList), (status = 403, body = Problem)))]
/// Reports about the calling admin are left out (no tipping off; another
/// admin reviews them).
async fn list_sars(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiQuery(query): ApiQuery<SarQuery>,
) -> ApiResult<Json<SarList>> {
    let page = PageQuery {
        limit: query.limit,
        before: query.before,
    };
    let (limit, before) = (page.limit()?, page.before()?);
    let status = match query.status.as_deref() {
        None => None,
        Some(raw) => Some(SarStatus::parse(raw).ok_or_else(|| {
            ApiError::Validation("status must be OPEN, UNDER_REVIEW, FILED or DISMISSED".into())
        })?),
    };
    let ids = sqlx::query_scalar!(
        "SELECT id FROM sars WHERE id < $1 AND ($2::text IS NULL OR status = $2) AND user_id IS DISTINCT FROM $4
         ORDER BY id DESC LIMIT $3",
        before,
        status.map(SarStatus::as_str),
        limit,
        admin.0.user_id
    )
    .fetch_all(state.read_pool())
    .await?;
    let sars = load_sars(&state, &ids).await?;
    let next_cursor = next_cursor(ids.len(), limit, ids.last().copied());
    Ok(Json(SarList { sars, next_cursor }))
}

/// One report, with its findings, linked transactions and review history.
#[utoipa::path(get, path = "/admin/sars/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "SAR id")),
    responses((status = 200, body = Sar), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_sar(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Sar>> {
    // A report about the caller is, to them, not there.
    load_sars(&state, &[id])
        .await?
        .pop()
        .filter(|sar| sar.user_id != Some(admin.0.user_id))
        .map(Json)
        .ok_or(ApiError::NotFound(Missing::Sar))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SarReview {
    /// The new status: `UNDER_REVIEW`, then `FILED` or `DISMISSED`.
    #[schema(schema_with = sar_statuses)]
    pub status: String,
    /// Why; kept with the case.
    #[schema(format = "case-note")]
    pub note: String,
}

/// Move a report along its review (`OPEN → UNDER_REVIEW → FILED | DISMISSED`)
/// with a note. The same status adds a note only.
#[utoipa::path(post, path = "/admin/sars/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "SAR id")), request_body = SarReview,
    responses((status = 200, body = Sar), (status = 400, body = Problem),
              (status = 404, description = "no such report, or it is about the caller (another admin reviews it)", body = Problem)))]
async fn review_sar(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<SarReview>,
) -> ApiResult<Json<Sar>> {
    let to = SarStatus::parse(&body.status).ok_or_else(|| {
        ApiError::Validation("status must be OPEN, UNDER_REVIEW, FILED or DISMISSED".into())
    })?;
    let note = super::note(&body.note, 1, 2000)?;
    let mut tx = state.pool.begin().await?;
    let sar = sqlx::query!(
        "SELECT status, user_id FROM sars WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound(Missing::Sar))?;
    // No admin reviews, or learns of, a report about themselves.
    if sar.user_id == Some(admin.0.user_id) {
        return Err(ApiError::NotFound(Missing::Sar));
    }
    let from = sar.status;
    let from = SarStatus::parse(&from)
        .ok_or_else(|| ApiError::internal(format!("SAR {id} has an unknown status {from}")))?;
    if !from.can_become(to) {
        return Err(ApiError::Validation(format!(
            "a SAR cannot move from {from} to {to}"
        )));
    }
    sqlx::query!(
        "UPDATE sars SET status = $2, updated_at = now() WHERE id = $1",
        id,
        to.as_str()
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO sar_notes (sar_id, author_id, from_status, to_status, note) VALUES ($1, $2, $3, $4, $5)",
        id,
        admin.0.user_id,
        from.as_str(),
        to.as_str(),
        note
    )
    .execute(&mut *tx)
    .await?;
    AuditEvent::new("admin.sar_review", Outcome::Success)
        .actor(admin.0.user_id)
        .subject(id)
        .detail(json!({"from": from, "to": to}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    load_sars(&state, &[id])
        .await?
        .pop()
        .map(Json)
        .ok_or(ApiError::NotFound(Missing::Sar))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SanctionEntry {
    pub id: i64,
    pub name: String,
    pub phone: Option<String>,
    pub source: String,
    pub ent_num: Option<i64>,
    pub program: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SanctionList {
    pub entries: Vec<SanctionEntry>,
    pub next_cursor: Option<String>,
}

/// The sanctions list, newest first.
#[utoipa::path(get, path = "/admin/sanctions", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = SanctionList), (status = 403, body = Problem)))]
async fn list_sanctions(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<SanctionList>> {
    let (limit, before) = (page.limit()?, page.before()?);
    let entries = sqlx::query_as!(
        SanctionEntry,
        "SELECT id, name, phone, source, ent_num, program, created_at FROM sanctions_entries
         WHERE id < $1 ORDER BY id DESC LIMIT $2",
        before,
        limit
    )
    .fetch_all(state.read_pool())
    .await?;
    let next_cursor = next_cursor(entries.len(), limit, entries.last().map(|e| e.id));
    Ok(Json(SanctionList {
        entries,
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewSanction {
    pub name: String,
    /// Where the listing comes from (default `manual`).
    pub source: Option<String>,
    /// A phone number known to belong to the party.
    #[schema(format = "phone")]
    pub phone: Option<String>,
}

/// Add a party to the sanctions list. Every user is screened against it
/// again in the background; a match opens a SAR.
#[utoipa::path(post, path = "/admin/sanctions", tag = "admin", security(("bearer" = [])), request_body = NewSanction,
    responses((status = 201, body = SanctionEntry), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn add_sanction(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiJson(body): ApiJson<NewSanction>,
) -> ApiResult<(StatusCode, Json<SanctionEntry>)> {
    let name = body.name.split_whitespace().collect::<Vec<_>>().join(" ");
    if chainpay_core::sanctions::normalize(&name).is_empty() || name.chars().count() > 350 {
        return Err(ApiError::Validation(
            "name must have 1 to 350 characters, with letters".into(),
        ));
    }
    let source = body
        .source
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("manual")
        .chars()
        .take(100)
        .collect::<String>();
    let phone = match body
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(raw) => Some(
            Msisdn::parse(raw)
                .map_err(|e| ApiError::Validation(format!("phone: {e}")))?
                .to_string(),
        ),
        None => None,
    };
    let mut tx = state.pool.begin().await?;
    let entry = sqlx::query_as!(
        SanctionEntry,
        "INSERT INTO sanctions_entries (name, phone, source, created_by) VALUES ($1, $2, $3, $4)
         RETURNING id, name, phone, source, ent_num, program, created_at",
        name,
        phone,
        source,
        admin.0.user_id
    )
    .fetch_one(&mut *tx)
    .await?;
    AuditEvent::new("admin.sanctions_add", Outcome::Success)
        .actor(admin.0.user_id)
        .subject(entry.id)
        .detail(json!({"name": entry.name, "phone": entry.phone, "source": entry.source}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    state.jobs.wake_rescreen();
    Ok((StatusCode::CREATED, Json(entry)))
}
