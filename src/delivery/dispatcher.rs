//! The dispatcher: claims due deliveries from the store (leases, so a node that dies loses
//! nothing), sends them with per-webhook limits, and records the outcomes in batches.
//!
//! One task owns all bookkeeping (no locks): each webhook has a lane ([`super::lanes`]) with its
//! in-flight count, a short queue of claimed work and its rate-limit slot. Claims skip webhooks
//! whose lane is full, so a slow or dead endpoint only ever holds its own lane, never anyone
//! else's. Sends run as separate tasks; their records go to a recorder task that writes them
//! in batches. This file is the I/O around the lanes: claims, sends, holds and shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;

use super::attempt::{self, Policy};
use super::client::HttpClient;
use super::handoff::{Arrivals, Handoff};
use super::lanes::{Done, Health, Holds, LaneRules, Lanes, Leased, plus};
use crate::core::id::{NodeId, WebhookId};
use crate::shutdown::Shutdown;
use crate::store::{AttemptRecord, Claimed, Heartbeat, Next, Release, Store};

/// Most deliveries one claim takes.
const CLAIM_BATCH: u32 = 256;

/// How often the dispatcher tells ingests how much room its lanes have, at most.
const PUBLISH_EVERY: Duration = Duration::from_micros(500);

#[derive(Debug, Clone)]
pub struct Limits {
    pub lease: Duration,
    /// The longest a request may take; a claimed delivery is only sent with this much lease
    /// left and half as much again for its record (see `LaneRules::room`).
    pub request_timeout: Duration,
    pub poll_interval: Duration,
    pub per_webhook: u32,
    pub total: u32,
    pub shutdown_grace: Duration,
    /// When a webhook's endpoint counts as stuck, and how long it is then held.
    pub holds: Holds,
}

/// A handle to wake the dispatcher (new work was committed), and to hand it fresh work.
#[derive(Clone)]
pub struct Waker {
    due: Arc<Notify>,
    handoff: Arc<Handoff>,
}

impl Waker {
    /// Work may be due in the store: the dispatcher claims.
    pub fn wake(&self) {
        self.due.notify_one();
    }

    /// Where fresh deliveries are handed to this node's dispatcher.
    pub fn handoff(&self) -> &Handoff {
        &self.handoff
    }
}

impl Leased for Claimed {
    fn lease_until(&self) -> Timestamp {
        self.lease_until
    }
}

struct Dispatcher {
    store: Arc<dyn Store>,
    /// This node: what it claims is leased to it.
    node: NodeId,
    client: HttpClient,
    policy: Arc<Policy>,
    limits: Limits,
    lanes: Lanes<Claimed>,
    /// Sends in flight: task id → (webhook, delivery, lease), to give leases back on shutdown.
    running: HashMap<tokio::task::Id, (WebhookId, Release, Instant)>,
    tasks: JoinSet<AttemptRecord>,
    records: mpsc::UnboundedSender<AttemptRecord>,
    /// How many nodes serve from the database (this one included), from the heartbeat.
    nodes: Arc<AtomicU32>,
    /// Attempts made but not yet written: they still count against `max_in_flight`, so a node
    /// never has more deliveries sent-but-unrecorded (what a crash would send again) than that.
    unrecorded: Arc<AtomicU32>,
    /// The earliest retry this node scheduled, so it looks again right then, not a poll later.
    next_retry: Option<Timestamp>,
    /// Claimed work whose lease ran too short to send it, to give back.
    stale: Vec<Release>,
    /// Held webhooks whose endpoint answers again, to release.
    lifts: Vec<WebhookId>,
    /// Fresh deliveries leased to this node as they were stored, and the room published for
    /// them (see [`super::handoff`]).
    handoff: Arc<Handoff>,
    arrivals: Arrivals,
    published: Option<Instant>,
    /// When the next poll comes: every `poll_interval`, work may be due that nobody announced
    /// (a hold run out, a retry another node scheduled).
    next_poll: Timestamp,
    /// Whether work may be due in the store that this node has not claimed: set when woken,
    /// at each poll, while claims come back with work or skip full lanes, and when work is
    /// given back; cleared when a claim finds nothing. A node fed by hand-overs alone then
    /// makes no claims.
    due: bool,
}

