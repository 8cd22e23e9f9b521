//! Probes, Prometheus metrics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use crate::store::HealthState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or what is wrong (in general terms; the details are in the log).
    pub status: String,
    pub version: &'static str,
    /// The PBX connectors (readiness only; absent when none is configured). A connector that
    /// is reconnecting does not make callhook unready: the API, the web page and deliveries
    /// work without it, and taking this node out of service would not bring the PBX back.
    /// Their details (addresses, errors) are in /metrics and on the web page, not here: this
    /// probe answers anyone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connectors: Vec<ConnectorReadiness>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectorReadiness {
    pub name: String,
    pub connected: bool,
}

fn health(status: &str, state: Option<&ApiState>) -> Json<Health> {
    Json(Health {
        status: status.into(),
        version: env!("CARGO_PKG_VERSION"),
        connectors: state.map_or_else(Vec::new, |s| {
            s.svc
                .connectors
                .status()
                .into_iter()
                .map(|c| ConnectorReadiness {
                    name: c.name,
                    connected: c.connected,
                })
                .collect()
        }),
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    health("ok", None)
}

/// Readiness: the database takes a write (through the same path every write takes) within
/// two seconds.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Health>) {
    match tokio::time::timeout(std::time::Duration::from_secs(2), state.svc.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, health("ok", Some(&state))),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "readiness: the database refused a write");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                health("the database is not answering", Some(&state)),
            )
        }
        Err(_) => {
            tracing::error!("readiness: the database did not answer within 2 s");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                health("the database is not answering", Some(&state)),
            )
        }
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "ops", security(()),
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let now = jiff::Timestamp::now();
    match state.svc.store.queue_stats(now).await {
        Ok(q) => {
            metrics::gauge!("callhook_queue_pending").set(q.pending as f64);
            metrics::gauge!("callhook_queue_due").set(q.due as f64);
            let age = q
                .oldest_due_at
                .map_or(0.0, |t| now.duration_since(t).as_secs_f64().max(0.0));
            metrics::gauge!("callhook_queue_oldest_due_age_seconds").set(age);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read queue statistics for /metrics"),
    }
    match state.svc.store.webhook_states().await {
        Ok(states) => {
            for (id, now_in) in states {
                for s in [
                    HealthState::Healthy,
                    HealthState::Failing,
                    HealthState::Disabled,
                    HealthState::Idle,
                ] {
                    metrics::gauge!("callhook_webhook_state", "webhook" => id.to_string(), "state" => s.as_str())
                        .set(if s == now_in { 1.0 } else { 0.0 });
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read webhook states for /metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
