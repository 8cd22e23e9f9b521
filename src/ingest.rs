//! Where a call event enters: validated events are matched to webhooks (SPEC §2) and stored
//! with their deliveries in one transaction, then the dispatcher is woken. The REST API and
//! the PBX connectors both come through [`Ingest::accept`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;

use crate::core::event::CallEvent;
use crate::core::id::{AccountId, DeliveryId, EventId, PostedEventId, WebhookId};
use crate::core::trigger::Trigger;
use crate::core::validate::{FieldError, FieldErrors};
use crate::delivery::dispatcher::Waker;
use crate::delivery::handoff::Handoff;
use crate::store::{
    Claimed, Inserted, NewDelivery, NewEvent, Release, Result, Store, StoreError, StoredEvent,
    Webhook,
};

/// What became of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// Events stored now.
    pub accepted: u64,
    /// Events whose id was already stored; ignored.
    pub duplicates: u64,
    /// Deliveries created.
    pub deliveries: u64,
}

#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn Store>,
    waker: Waker,
    /// Most deliveries one batch may create (0: no limit): one request's work is bounded.
    max_deliveries: u32,
}

/// The webhooks that fire for `event` among an account's candidates (SPEC §2).
pub fn matching<'a>(
    event: &'a CallEvent,
    candidates: &'a [Webhook],
) -> impl Iterator<Item = &'a Webhook> + 'a {
    candidates.iter().filter(move |w| {
        w.spec.enabled && w.spec.trigger.fires_for(event) && w.spec.accepts_call(event)
    })
}

/// The stored form of an event for `account_id`.
pub fn stored_event(
    account_id: &AccountId,
    event: &CallEvent,
    received_at: Timestamp,
    test: bool,
) -> StoredEvent {
    let id = EventId::new();
    let mut canonical = event.clone();
    canonical.account_id = None;
    StoredEvent {
        event_id: match &event.id {
            Some(posted) => posted.clone(),
            None => PostedEventId::from_string(id.as_str().to_owned()),
        },
        id,
        account_id: account_id.clone(),
        call_id: event.call.call_id.clone(),
        event_type: event.event_type().as_str().to_owned(),
        occurred_at: event.occurred_at,
        received_at,
        test,
        did_number: Some(event.call.did_number.as_str().to_owned()),
        customer_number: event
            .call
            .customer_number
            .as_ref()
            .map(|n| n.as_str().to_owned()),
        payload: canonical.to_json().to_string(),
    }
}

impl Ingest {
    pub fn new(store: Arc<dyn Store>, waker: Waker) -> Ingest {
        Ingest {
            store,
            waker,
            max_deliveries: 0,
        }
    }

    /// Refuses (422, all or nothing) a batch that would create more than `max` deliveries.
    pub fn max_deliveries(mut self, max: u32) -> Ingest {
        self.max_deliveries = max;
        self
    }