/// Starts the dispatcher of `node` with its recorder and heartbeat; each holds `shutdown` and
/// is done once it has dropped it. Answers the handle that wakes the dispatcher.
pub fn start(
    store: Arc<dyn Store>,
    node: NodeId,
    client: HttpClient,
    policy: Policy,
    limits: Limits,
    shutdown: Shutdown,
) -> Waker {
    let notify = Arc::new(Notify::new());
    let (handoff, arrivals) = Handoff::new(node.clone(), limits.lease);
    let handoff = Arc::new(handoff);
    let waker = Waker {
        due: notify.clone(),
        handoff: handoff.clone(),
    };
    // The recorder's news that attempts were written: room for more, nothing due by itself.
    let recorded = Arc::new(Notify::new());
    let (records, records_rx) = mpsc::unbounded_channel();
    let unrecorded = Arc::new(AtomicU32::new(0));
    // Dropped when the recorder ends: what this node sent is written, or given up on.
    let (recorder_running, recorder_done) = oneshot::channel();
    tokio::spawn(record_loop(
        store.clone(),
        records_rx,
        waker.clone(),
        recorded.clone(),
        unrecorded.clone(),
        recorder_running,
        shutdown.clone(),
    ));
    let nodes = Arc::new(AtomicU32::new(1));
    tokio::spawn(heartbeat_loop(
        store.clone(),
        node.clone(),
        nodes.clone(),
        waker.clone(),
        recorder_done,
        shutdown.clone(),
    ));
    let lanes = Lanes::new(LaneRules {
        per_webhook: limits.per_webhook,
        lease: limits.lease,
        request_timeout: limits.request_timeout,
        holds: limits.holds,
    });
    let d = Dispatcher {
        store,
        node,
        client,
        policy: Arc::new(policy),
        limits,
        lanes,
        running: HashMap::new(),
        tasks: JoinSet::new(),
        records,
        nodes,
        unrecorded,
        next_retry: None,
        stale: Vec::new(),
        lifts: Vec::new(),
        handoff,
        arrivals,
        published: None,
        next_poll: Timestamp::now(),
        due: true,
    };
    tokio::spawn(d.run(notify, recorded, shutdown));
    waker
}

/// How long from `now` until `then` (nothing if it has passed).
fn until(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(now.duration_until(then)).unwrap_or(Duration::ZERO)
}

impl Dispatcher {
    async fn run(mut self, notify: Arc<Notify>, recorded: Arc<Notify>, mut shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_shutdown() {
                break;
            }
            self.lanes.set_nodes(self.nodes.load(Ordering::Relaxed));
            self.pump_waiting();
            self.polls(Timestamp::now());
            match self.claim_round().await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim deliveries; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            let publish_in = self.publish_room();
            let now = Timestamp::now();
            let wait = until(now, self.next_deadline(now)).min(publish_in);
            tokio::select! {
                _ = notify.notified() => self.due = true,
                // Room again; a claim follows only if work may be due.
                _ = recorded.notified() => {}
                Some(batch) = self.arrivals.recv() => {
                    self.arrived(batch);
                    while let Ok(batch) = self.arrivals.try_recv() {
                        self.arrived(batch);
                    }
                }
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(done);
                    while let Some(done) = self.tasks.try_join_next_with_id() {
                        self.finished(done);
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.recv() => {}
            }
        }
        self.shut_down().await;
    }

    /// Tells ingests how much each lane can take (see [`Handoff::publish`]), at most every
    /// [`PUBLISH_EVERY`]: what lands in between is bounded by what ingests reserved, and a
    /// lane that overflows gives the rest back. Answers how soon to look again to publish
    /// what this call had to leave for later.
    fn publish_room(&mut self) -> Duration {
        let now = Instant::now();
        if let Some(at) = self.published {
            let since = now.duration_since(at);
            if since < PUBLISH_EVERY {
                return PUBLISH_EVERY - since;
            }
        }
        self.published = Some(now);
        let held = self.lanes.claimed() + self.unrecorded.load(Ordering::Relaxed);
        let free = self.limits.total.saturating_sub(held);
        self.handoff.publish(
            free,
            self.lanes.fresh_room(),
            self.lanes.rooms(Timestamp::now()),
        );
        Duration::MAX
    }

