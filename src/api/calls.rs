//! `GET /v1/calls/{call_id}`: a call's events in order, each with the deliveries it caused.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deliveries::DeliveryOut;
use super::extract::Caller;
use super::problem::{ApiResult, Problem};
use super::{ApiState, ts};
use crate::core::id::CallId;
use crate::service::calls;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(get_call))
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
