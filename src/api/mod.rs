//! The REST API under `/v1` (SPEC §8): one file per resource, each with its DTOs, handlers and
//! OpenAPI annotations; auth and problem+json errors shared.

pub mod account;
pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod calls;
pub mod click_to_call;
pub mod connectors;
pub mod deliveries;
pub mod events;
pub mod extract;
pub mod health;
pub mod numbers;
pub mod openapi;
pub mod problem;
pub mod triggers;
pub mod users;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use serde::Serialize;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::service::Services;
pub use crate::service::ts;
use crate::store::Page;

/// What every handler can reach: the operations, and the metrics recorder for `/metrics`.
#[derive(Clone)]
pub struct ApiState {
    /// Shared, not copied: the state is cloned for every request.
    pub svc: Arc<Services>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// A page of a list as JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListOf<T> {
    pub data: Vec<T>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

impl<T> ListOf<T> {
    pub fn from_page<S>(page: Page<S>, f: impl Fn(S) -> T) -> ListOf<T> {
        ListOf {
            data: page.items.into_iter().map(f).collect(),
            next: page.next,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "callhook",
        description = "Real-time call webhooks for cloud telephony. Authenticate with `Authorization: Bearer <key>`: \
                       an account API key (`chk_…`) or the operator token. An account key is `admin` (everything, \
                       users included) or `viewer` (reads webhooks, logs, calls and numbers; no secrets, no changes): \
                       a viewer key gets 403 on every change and every secret, saying which role it needs.",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "accounts", description = "Operator: accounts (tenants)"),
        (name = "account", description = "The caller's own account: alert settings, the alert secret and the alerts sent"),
        (name = "api-keys", description = "An account's API keys, admin or viewer"),
        (name = "users", description = "The people who sign in to the web page: invitations, roles, resets"),
        (name = "audit", description = "Who changed what, and when"),
        (name = "numbers", description = "My Numbers: the account's DID numbers"),
        (name = "webhooks", description = "Webhooks and their signing secrets"),
        (name = "triggers", description = "The trigger catalogue"),
        (name = "events", description = "Call events in"),
        (name = "deliveries", description = "Delivery log, resend, replay and test sends"),
        (name = "calls", description = "Calls by number and time, and a call's events with the deliveries they caused"),
        (name = "click-to-call", description = "Calls placed through the connected PBX: the agent first, then the customer"),
        (name = "ops", description = "Probes, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The API router and its OpenAPI document, built from the same route list so neither can
/// miss a route the other has.
pub fn router(state: ApiState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(accounts::router())
        .merge(account::router())
        .merge(api_keys::router())
        .merge(users::router())
        .merge(audit::router())
        .merge(numbers::router())
        .merge(webhooks::router())
        .merge(triggers::router())
        .merge(events::router())
        .merge(deliveries::router())
        .merge(calls::router())
        .merge(click_to_call::router())
        .merge(connectors::router())
        .merge(health::router())
        .split_for_parts();
    // Every answer also gets `Cache-Control: no-store` (some carry secrets) from the app's
    // security headers.
    let router = router.route_layer(axum::middleware::from_fn(extract::refuse_bad_request_line));
    (router.with_state(state), doc)
}