    /// Takes deliveries handed over by ingests into their lanes and starts them; what a lane
    /// has no room for is given back at the next claim round.
    fn arrived(&mut self, batch: Vec<Claimed>) {
        let now = Timestamp::now();
        let (touched, overflow) = self.enqueue(batch, now);
        for (w, n) in &touched {
            self.handoff.arrived(w, *n);
        }
        self.stale.extend(overflow);
    }

    /// Queues claimed or handed-over work in its lanes and starts what they allow. Answers
    /// each webhook touched with how many it got, and what a lane cannot start soon, to give
    /// back (a rate-limited lane holds little).
    fn enqueue(
        &mut self,
        batch: Vec<Claimed>,
        now: Timestamp,
    ) -> (Vec<(WebhookId, u32)>, Vec<Release>) {
        let mut touched: Vec<(WebhookId, u32)> = Vec::new();
        for c in batch {
            let w = c.webhook.id.clone();
            let (rate, failing) = (c.webhook.spec.rate_limit, c.webhook.failing_since.is_some());
            self.lanes.push(&w, rate, failing, c, now);
            match touched.iter_mut().find(|(t, _)| *t == w) {
                Some((_, n)) => *n += 1,
                None => touched.push((w, 1)),
            }
        }
        let mut overflow = Vec::new();
        for (w, _) in &touched {
            self.pump(w, now);
            overflow.extend(self.lanes.overflow(w).iter().map(Claimed::release));
        }
        (touched, overflow)
    }

    /// Whether the poll, or a retry this node scheduled, has come: work may be due. Kept apart
    /// from the loop's sleep, which a busy node (sends finishing, hand-overs arriving) never
    /// finishes.
    fn polls(&mut self, now: Timestamp) {
        if self.next_poll <= now {
            self.due = true;
            self.next_poll = plus(now, self.limits.poll_interval);
        }
        if self.next_retry.is_some_and(|t| t <= now) {
            self.due = true;
            self.next_retry = None;
        }
    }

    /// When to look again without being woken: the next poll, a retry this node scheduled, or
    /// a rate-limited lane's slot.
    fn next_deadline(&self, now: Timestamp) -> Timestamp {
        let at = self
            .next_retry
            .map_or(self.next_poll, |t| t.min(self.next_poll));
        self.lanes.next_slot(now).map_or(at, |slot| at.min(slot))
    }

