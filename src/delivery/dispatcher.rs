//! The dispatcher: claims due deliveries from the store (leases, so a node that dies loses
//! nothing), sends them with per-webhook limits, and records the outcomes in batches.
//!
//! One task owns all bookkeeping (no locks): each webhook has a lane with its in-flight count,
//! a short queue of claimed work and its rate-limit slot. Claims skip webhooks whose lane is
//! full, so a slow or dead endpoint only ever holds its own lane, never anyone else's. Sends
//! run as separate tasks; their records go to a recorder task that writes them in batches.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::attempt::{self, Policy};
use super::client::HttpClient;
use crate::store::{AttemptRecord, Claimed, Next, Release, Store};

/// Most deliveries one claim takes.
const CLAIM_BATCH: u32 = 256;
/// A lane holds up to this many times its concurrency in claimed work: enough that a busy
/// webhook is not claimed for every few requests, little enough to start well within a lease.
const BACKLOG_FACTOR: u32 = 4;

#[derive(Debug, Clone)]
pub struct Limits {
    pub lease: Duration,
    /// The longest a request may take; a claimed delivery is only sent with this much lease left.
    pub request_timeout: Duration,
    pub poll_interval: Duration,
    pub per_webhook: u32,
    pub total: u32,
    pub shutdown_grace: Duration,
}

/// A handle to wake the dispatcher (new work was committed) and to wait for it to stop.
#[derive(Clone)]
pub struct Waker(Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

pub struct DispatcherHandle {
    pub waker: Waker,
    task: tokio::task::JoinHandle<()>,
}

impl DispatcherHandle {
    /// Waits until the dispatcher has stopped (after the shutdown signal).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// One webhook's share of the dispatcher.
struct Lane {
    in_flight: u32,
    queue: VecDeque<Claimed>,
    /// Earliest time the next request may start (rate limit).
    next_slot: Option<Instant>,
    /// The webhook's rate limit, as last claimed.
    rate: Option<f64>,
    /// When a request of this lane last finished (or the lane began).
    last_progress: Instant,
    /// Attempts that failed in a row.
    failures: u32,
    /// Until when the webhook is held (see [`Dispatcher::hold_stuck`]), and how many holds in
    /// a row it has had: each doubles the last.
    held_until: Option<Instant>,
    holds: u32,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            in_flight: 0,
            queue: VecDeque::new(),
            next_slot: None,
            rate: None,
            last_progress: Instant::now(),
            failures: 0,
            held_until: None,
            holds: 0,
        }
    }
}

/// A full lane is stuck when it finished nothing for this long, or when every one of its last
/// requests failed (a black hole, an endpoint timing out).
const STUCK_AFTER: Duration = Duration::from_secs(1);
/// The first hold of a stuck webhook; each next one in a row doubles, up to [`HOLD_MAX`].
const HOLD_FIRST: Duration = Duration::from_secs(2);
const HOLD_MAX: Duration = Duration::from_secs(60);

struct Dispatcher {
    store: Arc<dyn Store>,
    client: HttpClient,
    policy: Arc<Policy>,
    limits: Limits,
    lanes: HashMap<String, Lane>,
    /// Sends in flight: task id → (webhook, delivery, lease), to give leases back on shutdown.
    running: HashMap<tokio::task::Id, (String, Release)>,
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
    lifts: Vec<String>,
}