    /// Matches and stores `events` (each with the account it belongs to), all or nothing.
    /// Answers only once everything is committed.
    #[tracing::instrument(
        name = "ingest",
        skip_all,
        fields(events = events.len(), account = tracing::field::Empty)
    )]
    pub async fn accept(&self, events: Vec<(AccountId, CallEvent)>) -> Result<Accepted> {
        let received_at = Timestamp::now();
        // One lookup per account and batch, by the triggers the batch can fire.
        let mut candidates: HashMap<&AccountId, Arc<[Webhook]>> = HashMap::new();
        let mut by_account: HashMap<&AccountId, Vec<Trigger>> = HashMap::new();
        for (account, ev) in &events {
            let triggers = by_account.entry(account).or_default();
            for t in Trigger::firing_for(ev) {
                if !triggers.contains(&t) {
                    triggers.push(t);
                }
            }
        }
        // One account (any but an operator's mixed batch) is named on the span.
        if by_account.len() == 1
            && let Some(account) = by_account.keys().next()
        {
            tracing::Span::current().record("account", account.as_str());
        }
        for (account, triggers) in &by_account {
            candidates.insert(account, self.store.webhooks_for(account, triggers).await?);
        }
        let mut batch: Vec<NewEvent> = events
            .iter()
            .map(|(account, ev)| NewEvent {
                event: stored_event(account, ev, received_at, false),
                deliveries: matching(ev, candidates.get(account).map_or(&[][..], |w| &w[..]))
                    .map(|w| NewDelivery {
                        id: DeliveryId::new(),
                        webhook_id: w.id.clone(),
                        trigger: w.spec.trigger,
                        attempt_limit: None,
                        // A webhook whose endpoint is stuck takes new work only when its hold ends.
                        not_before: w.hold_until.filter(|t| *t > received_at),
                        lease: None,
                    })
                    .collect(),
            })
            .collect();
        let made: usize = batch.iter().map(|e| e.deliveries.len()).sum();
        if self.max_deliveries > 0 && made > self.max_deliveries as usize {
            return Err(StoreError::Rejected(FieldErrors(vec![FieldError {
                field: String::new(),
                message: format!(
                    "these events would make {made} deliveries, more than one post may \
                     (max_deliveries_per_post = {}); send fewer events per post",
                    self.max_deliveries
                ),
            }])));
        }
        let handing = self.reserve(&mut batch, &candidates, received_at);
        let outcome = if handing.deliveries.is_empty() {
            self.store.insert_events(batch).await?
        } else {
            // On a task of its own: a caller that goes away (a client hanging up) must not
            // leave the reservations taken, or the leased deliveries waiting for their lease
            // to run out, when the store commits them anyway.
            let this = self.clone();
            tokio::spawn(async move {
                match this.store.insert_events(batch).await {
                    Ok(outcome) => {
                        this.hand_over(handing, &outcome).await;
                        Ok(outcome)
                    }
                    Err(e) => {
                        handing.unreserve_all(this.waker.handoff());
                        Err(e)
                    }
                }
            })
            .await
            .map_err(|_| StoreError::Closed)??
        };
        let mut acc = Accepted::default();
        let mut leased = 0;
        for o in &outcome {
            match o {
                Inserted::New {
                    deliveries,
                    leased: l,
                } => {
                    acc.accepted += 1;
                    acc.deliveries += *deliveries as u64;
                    leased += l.len() as u64;
                }
                Inserted::Duplicate => acc.duplicates += 1,
            }
        }
        metrics::counter!("callhook_events_accepted_total").increment(acc.accepted);
        metrics::counter!("callhook_events_duplicate_total").increment(acc.duplicates);
        metrics::counter!("callhook_deliveries_created_total").increment(acc.deliveries);
        tracing::debug!(
            accepted = acc.accepted,
            duplicates = acc.duplicates,
            deliveries = acc.deliveries,
            "events stored"
        );
        // What was leased as it was stored is with the dispatcher already.
        if acc.deliveries > leased {
            self.waker.wake();
        }
        Ok(acc)
    }

    /// Asks a lease for each delivery the dispatcher has room for (see [`Handoff`]): due at
    /// once (not held) to a webhook without a rate limit (a rate-limited lane holds little and
    /// is in no hurry). Answers what to hand over once the events are stored.
    fn reserve(
        &self,
        batch: &mut [NewEvent],
        candidates: &HashMap<&AccountId, Arc<[Webhook]>>,
        now: Timestamp,
    ) -> Handing {
        let handoff = self.waker.handoff();
        let mut handing = Handing::default();
        for (i, ne) in batch.iter_mut().enumerate() {
            let mut any = false;
            for d in &mut ne.deliveries {
                if d.not_before.is_some() {
                    continue;
                }
                let Some(w) = candidates
                    .get(&ne.event.account_id)
                    .and_then(|ws| ws.iter().find(|w| w.id == d.webhook_id))
                else {
                    continue;
                };
                if w.spec.rate_limit.is_some() {
                    continue;
                }
                let Some(lease) = handoff.reserve(&w.id, now) else {
                    continue;
                };
                if !handing.webhooks.contains_key(&w.id) {
                    handing.webhooks.insert(w.id.clone(), Arc::new(w.clone()));
                }
                handing.deliveries.push(Reserved {
                    event: i,
                    id: d.id.clone(),
                    webhook_id: w.id.clone(),
                    trigger: d.trigger,
                    until: lease.until,
                });
                d.lease = Some(lease);
                any = true;
            }
            if any {
                handing.events.insert(
                    i,
                    (
                        ne.event.event_id.clone(),
                        Arc::from(ne.event.payload.as_str()),
                    ),
                );
            }
        }
        handing
    }

    /// Hands the deliveries stored leased to the dispatcher, and gives back the reservations
    /// of those that were not (they wait behind their call, or their event was a duplicate).
    /// Should the dispatcher have stopped, the leases are given back to the store.
    async fn hand_over(&self, handing: Handing, outcome: &[Inserted]) {
        if handing.deliveries.is_empty() {
            return;
        }
        let handoff = self.waker.handoff();
        let leased: HashSet<&DeliveryId> = outcome
            .iter()
            .flat_map(|o| match o {
                Inserted::New { leased, .. } => &leased[..],
                Inserted::Duplicate => &[],
            })
            .collect();
        let mut claimed = Vec::with_capacity(leased.len());
        let mut unleased: HashMap<&WebhookId, u32> = HashMap::new();
        for r in &handing.deliveries {
            let (Some((event_id, payload)), Some(webhook), true) = (
                handing.events.get(&r.event),
                handing.webhooks.get(&r.webhook_id),
                leased.contains(&r.id),
            ) else {
                *unleased.entry(&r.webhook_id).or_default() += 1;
                continue;
            };
            claimed.push(Claimed {
                delivery_id: r.id.clone(),
                lease: 1,
                trigger: r.trigger,
                attempts: 0,
                attempt_limit: None,
                event_id: event_id.clone(),
                event_payload: payload.clone(),
                webhook: webhook.clone(),
                lease_until: r.until,
                test: false,
                alert: false,
            });
        }
        for (w, n) in unleased {
            handoff.unreserve(w, n);
        }
        if claimed.is_empty() {
            return;
        }
        metrics::counter!("callhook_deliveries_handed_over_total").increment(claimed.len() as u64);
        if let Err(back) = handoff.send(claimed) {
            let releases: Vec<Release> = back.iter().map(Claimed::release).collect();
            if let Err(e) = self.store.release(releases, Timestamp::now()).await {
                tracing::warn!(error = %e, "the dispatcher has stopped and leases taken for it could not be given back; they run out");
            }
        }
    }
}

/// Deliveries an ingest reserved room for, and what to hand them over with.
#[derive(Default)]
struct Handing {
    deliveries: Vec<Reserved>,
    /// The event id and payload of each event (by its place in the batch) with a reservation.
    events: HashMap<usize, (PostedEventId, Arc<str>)>,
    webhooks: HashMap<WebhookId, Arc<Webhook>>,
}

struct Reserved {
    event: usize,
    id: DeliveryId,
    webhook_id: WebhookId,
    trigger: Trigger,
    until: Timestamp,
}

impl Handing {
    fn unreserve_all(self, handoff: &Handoff) {
        for r in &self.deliveries {
            handoff.unreserve(&r.webhook_id, 1);
        }
    }
}

impl Ingest {
    /// Tells the dispatcher there is work due now (a resend, a replay).
    pub fn wake(&self) {
        self.waker.wake();
    }
}
