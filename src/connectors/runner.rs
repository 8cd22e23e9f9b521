//! The shell around a connector's [`Session`]: connect, read, hand the call events to ingest,
//! reconnect with backoff, and keep the status (`/readyz`, the web page, `/metrics`).
//!
//! Nothing here knows a PBX protocol; it only moves bytes and events. Events are handed to
//! [`Ingest::accept`] before the next bytes are read, so a store that is down slows reading
//! (the PBX buffers) instead of losing events. Click-to-call requests come in as [`Order`]s;
//! their changes of status go back to whoever placed them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use rand::Rng as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::originate::{Placing, StateChange};
use super::{ConnectorKind, ConnectorSettings, ConnectorStatus, Session, Step};
use crate::core::click_to_call::FailReason;
use crate::core::event::CallEvent;
use crate::core::id::AccountId;
use crate::ingest::Ingest;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

/// How long connecting to the PBX may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often to poke the PBX, so that a connection that died silently is noticed.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Nothing read for this long: the connection is dead.
const IDLE: Duration = Duration::from_secs(95);
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(30);
/// How often the calls being followed are saved (and at shutdown): a crash loses at most
/// this much of what happened to them.
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// A session that stayed logged in this long was healthy: the next retry starts quick again.
const HEALTHY: Duration = Duration::from_secs(10);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("no answer from {0} within {1:?}")]
    ConnectTimeout(String, Duration),
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the PBX closed the connection")]
    Closed,
    #[error("nothing heard from the PBX for {0:?}; reconnecting")]
    Idle(Duration),
    #[error("{0}")]
    Refused(String),
    #[error("account {0} does not exist; create it or fix `account`")]
    NoAccount(String),
    #[error("cannot check the account: {0}")]
    Store(StoreError),
}

/// Where to connect and whose calls they are.
pub(super) struct Target {
    pub address: String,
    pub account: String,
}

/// A click-to-call request for the connector to place, and where its changes go.
pub(super) struct Order {
    pub placing: Placing,
    pub changes: mpsc::UnboundedSender<StateChange>,
}

/// A connector's status, shared between its task and the readers of the status.
pub(super) struct Shared {
    name: String,
    kind: ConnectorKind,
    address: String,
    account: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    connected_since: Option<Timestamp>,
    events_read: u64,
    call_events: u64,
    duplicates: u64,
    calls_open: u64,
    connects: u64,
    last_error: Option<(String, Timestamp)>,
}

impl Shared {
    pub fn new(s: &ConnectorSettings) -> Shared {
        let shared = Shared {
            name: s.name(),
            kind: s.kind,
            address: format!("{}:{}", s.host, s.port()),
            account: s.account.clone(),
            state: Mutex::new(State::default()),
        };
        shared.gauge("callhook_connector_connected", 0.0);
        shared.gauge("callhook_connector_calls_open", 0.0);
        shared
    }

    /// The state, even if a panic elsewhere poisoned the lock (it holds plain counters).
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Logged in to the PBX now.
    pub fn is_connected(&self) -> bool {
        self.state().connected_since.is_some()
    }

    pub fn status(&self) -> ConnectorStatus {
        let s = self.state();
        ConnectorStatus {
            name: self.name.clone(),
            kind: self.kind,
            address: self.address.clone(),
            account_id: self.account.clone(),
            connected: s.connected_since.is_some(),
            connected_since: s.connected_since.map(|t| t.to_string()),
            events_read: s.events_read,
            call_events: s.call_events,
            duplicates: s.duplicates,
            calls_open: s.calls_open,
            connects: s.connects,
            last_error: s.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: s.last_error.as_ref().map(|(_, t)| t.to_string()),
        }
    }

    fn gauge(&self, name: &'static str, v: f64) {
        metrics::gauge!(name, "connector" => self.name.clone()).set(v);
    }

    fn count(&self, name: &'static str, n: u64) {
        metrics::counter!(name, "connector" => self.name.clone()).increment(n);
    }

    fn logged_in(&self) {
        let mut s = self.state();
        s.connected_since = Some(Timestamp::now());
        s.connects += 1;
        drop(s);
        self.gauge("callhook_connector_connected", 1.0);
        self.count("callhook_connector_connects_total", 1);
        tracing::info!(connector = %self.name, address = %self.address, "connected to the PBX");
    }

    fn disconnected(&self) {
        self.state().connected_since = None;
        self.gauge("callhook_connector_connected", 0.0);
    }

    fn error(&self, message: String) {
        tracing::warn!(connector = %self.name, error = %message, "PBX connector");
        self.state().last_error = Some((message, Timestamp::now()));
        self.count("callhook_connector_errors_total", 1);
    }

    fn read(&self, frames: u64, calls_open: usize) {
        let mut s = self.state();
        s.events_read += frames;
        s.calls_open = calls_open as u64;
        drop(s);
        self.count("callhook_connector_events_read_total", frames);
        self.gauge("callhook_connector_calls_open", calls_open as f64);
    }

