//! Fresh deliveries handed straight to this node's dispatcher, leased in the ingest's own
//! transaction: at light load a delivery then costs no claim (a writer transaction that reads
//! the due index, leases the rows and reads their events and webhooks back), and its latency
//! is the ingest's commit, the hand-over and the request.
//!
//! The dispatcher publishes what each webhook's lane would start at once (its concurrency
//! less what it has in flight and queued: a burst beyond that is stored and claimed in bulk as
//! before); an ingest reserves room for the deliveries it is about to store and asks the store
//! to lease those to this node. The store leases only a delivery that arrives due at once (not waiting behind an
//! unfinished delivery of its call, not held): per-call order and holds stay the store's to
//! decide. What the store did not lease is stored as before and claimed as before, so a busy
//! lane, a rate-limited webhook or a full node changes nothing.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;

use super::lanes::plus;
use crate::core::id::{NodeId, WebhookId};
use crate::store::{Claimed, LeaseTo};

/// The hand-over between ingests and this node's dispatcher.
pub struct Handoff {
    room: Mutex<Room>,
    tx: mpsc::UnboundedSender<Vec<Claimed>>,
    node: NodeId,
    lease: Duration,
}

/// What the dispatcher can take, as it last said, less what ingests reserved since.
#[derive(Debug, Default)]
struct Room {
    /// Closed until the dispatcher runs, and once it stops.
    open: bool,
    /// Deliveries the dispatcher can take in all (its `max_in_flight`, less what it holds).
    free: u32,
    /// What the lane of a webhook can take; a webhook missing here has no lane: `fresh`.
    lanes: HashMap<WebhookId, u32>,
    fresh: u32,
    /// Reserved by ingests and not yet taken by the dispatcher, per webhook.
    transit: HashMap<WebhookId, u32>,
}

impl Room {
    fn in_transit(&self) -> u32 {
        self.transit.values().sum()
    }
}

/// Where handed-over deliveries arrive, for the dispatcher.
pub type Arrivals = mpsc::UnboundedReceiver<Vec<Claimed>>;