pub fn start(
    store: Arc<dyn Store>,
    client: HttpClient,
    policy: Policy,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> DispatcherHandle {
    let notify = Arc::new(Notify::new());
    let waker = Waker(notify.clone());
    let (records, records_rx) = mpsc::unbounded_channel();
    let unrecorded = Arc::new(AtomicU32::new(0));
    let recorder = tokio::spawn(record_loop(
        store.clone(),
        records_rx,
        waker.clone(),
        unrecorded.clone(),
    ));
    let nodes = Arc::new(AtomicU32::new(1));
    tokio::spawn(heartbeat_loop(
        store.clone(),
        nodes.clone(),
        shutdown.clone(),
    ));
    let d = Dispatcher {
        store,
        client,
        policy: Arc::new(policy),
        limits,
        lanes: HashMap::new(),
        running: HashMap::new(),
        tasks: JoinSet::new(),
        records,
        nodes,
        unrecorded,
        next_retry: None,
        stale: Vec::new(),
        lifts: Vec::new(),
    };
    let task = tokio::spawn(async move {
        d.run(notify, shutdown).await;
        let _ = recorder.await;
    });
    DispatcherHandle { waker, task }
}

fn plus(now: Timestamp, d: Duration) -> Timestamp {
    now.saturating_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(now)
}

impl Dispatcher {
    async fn run(mut self, notify: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.pump_waiting();
            match self.claim_round().await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim deliveries; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            let deadline = self.next_deadline();
            tokio::select! {
                _ = notify.notified() => {}
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(done);
                    while let Some(done) = self.tasks.try_join_next_with_id() {
                        self.finished(done);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.shut_down().await;
    }

    /// When to look again without being woken: the next poll, a retry this node scheduled, or
    /// a rate-limited lane's slot.
    fn next_deadline(&mut self) -> Instant {
        let mut poll = Instant::now() + self.limits.poll_interval;
        let now = Timestamp::now();
        match self.next_retry {
            Some(t) if t <= now => self.next_retry = None,
            Some(t) => {
                let wait = now.duration_until(t).unsigned_abs();
                poll = poll.min(Instant::now() + wait);
            }
            None => {}
        }
        self.lanes
            .values()
            .filter(|l| !l.queue.is_empty())
            .filter_map(|l| l.next_slot)
            .fold(poll, Instant::min)
    }

    /// This node's share of `max_in_flight_per_webhook`: the limit holds across all the nodes
    /// on the database, so each takes an equal part (rounded up, at least one).
    fn per_webhook(&self) -> u32 {
        self.limits
            .per_webhook
            .div_ceil(self.nodes.load(Ordering::Relaxed).max(1))
            .max(1)
    }

    /// This node's share of a webhook's rate limit.
    fn rate_share(&self, rate: Option<f64>) -> Option<f64> {
        rate.map(|r| r / f64::from(self.nodes.load(Ordering::Relaxed).max(1)))
    }

    fn queued_total(&self) -> u32 {
        let claimed: u32 = self
            .lanes
            .values()
            .map(|l| l.in_flight + l.queue.len() as u32)
            .sum();
        claimed + self.unrecorded.load(Ordering::Relaxed)
    }

    /// Whether a lane takes no more work for now: it has plenty queued (it is claimed for again
    /// while half its backlog is left, so it never runs dry waiting for a claim), or it is
    /// held back by its rate limit.
    fn lane_full(&self, lane: &Lane) -> bool {
        lane.queue.len() * 2 > self.backlog(lane.rate)
            || lane.next_slot.is_some_and(|s| s > Instant::now())
    }

    /// Claims due work while there is room, and starts what the lanes allow.
    async fn claim_round(&mut self) -> anyhow::Result<()> {
        if !self.stale.is_empty() {
            let stale = std::mem::take(&mut self.stale);
            self.store.release(stale, Timestamp::now()).await?;
        }
        self.hold_stuck().await?;
        loop {
            let free = self.limits.total.saturating_sub(self.queued_total());
            if free == 0 {
                return Ok(());
            }
            let exclude: Vec<String> = self
                .lanes
                .iter()
                .filter(|(_, l)| self.lane_full(l))
                .map(|(w, _)| w.clone())
                .collect();
            let limit = free.min(CLAIM_BATCH);
            let now = Timestamp::now();
            // A lane is claimed for once half its backlog is left, so half a backlog fills it.
            let per_webhook = (self.per_webhook() * BACKLOG_FACTOR / 2).max(1);
            let batch = self
                .store
                .claim_due(
                    now,
                    plus(now, self.limits.lease),
                    limit,
                    per_webhook,
                    &exclude,
                )
                .await?;
            let n = batch.len() as u32;
            let mut touched: Vec<String> = Vec::new();
            for c in batch {
                let w = c.webhook.id.clone();
                if !touched.contains(&w) {
                    touched.push(w.clone());
                }
                let rate = self.rate_share(c.webhook.spec.rate_limit);
                let lane = self.lanes.entry(w).or_default();
                lane.rate = rate;
                lane.queue.push_back(c);
            }
            for w in &touched {
                self.pump(w);
            }
            self.give_back_overflow(&touched, now).await?;
            if n < limit {
                return Ok(());
            }
        }
    }

    /// How much claimed work a lane may hold unstarted: enough to keep it busy, never so much
    /// that its leases could run out while it waits.
    fn backlog(&self, rate: Option<f64>) -> usize {
        let by_concurrency = (self.per_webhook() * BACKLOG_FACTOR) as usize;
        match rate {
            Some(rate) => {
                ((rate * self.limits.lease.as_secs_f64() / 2.0) as usize).clamp(1, by_concurrency)
            }
            None => by_concurrency,
        }
    }

    /// Gives back what a lane cannot start soon (a rate-limited lane holds little).
    async fn give_back_overflow(
        &mut self,
        touched: &[String],
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let mut releases = Vec::new();
        for w in touched {
            let Some(lane) = self.lanes.get(w) else {
                continue;
            };
            let Some(first) = lane.queue.front() else {
                continue;
            };
            let keep = self.backlog(self.rate_share(first.webhook.spec.rate_limit));
            if lane.queue.len() <= keep {
                continue;
            }
            let lane = self.lanes.get_mut(w).expect("lane exists");
            releases.extend(lane.queue.drain(keep..).map(|c| Release {
                delivery_id: c.delivery_id,
                lease: c.lease,
            }));
        }
        if !releases.is_empty() {
            self.store.release(releases, now).await?;
        }
        Ok(())
    }

    /// Holds the webhooks of stuck lanes. A stuck endpoint's backlog grows while it holds
    /// every request it gets; left due, that backlog is the oldest work and every claim would
    /// walk past it to reach healthy webhooks. Held, it moves out of the way once, new
    /// deliveries for it are stored behind the hold, and claims never see it. Holds double
    /// while the lane stays stuck; a success ends the run.
    async fn hold_stuck(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        let cap = self.per_webhook();
        let stuck: Vec<(String, u32)> = self
            .lanes
            .iter()
            .filter(|(_, l)| {
                l.in_flight >= cap
                    && (now.duration_since(l.last_progress) >= STUCK_AFTER || l.failures >= cap)
                    && l.held_until.is_none_or(|h| h <= now)
            })
            .map(|(w, l)| (w.clone(), l.holds))
            .collect();
        for (w, holds) in stuck {
            let hold = (HOLD_FIRST * 2u32.saturating_pow(holds.min(8))).min(HOLD_MAX);
            let until = plus(Timestamp::now(), hold);
            self.store.hold_webhook(&w, Some(until)).await?;
            metrics::counter!("callhook_webhook_holds_total").increment(1);
            if let Some(lane) = self.lanes.get_mut(&w) {
                lane.held_until = Some(now + hold);
                lane.holds = holds + 1;
            }
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
        let now = Instant::now();
        let ready: Vec<String> = self
            .lanes
            .iter()
            .filter(|(_, l)| !l.queue.is_empty() && l.next_slot.is_none_or(|s| s <= now))
            .map(|(w, _)| w.clone())
            .collect();
        for w in ready {
            self.pump(&w);
        }
    }

    /// Starts as many of a lane's queued deliveries as its limits allow.
    fn pump(&mut self, webhook_id: &str) {
        let per_webhook = self.per_webhook();
        let Some(lane) = self.lanes.get_mut(webhook_id) else {
            return;
        };
        while lane.in_flight < per_webhook && !lane.queue.is_empty() {
            let rate = lane.rate;
            if let Some(rate) = rate {
                let now = Instant::now();
                match lane.next_slot {
                    Some(slot) if slot > now => break,
                    _ => lane.next_slot = Some(now + Duration::from_secs_f64(1.0 / rate)),
                }
            }
            let Some(claimed) = lane.queue.pop_front() else {
                break;
            };
            // Too little of its lease left to finish a whole request: another node (or this
            // one, after the lease) could send it too. Give it back instead.
            let must_end_by = plus(Timestamp::now(), self.limits.request_timeout);
            if must_end_by >= claimed.lease_until {
                self.stale.push(Release {
                    delivery_id: claimed.delivery_id,
                    lease: claimed.lease,
                });
                continue;
            }
            lane.in_flight += 1;
            let release = Release {
                delivery_id: claimed.delivery_id.clone(),
                lease: claimed.lease,
            };
            let client = self.client.clone();
            let policy = self.policy.clone();
            let handle = self
                .tasks
                .spawn(async move { attempt::run(&client, &claimed, &policy).await });
            self.running
                .insert(handle.id(), (webhook_id.to_owned(), release));
        }
        let now = Instant::now();
        if lane.in_flight == 0
            && lane.queue.is_empty()
            && lane.next_slot.is_none_or(|s| s <= now)
            // A held lane is kept (its holds keep doubling) until its last hold is long over.
            && lane.held_until.is_none_or(|h| h + HOLD_MAX <= now)
        {
            self.lanes.remove(webhook_id);
        }
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, AttemptRecord), tokio::task::JoinError>) {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some((webhook_id, release)) = self.running.remove(&id) else {
            return;
        };
        let succeeded = matches!(&done, Ok((_, r)) if r.next == Next::Succeeded);
        if let Some(lane) = self.lanes.get_mut(&webhook_id) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
            lane.last_progress = Instant::now();
            if succeeded {
                lane.failures = 0;
                // The endpoint answers again: a long hold ends now, a short one runs out.
                if lane.holds >= 2 && lane.held_until.is_some_and(|h| h > Instant::now()) {
                    self.lifts.push(webhook_id.clone());
                    lane.held_until = None;
                }
                lane.holds = 0;
            } else {
                lane.failures = lane.failures.saturating_add(1);
            }
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
        self.pump(&webhook_id);
    }

    /// Stops claiming, gives back unstarted work, lets in-flight requests finish within the
    /// grace period, then gives back the rest.
    async fn shut_down(mut self) {
        let now = Timestamp::now();
        let unstarted: Vec<Release> = self
            .lanes
            .values_mut()
            .flat_map(|l| l.queue.drain(..))
            .map(|c| Release {
                delivery_id: c.delivery_id,
                lease: c.lease,
            })
            .collect();
        if !unstarted.is_empty()
            && let Err(e) = self.store.release(unstarted, now).await
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
            let rest: Vec<Release> = self.running.drain().map(|(_, (_, r))| r).collect();
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
    }
}

/// Writes attempt records in batches. A failed write is retried, never dropped: until it is
/// written the lease is the only thing that stands between the delivery and a re-send.
async fn record_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<AttemptRecord>,
    waker: Waker,
    unrecorded: Arc<AtomicU32>,
) {
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut backoff = Duration::from_millis(50);
        loop {
            match store.record_attempts(batch.clone(), Timestamp::now()).await {
                Ok(()) => break,
                Err(crate::store::StoreError::Closed) => {
                    tracing::warn!(
                        records = batch.len(),
                        "the store closed before attempts were recorded; their leases will run out"
                    );
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, records = batch.len(), "cannot record attempts; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        unrecorded.fetch_sub(batch.len() as u32, Ordering::Relaxed);
        batch.clear();
        // Room for more work, and finished deliveries may have let the next of their call go.
        waker.wake();
    }
}

/// How often a node says it is alive, and how long it counts as alive after.
const HEARTBEAT: Duration = Duration::from_secs(5);
const ALIVE_FOR: Duration = Duration::from_secs(15);

/// Keeps this node in the database's node list and `nodes` up to date, so the per-webhook
/// limits are shared out between however many nodes are running.
async fn heartbeat_loop(
    store: Arc<dyn Store>,
    nodes: Arc<AtomicU32>,
    mut shutdown: watch::Receiver<bool>,
) {
    let me = crate::core::id::new_id("node");
    loop {
        let now = Timestamp::now();
        let since = now
            .saturating_sub(SignedDuration::try_from(ALIVE_FOR).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(now);
        match store.heartbeat(&me, now, since).await {
            Ok(n) => nodes.store(n, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; keeping the last node count"),
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = shutdown.changed() => return,
        }
    }
}