    fn stored(&self, accepted: u64, duplicates: u64) {
        let mut s = self.state();
        s.call_events += accepted;
        s.duplicates += duplicates;
        drop(s);
        self.count("callhook_connector_call_events_total", accepted);
        self.count("callhook_connector_duplicates_total", duplicates);
    }
}

/// Follows the PBX until shutdown: connect, read, reconnect after a pause that grows while
/// the PBX stays unreachable.
pub(super) async fn run(
    shared: Arc<Shared>,
    target: Target,
    mut session: Box<dyn Session>,
    orders: Option<mpsc::UnboundedReceiver<Order>>,
    ingest: Ingest,
    store: Arc<dyn Store>,
    mut shutdown: Shutdown,
) {
    let mut retry = FIRST_RETRY;
    // As configured: each session first checks that the store has this account.
    let account = AccountId::from_string(target.account.clone());
    let mut link = Link {
        shared: &shared,
        account: &account,
        ingest: &ingest,
        store: store.as_ref(),
        state_key: format!("connector_state:{}", shared.name),
        saved: String::new(),
        saved_at: tokio::time::Instant::now(),
        orders,
        requests: HashMap::new(),
    };
    link.load(session.as_mut()).await;
    while !shutdown.is_shutdown() {
        let began = tokio::time::Instant::now();
        let mut healthy = false;
        let ended = match store.get_account(&account).await {
            Ok(_) => {
                follow(
                    &target,
                    session.as_mut(),
                    &mut link,
                    &mut shutdown,
                    &mut healthy,
                )
                .await
            }
            Err(StoreError::NotFound) => Err(SessionError::NoAccount(target.account.clone())),
            Err(e) => Err(SessionError::Store(e)),
        };
        link.shared.disconnected();
        let step = session.disconnected(Timestamp::now());
        link.apply(step, session.calls_open(), &mut shutdown).await;
        link.refuse_waiting_orders();
        link.save(session.save()).await;
        match ended {
            Ok(()) => break,
            Err(e) => link.shared.error(e.to_string()),
        }
        if healthy && began.elapsed() >= HEALTHY {
            retry = FIRST_RETRY;
        }
        // ±20% so that many callhook nodes do not reconnect in step.
        let jitter = rand::rng().random_range(0.8..1.2);
        tokio::select! {
            _ = tokio::time::sleep(retry.mul_f64(jitter)) => {}
            _ = shutdown.recv() => break,
        }
        retry = (retry * 2).min(LONGEST_RETRY);
    }
    shared.disconnected();
}

/// What a session's steps act on.
struct Link<'a> {
    shared: &'a Shared,
    account: &'a AccountId,
    ingest: &'a Ingest,
    store: &'a dyn Store,
    /// Where the calls being followed are kept between runs (the store's settings).
    state_key: String,
    saved: String,
    saved_at: tokio::time::Instant,
    /// Click-to-call requests to place (a connector with `originate`).
    orders: Option<mpsc::UnboundedReceiver<Order>>,
    /// Where each request's changes go, until its final one.
    requests: HashMap<String, mpsc::UnboundedSender<StateChange>>,
}

/// The next click-to-call request, for a connector that places calls; never, for another.
async fn next_order(orders: &mut Option<mpsc::UnboundedReceiver<Order>>) -> Option<Order> {
    match orders {
        Some(o) => o.recv().await,
        None => std::future::pending().await,
    }
}

