//! The dispatcher's bookkeeping per webhook, as plain data: what each webhook has in flight and
//! queued, its rate-limit slot, whether its endpoint is stuck and held. Nothing here reads a
//! clock or touches the store: every method takes `now` and answers what to do, and the
//! dispatcher does the I/O. So the rules are unit-tested with made-up times (see the tests).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::core::id::WebhookId;
use crate::store::Shares;

/// A lane holds up to this many times its concurrency in claimed work: enough that a busy
/// webhook is not claimed for every few requests, little enough to start well within a lease.
const BACKLOG_FACTOR: u32 = 4;

/// A lane whose requests finish fast holds more: what its requests get through in this long,
/// a few times what a claim takes to come back when the database is busy. With less, such a
/// lane ran dry between claims and waited for each, and took its work in many small claims:
/// one webhook on a receiver answering in 0.1 ms was sent 6,000–10,000 deliveries/s with 16
/// requests at once (BENCHMARKS.md, seventh pass).
const CLAIM_AHEAD: Duration = Duration::from_millis(50);

/// The most a fast lane holds, in times its concurrency: at most 512 by default, started
/// within the 50 ms above, so far within any lease.
const DEEP_FACTOR: u32 = 32;

/// How long a webhook's request time is remembered after its last request.
const PACE_KEPT: Duration = Duration::from_secs(10);

/// Claimed work, as far as a lane cares: it may only start while a whole request and its
/// record fit in what is left of its lease (see [`LaneRules::room`]).
pub trait Leased {
    fn lease_until(&self) -> Timestamp;
}

/// When a lane counts as stuck, and how long its webhook is then held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holds {
    /// A full lane is stuck when it finished nothing for this long, or when every one of its
    /// last requests failed (a black hole, an endpoint timing out).
    pub stuck_after: Duration,
    /// The first hold of a stuck webhook; each next one in a row doubles, up to `max`.
    pub first: Duration,
    pub max: Duration,
}

impl Default for Holds {
    fn default() -> Self {
        Holds {
            stuck_after: Duration::from_secs(1),
            first: Duration::from_secs(2),
            max: Duration::from_secs(60),
        }
    }
}

impl Holds {
    /// The hold after `held` holds in a row.
    fn length(&self, held: u32) -> Duration {
        (self.first * 2u32.saturating_pow(held.min(8))).min(self.max)
    }
}

/// What the lanes keep to.
#[derive(Debug, Clone)]
pub struct LaneRules {
    /// Requests in flight to one webhook, across every node on the database.
    pub per_webhook: u32,
    pub lease: Duration,
    /// The longest a request may take.
    pub request_timeout: Duration,
    pub holds: Holds,
}

impl LaneRules {
    /// The lease a claimed delivery must have left to be started: a whole request, and half
    /// as long again for its record to land (it waits for the recorder's next batch and the
    /// database's commit, which under load take a while). Started with less, its record
    /// could come after the lease ran out, be dropped, and another node would send it again.
    /// Settings keep `lease` at least twice `request_timeout`, so this is at most three
    /// quarters of a fresh lease.
    fn room(&self) -> Duration {
        self.request_timeout + self.request_timeout / 2
    }
}

/// What a lane learned from one finished attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    pub succeeded: bool,
    /// Whether the attempt says anything of the webhook's health: test sends (SPEC §12) and
    /// sends that crashed do not.
    pub tells_health: bool,
    /// The attempt disabled the webhook (410 Gone, or failing for too long).
    pub disables: bool,
}

/// A change of a webhook's health, as this node saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Its latest attempt failed, after a success (or on its first).
    Failing,
    /// It succeeded again after failing.
    Recovered,
    /// An attempt disabled it.
    Disabled,
}

/// What follows a finished attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished {
    /// The webhook's long hold ends now: its endpoint answers again.
    pub lift: bool,
    pub health: Option<Health>,
}

/// A webhook to hold until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub webhook: WebhookId,
    pub until: Timestamp,
}

/// What a lane lets go of when pumped.
#[derive(Debug)]
pub struct Pumped<T> {
    /// To send now; each counts as in flight until [`Lanes::finished`].
    pub start: Vec<T>,
    /// Too little of their lease left to finish a request and record it: to give back.
    pub stale: Vec<T>,
}

