//! Start-up: open the store, make the first account on the very first start, assemble the
//! operations ([`Services`]) and the HTTP app around them (the REST API and the web page),
//! start the background tasks, and shut all of it down on one signal.

use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::api::problem::ApiError;
use crate::api::{self, ApiState};
use crate::config::Settings;
use crate::connectors::handover::Handover;
use crate::core::credentials::{hash_token, random_token};
use crate::core::id::{AccountId, NodeId};
use crate::core::role::Role;
use crate::delivery::attempt::Policy;
use crate::delivery::client::HttpClient;
use crate::delivery::dispatcher::{self, Limits};
use crate::ingest::Ingest;
use crate::service::{Services, accounts, users};
use crate::shutdown::Stopper;
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::web::{self, WebState};

const OPERATOR_HASH: &str = "operator_token_sha256";
const BOOTSTRAPPED: &str = "bootstrapped_at";
pub const ADMIN_EMAIL: &str = "admin@callhook.local";

/// Opens the store named by the settings with its secrets unlocked (`src/secrets.rs`): the
/// master key loaded (made on a first start) and checked, what is stored plain sealed.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let store = open_database(settings).await?;
    crate::secrets::unlock(settings, &*store).await?;
    Ok(store)
}

/// Opens the store named by the settings (migrated), creating the data folder for SQLite,
/// without its keys: `callhook migrate` never makes a key.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let url = settings.database_url();
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = PgStore::open(&url)
            .await
            .with_context(|| format!("cannot open the PostgreSQL database {}", redact(&url)))?;
        return Ok(Arc::new(store));
    }
    if settings.database_url.is_empty() {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "cannot create the data folder {}",
                settings.data_dir.display()
            )
        })?;
    }
    // Before SQLite's first connection, which fixes its allocator for the process.
    crate::alloc::for_sqlite();
    let store = SqliteStore::open(&url)
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
    Ok(Arc::new(store))
}

/// A database URL fit for logs: without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The process-wide Prometheus recorder (one per process, shared by every app in it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    15.0,
                ])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// What the first start prints once.
#[derive(Debug, Default)]
pub struct FirstStart {
    pub operator_token: Option<String>,
    pub account_id: Option<AccountId>,
    pub admin_password: Option<String>,
    pub api_key: Option<String>,
}

impl FirstStart {
    pub fn print(&self, base_url: &str) {
        if self.operator_token.is_none() && self.account_id.is_none() {
            return;
        }
        let mut s = String::from(
            "\n  callhook is set up. These are shown once; keep them somewhere safe.\n\n",
        );
        if let (Some(acct), Some(pw), Some(key)) =
            (&self.account_id, &self.admin_password, &self.api_key)
        {
            s.push_str(&format!("  Account         {acct}\n"));
            s.push_str(&format!(
                "  Admin sign-in   {base_url}/  as  {ADMIN_EMAIL}  /  {pw}\n"
            ));
            s.push_str(&format!("  API key         {key}\n"));
        }
        if let Some(t) = &self.operator_token {
            s.push_str(&format!("  Operator token  {t}\n"));
        }
        eprintln!("{s}");
    }
}

/// On the very first start: the default account with its admin and API key, and an operator
/// token unless one is configured. Returns the operator token's hash.
pub async fn bootstrap(
    store: &dyn Store,
    settings: &Settings,
) -> anyhow::Result<(String, FirstStart)> {
    let mut first = FirstStart::default();
    let operator_hash = if !settings.operator_token.is_empty() {
        hash_token(&settings.operator_token)
    } else if let Some(h) = store.get_setting(OPERATOR_HASH).await? {
        h
    } else {
        // Several nodes may start on one new database at once: only the first to store a
        // token keeps (and prints) it; the others take the one it stored.
        let token = random_token("cho_");
        let h = hash_token(&token);
        if store.set_setting_if_absent(OPERATOR_HASH, &h).await? {
            first.operator_token = Some(token);
            h
        } else {
            store
                .get_setting(OPERATOR_HASH)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the operator token vanished while starting"))?
        }
    };
    // Likewise the first account: whichever node claims the first start makes it.
    if store
        .set_setting_if_absent(BOOTSTRAPPED, &Timestamp::now().to_string())
        .await?
    {
        let made = accounts::create(store, "Default", "first start").await?;
        let admin = users::create(
            store,
            &made.account.id,
            ADMIN_EMAIL,
            Role::Owner,
            "first start",
        )
        .await?;
        first.account_id = Some(made.account.id);
        first.admin_password = Some(admin.password);
        first.api_key = Some(made.api_key.secret);
    }
    Ok((operator_hash, first))
}