fn lock(m: &Mutex<Room>) -> MutexGuard<'_, Room> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Handoff {
    /// A closed hand-over for `node`, leasing for `lease`, and where its deliveries arrive.
    pub fn new(node: NodeId, lease: Duration) -> (Handoff, Arrivals) {
        let (tx, rx) = mpsc::unbounded_channel();
        let h = Handoff {
            room: Mutex::new(Room::default()),
            tx,
            node,
            lease,
        };
        (h, rx)
    }

    /// Reserves room for a delivery to `webhook`, answering the lease to store it with; `None`
    /// when the dispatcher has no room for it (or is not running).
    pub fn reserve(&self, webhook: &WebhookId, now: Timestamp) -> Option<LeaseTo> {
        let mut room = lock(&self.room);
        if !room.open || room.free == 0 {
            return None;
        }
        let lane = room.lanes.get(webhook).copied().unwrap_or(room.fresh);
        let transit = room.transit.get(webhook).copied().unwrap_or(0);
        if transit >= lane {
            return None;
        }
        room.free -= 1;
        match room.transit.get_mut(webhook) {
            Some(n) => *n += 1,
            None => {
                room.transit.insert(webhook.clone(), 1);
            }
        }
        Some(LeaseTo {
            node: self.node.clone(),
            until: plus(now, self.lease),
        })
    }

    /// Gives back `n` reservations for `webhook` whose deliveries were not leased (they
    /// waited behind their call, the event was a duplicate, or the ingest failed).
    pub fn unreserve(&self, webhook: &WebhookId, n: u32) {
        if n == 0 {
            return;
        }
        let mut room = lock(&self.room);
        Self::taken_off(&mut room, webhook, n);
        room.free = room.free.saturating_add(n);
    }

    fn taken_off(room: &mut Room, webhook: &WebhookId, n: u32) {
        if let Some(t) = room.transit.get_mut(webhook) {
            *t = t.saturating_sub(n);
            if *t == 0 {
                room.transit.remove(webhook);
            }
        }
    }

    /// Hands leased deliveries to the dispatcher; gives them back when it has stopped.
    pub fn send(&self, claimed: Vec<Claimed>) -> Result<(), Vec<Claimed>> {
        self.tx.send(claimed).map_err(|e| e.0)
    }

    /// The dispatcher took `n` handed-over deliveries of `webhook` into its lane.
    pub(super) fn arrived(&self, webhook: &WebhookId, n: u32) {
        Self::taken_off(&mut lock(&self.room), webhook, n);
    }

    /// What the dispatcher can take now: `free` in all, `lanes` for the webhooks with a lane,
    /// `fresh` for any other.
    pub(super) fn publish(
        &self,
        free: u32,
        fresh: u32,
        lanes: impl IntoIterator<Item = (WebhookId, u32)>,
    ) {
        let mut room = lock(&self.room);
        room.open = true;
        room.free = free.saturating_sub(room.in_transit());
        room.fresh = fresh;
        room.lanes.clear();
        room.lanes.extend(lanes);
    }

    /// No more reservations: the dispatcher is stopping.
    pub(super) fn close(&self) {
        lock(&self.room).open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> WebhookId {
        WebhookId::from_string(s.into())
    }

    fn handoff() -> Handoff {
        Handoff::new(NodeId::from_string("n".into()), Duration::from_secs(60)).0
    }

    fn reserved(h: &Handoff, webhook: &WebhookId, tries: u32) -> u32 {
        let now = Timestamp::now();
        (0..tries)
            .filter(|_| h.reserve(webhook, now).is_some())
            .count() as u32
    }

    #[test]
    fn nothing_is_reserved_before_the_dispatcher_publishes_or_after_it_closes() {
        let h = handoff();
        assert_eq!(reserved(&h, &w("a"), 3), 0);
        h.publish(10, 4, []);
        assert_eq!(reserved(&h, &w("a"), 3), 3);
        h.close();
        assert_eq!(reserved(&h, &w("a"), 3), 0);
    }

    #[test]
    fn a_lane_takes_what_it_has_room_for_less_what_is_in_transit() {
        let h = handoff();
        h.publish(100, 4, [(w("busy"), 2)]);
        assert_eq!(reserved(&h, &w("busy"), 5), 2, "the lane's room");
        assert_eq!(reserved(&h, &w("idle"), 9), 4, "a webhook without a lane");
        // Published again before the reservations arrived: they still count.
        h.publish(100, 4, [(w("busy"), 3)]);
        assert_eq!(reserved(&h, &w("busy"), 5), 1);
        h.arrived(&w("busy"), 3);
        h.publish(100, 4, [(w("busy"), 1)]);
        assert_eq!(reserved(&h, &w("busy"), 5), 1);
    }

    #[test]
    fn the_node_wide_room_bounds_every_lane_and_returns_when_unreserved() {
        let h = handoff();
        h.publish(5, 4, []);
        assert_eq!(reserved(&h, &w("a"), 4), 4);
        assert_eq!(reserved(&h, &w("b"), 4), 1, "5 in all");
        h.unreserve(&w("a"), 2);
        assert_eq!(reserved(&h, &w("b"), 4), 2);
        // What is in transit is taken off what the dispatcher publishes as free.
        h.publish(10, 4, []);
        assert_eq!(reserved(&h, &w("c"), 9), 4);
        assert_eq!(
            reserved(&h, &w("d"), 9),
            1,
            "10 less the 5 in transit, less c's 4"
        );
    }

    #[test]
    fn a_lease_runs_from_the_reservation_for_the_lease_length() {
        let h = handoff();
        h.publish(1, 1, []);
        let now = Timestamp::now();
        let lease = h.reserve(&w("a"), now).unwrap();
        assert_eq!(lease.node.as_str(), "n");
        assert_eq!(lease.until, plus(now, Duration::from_secs(60)));
    }
}
