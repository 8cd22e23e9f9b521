//! The REST API under `/v1` (SPEC §8): one file per resource, each with its DTOs, handlers and
//! OpenAPI annotations; auth and problem+json errors shared.

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
pub mod problem;
pub mod triggers;
pub mod users;
pub mod webhooks;

use axum::Router;
use serde::Serialize;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;

use crate::service::Services;
pub use crate::service::ts;
use crate::store::Page;

/// What every handler can reach: the operations, and the metrics recorder for `/metrics`.
#[derive(Clone)]
pub struct ApiState {
    pub svc: Services,
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
        (name = "api-keys", description = "An account's API keys, admin or viewer"),
        (name = "users", description = "The people who sign in to the web page: invitations, roles, resets"),
        (name = "audit", description = "Who changed what, and when"),
        (name = "numbers", description = "My Numbers: the account's DID numbers"),
        (name = "webhooks", description = "Webhooks and their signing secrets"),
        (name = "triggers", description = "The trigger catalogue"),
        (name = "events", description = "Call events in"),
        (name = "deliveries", description = "Delivery log, resend, replay and test sends"),
        (name = "calls", description = "A call's events and the deliveries they caused"),
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
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(accounts::router())
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
    problem_responses(&mut doc);
    (router.with_state(state), doc)
}

/// What every route's document says of its errors, whatever its own annotation lists: they
/// are `application/problem+json`, and a route behind the bearer token may answer 401 (no or
/// an unknown token) and 403 (a role that may not, or a token of the wrong kind).
fn problem_responses(doc: &mut utoipa::openapi::OpenApi) {
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    let is_problem = |r: &RefOr<utoipa::openapi::schema::Schema>| matches!(r, RefOr::Ref(r) if r.ref_location.ends_with("/Problem"));
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            for response in op.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let json = response.content.get("application/json");
                if json.is_some_and(
                    |c| matches!(c, RefOr::T(c) if c.schema.as_ref().is_some_and(is_problem)),
                ) && let Some(c) = response.content.shift_remove("application/json")
                {
                    response
                        .content
                        .insert("application/problem+json".to_owned(), c);
                }
            }
            // `security(())` marks the routes anyone may call.
            let public = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| *r == Default::default()));
            if public {
                continue;
            }
            let responses = &mut op.responses.responses;
            responses
                .entry("401".to_owned())
                .or_insert_with(|| RefOr::T(problem("No or an unknown bearer token")));
            responses.entry("403".to_owned()).or_insert_with(|| {
                RefOr::T(problem(
                    "The key's role may not do this (it says which role it needs), or a token of \
                     the wrong kind: the operator token on an account's route, an account key on \
                     an operator's",
                ))
            });
        }
    }
}
