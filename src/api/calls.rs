//! `GET /v1/calls`: the account's calls by number and time, newest first; and
//! `GET /v1/calls/{call_id}`: a call's events in order, each with the deliveries it caused.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deliveries::DeliveryOut;
use super::extract::{ApiQuery, Caller, ListParams};
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf, ts};
use crate::core::id::CallId;
use crate::service::calls::{self, FilterInput};
use crate::store::{CallSummary, DeliveryCounts};

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_calls))
        .routes(routes!(get_call))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallOut {
    pub call_id: String,
    pub events: Vec<CallEventOut>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallEventOut {
    /// The event's id as posted, or the one callhook gave it.
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub received_at: String,
    /// The event as stored (SPEC §4).
    #[schema(value_type = Object)]
    pub event: Value,
    pub deliveries: Vec<DeliveryOut>,
}

/// One call in the list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallListItem {
    pub call_id: String,
    /// `inbound`, `outbound` or `click_to_call`, as its first event said.
    pub call_type: Option<String>,
    pub did_number: Option<String>,
    pub customer_number: Option<String>,
    /// When it began: its first event's `occurred_at`.
    pub started_at: String,
    /// Its events' types, in the order they arrived.
    pub events: Vec<String>,
    /// Its deliveries to the account's webhooks, counted by status.
    pub deliveries: DeliveryCountsOut,
}

/// Deliveries counted by status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryCountsOut {
    pub total: u64,
    /// Not tried yet, or waiting for an earlier delivery of the call.
    pub pending: u64,
    /// Pending after a failed attempt.
    pub retrying: u64,
    pub succeeded: u64,
    pub failed: u64,
}

impl From<DeliveryCounts> for DeliveryCountsOut {
    fn from(c: DeliveryCounts) -> Self {
        DeliveryCountsOut {
            total: c.total(),
            pending: c.pending,
            retrying: c.retrying,
            succeeded: c.succeeded,
            failed: c.failed,
        }
    }
}

impl From<CallSummary> for CallListItem {
    fn from(c: CallSummary) -> Self {
        CallListItem {
            call_id: c.call_id.into_string(),
            call_type: c.call_type,
            did_number: c.did_number,
            customer_number: c.customer_number,
            started_at: ts(c.started_at),
            events: c.event_types,
            deliveries: c.deliveries.into(),
        }
    }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// Only calls to or from this number (the DID or the customer's), E.164; spaces, dashes
    /// and brackets are dropped.
    #[param(pattern = r"^\+[1-9][0-9]{6,14}$")]
    pub number: Option<String>,
    /// RFC 3339: calls begun at or after.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339: calls begun before.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// The account's calls, the latest begun first, each with its events' types and its
/// deliveries counted by status. Test sends' calls are left out.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(CallQuery),
    responses((status = 200, body = ListOf<CallListItem>), (status = 422, body = Problem)))]
async fn list_calls(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<CallQuery>,
) -> ApiResult<Json<ListOf<CallListItem>>> {
    let page = ListParams {
        limit: q.limit,
        after: q.after.clone(),
    }
    .page()?;
    let filter = FilterInput {
        number: q.number.as_deref(),
        since: q.since.as_deref(),
        until: q.until.as_deref(),
    };
    let page = calls::list(&*state.svc.store, caller.actor()?, &filter, &page).await?;
    Ok(Json(ListOf::from_page(page, CallListItem::from)))
}

/// The call's events in the order they arrived and the deliveries each one caused.
#[utoipa::path(get, path = "/v1/calls/{call_id}", tag = "calls", params(("call_id" = String, Path)),
    responses((status = 200, body = CallOut), (status = 404, body = Problem)))]
async fn get_call(
    State(state): State<ApiState>,
    caller: Caller,
    Path(call_id): Path<String>,
) -> ApiResult<Json<CallOut>> {
    let call = CallId::from_string(call_id);
    let timeline = calls::timeline(&*state.svc.store, caller.actor()?, &call).await?;
    Ok(Json(CallOut {
        call_id: call.into_string(),
        events: timeline
            .into_iter()
            .map(|(e, ds)| CallEventOut {
                event_id: e.event_id.into_string(),
                event_type: e.event_type,
                occurred_at: ts(e.occurred_at),
                received_at: ts(e.received_at),
                event: serde_json::from_str(&e.payload).unwrap_or(Value::Null),
                deliveries: ds.into_iter().map(DeliveryOut::from).collect(),
            })
            .collect(),
    }))
}
