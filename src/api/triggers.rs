//! `/v1/triggers`: the trigger catalogue (SPEC §2, §5) and what a receiver would get for each.

use axum::Json;
use axum::extract::Path;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller};
use super::problem::{ApiError, ApiResult, Problem};
use super::{ApiState, ListOf};
use crate::core::event::EventType;
use crate::core::render::WebhookRequest;
use crate::core::trigger::{COMMON_PARAMS, JsonType, ParamKind, Trigger};
use crate::service::triggers::{Sample, SampleOptions, render_sample, sample_spec};

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_triggers))
        .routes(routes!(trigger_sample))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriggerOut {
    pub id: Trigger,
    /// What admins see.
    pub label: &'static str,
    /// The call event type that fires it.
    pub fires_on: EventType,
    /// The condition on that event.
    pub condition: String,
    /// Every parameter a receiver gets, in order: the common ones, then the trigger's own.
    pub parameters: Vec<ParamOut>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ParamOut {
    pub name: &'static str,
    /// How its value is written.
    pub kind: ParamKind,
    /// The JSON type of its value when it is known (it is `null` when not).
    #[serde(rename = "type")]
    pub json_type: JsonType,
    /// What it means, in one line.
    pub description: &'static str,
    /// An example value, as a receiver in Asia/Kolkata gets it.
    pub example: Value,
    /// Whether every trigger carries it.
    pub common: bool,
}

impl From<Trigger> for TriggerOut {
    fn from(t: Trigger) -> Self {
        let info = t.info();
        TriggerOut {
            id: t,
            label: info.label,
            fires_on: info.fires_on.event_type(),
            condition: info.fires_on.condition(),
            parameters: t
                .params()
                .enumerate()
                .map(|(i, p)| {
                    let info = p.info();
                    ParamOut {
                        name: info.name,
                        kind: p.kind(),
                        json_type: p.kind().json_type(),
                        description: info.meaning,
                        example: info.example.to_json(),
                        common: i < COMMON_PARAMS.len(),
                    }
                })
                .collect(),
        }
    }
}

/// The 11 triggers.
#[utoipa::path(get, path = "/v1/triggers", tag = "triggers",
    responses((status = 200, body = ListOf<TriggerOut>)))]
async fn list_triggers(_caller: Caller) -> Json<ListOf<TriggerOut>> {
    Json(ListOf {
        data: Trigger::ALL.into_iter().map(TriggerOut::from).collect(),
        next: None,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SampleParams {
    /// `GET` or `POST` (default).
    #[param(value_type = Option<crate::core::webhook::Method>)]
    pub method: Option<String>,
    /// `application/json` (default) or `application/x-www-form-urlencoded`.
    #[param(value_type = Option<crate::core::webhook::ContentType>)]
    pub content_type: Option<String>,
    /// IANA zone (default `UTC`).
    pub time_zone: Option<String>,
    /// The receiver's URL (default `https://receiver.example.com/webhook`).
    #[param(
        max_length = 2048,
        pattern = r"^$|^[hH][tT][tT][pP][sS]?://[^\u0000]*$"
    )]
    pub url: Option<String>,
    /// `rfc3339` (default), `local` or `unix`.
    #[param(value_type = Option<crate::core::shape::TimeFormat>)]
    pub time_format: Option<String>,
}

/// A request as a receiver gets it, ready to show.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestOut {
    pub method: String,
    pub url: String,
    /// `[name, value]` pairs in the order they are sent.
    pub headers: Vec<(String, String)>,
    /// `null` for GET.
    pub body: Option<String>,
}

impl From<WebhookRequest> for RequestOut {
    fn from(r: WebhookRequest) -> Self {
        RequestOut {
            method: r.method.as_str().to_owned(),
            url: r.url,
            headers: r.headers,
            body: r.body,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SampleOut {
    pub trigger: Trigger,
    /// The parameters as JSON, in order.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The whole request, signed with a throwaway secret.
    pub request: RequestOut,
}

impl From<Sample> for SampleOut {
    fn from(s: Sample) -> Self {
        SampleOut {
            trigger: s.trigger,
            parameters: s.parameters,
            request: s.request.into(),
        }
    }
}

impl From<SampleParams> for SampleOptions {
    fn from(p: SampleParams) -> Self {
        SampleOptions {
            method: p.method,
            content_type: p.content_type,
            time_zone: p.time_zone,
            url: p.url,
            time_format: p.time_format,
        }
    }
}

/// The request a receiver would get for this trigger, with sample data.
#[utoipa::path(get, path = "/v1/triggers/{id}/sample", tag = "triggers",
    params(("id" = String, Path), SampleParams),
    responses((status = 200, body = SampleOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn trigger_sample(
    _caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<SampleParams>,
) -> ApiResult<Json<SampleOut>> {
    let trigger = Trigger::parse(&id).ok_or(ApiError::NotFound("trigger"))?;
    let spec = sample_spec(trigger, &params.into())?;
    Ok(Json(render_sample(&spec).into()))
}