impl Link<'_> {
    /// Hands a request to the session; answers what to send the PBX.
    fn place(&mut self, order: Order, session: &mut dyn Session) -> Step {
        let id = order.placing.request_id.clone();
        if self.requests.contains_key(&id) {
            let _ = order.changes.send(StateChange::failed(
                &order.placing,
                FailReason::OriginateRefused,
                "a request with this id is being placed already",
                Timestamp::now(),
            ));
            return Step::default();
        }
        self.requests.insert(id, order.changes);
        session.originate(order.placing, Timestamp::now())
    }

    /// Requests that came while the connection went down fail now rather than wait for the
    /// next one.
    fn refuse_waiting_orders(&mut self) {
        let Some(orders) = self.orders.as_mut() else {
            return;
        };
        while let Ok(order) = orders.try_recv() {
            let _ = order.changes.send(StateChange::failed(
                &order.placing,
                FailReason::ConnectorLost,
                "the connection to the PBX was lost",
                Timestamp::now(),
            ));
        }
    }

    /// Sends each change to whoever placed its request.
    fn report(&mut self, changes: Vec<StateChange>) {
        for c in changes {
            tracing::info!(
                connector = %self.shared.name,
                request_id = %c.request_id,
                ref_id = %c.ref_id,
                state = c.status.as_str(),
                reason = c.status.reason().map(|r| r.as_str()),
                cause = c.cause.as_deref(),
                "click-to-call"
            );
            let to = if c.status.is_final() {
                self.requests.remove(&c.request_id)
            } else {
                self.requests.get(&c.request_id).cloned()
            };
            if let Some(to) = to {
                let _ = to.send(c);
            }
        }
    }

    /// Picks up the calls a previous run of callhook was following.
    async fn load(&mut self, session: &mut dyn Session) {
        match self.store.get_setting(&self.state_key).await {
            Ok(Some(saved)) => match session.restore(&saved) {
                Ok(()) => {
                    self.saved = saved;
                    self.shared.read(0, session.calls_open());
                }
                Err(e) => self.shared.error(format!(
                    "cannot pick up the calls of the previous run ({e}); they are not reported"
                )),
            },
            Ok(None) => {}
            Err(e) => self
                .shared
                .error(format!("cannot read the calls of the previous run: {e}")),
        }
    }

    /// Whether it is time to save the calls being followed.
    fn save_due(&self) -> bool {
        self.saved_at.elapsed() >= SAVE_EVERY
    }

    /// Keeps `state` (the session's calls) for the next run, unless it did not change.
    async fn save(&mut self, state: String) {
        self.saved_at = tokio::time::Instant::now();
        if state == self.saved {
            return;
        }
        match self.store.set_setting(&self.state_key, &state).await {
            Ok(()) => self.saved = state,
            Err(e) => self
                .shared
                .error(format!("cannot save the calls being followed: {e}")),
        }
    }

    /// Records a step and stores its events. Returns the refusal, if the PBX refused us.
    async fn apply(
        &mut self,
        step: Step,
        calls_open: usize,
        shutdown: &mut Shutdown,
    ) -> Option<String> {
        if step.logged_in {
            self.shared.logged_in();
        }
        self.shared.read(step.frames, calls_open);
        for p in step.problems {
            self.shared.error(p);
        }
        self.report(step.changes);
        self.deliver(step.events, shutdown).await;
        step.refused
    }

    /// Hands events to ingest, retrying while the store is down (reading waits meanwhile).
    async fn deliver(&mut self, events: Vec<CallEvent>, shutdown: &mut Shutdown) {
        if events.is_empty() {
            return;
        }
        let batch: Vec<(AccountId, CallEvent)> = events
            .into_iter()
            .map(|e| (self.account.clone(), e))
            .collect();
        let mut wait = Duration::from_millis(100);
        loop {
            match self.ingest.accept(batch.clone()).await {
                Ok(a) => {
                    self.shared.stored(a.accepted, a.duplicates);
                    return;
                }
                Err(StoreError::Rejected(_)) => {
                    // One event breaks a rule only the store checks (a second `call.ended`
                    // for a call id another source used). Store the others one by one.
                    for one in batch {
                        match self.ingest.accept(vec![one]).await {
                            Ok(a) => self.shared.stored(a.accepted, a.duplicates),
                            Err(e) => self.shared.error(format!("a call event was refused: {e}")),
                        }
                    }
                    return;
                }
                Err(e) => {
                    self.shared.error(format!(
                        "cannot store call events ({e}); trying again in {wait:?}"
                    ));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.recv() => {
                            self.shared.error(format!(
                                "shutting down with {} call events not stored", batch.len()
                            ));
                            return;
                        }
                    }
                    wait = (wait * 2).min(LONGEST_RETRY);
                }
            }
        }
    }
}

/// One connection: until it fails (`Err`) or shutdown (`Ok`).
async fn follow(
    target: &Target,
    session: &mut dyn Session,
    link: &mut Link<'_>,
    shutdown: &mut Shutdown,
    healthy: &mut bool,
) -> Result<(), SessionError> {
    let address = &target.address;
    let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(SessionError::Connect(address.clone(), e)),
        Err(_) => {
            return Err(SessionError::ConnectTimeout(
                address.clone(),
                CONNECT_TIMEOUT,
            ));
        }
    };
    let _ = stream.set_nodelay(true);
    let step = session.connected(Timestamp::now());
    stream.write_all(&step.send).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_read = tokio::time::Instant::now();
    let mut keepalive = tokio::time::interval_at(last_read + KEEPALIVE, KEEPALIVE);
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    return Err(SessionError::Closed);
                }
                last_read = tokio::time::Instant::now();
                let step = session.received(&buf[..n], Timestamp::now());
                stream.write_all(&step.send).await?;
                *healthy |= step.logged_in;
                if let Some(refused) = link.apply(step, session.calls_open(), shutdown).await {
                    return Err(SessionError::Refused(refused));
                }
                if link.save_due() {
                    link.save(session.save()).await;
                }
                if shutdown.is_shutdown() {
                    return Ok(());
                }
            }
            order = next_order(&mut link.orders) => {
                let Some(order) = order else {
                    // Nobody can place calls any more (the app is stopping).
                    link.orders = None;
                    continue;
                };
                let step = link.place(order, session);
                stream.write_all(&step.send).await?;
                link.apply(step, session.calls_open(), shutdown).await;
            }
            _ = keepalive.tick() => {
                if last_read.elapsed() >= IDLE {
                    return Err(SessionError::Idle(IDLE));
                }
                if let Some(ping) = session.keepalive() {
                    stream.write_all(&ping).await?;
                }
            }
            _ = shutdown.recv() => {
                if let Some(bye) = session.logoff() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bye)).await;
                }
                return Ok(());
            }
        }
    }
}