/// One webhook's share of the dispatcher.
struct Lane<T> {
    in_flight: u32,
    queue: VecDeque<T>,
    /// Earliest time the next request may start (rate limit).
    next_slot: Option<Timestamp>,
    /// The webhook's rate limit (all nodes together), as last claimed.
    rate: Option<f64>,
    /// When a request of this lane last finished (or the lane began).
    last_progress: Timestamp,
    /// Attempts that failed in a row.
    failures: u32,
    /// Until when the webhook is held, and how many holds in a row it has had.
    held_until: Option<Timestamp>,
    holds: u32,
    /// Whether the webhook is failing, or disabled, as far as this node knows: only changes
    /// are logged (several requests in flight may all fail, or all answer 410).
    failing: bool,
    disabled: bool,
}

/// How long a webhook's requests take, as this node saw them lately.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Seconds per request, a moving average over about the last 32.
    secs: f64,
    /// The webhook's rate limit when it was last sent to.
    rate: Option<f64>,
    at: Timestamp,
}

/// Every webhook's lane. A lane exists while it has work, or while its webhook's holds may
/// still double.
pub struct Lanes<T> {
    lanes: HashMap<WebhookId, Lane<T>>,
    /// Kept apart from the lanes: a fast lane empties between claims and is dropped, and its
    /// next claim must still know it is fast.
    paces: HashMap<WebhookId, Pace>,
    rules: LaneRules,
    /// Nodes serving from the database (this one included): the limits are shared out.
    nodes: u32,
}

/// A claim's share of a lane's `backlog`: a lane is claimed for once half its backlog is left.
fn share_of(backlog: usize) -> u32 {
    (backlog as u32 / 2).max(1)
}

/// `t` plus `d`, saturating.
pub(super) fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(t)
}

impl<T: Leased> Lanes<T> {
    pub fn new(rules: LaneRules) -> Lanes<T> {
        Lanes {
            lanes: HashMap::new(),
            paces: HashMap::new(),
            rules,
            nodes: 1,
        }
    }

    pub fn set_nodes(&mut self, nodes: u32) {
        self.nodes = nodes.max(1);
    }

    /// This node's share of the per-webhook limit: an equal part (rounded up, at least one).
    pub fn per_webhook(&self) -> u32 {
        self.rules.per_webhook.div_ceil(self.nodes).max(1)
    }

    fn rate_share(&self, rate: Option<f64>) -> Option<f64> {
        rate.map(|r| r / f64::from(self.nodes))
    }

    /// How many deliveries of each webhook a claim should take: a lane is claimed for once
    /// half its backlog is left, so half a backlog fills it. Forgets request times older than
    /// [`PACE_KEPT`].
    pub fn claim_shares(&mut self, now: Timestamp) -> Shares {
        let kept = SignedDuration::try_from(PACE_KEPT).unwrap_or_default();
        self.paces.retain(|_, p| now.duration_since(p.at) < kept);
        let each = share_of(self.base_backlog());
        let more = self
            .paces
            .iter()
            .filter_map(|(w, p)| {
                let rate = self.lanes.get(w).map_or(p.rate, |l| l.rate);
                let n = share_of(self.backlog(w, rate));
                (n > each).then(|| (w.clone(), n))
            })
            .collect();
        Shares {
            each,
            more,
            others: self.nodes > 1,
        }
    }

    fn base_backlog(&self) -> usize {
        (self.per_webhook() * BACKLOG_FACTOR) as usize
    }

    /// Work claimed and not finished: in flight or queued.
    pub fn claimed(&self) -> u32 {
        self.lanes
            .values()
            .map(|l| l.in_flight + l.queue.len() as u32)
            .sum()
    }

    /// How much claimed work a lane may hold unstarted: enough to keep it busy while the
    /// next claim comes back, never so much that its leases could run out while it waits.
    fn backlog(&self, webhook: &WebhookId, rate: Option<f64>) -> usize {
        let base = self.base_backlog();
        let by_concurrency = match self.paces.get(webhook) {
            Some(p) => {
                let per_webhook = self.per_webhook();
                let ahead = f64::from(per_webhook) * CLAIM_AHEAD.as_secs_f64() / p.secs.max(1e-6);
                (ahead as usize).clamp(base, (per_webhook * DEEP_FACTOR) as usize)
            }
            None => base,
        };
        match self.rate_share(rate) {
            Some(rate) => {
                ((rate * self.rules.lease.as_secs_f64() / 2.0) as usize).clamp(1, by_concurrency)
            }
            None => by_concurrency,
        }
    }

    /// What a webhook with no lane can take from ingests directly (see [`super::handoff`]):
    /// what it starts at once, its concurrency.
    pub fn fresh_room(&self) -> u32 {
        self.per_webhook()
    }

