//! `GET /v1/connectors` (operator): the PBX connectors' full status — address, account,
//! connection, counts and the last error. `/readyz` answers anyone, so it only says whether
//! each is connected.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Caller;
use super::problem::{ApiResult, Problem};
use super::{ApiState, ListOf};
use crate::connectors::ConnectorStatus;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list_connectors))
}

/// Every configured PBX connector and how it is doing (operator only).
#[utoipa::path(get, path = "/v1/connectors", tag = "ops",
    responses((status = 200, body = ListOf<ConnectorStatus>), (status = 403, body = Problem)))]
async fn list_connectors(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<ListOf<ConnectorStatus>>> {
    caller.operator()?;
    Ok(Json(ListOf {
        data: state.svc.connectors.status(),
        next: None,
    }))
}
