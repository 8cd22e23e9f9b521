//! Where a call event enters: validated events are matched to webhooks (SPEC §2) and stored
//! with their deliveries in one transaction, then the dispatcher is woken. The REST API and
//! the PBX connectors both come through [`Ingest::accept`].

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use crate::core::event::CallEvent;
use crate::core::id::{AccountId, DeliveryId, EventId, PostedEventId};
use crate::core::trigger::Trigger;
use crate::core::validate::{FieldError, FieldErrors};
use crate::delivery::dispatcher::Waker;
use crate::store::{
    Inserted, NewDelivery, NewEvent, Result, Store, StoreError, StoredEvent, Webhook,
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
        let batch: Vec<NewEvent> = events
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
        let outcome = self.store.insert_events(batch).await?;
        let mut acc = Accepted::default();
        for o in outcome {
            match o {
                Inserted::New(n) => {
                    acc.accepted += 1;
                    acc.deliveries += n as u64;
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
        if acc.deliveries > 0 {
            self.waker.wake();
        }
        Ok(acc)
    }
}

impl Ingest {
    /// Tells the dispatcher there is work due now (a resend, a replay).
    pub fn wake(&self) {
        self.waker.wake();
    }
}