    /// What each lane can take from ingests directly: what it would start at once, its
    /// concurrency less what it has in flight and queued. Work beyond that (a burst) is stored
    /// and claimed in bulk as before. A held lane takes nothing.
    pub fn rooms(&self, now: Timestamp) -> impl Iterator<Item = (WebhookId, u32)> + '_ {
        let per_webhook = self.per_webhook();
        self.lanes.iter().map(move |(w, l)| {
            let room = if l.held_until.is_some_and(|h| h > now) {
                0
            } else {
                per_webhook.saturating_sub(l.in_flight + l.queue.len() as u32)
            };
            (w.clone(), room)
        })
    }

    /// The webhooks that take no more work for now: they have plenty queued (a lane is
    /// claimed for again while half its backlog is left, so it never runs dry waiting for a
    /// claim), or they wait for their rate limit.
    pub fn full(&self, now: Timestamp) -> Vec<WebhookId> {
        self.lanes
            .iter()
            .filter(|(w, l)| {
                l.queue.len() * 2 > self.backlog(w, l.rate) || l.next_slot.is_some_and(|s| s > now)
            })
            .map(|(w, _)| w.clone())
            .collect()
    }

    /// Queues claimed work. `rate` is the webhook's rate limit; `failing` what the claim says
    /// of its health, believed only by a new lane (a lane's own news is fresher).
    pub fn push(
        &mut self,
        webhook: &WebhookId,
        rate: Option<f64>,
        failing: bool,
        item: T,
        now: Timestamp,
    ) {
        let lane = self.lanes.entry(webhook.clone()).or_insert_with(|| Lane {
            in_flight: 0,
            queue: VecDeque::new(),
            next_slot: None,
            rate,
            last_progress: now,
            failures: 0,
            held_until: None,
            holds: 0,
            failing,
            disabled: false,
        });
        lane.rate = rate;
        lane.queue.push_back(item);
    }

    /// What a lane holds beyond its backlog, to give back (a rate-limited lane holds little).
    pub fn overflow(&mut self, webhook: &WebhookId) -> Vec<T> {
        let Some(rate) = self.lanes.get(webhook).map(|l| l.rate) else {
            return Vec::new();
        };
        let keep = self.backlog(webhook, rate);
        match self.lanes.get_mut(webhook) {
            Some(lane) if lane.queue.len() > keep => lane.queue.drain(keep..).collect(),
            _ => Vec::new(),
        }
    }

    /// Webhooks with queued work whose rate-limit slot has come.
    pub fn ready(&self, now: Timestamp) -> Vec<WebhookId> {
        self.lanes
            .iter()
            .filter(|(_, l)| !l.queue.is_empty() && l.next_slot.is_none_or(|s| s <= now))
            .map(|(w, _)| w.clone())
            .collect()
    }

    /// Lets go of as much of a lane's queue as its limits allow; forgets the lane once it is
    /// idle and its holds are long over.
    pub fn pump(&mut self, webhook: &WebhookId, now: Timestamp) -> Pumped<T> {
        let mut out = Pumped {
            start: Vec::new(),
            stale: Vec::new(),
        };
        let per_webhook = self.per_webhook();
        let nodes = f64::from(self.nodes);
        let rules = &self.rules;
        let Some(lane) = self.lanes.get_mut(webhook) else {
            return out;
        };
        let rate = lane.rate.map(|r| r / nodes);
        while lane.in_flight < per_webhook && !lane.queue.is_empty() {
            if let Some(rate) = rate {
                match lane.next_slot {
                    Some(slot) if slot > now => break,
                    _ => lane.next_slot = Some(plus(now, Duration::from_secs_f64(1.0 / rate))),
                }
            }
            let Some(item) = lane.queue.pop_front() else {
                break;
            };
            // Too little of its lease left to finish a request and record it: another node (or
            // this one, after the lease) could send it too.
            if plus(now, rules.room()) >= item.lease_until() {
                out.stale.push(item);
                continue;
            }
            lane.in_flight += 1;
            out.start.push(item);
        }
        if lane.in_flight == 0
            && lane.queue.is_empty()
            && lane.next_slot.is_none_or(|s| s <= now)
            // A held lane is kept (its holds keep doubling) until its last hold is long over.
            && lane.held_until.is_none_or(|h| plus(h, rules.holds.max) <= now)
        {
            self.lanes.remove(webhook);
        }
        out
    }

    /// Takes note of how long a request of `webhook` took, from its start to its answer (or
    /// its failure): a lane whose requests finish fast holds more claimed work.
    pub fn timed(&mut self, webhook: &WebhookId, took: Duration, now: Timestamp) {
        let secs = took.as_secs_f64();
        let rate = self.lanes.get(webhook).and_then(|l| l.rate);
        match self.paces.get_mut(webhook) {
            Some(p) => {
                p.secs += (secs - p.secs) / 32.0;
                p.rate = rate;
                p.at = now;
            }
            None => {
                self.paces.insert(
                    webhook.clone(),
                    Pace {
                        secs,
                        rate,
                        at: now,
                    },
                );
            }
        }
    }

    /// Takes note of a finished attempt. Pump the lane after: it has room again.
    pub fn finished(&mut self, webhook: &WebhookId, done: Done, now: Timestamp) -> Finished {
        let mut out = Finished::default();
        let Some(lane) = self.lanes.get_mut(webhook) else {
            return out;
        };
        lane.in_flight = lane.in_flight.saturating_sub(1);
        lane.last_progress = now;
        if done.succeeded {
            lane.failures = 0;
            // The endpoint answers again: a long hold ends now, a short one runs out.
            if lane.holds >= 2 && lane.held_until.is_some_and(|h| h > now) {
                out.lift = true;
                lane.held_until = None;
            }
            lane.holds = 0;
        } else {
            lane.failures = lane.failures.saturating_add(1);
        }
        if done.disables {
            if !lane.disabled {
                lane.disabled = true;
                out.health = Some(Health::Disabled);
            }
            lane.failing = true;
        } else if done.tells_health && done.succeeded == lane.failing {
            lane.failing = !done.succeeded;
            out.health = Some(if done.succeeded {
                Health::Recovered
            } else {
                Health::Failing
            });
        }
        out
    }

    /// The webhooks to hold: their lane is full and stuck, and not held already. A stuck
    /// endpoint's backlog grows while it holds every request it gets; left due, that backlog
    /// is the oldest work and every claim would walk past it to reach healthy webhooks. Held,
    /// it moves out of the way once, new deliveries for it are stored behind the hold, and
    /// claims never see it. Holds double while the lane stays stuck; a success ends the run.
    pub fn stuck(&self, now: Timestamp) -> Vec<Hold> {
        let cap = self.per_webhook();
        let holds = &self.rules.holds;
        self.lanes
            .iter()
            .filter(|(_, l)| {
                let idle = now.duration_since(l.last_progress);
                l.in_flight >= cap
                    && (idle >= SignedDuration::try_from(holds.stuck_after).unwrap_or_default()
                        || l.failures >= cap)
                    && l.held_until.is_none_or(|h| h <= now)
            })
            .map(|(w, l)| Hold {
                webhook: w.clone(),
                until: plus(now, holds.length(l.holds)),
            })
            .collect()
    }

    /// The store holds `hold.webhook` now.
    pub fn held(&mut self, hold: &Hold) {
        if let Some(lane) = self.lanes.get_mut(&hold.webhook) {
            lane.held_until = Some(hold.until);
            lane.holds += 1;
        }
    }

    /// The next rate-limit slot still to come of a lane with work queued.
    pub fn next_slot(&self, now: Timestamp) -> Option<Timestamp> {
        self.lanes
            .values()
            .filter(|l| !l.queue.is_empty())
            .filter_map(|l| l.next_slot)
            .filter(|s| *s > now)
            .min()
    }

    /// Every queued item, to give back (on shutdown).
    pub fn drain(&mut self) -> Vec<T> {
        self.lanes
            .values_mut()
            .flat_map(|l| l.queue.drain(..))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claimed work in a test: a number, and its lease.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Job(u32, Timestamp);

    impl Leased for Job {
        fn lease_until(&self) -> Timestamp {
            self.1
        }
    }

    /// The webhook of these tests.
    fn w() -> WebhookId {
        WebhookId::from_string("w".into())
    }

    fn t0() -> Timestamp {
        "2026-11-27T04:00:00Z".parse().unwrap()
    }

    /// `t0` plus `ms` milliseconds.
    fn at(ms: u64) -> Timestamp {
        plus(t0(), Duration::from_millis(ms))
    }

    fn rules(per_webhook: u32) -> LaneRules {
        LaneRules {
            per_webhook,
            lease: Duration::from_secs(60),
            request_timeout: Duration::from_secs(15),
            holds: Holds::default(),
        }
    }

    /// `n` jobs with a fresh lease, queued on webhook `w`.
    fn lanes_with(per_webhook: u32, w: &WebhookId, rate: Option<f64>, n: u32) -> Lanes<Job> {
        let mut lanes = Lanes::new(rules(per_webhook));
        for i in 0..n {
            lanes.push(w, rate, false, Job(i, at(60_000)), t0());
        }
        lanes
    }

    fn ids(jobs: &[Job]) -> Vec<u32> {
        jobs.iter().map(|j| j.0).collect()
    }

    const OK: Done = Done {
        succeeded: true,
        tells_health: true,
        disables: false,
    };
    const FAIL: Done = Done {
        succeeded: false,
        tells_health: true,
        disables: false,
    };
    const GONE: Done = Done {
        succeeded: false,
        tells_health: true,
        disables: true,
    };

    #[test]
    fn a_lane_starts_up_to_its_share_of_the_concurrency_in_order() {
        // (max_in_flight_per_webhook, nodes) → this node's share
        for (limit, nodes, share) in [(16, 1, 16), (16, 3, 6), (16, 16, 1), (1, 4, 1), (2, 2, 1)] {
            let mut lanes = lanes_with(limit, &w(), None, 40);
            lanes.set_nodes(nodes);
            assert_eq!(lanes.per_webhook(), share, "{limit} over {nodes} nodes");
            let p = lanes.pump(&w(), t0());
            assert_eq!(ids(&p.start), (0..share).collect::<Vec<_>>());
            assert!(p.stale.is_empty());
            assert!(
                lanes.pump(&w(), t0()).start.is_empty(),
                "full until one finishes"
            );
            lanes.finished(&w(), OK, at(10));
            assert_eq!(ids(&lanes.pump(&w(), at(10)).start), [share]);
            assert_eq!(lanes.claimed(), 39, "in flight or queued");
        }
    }

    #[test]
    fn a_rate_limit_spaces_the_starts_and_holds_the_lane_back() {
        let mut lanes = lanes_with(16, &w(), Some(4.0), 3);
        assert_eq!(ids(&lanes.pump(&w(), t0()).start), [0]);
        // (time in ms, started then, the lane takes no more work, ready to pump)
        for (ms, started, full, ready) in [
            (249, vec![], true, false),
            (250, vec![1], false, true),
            (400, vec![], true, false),
            (500, vec![2], false, true),
        ] {
            assert_eq!(lanes.full(at(ms)).len() == 1, full, "at {ms} ms");
            assert_eq!(lanes.ready(at(ms)).len() == 1, ready, "at {ms} ms");
            assert_eq!(ids(&lanes.pump(&w(), at(ms)).start), started, "at {ms} ms");
        }
        // Two nodes share the rate: each sends at half of it.
        let mut lanes = lanes_with(16, &w(), Some(4.0), 2);
        lanes.set_nodes(2);
        assert_eq!(lanes.pump(&w(), t0()).start.len(), 1);
        assert!(lanes.pump(&w(), at(499)).start.is_empty());
        assert_eq!(lanes.pump(&w(), at(500)).start.len(), 1);
    }

    #[test]
    fn work_whose_lease_is_too_short_for_a_request_and_its_record_is_given_back() {
        // (request timeout, lease left in ms) → started; otherwise given back. A request needs
        // its timeout and half as much again for its record.
        for (timeout_s, lease_left_ms, started) in [
            (15, 60_000, true),
            (15, 22_501, true),
            (15, 22_500, false),
            (15, 15_001, false),
            (15, 14_000, false),
            // The test nodes' settings (tests/it/nodes.rs): request_timeout 1 s, lease 5 s.
            (1, 5_000, true),
            (1, 1_501, true),
            (1, 1_500, false),
            (1, 1_001, false),
        ] {
            let mut lanes = Lanes::new(LaneRules {
                request_timeout: Duration::from_secs(timeout_s),
                ..rules(16)
            });
            lanes.push(&w(), None, false, Job(0, at(lease_left_ms)), t0());
            let p = lanes.pump(&w(), t0());
            assert_eq!(
                (p.start.len(), p.stale.len()),
                if started { (1, 0) } else { (0, 1) },
                "timeout {timeout_s} s, {lease_left_ms} ms of lease left"
            );
        }
    }

    #[test]
    fn the_backlog_fits_the_concurrency_and_the_rate_and_overflow_goes_back() {
        // (per-webhook limit, rate, queued) → kept; lease 60 s: a rate-limited lane keeps what
        // it can start within half of it.
        for (limit, rate, queued, kept) in [
            (2, None, 10, 8),
            (16, None, 100, 64),
            (16, Some(1.0), 100, 30),
            (16, Some(0.1), 10, 3),
            (16, Some(0.01), 10, 1),
            (2, Some(1000.0), 10, 8),
        ] {
            let mut lanes = lanes_with(limit, &w(), rate, queued);
            let back = lanes.overflow(&w());
            assert_eq!(back.len() as u32, queued - kept, "{limit} {rate:?}");
            assert_eq!(
                ids(&back).first().copied(),
                (kept < queued).then_some(kept),
                "the newest go back"
            );
            assert_eq!(lanes.claimed(), kept);
        }
        assert!(
            Lanes::<Job>::new(rules(2))
                .overflow(&WebhookId::from_string("nobody".into()))
                .is_empty()
        );
    }

    #[test]
    fn a_lane_whose_requests_finish_fast_holds_more() {
        let ms = Duration::from_micros;
        // (request time in µs, share of a claim) with 16 at once: a backlog of what 16
        // requests get through in 50 ms, from 64 (the usual) up to 512, and half of it a claim.
        for (took, share) in [
            (50_000, 32),
            (12_500, 32),
            (5_000, 80),
            (2_000, 200),
            (100, 256),
        ] {
            let mut lanes = lanes_with(16, &w(), None, 1);
            assert_eq!(
                lanes.claim_shares(t0()),
                Shares::each(32),
                "nothing timed yet"
            );
            lanes.timed(&w(), ms(took), t0());
            let shares = lanes.claim_shares(t0());
            assert_eq!(shares.each, 32);
            assert_eq!(shares.of("w"), share, "requests of {took} µs");
            assert_eq!(shares.of("other"), 32);
        }
        // A moving average: one slow request does not undo a fast pace at once.
        let mut lanes = lanes_with(16, &w(), None, 1);
        lanes.timed(&w(), ms(100), t0());
        lanes.timed(&w(), ms(100_000), t0());
        assert!(lanes.claim_shares(t0()).of("w") > 32);
        for _ in 0..40 {
            lanes.timed(&w(), ms(100_000), t0());
        }
        assert_eq!(
            lanes.claim_shares(t0()).of("w"),
            32,
            "slow for a while: the usual"
        );
    }

    #[test]
    fn a_fast_lane_is_full_only_past_half_its_deeper_backlog_and_keeps_it() {
        let mut lanes = lanes_with(16, &w(), None, 100);
        assert_eq!(lanes.full(t0()), ["w"], "100 queued is past half of 64");
        lanes.timed(&w(), Duration::from_micros(100), t0());
        assert!(lanes.full(t0()).is_empty(), "100 is not past half of 512");
        for i in 0..500 {
            lanes.push(&w(), None, false, Job(1000 + i, at(60_000)), t0());
        }
        assert_eq!(lanes.overflow(&w()).len(), 600 - 512);
        assert_eq!(lanes.full(t0()), ["w"]);
    }

    #[test]
    fn a_pace_outlives_its_lane_for_a_while_and_a_rate_limit_still_bounds_it() {
        let mut lanes = lanes_with(16, &w(), None, 1);
        let p = lanes.pump(&w(), t0());
        assert_eq!(p.start.len(), 1);
        lanes.finished(&w(), OK, t0());
        lanes.timed(&w(), Duration::from_micros(100), t0());
        lanes.pump(&w(), t0());
        assert_eq!(lanes.claimed(), 0, "the lane is gone");
        assert_eq!(
            lanes.claim_shares(at(9_999)).of("w"),
            256,
            "its pace is not"
        );
        assert_eq!(
            lanes.claim_shares(at(10_000)),
            Shares::each(32),
            "forgotten 10 s after its last request"
        );
        // One request a second: half a 60 s lease's worth (30), however fast it answers.
        let mut lanes = lanes_with(16, &w(), Some(1.0), 1);
        lanes.timed(&w(), Duration::from_micros(100), t0());
        assert_eq!(lanes.claim_shares(t0()), Shares::each(32));
    }

    #[test]
    fn a_lane_is_full_while_more_than_half_its_backlog_is_queued() {
        // Limit 2: a backlog of 8, claimed for in shares of 4.
        let mut lanes = lanes_with(2, &w(), None, 4);
        assert_eq!(lanes.claim_shares(t0()), Shares::each(4));
        assert!(
            lanes.full(t0()).is_empty(),
            "half a backlog: claimed for again"
        );
        lanes.push(&w(), None, false, Job(9, at(60_000)), t0());
        assert_eq!(lanes.full(t0()), ["w"]);
        lanes.pump(&w(), t0());
        assert!(lanes.full(t0()).is_empty(), "two started, three left");
    }

    #[test]
    fn a_full_lane_that_finishes_nothing_is_held_and_its_holds_double() {
        let mut lanes = lanes_with(2, &w(), None, 10);
        lanes.pump(&w(), t0());
        assert!(lanes.stuck(at(999)).is_empty(), "not stuck yet");
        // Each time the lane stays stuck past its hold, it is held twice as long, up to 60 s.
        let mut now = at(1000);
        for hold_s in [2u64, 4, 8, 16, 32, 60, 60] {
            let holds = lanes.stuck(now);
            assert_eq!(
                holds,
                [Hold {
                    webhook: w(),
                    until: plus(now, Duration::from_secs(hold_s))
                }]
            );
            lanes.held(&holds[0]);
            assert!(
                lanes
                    .stuck(plus(now, Duration::from_secs(hold_s - 1)))
                    .is_empty(),
                "held"
            );
            now = plus(now, Duration::from_secs(hold_s));
        }
    }

    #[test]
    fn a_lane_whose_requests_all_fail_is_stuck_even_while_it_makes_progress() {
        let mut lanes = lanes_with(2, &w(), None, 10);
        lanes.pump(&w(), t0());
        lanes.finished(&w(), FAIL, at(10));
        lanes.pump(&w(), at(10));
        assert!(lanes.stuck(at(20)).is_empty(), "one failure is no pattern");
        lanes.finished(&w(), FAIL, at(20));
        lanes.pump(&w(), at(20));
        assert_eq!(
            lanes.stuck(at(30)).len(),
            1,
            "as many failures in a row as the limit"
        );
        // A lane with room is never stuck, however its requests fare.
        let mut lanes = lanes_with(2, &w(), None, 1);
        lanes.pump(&w(), t0());
        assert!(lanes.stuck(at(60_000)).is_empty());
    }

    #[test]
    fn a_success_lifts_a_long_hold_and_lets_a_short_one_run_out() {
        for (holds_in_a_row, lifted) in [(1, false), (2, true), (3, true)] {
            let mut lanes = lanes_with(2, &w(), None, 10);
            lanes.pump(&w(), t0());
            let mut now = at(1000);
            for _ in 0..holds_in_a_row {
                let hold = lanes.stuck(now).remove(0);
                lanes.held(&hold);
                now = hold.until;
            }
            let before_it_ends = now
                .saturating_sub(SignedDuration::from_millis(500))
                .unwrap();
            let done = lanes.finished(&w(), OK, before_it_ends);
            assert_eq!(done.lift, lifted, "after {holds_in_a_row} holds");
            // The run of holds is over: the next stuck spell starts again from the first.
            lanes.pump(&w(), before_it_ends);
            let later = plus(now, Duration::from_secs(5));
            assert_eq!(
                lanes.stuck(later)[0].until,
                plus(later, Duration::from_secs(2))
            );
        }
    }

    #[test]
    fn an_idle_lane_is_forgotten_unless_its_holds_may_still_double() {
        let mut lanes = lanes_with(1, &w(), None, 1);
        lanes.pump(&w(), t0());
        lanes.finished(&w(), OK, at(10));
        lanes.pump(&w(), at(10));
        assert_eq!(lanes.lanes.len(), 0, "idle and never held");

        let mut lanes = lanes_with(1, &w(), None, 1);
        lanes.pump(&w(), t0());
        let hold = lanes.stuck(at(1000)).remove(0);
        lanes.held(&hold);
        lanes.finished(&w(), FAIL, at(1500));
        lanes.pump(&w(), at(1500));
        assert_eq!(lanes.lanes.len(), 1, "kept while held");
        // Its hold ended at 3 s; a minute later it is let go.
        lanes.pump(&w(), at(62_999));
        assert_eq!(lanes.lanes.len(), 1);
        lanes.pump(&w(), at(63_000));
        assert_eq!(lanes.lanes.len(), 0);

        // A rate-limited lane is kept until its slot has come.
        let mut lanes = lanes_with(16, &w(), Some(1.0), 1);
        lanes.pump(&w(), t0());
        lanes.finished(&w(), OK, at(10));
        lanes.pump(&w(), at(10));
        assert_eq!(lanes.lanes.len(), 1);
        lanes.pump(&w(), at(1000));
        assert_eq!(lanes.lanes.len(), 0);
    }

    #[test]
    fn health_changes_are_told_once_and_test_sends_tell_nothing() {
        // (what the claim said, outcomes in order) → the changes they tell
        let test = Done {
            succeeded: false,
            tells_health: false,
            disables: false,
        };
        for (failing, outcomes, told) in [
            (false, vec![OK, OK], vec![None, None]),
            (
                false,
                vec![FAIL, FAIL, OK, OK],
                vec![Some(Health::Failing), None, Some(Health::Recovered), None],
            ),
            (true, vec![FAIL, OK], vec![None, Some(Health::Recovered)]),
            (false, vec![test, OK], vec![None, None]),
            (true, vec![test, test], vec![None, None]),
            // Disabled supersedes failing, and is told once for all the 410s in flight.
            (
                false,
                vec![GONE, GONE, FAIL],
                vec![Some(Health::Disabled), None, None],
            ),
            (
                false,
                vec![FAIL, GONE],
                vec![Some(Health::Failing), Some(Health::Disabled)],
            ),
        ] {
            let mut lanes = Lanes::new(rules(16));
            for i in 0..outcomes.len() as u32 {
                lanes.push(&w(), None, failing, Job(i, at(60_000)), t0());
            }
            lanes.pump(&w(), t0());
            let got: Vec<Option<Health>> = outcomes
                .iter()
                .map(|d| lanes.finished(&w(), *d, at(10)).health)
                .collect();
            assert_eq!(got, told, "claimed failing: {failing}, {outcomes:?}");
        }
    }

    #[test]
    fn the_next_slot_is_the_nearest_one_still_to_come_with_work_behind_it() {
        let mut lanes = Lanes::new(rules(1));
        for (w, rate) in [("a", 1.0), ("b", 4.0), ("c", 10.0)] {
            let w = &WebhookId::from_string(w.into());
            lanes.push(w, Some(rate), false, Job(0, at(60_000)), t0());
            lanes.push(w, Some(rate), false, Job(1, at(60_000)), t0());
            lanes.pump(w, t0());
        }
        assert_eq!(lanes.next_slot(t0()), Some(at(100)));
        // A slot that has come but whose lane waits for room (it is at its concurrency) is no
        // reason to wake: the lane is pumped when a request finishes.
        assert_eq!(lanes.next_slot(at(100)), Some(at(250)));
        assert_eq!(lanes.next_slot(at(1000)), None);
        assert_eq!(Lanes::<Job>::new(rules(1)).next_slot(t0()), None);
    }

    #[test]
    fn on_shutdown_every_queued_item_is_drained_and_in_flight_work_stays_counted() {
        let (a, b) = (
            WebhookId::from_string("a".into()),
            WebhookId::from_string("b".into()),
        );
        let mut lanes = lanes_with(2, &a, None, 5);
        lanes.push(&b, None, false, Job(7, at(60_000)), t0());
        lanes.pump(&a, t0());
        let mut back = ids(&lanes.drain());
        back.sort();
        assert_eq!(back, [2, 3, 4, 7]);
        assert_eq!(lanes.claimed(), 2, "the two in flight");
        assert!(lanes.drain().is_empty());
    }

    /// What ingests may hand a lane directly is what it would start at once: its concurrency
    /// (its node's share) less what it has in flight and queued; nothing while it is held.
    #[test]
    fn a_lane_takes_from_ingests_what_it_would_start_at_once() {
        let w = w();
        let other = WebhookId::from_string("other".into());
        let mut lanes = lanes_with(4, &w, None, 3);
        assert_eq!(lanes.fresh_room(), 4);
        let room = |lanes: &Lanes<Job>, now| lanes.rooms(now).collect::<HashMap<_, _>>();
        assert_eq!(room(&lanes, t0())[&w], 1, "three queued");
        assert_eq!(lanes.pump(&w, t0()).start.len(), 3);
        assert_eq!(room(&lanes, t0())[&w], 1, "three in flight");
        lanes.push(&w, None, false, Job(9, at(60_000)), t0());
        lanes.push(&w, None, false, Job(10, at(60_000)), t0());
        assert_eq!(room(&lanes, t0())[&w], 0, "full, one queued beyond");
        assert!(!room(&lanes, t0()).contains_key(&other));
        lanes.set_nodes(2);
        assert_eq!(lanes.fresh_room(), 2, "this node's share");
        lanes.set_nodes(1);
        lanes.held(&Hold {
            webhook: w.clone(),
            until: at(2_000),
        });
        for _ in 0..3 {
            lanes.finished(&w, OK, t0());
        }
        assert_eq!(lanes.pump(&w, t0()).start.len(), 2);
        assert_eq!(room(&lanes, at(1_000))[&w], 0, "held");
        assert_eq!(
            room(&lanes, at(2_000))[&w],
            2,
            "the hold is over: two in flight"
        );
    }
}