/// A running callhook: its operations, the HTTP router in front of them, and its background
/// tasks.
pub struct App {
    pub services: Arc<Services>,
    pub router: Router,
    pub first_start: FirstStart,
    /// Stops every background task, and waits for them.
    stopper: Stopper,
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        crate::init_crypto();
        settings.check()?;
        let settings = Arc::new(settings);
        let store = open_store(&settings).await?;
        let (operator_hash, first_start) = bootstrap(&*store, &settings).await?;
        // What a killed process of this node had in flight goes out again now, not when its
        // leases run out (on SQLite; see `Store::release_leftover_leases`; on PostgreSQL the
        // heartbeats take it over).
        let released = store.release_leftover_leases(Timestamp::now()).await?;
        if released > 0 {
            tracing::info!(
                deliveries = released,
                "gave back the leases a previous process left; sending them again"
            );
        }
        let client = HttpClient::new(
            &settings.allow_targets,
            settings.connect_timeout.0,
            settings.request_timeout.0,
            settings.max_in_flight as usize,
        )?;
        let policy = Policy {
            schedule: settings.retry_schedule.clone(),
            disable_after: settings.disable_after.0,
        };
        let stopper = Stopper::new();
        // This process, as its heartbeats and leases name it.
        let node = NodeId::new();
        let waker = dispatcher::start(
            store.clone(),
            node.clone(),
            client.clone(),
            policy.clone(),
            Limits {
                lease: settings.lease.0,
                request_timeout: settings.request_timeout.0,
                poll_interval: settings.poll_interval.0,
                per_webhook: settings.max_in_flight_per_webhook.max(1),
                total: settings.max_in_flight.max(1),
                shutdown_grace: settings.shutdown_grace.0,
                holds: Default::default(),
            },
            stopper.handle(),
        );
        // PBX connectors: their call events take the same path as the API's. The hand-over
        // of click-to-call requests runs beside them on every node.
        let connectors = crate::connectors::Connectors::start(
            &settings.connectors,
            Ingest::new(store.clone(), waker.clone()),
            store.clone(),
            Handover {
                timeout: settings.click_to_call_timeout.0,
                poll: settings.poll_interval.0,
                node: node.clone(),
            },
            &stopper.handle(),
        )?;
        // Work announced by other nodes (PostgreSQL) wakes this node's dispatcher and
        // hand-over at once.
        let (wake, placing) = (waker.clone(), connectors.clone());
        store.listen_for_work(Arc::new(move || {
            wake.wake();
            placing.request_stored();
        }));
        tokio::spawn(crate::delivery::alerts::sweep_loop(
            store.clone(),
            waker.clone(),
            settings.poll_interval.0,
            settings.alert_failed_every.0,
            stopper.handle(),
        ));
        tokio::spawn(crate::retention::prune_loop(
            store.clone(),
            settings.retention.0,
            stopper.handle(),
        ));
        let services = Arc::new(Services {
            ingest: Ingest::new(store.clone(), waker)
                .max_deliveries(settings.max_deliveries_per_post),
            store,
            settings,
            node,
            client,
            policy: Arc::new(policy),
            connectors,
            operator_hash: operator_hash.into(),
            test_sends: Default::default(),
        });
        let (api, openapi) = api::router(ApiState {
            svc: services.clone(),
            metrics: metrics_handle(),
        });
        let openapi_json = Arc::new(
            api::openapi::document(&openapi).context("cannot write the OpenAPI document")?,
        );
        let router = api
            .merge(web::router(WebState {
                svc: services.clone(),
                sign_in: Default::default(),
            }))
            .route(
                "/openapi.json",
                axum::routing::get(move || {
                    let doc = openapi_json.clone();
                    async move {
                        (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            (*doc).clone(),
                        )
                    }
                }),
            )
            .fallback(|| async { ApiError::NotFound("route") })
            .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
            .layer(axum::middleware::from_fn_with_state(
                services.settings.clone(),
                outer,
            ));
        Ok(App {
            services,
            router,
            first_start,
            stopper,
        })
    }

    /// Serves until `signal` resolves, then shuts down in order: stop taking requests, stop
    /// claiming, let in-flight deliveries finish within the grace period, give back the rest.
    /// Returns once every background task has finished.
    pub async fn serve(
        self,
        listener: TcpListener,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let limits = crate::edge::ConnectionLimits::of(&self.services.settings);
        crate::edge::serve(listener, self.router, limits, signal).await;
        self.stopper.stop().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// What every request goes through, as one middleware (each layer of its own boxed another
/// future per request: about 1 KiB each of every request waiting for its commit, BENCHMARKS.md
/// eighteenth pass):
/// - it runs in a span naming its method, route and (once authenticated) account, so that
///   whatever a request logs — a 500's cause above all — says which request it was;
/// - a panicking handler is answered with a problem+json 500 instead of a dropped connection;
/// - every answer, that 500 too, carries the security headers (`web::security_headers`) and,
///   over https, `Strict-Transport-Security` (`edge::hsts`).
async fn outer(
    axum::extract::State(settings): axum::extract::State<Arc<Settings>>,
    req: Request,
    next: Next,
) -> Response {
    use futures_util::FutureExt;
    use tracing::Instrument;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("-", |p| p.as_str())
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        account = tracing::field::Empty,
    );
    let https = crate::edge::over_https(
        crate::edge::peer_of(req.extensions()),
        req.headers(),
        &settings,
    );
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut resp = async move {
        match std::panic::AssertUnwindSafe(next.run(req))
            .catch_unwind()
            .await
        {
            Ok(r) => r,
            Err(_) => ApiError::Internal(anyhow::anyhow!("a handler panicked")).into_response(),
        }
    }
    .instrument(span)
    .await;
    web::security_headers(&mut resp, is_asset);
    if https {
        crate::edge::hsts(&mut resp);
    }
    resp
}
