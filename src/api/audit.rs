//! `GET /v1/audit` (SPEC §13): who changed what, newest first, filtered by resource, actor,
//! action and time. Never a secret's value: a secret is only "rotated" or "revealed".

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller, ListParams};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::core::audit::{Action, Change};
use crate::service::audit::{self, FilterInput};
use crate::store::AuditEntry;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// Who made a change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActorOut {
    /// `user`, `api_key` or `operator`.
    #[serde(rename = "type")]
    #[schema(example = "user")]
    pub kind: &'static str,
    /// `usr_…` or `key_…`; `null` for the operator.
    pub id: Option<String>,
    /// The user's email or the key's name, as they were then; for the operator, how it acted
    /// (`callhook user create`).
    pub name: String,
}

/// What a change touched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResourceOut {
    /// `webhook`, `delivery`, `number`, `api_key`, `user` or `click_to_call`.
    #[serde(rename = "type")]
    #[schema(example = "webhook")]
    pub kind: &'static str,
    pub id: String,
}

/// One entry of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntryOut {
    pub id: String,
    pub at: String,
    pub actor: ActorOut,
    /// What was done (`webhook.update`, `user.invite`, …).
    #[schema(value_type = Action, example = "webhook.update")]
    pub action: &'static str,
    pub resource: ResourceOut,
    /// The fields the change moved, `before` → `after`. Header values show only as
    /// `"changed"`, secrets only as `"rotated"`, `"revealed"`, `"reset"`.
    pub changes: Vec<Change>,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> Self {
        AuditEntryOut {
            id: e.id.into_string(),
            at: ts(e.at),
            actor: ActorOut {
                kind: e.actor.kind.as_str(),
                id: e.actor.id,
                name: e.actor.name,
            },
            action: e.action.as_str(),
            resource: ResourceOut {
                kind: e.action.resource().as_str(),
                id: e.resource_id,
            },
            changes: e.changes,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this resource (a webhook's id, a number, …).
    pub resource_id: Option<String>,
    /// Only entries by this actor: a user's or key's id, an email, a key's name.
    pub actor: Option<String>,
    /// Only this action (`webhook.update`, …).
    #[param(value_type = Option<Action>)]
    pub action: Option<String>,
    /// RFC 3339: entries at or after.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339: entries before.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// The account's audit log, newest first. Needs an admin key.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, body = ListOf<AuditEntryOut>),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "A query string that cannot be read"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No or an unknown bearer token"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "A viewer key, or the operator token"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Every bad filter, named"),
    ))]
async fn list_audit(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<ListOf<AuditEntryOut>>> {
    let actor = caller.actor()?;
    let page = ListParams {
        limit: q.limit,
        after: q.after.clone(),
    }
    .page()?;
    let filter = FilterInput {
        resource_id: q.resource_id.as_deref(),
        actor: q.actor.as_deref(),
        action: q.action.as_deref(),
        since: q.since.as_deref(),
        until: q.until.as_deref(),
    };
    let entries = audit::list(&*state.svc.store, actor, &filter, &page).await?;
    Ok(Json(ListOf::from_page(entries, AuditEntryOut::from)))
}