    /// Waits for a store call while still taking finished sends: a send's slot is free once
    /// its answer is read, and its lane starts the next queued delivery at once instead of
    /// after the call (a claim waits its turn at the database behind ingests and records).
    async fn meanwhile<T>(&mut self, store_call: impl Future<Output = T>) -> T {
        let mut store_call = std::pin::pin!(store_call);
        loop {
            tokio::select! {
                biased;
                r = &mut store_call => return r,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(done);
                }
                Some(batch) = self.arrivals.recv() => self.arrived(batch),
            }
        }
    }

    /// Claims due work while there is room, and starts what the lanes allow.
    async fn claim_round(&mut self) -> anyhow::Result<()> {
        if !self.stale.is_empty() {
            let stale = std::mem::take(&mut self.stale);
            let store = self.store.clone();
            self.meanwhile(store.release(stale, Timestamp::now()))
                .await?;
            // Given back due now: claimed again once a lane has room.
            self.due = true;
        }
        self.hold_stuck().await?;
        while self.due {
            let queued = self.lanes.claimed() + self.unrecorded.load(Ordering::Relaxed);
            let free = self.limits.total.saturating_sub(queued);
            if free == 0 {
                return Ok(());
            }
            let now = Timestamp::now();
            let exclude = self.lanes.full(now);
            let none_excluded = exclude.is_empty();
            let limit = free.min(CLAIM_BATCH);
            let store = self.store.clone();
            let (lease_until, shares) =
                (plus(now, self.limits.lease), self.lanes.claim_shares(now));
            let node = self.node.clone();
            let batch = self
                .meanwhile(async move {
                    store
                        .claim_due(&node, now, lease_until, limit, &shares, &exclude)
                        .await
                })
                .await?;
            let n = batch.len() as u32;
            metrics::counter!("callhook_deliveries_claimed_total").increment(u64::from(n));
            // Nothing due but what full lanes skipped: those are claimed for once they have
            // room (their sends finish, and a claim follows while `due` holds).
            if n == 0 && none_excluded {
                self.due = false;
            }
            let now = Timestamp::now();
            // What a lane cannot start soon goes back at once.
            let (_, overflow) = self.enqueue(batch, now);
            if !overflow.is_empty() {
                let store = self.store.clone();
                self.meanwhile(store.release(overflow, now)).await?;
            }
            if n < limit {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Holds the webhooks of stuck lanes (see [`Lanes::stuck`]), and lifts the holds of those
    /// that answer again.
    async fn hold_stuck(&mut self) -> anyhow::Result<()> {
        for hold in self.lanes.stuck(Timestamp::now()) {
            self.store
                .hold_webhook(&hold.webhook, Some(hold.until))
                .await?;
            metrics::counter!("callhook_webhook_holds_total").increment(1);
            tracing::debug!(webhook = %hold.webhook, until = %hold.until, "the endpoint is stuck; holding the webhook's deliveries");
            self.lanes.held(&hold);
        }
        if !self.lifts.is_empty() {
            for w in std::mem::take(&mut self.lifts) {
                self.store.hold_webhook(&w, None).await?;
            }
        }
        Ok(())
    }

    /// Starts what lanes held back for their rate limit, once their slot has come.
    fn pump_waiting(&mut self) {
        let now = Timestamp::now();
        for w in self.lanes.ready(now) {
            self.pump(&w, now);
        }
    }

    /// Starts as many of a lane's queued deliveries as its limits allow.
    fn pump(&mut self, webhook_id: &WebhookId, now: Timestamp) {
        let pumped = self.lanes.pump(webhook_id, now);
        self.stale
            .extend(pumped.stale.into_iter().map(|c| c.release()));
        for claimed in pumped.start {
            let release = claimed.release();
            let client = self.client.clone();
            let policy = self.policy.clone();
            let handle = self
                .tasks
                .spawn(async move { attempt::run(&client, &claimed, &policy).await });
            self.running
                .insert(handle.id(), (webhook_id.clone(), release, Instant::now()));
        }
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, AttemptRecord), tokio::task::JoinError>) {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some((webhook_id, release, started)) = self.running.remove(&id) else {
            return;
        };
        let now = Timestamp::now();
        self.lanes.timed(&webhook_id, started.elapsed(), now);
        let outcome = match &done {
            Ok((_, r)) => Done {
                succeeded: r.next == Next::Succeeded,
                tells_health: !r.test,
                disables: r.disable_webhook.is_some(),
            },
            Err(_) => Done {
                succeeded: false,
                tells_health: false,
                disables: false,
            },
        };
        let finished = self.lanes.finished(&webhook_id, outcome, now);
        if finished.lift {
            self.lifts.push(webhook_id.clone());
        }
        match finished.health {
            Some(Health::Failing) => {
                tracing::warn!(webhook = %webhook_id, "the webhook is failing")
            }
            Some(Health::Recovered) => {
                tracing::info!(webhook = %webhook_id, "the webhook recovered")
            }
            Some(Health::Disabled) => {
                let reason = match &done {
                    Ok((_, r)) => r.disable_webhook.as_deref(),
                    Err(_) => None,
                };
                tracing::warn!(webhook = %webhook_id, reason, "the webhook is disabled")
            }
            None => {}
        }
        match done {
            Ok((_, record)) => {
                observe(&record);
                if let Next::RetryAt(t) = record.next {
                    self.next_retry = Some(self.next_retry.map_or(t, |n| n.min(t)));
                }
                self.unrecorded.fetch_add(1, Ordering::Relaxed);
                let _ = self.records.send(record);
            }
            Err(e) => {
                // A send task panicked: the lease runs out and the delivery is tried again.
                tracing::error!(delivery = %release.delivery_id, error = %e, "a send task failed");
            }
        }
        self.pump(&webhook_id, now);
    }

    /// Stops claiming, gives back unstarted work, lets in-flight requests finish within the
    /// grace period, then gives back the rest.
    async fn shut_down(mut self) {
        // No more hand-overs; those already made are queued like claimed work.
        self.handoff.close();
        self.arrivals.close();
        while let Ok(batch) = self.arrivals.try_recv() {
            let now = Timestamp::now();
            for c in batch {
                let w = c.webhook.id.clone();
                self.handoff.arrived(&w, 1);
                self.lanes.push(&w, None, false, c, now);
            }
        }
        // Work claimed but not started: queued, or found stale since the last claim round.
        let unstarted: Vec<Release> = std::mem::take(&mut self.stale)
            .into_iter()
            .chain(self.lanes.drain().into_iter().map(|c| c.release()))
            .collect();
        if !unstarted.is_empty()
            && let Err(e) = self.store.release(unstarted, Timestamp::now()).await
        {
            tracing::warn!(error = %e, "could not give back unstarted deliveries; their leases will run out");
        }
        let grace = tokio::time::sleep(self.limits.shutdown_grace);
        tokio::pin!(grace);
        while !self.tasks.is_empty() {
            tokio::select! {
                Some(done) = self.tasks.join_next_with_id() => self.finished(done),
                _ = &mut grace => break,
            }
        }
        if !self.running.is_empty() {
            tracing::warn!(
                in_flight = self.running.len(),
                "grace period over; giving back unfinished sends"
            );
            self.tasks.abort_all();
            let rest: Vec<Release> = self.running.drain().map(|(_, (_, r, _))| r).collect();
            if let Err(e) = self.store.release(rest, Timestamp::now()).await {
                tracing::warn!(error = %e, "could not give back in-flight deliveries; their leases will run out");
            }
        }
        // Dropping the sender lets the recorder flush what is left and stop.
    }
}

fn observe(r: &AttemptRecord) {
    let outcome = match r.next {
        Next::Succeeded => "succeeded",
        Next::RetryAt(_) => "retrying",
        Next::Failed => "failed",
    };
    metrics::counter!("callhook_attempts_total", "outcome" => outcome).increment(1);
    if !matches!(r.next, Next::RetryAt(_)) {
        metrics::counter!("callhook_deliveries_total", "outcome" => outcome).increment(1);
    }
    if let Some(a) = &r.attempt {
        metrics::histogram!("callhook_attempt_duration_seconds")
            .record(a.latency_ms as f64 / 1000.0);
        if let (Some(kind), false) = (a.error_kind, matches!(r.next, Next::Succeeded)) {
            metrics::counter!("callhook_attempt_errors_total", "kind" => kind.as_str())
                .increment(1);
        }
    }
}

/// Writes attempt records in batches. A failed write is retried, never dropped: until it is
/// written the lease is the only thing that stands between the delivery and a re-send. It
/// runs until the dispatcher is gone (not on the signal: what the last sends did must still be
/// written), and only on shutdown does it give up on a store that keeps failing, so the
/// process can end.
async fn record_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<AttemptRecord>,
    waker: Waker,
    recorded: Arc<Notify>,
    unrecorded: Arc<AtomicU32>,
    _running: oneshot::Sender<()>,
    shutdown: Shutdown,
) {
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut backoff = Duration::from_millis(50);
        let made_due = loop {
            match store.record_attempts(batch.clone(), Timestamp::now()).await {
                Ok(due) => break due,
                // Closed while the process runs is the SQLite writer giving up on a
                // transaction it could not begin (another process held the file's write lock
                // past the busy timeout): the store is still there, so try again below.
                Err(crate::store::StoreError::Closed) if shutdown.is_shutdown() => {
                    tracing::warn!(
                        records = batch.len(),
                        "the store closed before attempts were recorded; their leases will run out"
                    );
                    return;
                }
                Err(e) if shutdown.is_shutdown() && backoff >= GIVE_UP_AFTER => {
                    tracing::warn!(error = %e, records = batch.len(), "cannot record attempts while shutting down; their leases will run out");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, records = batch.len(), "cannot record attempts; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        unrecorded.fetch_sub(batch.len() as u32, Ordering::Relaxed);
        batch.clear();
        if made_due > 0 {
            // Finished deliveries let the next of their call go, or alerts were stored.
            waker.wake();
        } else {
            // Room for more work.
            recorded.notify_one();
        }
    }
}

/// On shutdown, the recorder retries a failing write until its backoff reaches this (about
/// three seconds of trying).
const GIVE_UP_AFTER: Duration = Duration::from_secs(2);

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node silent this long has missed two heartbeats (and a second more, for a heartbeat
/// that was slow to commit): it counts as dead. The next heartbeat of a live node then gives
/// back its running leases, so what it had in flight goes out again 3–7 s after it died
/// instead of when its leases run out (`lease`, a minute). Until then it counts as alive when
/// the limits are shared out, so it is counted exactly while its leases are respected.
pub const DEAD_AFTER: Duration = Duration::from_secs(2 * HEARTBEAT.as_secs() + 1);

/// Keeps this node in the database's node list and `nodes` up to date, so the per-webhook
/// limits are shared out between however many nodes are running, and takes over the leases of
/// nodes that died (see [`Store::heartbeat`]).
///
/// It beats on through shutdown until the recorder is done (`recorder_done`): while in-flight
/// requests finish within `shutdown_grace`, their leases are still this node's, and a silent
/// node would have them taken over and sent again. Whatever it could not give back or record
/// is taken over two missed heartbeats after it stops.
async fn heartbeat_loop(
    store: Arc<dyn Store>,
    me: NodeId,
    nodes: Arc<AtomicU32>,
    waker: Waker,
    mut recorder_done: oneshot::Receiver<()>,
    _shutdown: Shutdown,
) {
    // Beats keep their pace whatever a write takes: a slow one is not made up for with a burst.
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tokio::select! {
            _ = beat.tick() => {}
            _ = &mut recorder_done => return,
        }
        let now = Timestamp::now();
        let since = now
            .saturating_sub(SignedDuration::try_from(DEAD_AFTER).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(now);
        let started = std::time::Instant::now();
        let beat_result = tokio::select! {
            r = store.heartbeat(&me, now, since) => r,
            _ = &mut recorder_done => return,
        };
        let took = started.elapsed();
        if took > HEARTBEAT {
            // One that takes longer than DEAD_AFTER - HEARTBEAT (3 s) lets the other nodes take
            // this one for dead.
            tracing::warn!(took = ?took, "a heartbeat was slow to commit");
        }
        match beat_result {
            Ok(Heartbeat {
                nodes: n,
                known,
                taken_over,
            }) => {
                nodes.store(n, Ordering::Relaxed);
                if !known && !first {
                    tracing::warn!(node = %me, "this node was taken for dead (its heartbeats were late) and its leases were given to the others; what it has in flight may be sent twice");
                }
                first = false;
                for (dead, leases) in &taken_over {
                    if *leases > 0 {
                        tracing::info!(node = %dead, leases, "a node stopped heartbeating; took over its leases");
                        metrics::counter!("callhook_leases_taken_over_total").increment(*leases);
                    } else {
                        // A node that stopped cleanly (or a restarted SQLite node's last process).
                        tracing::debug!(node = %dead, "a node stopped heartbeating, holding no leases; forgot it");
                    }
                }
                if taken_over.iter().any(|(_, leases)| *leases > 0) {
                    // Its work is due now: look at once rather than a poll later.
                    waker.wake();
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; keeping the last node count"),
        }
    }
}
