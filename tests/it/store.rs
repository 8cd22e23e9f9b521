//! The store contract: the same tests against the SQLite store and, with
//! `CALLHOOK_TEST_DATABASE=postgres`, the PostgreSQL one. They drive the `Store` trait directly,
//! for the rules no API test can reach precisely: claims and leases, per-call order, resend,
//! lost updates, retention, a webhook's health, rotated secrets.

use std::sync::Arc;

use callhook::core::id::{
    AccountId, CallId, ClickToCallId, DeliveryId, NodeId, PostedEventId, WebhookId,
};
use callhook::core::retry::Next;
use callhook::core::sample::sample_event;
use callhook::core::sign::Secret;
use callhook::core::trigger::Trigger;
use callhook::core::webhook::WebhookSpec;
use callhook::ingest::stored_event;
use callhook::store::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::helpers::{test_database_url, test_settings};

/// An audit entry of `action` on `resource_id`, by a made-up API key of `account`.
fn entry(account: &AccountId, action: Action, resource_id: &str) -> AuditEntry {
    AuditEntry {
        id: callhook::core::id::AuditId::new(),
        account_id: account.clone(),
        at: Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap(),
        actor: AuditActor {
            kind: ActorKind::ApiKey,
            id: Some("key_test".into()),
            name: "contract".into(),
        },
        action,
        resource_id: resource_id.into(),
        changes: Vec::new(),
    }
}

/// The node these tests claim as.
fn here() -> NodeId {
    NodeId::from_string("node_here".into())
}

struct Fixture {
    store: Arc<dyn Store>,
    account: AccountId,
    webhook: Webhook,
    /// The database, when it is PostgreSQL.
    pg_url: Option<String>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    let pg_url = test_database_url().await;
    if let Some(url) = &pg_url {
        settings.database_url = url.clone();
    }
    let store = callhook::app::open_store(&settings).await.unwrap();
    let account = AccountId::new();
    store
        .insert_account(&Account {
            id: account.clone(),
            name: "a".into(),
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let spec = json!({"name": "h", "trigger": "call_received", "url": "https://crm.example.com/h"});
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap();
    let webhook = Webhook {
        id: WebhookId::new(),
        account_id: account.clone(),
        spec: WebhookSpec::from_json(spec.as_object().unwrap()).unwrap(),
        disabled_reason: None,
        secrets: vec![StoredSecret {
            secret: Secret::generate(),
            created_at: now,
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
        last_success_at: None,
        failing_since: None,
        hold_until: None,
        last_failure_at: None,
        last_error: None,
        recent: Default::default(),
    };
    store
        .insert_webhook(&webhook, &entry(&account, Action::WebhookCreate, "wh"))
        .await
        .unwrap();
    Fixture {
        store,
        account,
        webhook,
        pg_url,
        _dir: dir,
    }
}

impl Fixture {
    /// A second webhook of the account, like the first.
    async fn another_webhook(&self) -> WebhookId {
        let mut other = self.webhook.clone();
        other.id = WebhookId::new();
        self.store
            .insert_webhook(&other, &entry(&self.account, Action::WebhookCreate, "wh2"))
            .await
            .unwrap();
        other.id
    }

    /// Stores `n` call.received events of `call`, each with a delivery to the webhook.
    async fn events(&self, call: &str, n: usize) -> Vec<DeliveryId> {
        self.events_to(&self.webhook.id, call, n).await
    }

    /// The same, each with a delivery to `webhook`.
    async fn events_to(&self, webhook: &WebhookId, call: &str, n: usize) -> Vec<DeliveryId> {
        let batch: Vec<NewEvent> = (0..n)
            .map(|_| self.new_event(webhook, Trigger::CallReceived, call, None))
            .collect();
        let ids = batch.iter().map(|e| e.deliveries[0].id.clone()).collect();
        self.store.insert_events(batch).await.unwrap();
        ids
    }

    /// A `trigger` event of `call` (posted with `event_id`, when given) with one delivery to
    /// `webhook`, not stored yet.
    fn new_event(
        &self,
        webhook: &WebhookId,
        trigger: Trigger,
        call: &str,
        event_id: Option<&str>,
    ) -> NewEvent {
        let mut ev = sample_event(trigger);
        ev.call.call_id = CallId::from_string(call.into());
        if let Some(id) = event_id {
            ev.id = Some(PostedEventId::from_string(id.into()));
        }
        NewEvent {
            event: stored_event(&self.account, &ev, Timestamp::now(), false),
            deliveries: vec![NewDelivery {
                id: DeliveryId::new(),
                webhook_id: webhook.clone(),
                trigger,
                attempt_limit: None,
                not_before: None,
                lease: None,
            }],
        }
    }

    /// Up to 100 due deliveries for a minute, at most `share` of any one webhook, none of
    /// `exclude`.
    async fn claim_shared(&self, share: u32, exclude: &[WebhookId]) -> Vec<Claimed> {
        let minute = SignedDuration::from_secs(60);
        self.claim_with(&here(), minute, 100, &Shares::each(share), exclude)
            .await
    }

    async fn claim(&self, lease: SignedDuration) -> Vec<Claimed> {
        self.claim_as(&here(), lease, 100).await
    }

    /// Up to `limit` due deliveries, leased to `node`.
    async fn claim_as(&self, node: &NodeId, lease: SignedDuration, limit: u32) -> Vec<Claimed> {
        self.claim_with(node, lease, limit, &Shares::each(100), &[])
            .await
    }

    /// Up to `limit` due deliveries leased to `node` for `lease`, at most a webhook's share of
    /// `shares` of each, none of `exclude`.
    async fn claim_with(
        &self,
        node: &NodeId,
        lease: SignedDuration,
        limit: u32,
        shares: &Shares,
        exclude: &[WebhookId],
    ) -> Vec<Claimed> {
        let now = Timestamp::now();
        let until = now.saturating_add(lease).unwrap();
        self.store
            .claim_due(node, now, until, limit, shares, exclude)
            .await
            .unwrap()
    }

    async fn finish(&self, c: &Claimed, next: Next) {
        self.finish_leased(&c.delivery_id, c.lease, next).await;
    }

    /// Records the end of delivery `id` (of the fixture's webhook) under `lease`; answers how
    /// many deliveries that made due.
    async fn finish_leased(&self, id: &DeliveryId, lease: i64, next: Next) -> u64 {
        let record = AttemptRecord {
            delivery_id: id.clone(),
            webhook_id: self.webhook.id.clone(),
            lease,
            attempt: None,
            next,
            disable_webhook: None,
            note: Some("done".into()),
            test: false,
        };
        self.store
            .record_attempts(vec![record], Timestamp::now())
            .await
            .unwrap()
    }

    async fn status(&self, id: &DeliveryId) -> (DeliveryStatus, bool) {
        let (d, _) = self.store.get_delivery(&self.account, id).await.unwrap();
        (d.status, d.waiting)
    }
}

/// A delivery stored with a lease asked for (an ingest handing it to this node's dispatcher)
/// is stored leased when it is due at once: no claim takes it, and its record under lease 1
/// applies. One waiting behind an unfinished delivery of its call, or to a held webhook, is
/// stored as it would be without the ask, and is not leased.
#[tokio::test]
async fn a_delivery_asked_leased_is_stored_leased_only_when_due_at_once() {
    let f = fixture().await;
    let now = Timestamp::now();
    let lease = LeaseTo {
        node: here(),
        until: now.saturating_add(SignedDuration::from_secs(60)).unwrap(),
    };
    let w = f.webhook.id.clone();
    let asking = |call: &str, not_before: Option<Timestamp>| {
        let mut e = f.new_event(&w, Trigger::CallReceived, call, None);
        e.deliveries[0].lease = Some(lease.clone());
        e.deliveries[0].not_before = not_before;
        e
    };
    let held_until = now.saturating_add(SignedDuration::from_secs(600)).unwrap();
    let batch = vec![
        asking("c1", None),
        asking("c1", None),
        asking("c2", Some(held_until)),
    ];
    let ids: Vec<DeliveryId> = batch.iter().map(|e| e.deliveries[0].id.clone()).collect();
    let stored = f.store.insert_events(batch).await.unwrap();
    let new = |leased: &[&DeliveryId]| Inserted::New {
        deliveries: 1,
        leased: leased.iter().map(|id| (*id).clone()).collect(),
    };
    assert_eq!(stored, vec![new(&[&ids[0]]), new(&[]), new(&[])]);
    assert_eq!(f.status(&ids[1]).await, (DeliveryStatus::Pending, true));
    assert!(
        f.claim(SignedDuration::from_secs(60)).await.is_empty(),
        "the leased delivery is this node's, the second waits for it, the third is held"
    );
    // Recorded under the lease it was stored with, as a claimed one is: the call's next goes.
    assert_eq!(f.finish_leased(&ids[0], 1, Next::Succeeded).await, 1);
    assert_eq!(f.status(&ids[0]).await.0, DeliveryStatus::Succeeded);
    let next: Vec<DeliveryId> = f
        .claim(SignedDuration::from_secs(60))
        .await
        .into_iter()
        .map(|c| c.delivery_id)
        .collect();
    assert_eq!(next, vec![ids[1].clone()]);
}

/// A delivery stored leased is given back like a claimed one: once given back it is claimed
/// again under the next lease, and a record under the lease it was stored with is dropped.
#[tokio::test]
async fn a_delivery_stored_leased_is_given_back_like_a_claimed_one() {
    let f = fixture().await;
    let mut e = f.new_event(&f.webhook.id, Trigger::CallReceived, "c1", None);
    let id = e.deliveries[0].id.clone();
    e.deliveries[0].lease = Some(LeaseTo {
        node: here(),
        until: Timestamp::now()
            .saturating_add(SignedDuration::from_secs(60))
            .unwrap(),
    });
    f.store.insert_events(vec![e]).await.unwrap();
    f.store
        .release(
            vec![Release {
                delivery_id: id.clone(),
                lease: 1,
            }],
            Timestamp::now(),
        )
        .await
        .unwrap();
    let again = f.claim(SignedDuration::from_secs(60)).await;
    assert_eq!(again.len(), 1);
    assert_eq!((&again[0].delivery_id, again[0].lease), (&id, 2));
    f.finish_leased(&id, 1, Next::Succeeded).await;
    assert_eq!(
        f.status(&id).await.0,
        DeliveryStatus::Pending,
        "a stale lease's record"
    );
    f.finish(&again[0], Next::Succeeded).await;
    assert_eq!(f.status(&id).await.0, DeliveryStatus::Succeeded);
}

#[tokio::test]
async fn a_call_goes_one_delivery_at_a_time_in_order() {
    let f = fixture().await;
    let ids = f.events("c1", 3).await;
    let other = f.events("c2", 1).await;
    let claimed = f.claim(SignedDuration::from_secs(60)).await;
    let got: Vec<&str> = claimed.iter().map(|c| c.delivery_id.as_str()).collect();
    assert_eq!(
        got,
        [ids[0].as_str(), other[0].as_str()],
        "only the head of each call is due"
    );
    assert_eq!(f.status(&ids[1]).await, (DeliveryStatus::Pending, true));
    f.finish(&claimed[0], Next::Failed).await;
    let next = f.claim(SignedDuration::from_secs(60)).await;
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].delivery_id, ids[1],
        "a finally failed delivery lets the next go"
    );
    f.finish(&next[0], Next::RetryAt(Timestamp::now())).await;
    let again = f.claim(SignedDuration::from_secs(60)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].delivery_id, ids[1],
        "a retry keeps its place: the third still waits"
    );
    assert_eq!(f.status(&ids[2]).await, (DeliveryStatus::Pending, true));
}

#[tokio::test]
async fn leases_expire_and_a_stale_record_is_dropped() {
    let f = fixture().await;
    let ids = f.events("c1", 1).await;
    let first = f.claim(SignedDuration::from_millis(1)).await;
    assert_eq!(first.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = f.claim(SignedDuration::from_secs(60)).await;
    assert_eq!(second.len(), 1, "an expired lease is claimed again");
    assert!(second[0].lease > first[0].lease);
    f.finish(&first[0], Next::Succeeded).await;
    assert_eq!(
        f.status(&ids[0]).await.0,
        DeliveryStatus::Pending,
        "the old holder's record is dropped"
    );
    f.finish(&second[0], Next::Succeeded).await;
    assert_eq!(f.status(&ids[0]).await.0, DeliveryStatus::Succeeded);
}

#[tokio::test]
async fn a_restart_on_sqlite_gives_back_the_leases_the_dead_process_left() {
    let f = fixture().await;
    let ids = f.events("c1", 1).await;
    f.events("c2", 1).await;
    let leased = f.claim(SignedDuration::from_secs(60)).await;
    assert_eq!(leased.len(), 2);
    f.finish(
        &leased[1],
        Next::RetryAt(Timestamp::now() + SignedDuration::from_secs(600)),
    )
    .await;
    let given_back = f
        .store
        .release_leftover_leases(Timestamp::now())
        .await
        .unwrap();
    let again = f.claim(SignedDuration::from_secs(60)).await;
    if test_database_url().await.is_none() {
        // One node is all SQLite has: every lease was the dead process's. A retry scheduled
        // for later is no lease and keeps its time.
        assert_eq!(given_back, 1);
        assert_eq!(again.len(), 1, "the leased delivery is due at once");
        assert_eq!(again[0].delivery_id, ids[0]);
        assert!(again[0].lease > leased[0].lease);
    } else {
        // Other nodes may hold leases: they are left to run out.
        assert_eq!(given_back, 0);
        assert!(again.is_empty());
    }
}

#[tokio::test]
async fn claims_take_a_bounded_share_of_one_webhook_and_skip_excluded_ones() {
    let f = fixture().await;
    for i in 0..10 {
        f.events(&format!("c{i}"), 1).await;
    }
    let some = f.claim_shared(4, &[]).await;
    assert_eq!(some.len(), 4);
    let none = f
        .claim_shared(100, std::slice::from_ref(&f.webhook.id))
        .await;
    assert!(none.is_empty());
}

/// A webhook's share of a claim is taken from its oldest deliveries, and the claim reads on
/// past the rest of its backlog for another webhook's: one backlog does not crowd a newer
/// delivery of another webhook out.
#[tokio::test]
async fn a_claim_reaches_past_one_webhooks_backlog_to_another_webhook() {
    let f = fixture().await;
    for i in 0..20 {
        f.events(&format!("a{i}"), 1).await;
    }
    // Due strictly after the backlog, so it sorts behind every delivery of it.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let other = f.another_webhook().await;
    let theirs = f.events_to(&other, "b", 1).await;
    let claimed = f.claim_shared(4, &[]).await;
    let of = |w: &WebhookId| claimed.iter().filter(|c| &c.webhook.id == w).count();
    assert_eq!(of(&f.webhook.id), 4, "the backlog's share");
    assert_eq!(of(&other), 1, "the other webhook's delivery");
    assert!(claimed.iter().any(|c| c.delivery_id == theirs[0]));
}

/// A webhook given a larger share (its requests finish fast) takes that many of a claim;
/// every other webhook takes the usual share.
#[tokio::test]
async fn a_webhook_with_a_larger_share_takes_more_of_a_claim() {
    let f = fixture().await;
    let fast = f.another_webhook().await;
    for i in 0..20 {
        f.events(&format!("a{i}"), 1).await;
        f.events_to(&fast, &format!("b{i}"), 1).await;
    }
    let shares = Shares {
        each: 4,
        more: [(fast.clone(), 12)].into(),
        others: false,
    };
    let minute = SignedDuration::from_secs(60);
    let claimed = f.claim_with(&here(), minute, 100, &shares, &[]).await;
    let of = |w: &WebhookId| claimed.iter().filter(|c| &c.webhook.id == w).count();
    assert_eq!(of(&f.webhook.id), 4, "the usual share");
    assert_eq!(of(&fast), 12, "the larger share");
}

#[tokio::test]
async fn resend_respects_what_the_delivery_is_doing() {
    let f = fixture().await;
    let ids = f.events("c1", 2).await;
    let now = Timestamp::now();
    let err = f
        .store
        .resend(
            &f.account,
            &ids[1],
            now,
            &entry(&f.account, Action::DeliveryResend, "d"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("waits")),
        "{err}"
    );
    let claimed = f.claim(SignedDuration::from_secs(60)).await;
    let err = f
        .store
        .resend(
            &f.account,
            &ids[0],
            Timestamp::now(),
            &entry(&f.account, Action::DeliveryResend, "d"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("being sent")),
        "{err}"
    );
    f.finish(&claimed[0], Next::Failed).await;
    // The second is now queued; resending the first (ended) makes it wait behind it, and
    // being the earlier of the call it goes next.
    f.store
        .resend(
            &f.account,
            &ids[0],
            Timestamp::now(),
            &entry(&f.account, Action::DeliveryResend, "d"),
        )
        .await
        .unwrap();
    assert_eq!(f.status(&ids[0]).await, (DeliveryStatus::Pending, true));
    let c = f.claim(SignedDuration::from_secs(60)).await;
    assert_eq!(c[0].delivery_id, ids[1]);
    f.finish(&c[0], Next::Succeeded).await;
    let c = f.claim(SignedDuration::from_secs(60)).await;
    assert_eq!(c[0].delivery_id, ids[0]);
    assert_eq!(
        c[0].attempt_limit,
        Some(c[0].attempts + 1),
        "exactly one more attempt"
    );
    assert!(matches!(
        f.store
            .resend(
                &f.account,
                &DeliveryId::from_string("dlv_nope".into()),
                Timestamp::now(),
                &entry(&f.account, Action::DeliveryResend, "dlv_nope")
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn a_webhook_write_never_undoes_a_change_it_did_not_see() {
    let f = fixture().await;
    let mut a = f
        .store
        .get_webhook(&f.account, &f.webhook.id)
        .await
        .unwrap();
    let mut b = a.clone();
    let read_at = a.updated_at;
    a.spec.name = "first".into();
    a.updated_at = Timestamp::from_millisecond(read_at.as_millisecond() + 5).unwrap();
    f.store
        .update_webhook(&a, read_at, &entry(&f.account, Action::WebhookUpdate, "wh"))
        .await
        .unwrap();
    b.spec.name = "second".into();
    b.updated_at = Timestamp::from_millisecond(read_at.as_millisecond() + 9).unwrap();
    let err = f
        .store
        .update_webhook(&b, read_at, &entry(&f.account, Action::WebhookUpdate, "wh"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        f.store
            .get_webhook(&f.account, &f.webhook.id)
            .await
            .unwrap()
            .spec
            .name,
        "first"
    );
}

/// What matching reads of a webhook is read again after every change to it (SQLite answers
/// it from memory between changes).
#[tokio::test]
async fn matching_sees_every_change_to_a_webhook_at_once() {
    let f = fixture().await;
    let matching = || async {
        f.store
            .webhooks_for(&f.account, &[Trigger::CallReceived])
            .await
            .unwrap()
            .iter()
            .map(|w| (w.id.clone(), w.spec.name.clone(), w.hold_until.is_some()))
            .collect::<Vec<_>>()
    };
    let id = f.webhook.id.clone();
    assert_eq!(matching().await, [(id.clone(), "h".into(), false)]);
    // An edit.
    let mut w = f.store.get_webhook(&f.account, &id).await.unwrap();
    let read_at = w.updated_at;
    w.spec.name = "renamed".into();
    w.updated_at = Timestamp::from_millisecond(read_at.as_millisecond() + 1).unwrap();
    let edit = || entry(&f.account, Action::WebhookUpdate, "wh");
    f.store.update_webhook(&w, read_at, &edit()).await.unwrap();
    assert_eq!(matching().await, [(id.clone(), "renamed".into(), false)]);
    // A hold, and its end.
    let until = Timestamp::now()
        .saturating_add(SignedDuration::from_secs(30))
        .unwrap();
    f.store.hold_webhook(&id, Some(until)).await.unwrap();
    assert_eq!(matching().await, [(id.clone(), "renamed".into(), true)]);
    f.store.hold_webhook(&id, None).await.unwrap();
    assert_eq!(matching().await, [(id.clone(), "renamed".into(), false)]);
    // Disabled by a record (its endpoint is gone, say).
    f.events("c1", 1).await;
    let claimed = f.claim(SignedDuration::from_secs(60)).await;
    let record = AttemptRecord {
        delivery_id: claimed[0].delivery_id.clone(),
        webhook_id: id.clone(),
        lease: claimed[0].lease,
        attempt: None,
        next: Next::Failed,
        disable_webhook: Some("gone".into()),
        note: None,
        test: false,
    };
    f.store
        .record_attempts(vec![record], Timestamp::now())
        .await
        .unwrap();
    assert_eq!(matching().await, []);
    // Enabled again, then deleted.
    let mut w = f.store.get_webhook(&f.account, &id).await.unwrap();
    let read_at = w.updated_at;
    w.spec.enabled = true;
    w.updated_at = Timestamp::from_millisecond(read_at.as_millisecond() + 1).unwrap();
    f.store.update_webhook(&w, read_at, &edit()).await.unwrap();
    assert_eq!(matching().await.len(), 1);
    let delete = entry(&f.account, Action::WebhookDelete, "wh");
    f.store
        .delete_webhook(&f.account, &id, &delete)
        .await
        .unwrap();
    assert_eq!(matching().await, []);
}

#[tokio::test]
async fn retention_removes_old_finished_deliveries_with_their_attempts_and_events() {
    let f = fixture().await;
    let ids = f.events("c1", 1).await;
    let kept = f.events("c2", 1).await;
    let c = f.claim(SignedDuration::from_secs(60)).await;
    let done = c.iter().find(|c| c.delivery_id == ids[0]).unwrap();
    f.finish(done, Next::Succeeded).await;
    let later = Timestamp::now()
        .saturating_add(SignedDuration::from_secs(1))
        .unwrap();
    let removed = f.store.prune(later, 100).await.unwrap();
    assert!(removed >= 2, "the delivery and its event: {removed}");
    assert!(matches!(
        f.store.get_delivery(&f.account, &ids[0]).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        f.store.get_delivery(&f.account, &kept[0]).await.is_ok(),
        "unfinished deliveries stay"
    );
    assert!(matches!(
        f.store
            .call_timeline(&f.account, &CallId::from_string("c1".into()))
            .await,
        Err(StoreError::NotFound)
    ));
    // The Calls list loses the call whose events are gone, keeps the other.
    let calls = f
        .store
        .list_calls(
            &f.account,
            &CallFilter::default(),
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    let listed: Vec<&str> = calls.items.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(listed, ["c2"]);
    assert_eq!(
        f.store.prune(later, 100).await.unwrap(),
        0,
        "nothing left to do"
    );
}

/// Retention removes events left without deliveries that were received before its cut, and
/// keeps every one received at or after it, whatever order they were stored in (an ingest
/// that took its time, a node whose clock is behind).
#[tokio::test]
async fn retention_keeps_every_event_received_after_its_cut() {
    let f = fixture().await;
    let now = Timestamp::now();
    let at = |s: i64| now.saturating_add(SignedDuration::from_secs(s)).unwrap();
    // Stored in this order, none with a delivery.
    for (call, secs) in [("c0", 0), ("c10", 10), ("c1", 1), ("c20", 20)] {
        let mut e = f.new_event(&f.webhook.id, Trigger::CallReceived, call, None);
        e.deliveries.clear();
        e.event.received_at = at(secs);
        f.store.insert_events(vec![e]).await.unwrap();
    }
    let left = || async {
        let mut left = Vec::new();
        for call in ["c0", "c1", "c10", "c20"] {
            let id = CallId::from_string(call.into());
            if f.store.call_timeline(&f.account, &id).await.is_ok() {
                left.push(call);
            }
        }
        left
    };
    assert_eq!(left().await, ["c0", "c1", "c10", "c20"]);
    f.store.prune(at(5), 100).await.unwrap();
    let now_left = left().await;
    assert!(
        !now_left.contains(&"c0") && now_left.ends_with(&["c10", "c20"]),
        "{now_left:?}"
    );
    f.store.prune(at(15), 100).await.unwrap();
    assert_eq!(left().await, ["c20"]);
    assert_eq!(f.store.prune(at(15), 100).await.unwrap(), 0);
}

#[tokio::test]
async fn nodes_count_while_their_heartbeat_is_fresh() {
    let f = fixture().await;
    let now = Timestamp::now();
    let ago = |s: i64| now.saturating_sub(SignedDuration::from_secs(s)).unwrap();
    let (a, b) = (
        NodeId::from_string("node_a".into()),
        NodeId::from_string("node_b".into()),
    );
    let beat = f.store.heartbeat(&a, ago(30), ago(36)).await.unwrap();
    assert_eq!((beat.nodes, beat.known), (1, false), "its first heartbeat");
    assert!(f.store.heartbeat(&a, ago(25), ago(31)).await.unwrap().known);
    let beat = f.store.heartbeat(&b, now, ago(6)).await.unwrap();
    assert_eq!(beat.nodes, 1, "node_a was last seen 25 s ago");
    assert_eq!(beat.taken_over, [(a.clone(), 0)], "and is gone");
    let beat = f.store.heartbeat(&a, now, ago(6)).await.unwrap();
    assert_eq!(
        (beat.nodes, beat.known),
        (2, false),
        "node_a learns it was taken for dead"
    );
}

#[tokio::test]
async fn a_live_node_takes_over_the_leases_of_a_node_that_missed_its_heartbeats() {
    let f = fixture().await;
    for i in 0..5 {
        f.events(&format!("c{i}"), 1).await;
    }
    let (dead, slow, live) = (
        NodeId::from_string("node_dead".into()),
        NodeId::from_string("node_slow".into()),
        NodeId::from_string("node_live".into()),
    );
    let minute = SignedDuration::from_secs(60);
    // Each node leases some of the work; one more delivery waits for its retry, leased by no one.
    let of_dead = f.claim_as(&dead, minute, 2).await;
    let of_slow = f.claim_as(&slow, minute, 1).await;
    let of_live = f.claim_as(&live, minute, 1).await;
    let retrying = f.claim_as(&dead, minute, 1).await;
    f.finish(&retrying[0], Next::RetryAt(Timestamp::now() + minute * 10))
        .await;
    assert_eq!((of_dead.len(), of_slow.len(), of_live.len()), (2, 1, 1));

    // node_dead was last seen 10 s ago, node_slow 4 s ago; node_live counts a node as dead
    // after 6 s of silence.
    let now = Timestamp::now();
    let ago = |s: i64| now.saturating_sub(SignedDuration::from_secs(s)).unwrap();
    f.store.heartbeat(&dead, ago(10), ago(16)).await.unwrap();
    f.store.heartbeat(&slow, ago(4), ago(16)).await.unwrap();
    let beat = f.store.heartbeat(&live, now, ago(6)).await.unwrap();
    assert_eq!(beat.nodes, 2, "node_live and node_slow");
    assert_eq!(beat.taken_over, [(dead.clone(), 2)]);

    // The dead node's two are due at once, under a new lease; nobody else's moved.
    let again = f.claim_as(&live, minute, 100).await;
    let mut got: Vec<&DeliveryId> = again.iter().map(|c| &c.delivery_id).collect();
    let mut want: Vec<&DeliveryId> = of_dead.iter().map(|c| &c.delivery_id).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    for new in &again {
        let old = of_dead.iter().find(|c| c.delivery_id == new.delivery_id);
        assert_eq!(
            Some(new.lease),
            old.map(|c| c.lease + 2),
            "moved on by the takeover, then by the claim"
        );
    }
    // What the dead node might still record under its old lease is dropped; the holders of
    // the current leases record as usual.
    for c in &of_dead {
        f.finish(c, Next::Succeeded).await;
        assert_eq!(f.status(&c.delivery_id).await.0, DeliveryStatus::Pending);
    }
    for c in again.iter().chain(&of_slow).chain(&of_live) {
        f.finish(c, Next::Succeeded).await;
        assert_eq!(f.status(&c.delivery_id).await.0, DeliveryStatus::Succeeded);
    }
    assert_eq!(
        f.status(&retrying[0].delivery_id).await.0,
        DeliveryStatus::Pending,
        "a scheduled retry is no lease"
    );
    assert!(f.claim_as(&live, minute, 100).await.is_empty());

    // The dead node is forgotten: the next heartbeat takes over nothing.
    let beat = f.store.heartbeat(&live, now, ago(6)).await.unwrap();
    assert_eq!((beat.nodes, beat.taken_over), (2, Vec::new()));
}

/// PostgreSQL: a claim neither waits for another node's claim nor takes what that one holds.
/// While another transaction holds the two oldest due deliveries locked (a claim under way on
/// another node), a claim takes the next two, whether it knows of other nodes or not, and
/// then finds nothing more; once the other transaction ends, the two are claimed as usual.
/// Alone, the claim locks only the rows it picked, here the two held: it must then read past
/// them rather than answer "nothing due".
#[tokio::test]
async fn a_claim_passes_over_what_another_node_is_claiming() {
    let f = fixture().await;
    let Some(url) = f.pg_url.clone() else {
        return;
    };
    for i in 0..6 {
        f.events(&format!("c{i}"), 1).await;
    }
    let mut other = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::Executor::execute(&mut other, "BEGIN").await.unwrap();
    let held: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM deliveries WHERE state = 'queued' ORDER BY next_attempt_at, seq LIMIT 2 FOR UPDATE",
    )
    .fetch_all(&mut other)
    .await
    .unwrap();
    assert_eq!(held.len(), 2);
    let minute = SignedDuration::from_secs(60);
    let ids = |claimed: &[Claimed]| -> Vec<String> {
        let mut v: Vec<String> = claimed.iter().map(|c| c.delivery_id.to_string()).collect();
        v.sort();
        v
    };
    let first = f.claim_as(&here(), minute, 2).await;
    assert_eq!(first.len(), 2, "two not held");
    assert!(ids(&first).iter().all(|id| !held.contains(id)));
    let with_others = Shares {
        others: true,
        ..Shares::each(100)
    };
    let second = f.claim_with(&here(), minute, 2, &with_others, &[]).await;
    assert_eq!(second.len(), 2, "two more not held");
    assert!(ids(&second).iter().all(|id| !held.contains(id)));
    assert!(
        f.claim_as(&here(), minute, 10).await.is_empty(),
        "what is left is held"
    );
    sqlx::Executor::execute(&mut other, "ROLLBACK")
        .await
        .unwrap();
    let mut want = held.clone();
    want.sort();
    assert_eq!(ids(&f.claim_as(&here(), minute, 10).await), want);
}

#[tokio::test]
async fn two_live_nodes_take_over_a_dead_node_once() {
    let f = fixture().await;
    for i in 0..3 {
        f.events(&format!("c{i}"), 1).await;
    }
    let dead = NodeId::from_string("node_dead".into());
    let leased = f.claim_as(&dead, SignedDuration::from_secs(60), 100).await;
    assert_eq!(leased.len(), 3);
    let now = Timestamp::now();
    let ago = |s: i64| now.saturating_sub(SignedDuration::from_secs(s)).unwrap();
    f.store.heartbeat(&dead, ago(10), ago(16)).await.unwrap();
    let (a, b) = (
        NodeId::from_string("node_a".into()),
        NodeId::from_string("node_b".into()),
    );
    let (beat_a, beat_b) = tokio::join!(
        f.store.heartbeat(&a, now, ago(6)),
        f.store.heartbeat(&b, now, ago(6))
    );
    let mut taken: Vec<(NodeId, u64)> = beat_a.unwrap().taken_over;
    taken.extend(beat_b.unwrap().taken_over);
    assert_eq!(taken, [(dead, 3)], "one of them took it over");
    let again = f.claim(SignedDuration::from_secs(60)).await;
    assert_eq!(again.len(), 3);
    assert!(
        again.iter().all(|c| c.lease == leased[0].lease + 2),
        "each lease moved on once by the takeover, then by the claim"
    );
}

#[tokio::test]
async fn a_held_webhook_is_out_of_the_way_until_its_hold_ends() {
    let f = fixture().await;
    f.events("c1", 1).await;
    let until = Timestamp::now()
        .saturating_add(SignedDuration::from_secs(30))
        .unwrap();
    f.store
        .hold_webhook(&f.webhook.id, Some(until))
        .await
        .unwrap();
    assert!(
        f.claim(SignedDuration::from_secs(60)).await.is_empty(),
        "its due work moved behind the hold"
    );
    let held = f
        .store
        .get_webhook(&f.account, &f.webhook.id)
        .await
        .unwrap();
    assert_eq!(
        held.hold_until.map(|t| t.as_millisecond()),
        Some(until.as_millisecond())
    );
    let (d, _) = f
        .store
        .list_deliveries(
            &f.account,
            &f.webhook.id,
            &DeliveryFilter::default(),
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .map(|p| (p.items, ()))
        .unwrap();
    assert_eq!(
        d[0].next_attempt_at.map(|t| t.as_millisecond()),
        Some(until.as_millisecond())
    );
    f.store.hold_webhook(&f.webhook.id, None).await.unwrap();
    assert_eq!(
        f.store
            .get_webhook(&f.account, &f.webhook.id)
            .await
            .unwrap()
            .hold_until,
        None
    );
}

#[tokio::test]
async fn an_ended_delivery_resent_on_an_idle_call_goes_at_once() {
    let f = fixture().await;
    let ids = f.events("c1", 1).await;
    let claimed = f.claim(SignedDuration::from_secs(60)).await;
    f.finish(&claimed[0], Next::Failed).await;
    assert_eq!(f.status(&ids[0]).await.0, DeliveryStatus::Failed);
    f.store
        .resend(
            &f.account,
            &ids[0],
            Timestamp::now(),
            &entry(&f.account, Action::DeliveryResend, "d"),
        )
        .await
        .unwrap();
    assert_eq!(
        f.status(&ids[0]).await,
        (DeliveryStatus::Pending, false),
        "nothing of its call is under way: it does not wait"
    );
    let again = f.claim(SignedDuration::from_secs(60)).await;
    assert_eq!(again.len(), 1, "due at once");
    assert_eq!(again[0].attempt_limit, Some(again[0].attempts + 1));
}

#[tokio::test]
async fn deleting_a_webhook_ends_its_unfinished_deliveries() {
    let f = fixture().await;
    let ids = f.events("c1", 2).await;
    f.store
        .delete_webhook(
            &f.account,
            &f.webhook.id,
            &entry(&f.account, Action::WebhookDelete, "wh"),
        )
        .await
        .unwrap();
    for id in &ids {
        let (d, _) = f.store.get_delivery(&f.account, id).await.unwrap();
        assert_eq!((d.status, d.waiting), (DeliveryStatus::Failed, false));
        assert_eq!(d.last_error.as_deref(), Some("the webhook was deleted"));
    }
    assert!(f.claim(SignedDuration::from_secs(60)).await.is_empty());
}

fn attempt(status: u16) -> Attempt {
    Attempt {
        n: 0,
        started_at: Timestamp::now(),
        latency_ms: 3,
        request_method: "POST".into(),
        request_url: "https://crm.example.com/h".into(),
        request_headers: vec![("content-type".into(), "application/json".into())],
        request_body: Some("{}".into()),
        response_status: Some(status),
        response_headers: Some(Vec::new()),
        response_body: None,
        error_kind: None,
        error: None,
    }
}

#[tokio::test]
async fn only_real_attempts_move_a_webhooks_health() {
    let f = fixture().await;
    f.events("c1", 1).await;
    f.events("c2", 1).await;
    f.events("c3", 1).await;
    let claimed = f.claim(SignedDuration::from_secs(60)).await;
    assert_eq!(claimed.len(), 3);
    let record = |c: &Claimed, status: u16, next: Next, test: bool| AttemptRecord {
        delivery_id: c.delivery_id.clone(),
        webhook_id: c.webhook.id.clone(),
        lease: c.lease,
        attempt: Some(attempt(status)),
        next,
        disable_webhook: None,
        note: None,
        test,
    };
    let health = || async {
        let w = f
            .store
            .get_webhook(&f.account, &f.webhook.id)
            .await
            .unwrap();
        (w.failing_since.is_some(), w.last_success_at.is_some())
    };
    let retry = Next::RetryAt(Timestamp::now());
    f.store
        .record_attempts(
            vec![record(&claimed[0], 500, retry.clone(), true)],
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        health().await,
        (false, false),
        "a test attempt never counts"
    );
    f.store
        .record_attempts(
            vec![record(&claimed[1], 500, retry, false)],
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        health().await,
        (true, false),
        "a failed attempt starts a run"
    );
    f.store
        .record_attempts(
            vec![record(&claimed[2], 200, Next::Succeeded, false)],
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(health().await, (false, true), "a success ends it");
    let (d, attempts) = f
        .store
        .get_delivery(&f.account, &claimed[2].delivery_id)
        .await
        .unwrap();
    assert_eq!(
        (d.status, d.attempts, d.last_status),
        (DeliveryStatus::Succeeded, 1, Some(200))
    );
    assert_eq!(attempts.len(), 1);
}

#[tokio::test]
async fn a_rotated_secret_is_kept_beside_the_new_one() {
    let f = fixture().await;
    let mut w = f
        .store
        .get_webhook(&f.account, &f.webhook.id)
        .await
        .unwrap();
    let read_at = w.updated_at;
    let now = Timestamp::from_millisecond(read_at.as_millisecond() + 1).unwrap();
    w.rotate_secret(now);
    w.updated_at = now;
    f.store
        .update_webhook(&w, read_at, &entry(&f.account, Action::WebhookUpdate, "wh"))
        .await
        .unwrap();
    let stored = f
        .store
        .get_webhook(&f.account, &f.webhook.id)
        .await
        .unwrap();
    assert_eq!(stored.secrets, w.secrets);
    assert_eq!(
        stored.live_secrets(now).len(),
        2,
        "both sign during the overlap"
    );
    assert_ne!(
        stored.current_secret().map(|s| &s.secret),
        Some(&f.webhook.secrets[0].secret)
    );
}

#[tokio::test]
async fn a_second_call_ended_in_a_batch_is_refused_naming_its_event() {
    let f = fixture().await;
    let ended = |call: &str| f.new_event(&f.webhook.id, Trigger::CallHangup, call, None);
    f.store.insert_events(vec![ended("c9")]).await.unwrap();
    let err = f
        .store
        .insert_events(vec![ended("c1"), ended("c9")])
        .await
        .unwrap_err();
    match err {
        StoreError::Rejected(e) => assert!(format!("{e:?}").contains("[1].type"), "{e:?}"),
        other => panic!("{other}"),
    }
    assert!(
        matches!(
            f.store
                .call_timeline(&f.account, &CallId::from_string("c1".into()))
                .await,
            Err(StoreError::NotFound)
        ),
        "nothing of the refused batch is stored"
    );
}

/// Ingests that reach the store together share a transaction, yet one refused fails alone:
/// the others are stored, and nothing of the refused one. Twenty go through the merged
/// statements, four through SQLite's writer one row at a time.
#[tokio::test]
async fn ingests_stored_together_are_refused_one_by_one() {
    for (n, culprit) in [(20, 7), (4, 2)] {
        let f = fixture().await;
        let ended = |call: &str| f.new_event(&f.webhook.id, Trigger::CallHangup, call, None);
        f.store.insert_events(vec![ended("c9")]).await.unwrap();
        let posts = (0..n).map(|i| {
            let mut batch = vec![ended(&format!("together-{i}"))];
            if i == culprit {
                batch.push(ended("c9"));
            }
            f.store.insert_events(batch)
        });
        let results = futures_util::future::join_all(posts).await;
        for (i, r) in results.into_iter().enumerate() {
            let timeline = f
                .store
                .call_timeline(&f.account, &CallId::from_string(format!("together-{i}")))
                .await;
            if i == culprit {
                match r {
                    Err(StoreError::Rejected(e)) => {
                        assert!(format!("{e:?}").contains("[1].type"), "{e:?}")
                    }
                    other => panic!("the second call.ended was taken: {other:?}"),
                }
                assert!(
                    matches!(timeline, Err(StoreError::NotFound)),
                    "the refused request's first event was stored"
                );
            } else {
                assert_eq!(
                    r.unwrap(),
                    vec![Inserted::New {
                        deliveries: 1,
                        leased: Vec::new()
                    }],
                    "request {i} of {n}"
                );
                assert!(
                    timeline.is_ok(),
                    "request {i} of {n} was not stored: {timeline:?}"
                );
            }
        }
    }
}

/// Two requests that end the same call, stored together with others: the group cannot be
/// stored as one (on SQLite, ingests are stored without savepoints only when no rule can
/// refuse them), so the first of the two is stored, the second refused alone, and the rest
/// stored. Forty requests go through the merged statements, four through SQLite's writer one
/// row at a time.
#[tokio::test]
async fn two_requests_ending_one_call_together_are_told_apart() {
    for (n, twice) in [(40, [5, 30]), (4, [1, 3])] {
        let f = fixture().await;
        let ended = |call: &str| f.new_event(&f.webhook.id, Trigger::CallHangup, call, None);
        let posts = (0..n).map(|i| {
            let call = if twice.contains(&i) {
                "ends-twice".to_owned()
            } else {
                format!("apart-{i}")
            };
            f.store
                .insert_events(vec![ended(&format!("before-{i}")), ended(&call)])
        });
        let results = futures_util::future::join_all(posts).await;
        let mut refused = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            let before = f
                .store
                .call_timeline(&f.account, &CallId::from_string(format!("before-{i}")))
                .await;
            match r {
                Ok(done) => {
                    assert_eq!(done.len(), 2, "request {i} of {n}");
                    assert!(
                        before.is_ok(),
                        "request {i} of {n} was not stored: {before:?}"
                    );
                }
                Err(StoreError::Rejected(e)) => {
                    assert!(format!("{e:?}").contains("[1].type"), "{e:?}");
                    assert!(
                        matches!(before, Err(StoreError::NotFound)),
                        "the refused request's first event was stored"
                    );
                    refused.push(i);
                }
                Err(other) => panic!("request {i} of {n}: {other}"),
            }
        }
        assert_eq!(
            refused,
            vec![twice[1]],
            "of {n}, the later of the two is refused, only it"
        );
    }
}

/// A queued click-to-call request of the fixture's account, made at `at`, under `ref_id`.
fn click_to_call(f: &Fixture, ref_id: &str, at: Timestamp) -> StoredClickToCall {
    let number = |n: &str| callhook::core::number::E164::parse(n).unwrap();
    StoredClickToCall {
        id: ClickToCallId::new(),
        account_id: f.account.clone(),
        ref_id: ref_id.into(),
        agent_extension: "101".into(),
        customer_number: number("+919812345678"),
        did_number: number("+918065251305"),
        status: ClickToCallStatus::Queued,
        cause: None,
        call_id: None,
        connector: None,
        created_at: at,
        placed_at: None,
        ringing_agent_at: None,
        ringing_customer_at: None,
        ended_at: None,
        updated_at: at,
    }
}

fn ms(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap()
}

fn change(status: ClickToCallStatus, call_id: Option<&str>, at: Timestamp) -> ClickToCallChange {
    ClickToCallChange {
        status,
        call_id: call_id.map(|c| CallId::from_string(c.into())),
        cause: None,
        at,
    }
}

#[tokio::test]
async fn a_click_to_call_request_is_kept_once_per_ref_and_taken_once() {
    use callhook::core::click_to_call::FailReason;
    let f = fixture().await;
    let t0 = ms(Timestamp::now());
    let first = click_to_call(&f, "crm-1", t0);
    let (kept, new) = f
        .store
        .insert_click_to_call(
            &first,
            &entry(&f.account, Action::ClickToCallRequest, "c2c"),
        )
        .await
        .unwrap();
    assert!(new);
    assert_eq!(kept, first);
    // The same reference again stores nothing and answers the first request.
    let (kept, new) = f
        .store
        .insert_click_to_call(
            &click_to_call(&f, "crm-1", t0),
            &entry(&f.account, Action::ClickToCallRequest, "c2c"),
        )
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(kept.id, first.id);
    assert_eq!(
        f.store
            .click_to_call_by_ref(&f.account, "crm-1")
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert!(matches!(
        f.store
            .get_click_to_call(&AccountId::new(), &first.id)
            .await,
        Err(StoreError::NotFound)
    ));
    let second = click_to_call(&f, "crm-2", t0 + SignedDuration::from_millis(1));
    f.store
        .insert_click_to_call(
            &second,
            &entry(&f.account, Action::ClickToCallRequest, "c2c"),
        )
        .await
        .unwrap();

    // Two nodes asking at once take each request once, oldest first.
    let lease = t0 + SignedDuration::from_secs(30);
    let (a, b) = tokio::join!(
        f.store
            .claim_click_to_calls(&f.account, "pbx", "node_a", t0, lease, 1),
        f.store
            .claim_click_to_calls(&f.account, "pbx", "node_b", t0, lease, 10),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut taken: Vec<&str> = a.iter().chain(&b).map(|r| r.id.as_str()).collect();
    taken.sort();
    let mut both = vec![first.id.as_str(), second.id.as_str()];
    both.sort();
    assert_eq!(taken, both, "each request taken exactly once");
    assert!(
        f.store
            .claim_click_to_calls(&f.account, "pbx", "node_c", t0, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = a.iter().chain(&b).find(|r| r.id == first.id).unwrap();
    assert_eq!(claimed.connector.as_deref(), Some("pbx"));
    assert_eq!(claimed.placed_at, Some(t0));

    // Changes go forward only, and a final request changes no more.
    let at = |s: i64| t0 + SignedDuration::from_secs(s);
    let record = |c: ClickToCallChange| {
        let (store, id) = (f.store.clone(), first.id.clone());
        async move { store.record_click_to_call(&id, &c).await.unwrap() }
    };
    assert!(record(change(ClickToCallStatus::RingingAgent, None, at(1))).await);
    assert!(!record(change(ClickToCallStatus::RingingAgent, None, at(2))).await);
    assert!(!record(change(ClickToCallStatus::Queued, None, at(2))).await);
    assert!(
        record(change(
            ClickToCallStatus::RingingCustomer,
            Some("1790.1"),
            at(3)
        ))
        .await
    );
    assert!(!record(change(ClickToCallStatus::RingingAgent, None, at(4))).await);
    assert!(record(change(ClickToCallStatus::Answered, None, at(5))).await);
    let mut late = change(
        ClickToCallStatus::Failed(FailReason::ConnectorLost),
        Some("1790.9"),
        at(6),
    );
    late.cause = Some("too late".into());
    assert!(!record(late).await);
    let got = f
        .store
        .get_click_to_call(&f.account, &first.id)
        .await
        .unwrap();
    assert_eq!(got.status, ClickToCallStatus::Answered);
    assert_eq!(got.call_id.as_ref().map(CallId::as_str), Some("1790.1"));
    assert_eq!(got.cause, None);
    assert_eq!(
        (got.ringing_agent_at, got.ringing_customer_at, got.ended_at),
        (Some(at(1)), Some(at(3)), Some(at(5)))
    );
    assert_eq!(got.updated_at, at(5));
    // A failure names its reason and the PBX's words; a call id heard only at the end stays.
    let mut failed = change(
        ClickToCallStatus::Failed(FailReason::AgentBusy),
        Some("1790.2"),
        at(7),
    );
    failed.cause = Some("the agent's phone is busy".into());
    assert!(
        f.store
            .record_click_to_call(&second.id, &failed)
            .await
            .unwrap()
    );
    let got = f
        .store
        .get_click_to_call(&f.account, &second.id)
        .await
        .unwrap();
    assert_eq!(got.status, ClickToCallStatus::Failed(FailReason::AgentBusy));
    assert_eq!(got.cause.as_deref(), Some("the agent's phone is busy"));
    assert_eq!(got.call_id.as_ref().map(CallId::as_str), Some("1790.2"));
    assert_eq!((got.ringing_agent_at, got.ended_at), (None, Some(at(7))));
}

/// Retention removes click-to-call requests that ended before its cut, and only those; their
/// `ref_id` may then be used again.
#[tokio::test]
async fn retention_removes_the_click_to_calls_that_ended_before_its_cut() {
    let f = fixture().await;
    let t0 = ms(Timestamp::now()) - SignedDuration::from_secs(3600);
    let at = |s: i64| t0 + SignedDuration::from_secs(s);
    let audit = || entry(&f.account, Action::ClickToCallRequest, "c2c");
    for (ref_id, ended) in [("old", Some(0)), ("recent", Some(20)), ("queued", None)] {
        let request = click_to_call(&f, ref_id, t0);
        f.store
            .insert_click_to_call(&request, &audit())
            .await
            .unwrap();
        if let Some(s) = ended {
            f.store
                .record_click_to_call(
                    &request.id,
                    &change(ClickToCallStatus::Answered, None, at(s)),
                )
                .await
                .unwrap();
        }
    }
    f.store.prune(at(10), 100).await.unwrap();
    let by_ref = |r: &'static str| f.store.click_to_call_by_ref(&f.account, r);
    assert_eq!(by_ref("old").await.unwrap(), None, "ended before the cut");
    assert!(by_ref("recent").await.unwrap().is_some(), "ended after it");
    assert!(by_ref("queued").await.unwrap().is_some(), "never ended");
    let (_, new) = f
        .store
        .insert_click_to_call(&click_to_call(&f, "old", at(30)), &audit())
        .await
        .unwrap();
    assert!(new, "the pruned request's ref_id is free again");
}

#[tokio::test]
async fn a_click_to_call_request_nobody_places_fails_in_time() {
    use callhook::core::click_to_call::FailReason;
    let f = fixture().await;
    let t0 = ms(Timestamp::now());
    let at = |s: i64| t0 + SignedDuration::from_secs(s);
    let placing = click_to_call(&f, "crm-1", t0);
    f.store
        .insert_click_to_call(
            &placing,
            &entry(&f.account, Action::ClickToCallRequest, "c2c"),
        )
        .await
        .unwrap();
    let waiting = click_to_call(&f, "crm-2", at(0) + SignedDuration::from_millis(1));
    f.store
        .insert_click_to_call(
            &waiting,
            &entry(&f.account, Action::ClickToCallRequest, "c2c"),
        )
        .await
        .unwrap();
    let done = click_to_call(&f, "crm-3", t0);
    f.store
        .insert_click_to_call(&done, &entry(&f.account, Action::ClickToCallRequest, "c2c"))
        .await
        .unwrap();
    f.store
        .record_click_to_call(&done.id, &change(ClickToCallStatus::Answered, None, t0))
        .await
        .unwrap();
    // node_a takes the oldest, crm-1, leased for 30 s (crm-3 is no longer queued).
    let taken = f
        .store
        .claim_click_to_calls(&f.account, "pbx", "node_a", t0, at(30), 1)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, placing.id);

    // Nothing is due yet: the waiting one was made after t0, the lease holds until 30 s.
    assert!(
        f.store
            .expire_click_to_calls(at(10), t0)
            .await
            .unwrap()
            .is_empty()
    );
    // The node renews its lease while it follows the call.
    assert_eq!(
        f.store
            .renew_click_to_calls("node_a", at(60))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        f.store
            .renew_click_to_calls("node_b", at(90))
            .await
            .unwrap(),
        0
    );
    // Nobody took the waiting one by 30 s: it fails; the placing one is still leased.
    let gone = f.store.expire_click_to_calls(at(45), at(15)).await.unwrap();
    assert_eq!(gone, [waiting.id.as_str()]);
    let w = f
        .store
        .get_click_to_call(&f.account, &waiting.id)
        .await
        .unwrap();
    assert_eq!(
        w.status,
        ClickToCallStatus::Failed(FailReason::ConnectorLost)
    );
    assert_eq!(w.ended_at, Some(at(45)));
    assert!(w.cause.unwrap().contains("took the request"));
    // A failed request is never taken again.
    assert!(
        f.store
            .claim_click_to_calls(&f.account, "pbx", "node_a", at(46), at(90), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // node_a falls silent: past its lease, its request fails too; the answered one stays.
    assert!(
        f.store
            .expire_click_to_calls(at(59), at(15))
            .await
            .unwrap()
            .is_empty()
    );
    let gone = f.store.expire_click_to_calls(at(61), at(15)).await.unwrap();
    assert_eq!(gone, [placing.id.as_str()]);
    let p = f
        .store
        .get_click_to_call(&f.account, &placing.id)
        .await
        .unwrap();
    assert_eq!(
        p.status,
        ClickToCallStatus::Failed(FailReason::ConnectorLost)
    );
    assert!(
        p.cause
            .unwrap()
            .contains("node placing the request stopped")
    );
    let d = f
        .store
        .get_click_to_call(&f.account, &done.id)
        .await
        .unwrap();
    assert_eq!(d.status, ClickToCallStatus::Answered);
    assert!(
        f.store
            .expire_click_to_calls(at(600), at(600))
            .await
            .unwrap()
            .is_empty()
    );
    // Retention takes ended requests with the rest of the finished past: here the two ended
    // requests, and the four audit entries written so far (the webhook's and the requests').
    assert_eq!(f.store.prune(at(50), 500).await.unwrap(), 2 + 4);
    assert!(matches!(
        f.store.get_click_to_call(&f.account, &waiting.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(f.store.prune(at(100), 500).await.unwrap(), 1);
}

#[tokio::test]
async fn placing_connectors_are_known_while_their_node_speaks_of_them() {
    let f = fixture().await;
    let t0 = ms(Timestamp::now());
    let did = callhook::core::number::E164::parse("+918065251305").unwrap();
    let said = |node: &str, connected: bool, at: Timestamp| PlacingConnector {
        name: "pbx".into(),
        node_id: node.into(),
        account_id: f.account.clone(),
        connected,
        default_did: Some(did.clone()),
        seen_at: at,
    };
    f.store
        .publish_placing_connectors(&[said("node_a", false, t0)])
        .await
        .unwrap();
    let since = |t: Timestamp| t - SignedDuration::from_secs(15);
    assert_eq!(
        f.store
            .placing_connectors(&f.account, since(t0))
            .await
            .unwrap(),
        [said("node_a", false, t0)]
    );
    let t1 = t0 + SignedDuration::from_secs(5);
    f.store
        .publish_placing_connectors(&[said("node_a", true, t1)])
        .await
        .unwrap();
    assert_eq!(
        f.store
            .placing_connectors(&f.account, since(t1))
            .await
            .unwrap(),
        [said("node_a", true, t1)]
    );
    assert!(
        f.store
            .placing_connectors(&AccountId::new(), since(t1))
            .await
            .unwrap()
            .is_empty()
    );
    // A node silent for longer than the window is taken for gone.
    let t2 = t1 + SignedDuration::from_secs(20);
    assert!(
        f.store
            .placing_connectors(&f.account, since(t2))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A user of the fixture's account with `role`, and a password unless `None`.
fn user(f: &Fixture, email: &str, role: Role, password_hash: Option<&str>) -> User {
    User {
        id: callhook::core::id::UserId::new(),
        account_id: f.account.clone(),
        email: email.into(),
        password_hash: password_hash.unwrap_or("").into(),
        role,
        created_at: ms(Timestamp::now()),
    }
}

fn link(u: &User, token: &str, purpose: LinkPurpose, expires_at: Timestamp) -> UserLink {
    UserLink {
        hash: callhook::core::credentials::hash_token(token),
        user_id: u.id.clone(),
        purpose,
        created_at: ms(Timestamp::now()),
        expires_at: ms(expires_at),
    }
}

async fn session_of(f: &Fixture, u: &User, id: &str) {
    let now = ms(Timestamp::now());
    f.store
        .insert_session(&Session {
            id: id.into(),
            user_id: u.id.clone(),
            csrf: "c".into(),
            created_at: now,
            expires_at: now + SignedDuration::from_hours(1),
        })
        .await
        .unwrap();
}

async fn signed_in(f: &Fixture, id: &str) -> bool {
    f.store
        .session_with_user(id, Timestamp::now())
        .await
        .unwrap()
        .is_some()
}

async fn add_user(f: &Fixture, u: &User, l: Option<&UserLink>) {
    f.store
        .insert_user(u, l, &entry(&f.account, Action::UserInvite, u.id.as_str()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_link_works_once_until_it_expires_and_ends_the_users_sessions() {
    let f = fixture().await;
    let hour = SignedDuration::from_hours(1);
    let asha = user(&f, "asha@acme.example", Role::Viewer, None);
    let later = Timestamp::now() + hour;
    add_user(
        &f,
        &asha,
        Some(&link(&asha, "t-asha", LinkPurpose::Invite, later)),
    )
    .await;
    // Another email for the same address is refused; the user has no password yet.
    let again = user(&f, "asha@acme.example", Role::Admin, None);
    let err = f
        .store
        .insert_user(&again, None, &entry(&f.account, Action::UserInvite, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let got = f.store.get_user(&f.account, &asha.id).await.unwrap();
    assert_eq!((got.role, got.has_password()), (Role::Viewer, false));
    let listed = f
        .store
        .list_users(
            &f.account,
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items, [(asha.clone(), Some(ms(later)))]);
    assert!(matches!(
        f.store.get_user(&AccountId::new(), &asha.id).await,
        Err(StoreError::NotFound)
    ));

    let hash = callhook::core::credentials::hash_token("t-asha");
    let (found, of) = f
        .store
        .user_link(&hash, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.purpose, of.id),
        (LinkPurpose::Invite, asha.id.clone())
    );
    // Past its expiry, it is gone, and cannot be used.
    assert!(
        f.store
            .user_link(&hash, later + hour)
            .await
            .unwrap()
            .is_none()
    );
    let signup = entry(&f.account, Action::UserSignUp, asha.id.as_str());
    assert!(matches!(
        f.store
            .use_user_link(&hash, "argon", later + hour, &signup)
            .await,
        Err(StoreError::NotFound)
    ));
    session_of(&f, &asha, "s-asha").await;
    let used = f
        .store
        .use_user_link(&hash, "argon", Timestamp::now(), &signup)
        .await
        .unwrap();
    assert_eq!(
        (used.id.clone(), used.password_hash.as_str()),
        (asha.id.clone(), "argon")
    );
    assert!(
        !signed_in(&f, "s-asha").await,
        "following a link ends the sessions"
    );
    // Once: the second time it is gone.
    assert!(
        f.store
            .user_link(&hash, Timestamp::now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        f.store
            .use_user_link(&hash, "other", Timestamp::now(), &signup)
            .await,
        Err(StoreError::NotFound)
    ));
    let page = PageRequest {
        limit: 10,
        after: None,
    };
    let log = f
        .store
        .list_audit(&f.account, &AuditFilter::default(), &page)
        .await
        .unwrap();
    let actions: Vec<Action> = log.items.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            Action::UserSignUp,
            Action::UserInvite,
            Action::WebhookCreate
        ]
    );
}

#[tokio::test]
async fn the_last_owner_is_neither_demoted_nor_removed() {
    let f = fixture().await;
    let owner = user(&f, "owner@acme.example", Role::Owner, Some("h"));
    let viewer = user(&f, "viewer@acme.example", Role::Viewer, Some("h"));
    add_user(&f, &owner, None).await;
    add_user(&f, &viewer, None).await;
    let e = |a| entry(&f.account, a, "u");
    for err in [
        f.store
            .set_user_role(
                &f.account,
                &owner.id,
                Role::Admin,
                &e(Action::UserRoleChange),
            )
            .await,
        f.store
            .delete_user(&f.account, &owner.id, &e(Action::UserRemove))
            .await,
    ] {
        let err = err.unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict(m) if m.contains("last owner")),
            "{err:?}"
        );
    }
    // With a second owner, the first may go; then the second is the last.
    f.store
        .set_user_role(
            &f.account,
            &viewer.id,
            Role::Owner,
            &e(Action::UserRoleChange),
        )
        .await
        .unwrap();
    session_of(&f, &owner, "s-owner").await;
    f.store
        .delete_user(&f.account, &owner.id, &e(Action::UserRemove))
        .await
        .unwrap();
    assert!(
        !signed_in(&f, "s-owner").await,
        "a removed user is signed out at once"
    );
    assert!(matches!(
        f.store.get_user(&f.account, &owner.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        f.store
            .set_user_role(
                &f.account,
                &viewer.id,
                Role::Viewer,
                &e(Action::UserRoleChange)
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Another account's user is not found.
    assert!(matches!(
        f.store
            .delete_user(&AccountId::new(), &viewer.id, &e(Action::UserRemove))
            .await,
        Err(StoreError::NotFound)
    ));
    // A refused change records nothing.
    let page = PageRequest {
        limit: 100,
        after: None,
    };
    let filter = AuditFilter {
        action: Some(Action::UserRemove),
        ..AuditFilter::default()
    };
    let removals = f
        .store
        .list_audit(&f.account, &filter, &page)
        .await
        .unwrap();
    assert_eq!(removals.items.len(), 1);
}

#[tokio::test]
async fn a_reset_takes_the_password_ends_sessions_and_replaces_the_link() {
    let f = fixture().await;
    let hour = SignedDuration::from_hours(1);
    let u = user(&f, "ravi@acme.example", Role::Admin, Some("old"));
    let first = link(&u, "t-1", LinkPurpose::Invite, Timestamp::now() + hour);
    add_user(&f, &u, Some(&first)).await;
    session_of(&f, &u, "s-1").await;
    let second = link(&u, "t-2", LinkPurpose::Reset, Timestamp::now() + hour);
    f.store
        .reset_user(
            &f.account,
            &u.id,
            &second,
            &entry(&f.account, Action::UserReset, u.id.as_str()),
        )
        .await
        .unwrap();
    assert!(!signed_in(&f, "s-1").await);
    assert!(
        !f.store
            .get_user(&f.account, &u.id)
            .await
            .unwrap()
            .has_password()
    );
    assert!(
        f.store
            .user_link(&first.hash, Timestamp::now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.store
            .user_link(&second.hash, Timestamp::now())
            .await
            .unwrap()
            .is_some()
    );
    // A password change keeps the session it was made in and ends every other.
    session_of(&f, &u, "s-2").await;
    session_of(&f, &u, "s-3").await;
    f.store
        .set_password(
            &u.id,
            "new",
            "s-3",
            &entry(&f.account, Action::UserPasswordChange, u.id.as_str()),
        )
        .await
        .unwrap();
    assert!(!signed_in(&f, "s-2").await);
    assert!(signed_in(&f, "s-3").await);
}

#[tokio::test]
async fn the_last_admin_key_cannot_revoke_itself() {
    let f = fixture().await;
    let key = |name: &str, role| ApiKey {
        id: callhook::core::id::ApiKeyId::new(),
        account_id: f.account.clone(),
        name: name.into(),
        prefix: "chk_xx".into(),
        role,
        created_at: ms(Timestamp::now()),
        last_used_at: None,
    };
    let (admin, viewer) = (key("admin", Role::Admin), key("viewer", Role::Viewer));
    for (k, h) in [(&admin, "h-admin"), (&viewer, "h-viewer")] {
        f.store
            .insert_api_key(
                k,
                h,
                &entry(&f.account, Action::ApiKeyCreate, k.id.as_str()),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        f.store.get_api_key(&f.account, &viewer.id).await.unwrap(),
        viewer
    );
    let revoke = entry(&f.account, Action::ApiKeyRevoke, "k");
    let err = f
        .store
        .delete_api_key(&f.account, &admin.id, true, &revoke)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("last admin")),
        "{err:?}"
    );
    // Read once (SQLite keeps it in memory), then revoked: it is gone at once.
    assert!(f.store.api_key_by_hash("h-admin").await.unwrap().is_some());
    // Asked without the rule (a user revoking it), it goes.
    f.store
        .delete_api_key(&f.account, &admin.id, false, &revoke)
        .await
        .unwrap();
    assert!(f.store.api_key_by_hash("h-admin").await.unwrap().is_none());
    assert!(matches!(
        f.store
            .delete_api_key(&f.account, &admin.id, false, &revoke)
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn the_audit_log_is_written_with_its_change_filtered_paged_and_pruned() {
    let f = fixture().await;
    // A change refused as stale writes no entry: the entry is in the change's transaction.
    let mut w = f.webhook.clone();
    let read_at = w.updated_at - SignedDuration::from_secs(1);
    w.updated_at = ms(Timestamp::now());
    let mut stale = entry(&f.account, Action::WebhookUpdate, w.id.as_str());
    stale.changes = vec![Change::new("name", json!("h"), json!("x"))];
    assert!(f.store.update_webhook(&w, read_at, &stale).await.is_err());
    let page = |limit| PageRequest { limit, after: None };
    let all = f
        .store
        .list_audit(&f.account, &AuditFilter::default(), &page(100))
        .await
        .unwrap();
    assert_eq!(
        all.items.len(),
        1,
        "only the fixture's create: {:?}",
        all.items
    );
    assert!(all.items.iter().all(|e| e.id != stale.id));
    // Entries read back as written, newest first.
    let mut made = Vec::new();
    for (i, action) in [
        Action::NumberAdd,
        Action::SecretReveal,
        Action::NumberRemove,
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = entry(
            &f.account,
            action,
            if i == 1 { "wh_1" } else { "+918065251305" },
        );
        e.actor.name = format!("actor-{i}");
        e.changes = vec![Change::secret("secret", "revealed")];
        f.store.record_audit(&e).await.unwrap();
        made.push(e);
    }
    f.store
        .record_audit(&entry(
            &AccountId::new(),
            Action::NumberAdd,
            "+918065251305",
        ))
        .await
        .unwrap();
    let all = f
        .store
        .list_audit(&f.account, &AuditFilter::default(), &page(100))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 4);
    assert_eq!(all.items[0], made[2]);
    let filtered = |filter: AuditFilter| {
        let store = f.store.clone();
        let account = f.account.clone();
        async move {
            store
                .list_audit(&account, &filter, &page(100))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    let resource = AuditFilter {
        resource_id: Some("+918065251305".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        filtered(resource).await,
        [made[2].id.clone(), made[0].id.clone()]
    );
    let actor = AuditFilter {
        actor: Some("actor-1".into()),
        ..AuditFilter::default()
    };
    assert_eq!(filtered(actor).await, [made[1].id.clone()]);
    let by_id = AuditFilter {
        actor: Some("key_test".into()),
        action: Some(Action::NumberAdd),
        ..AuditFilter::default()
    };
    assert_eq!(filtered(by_id).await, [made[0].id.clone()]);
    let future = AuditFilter {
        since: Some(Timestamp::now() + SignedDuration::from_hours(1)),
        ..AuditFilter::default()
    };
    assert!(filtered(future).await.is_empty());
    let past = AuditFilter {
        until: Some(Timestamp::now() - SignedDuration::from_hours(1)),
        ..AuditFilter::default()
    };
    assert!(filtered(past).await.is_empty());
    // Pages of two, newest first, then the rest.
    let first = f
        .store
        .list_audit(&f.account, &AuditFilter::default(), &page(2))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let rest = f
        .store
        .list_audit(
            &f.account,
            &AuditFilter::default(),
            &PageRequest {
                limit: 2,
                after: first.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert!(rest.next.is_none());
    assert!(
        rest.items
            .iter()
            .all(|e| first.items.iter().all(|g| g.id != e.id))
    );
    // Retention takes entries older than its cut, like the delivery log.
    let later = Timestamp::now() + SignedDuration::from_secs(1);
    assert_eq!(f.store.prune(later, 100).await.unwrap(), 5);
    let left = f
        .store
        .list_audit(&f.account, &AuditFilter::default(), &page(100))
        .await
        .unwrap();
    assert!(left.items.is_empty());
}

#[tokio::test]
async fn account_counts_are_the_accounts_own() {
    let f = fixture().await;
    let counts = f.store.account_counts(&f.account).await.unwrap();
    assert_eq!(
        counts,
        AccountCounts {
            webhooks: 1,
            numbers: 0,
            api_keys: 0
        }
    );
    let now = Timestamp::now();
    for n in ["+918065251305", "+918065251306"] {
        f.store
            .insert_number(
                &f.account,
                &Number {
                    number: callhook::core::number::E164::parse(n).unwrap(),
                    label: None,
                    created_at: now,
                },
                &entry(&f.account, Action::NumberAdd, n),
            )
            .await
            .unwrap();
    }
    f.store
        .insert_api_key(
            &ApiKey {
                id: callhook::core::id::ApiKeyId::new(),
                account_id: f.account.clone(),
                name: "k".into(),
                prefix: "chk_abcdef".into(),
                role: Role::Admin,
                created_at: now,
                last_used_at: None,
            },
            "hash-of-the-key",
            &entry(&f.account, Action::ApiKeyCreate, "k"),
        )
        .await
        .unwrap();
    let counts = f.store.account_counts(&f.account).await.unwrap();
    assert_eq!(
        (counts.webhooks, counts.numbers, counts.api_keys),
        (1, 2, 1)
    );
    // Another account's count is its own: nothing of this one's.
    assert_eq!(
        f.store.account_counts(&AccountId::new()).await.unwrap(),
        AccountCounts::default()
    );
}

#[tokio::test]
async fn alert_settings_are_made_once_and_a_transition_is_stored_once() {
    let f = fixture().await;
    let (a, b) = tokio::join!(
        f.store.account_alerts(&f.account),
        f.store.account_alerts(&f.account)
    );
    let a = a.unwrap();
    assert_eq!(a, b.unwrap(), "made once, whoever asks first");
    assert_eq!(
        (a.url.as_deref(), a.after),
        (None, std::time::Duration::from_secs(600))
    );
    let mut on = a.clone();
    on.url = Some("https://ops.example.com/alerts".into());
    on.after = std::time::Duration::from_secs(3600);
    on.updated_at = ms(Timestamp::now()).max(a.updated_at + SignedDuration::from_millis(1));
    let audit = entry(&f.account, Action::AccountAlertsUpdate, f.account.as_str());
    f.store
        .update_account_alerts(&on, a.updated_at, &audit)
        .await
        .unwrap();
    assert!(
        matches!(
            f.store
                .update_account_alerts(&on, a.updated_at, &audit)
                .await,
            Err(StoreError::Conflict(_))
        ),
        "a write never undoes a change it did not see"
    );
    assert_eq!(f.store.account_alerts(&f.account).await.unwrap(), on);

    // A failed attempt starts a run; it is not an hour old yet.
    f.events("c1", 1).await;
    let c = f.claim(SignedDuration::from_secs(60)).await.remove(0);
    let later = Timestamp::now() + SignedDuration::from_hours(3);
    let record = AttemptRecord {
        delivery_id: c.delivery_id.clone(),
        webhook_id: c.webhook.id.clone(),
        lease: c.lease,
        attempt: Some(attempt(500)),
        next: Next::RetryAt(later),
        disable_webhook: None,
        note: None,
        test: false,
    };
    f.store
        .record_attempts(vec![record], Timestamp::now())
        .await
        .unwrap();
    let every = std::time::Duration::from_secs(3600);
    assert_eq!(
        f.store.sweep_alerts(Timestamp::now(), every).await.unwrap(),
        0
    );
    // Two hours on, two sweeps at once store webhook.failing once.
    let at = Timestamp::now() + SignedDuration::from_hours(2);
    let (x, y) = tokio::join!(
        f.store.sweep_alerts(at, every),
        f.store.sweep_alerts(at, every)
    );
    assert_eq!(x.unwrap() + y.unwrap(), 1);
    assert_eq!(f.store.sweep_alerts(at, every).await.unwrap(), 0);
    let scope = callhook::core::alert::scope(&f.account);
    let log = f
        .store
        .list_deliveries(
            &scope,
            &on.id,
            &DeliveryFilter::default(),
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(log.items.len(), 1);
    assert_eq!(log.items[0].call_id.as_str(), f.webhook.id.as_str());
    // It is claimed as an alert (due as it was stored), to the alert URL, with its body.
    let claimed = f
        .store
        .claim_due(
            &here(),
            at,
            at + SignedDuration::from_secs(60),
            100,
            &Shares::each(100),
            &[],
        )
        .await
        .unwrap();
    let alert = claimed.iter().find(|c| c.alert).expect("the alert is due");
    assert_eq!(
        alert.webhook.spec.url.as_str(),
        "https://ops.example.com/alerts"
    );
    let body: serde_json::Value = serde_json::from_str(&alert.event_payload).unwrap();
    assert_eq!(body["type"], "webhook.failing");
    assert_eq!(body["last_error"]["status"], 500);
    // Nothing of it shows in the account's own log.
    assert!(
        f.store
            .get_delivery(&f.account, &alert.delivery_id)
            .await
            .is_err()
    );
}

/// New work is announced to every node (PostgreSQL's `NOTIFY`), but events posted again store
/// nothing and announce nothing: a connector's replay wakes no node. SQLite has one node and
/// announces nothing, so there the test has nothing to check.
#[tokio::test]
async fn events_posted_again_announce_no_work() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    if test_database_url().await.is_none() {
        return;
    }
    let f = fixture().await;
    let heard = Arc::new(AtomicUsize::new(0));
    let h = heard.clone();
    f.store.listen_for_work(Arc::new(move || {
        h.fetch_add(1, Ordering::SeqCst);
    }));
    let batch = |n: usize| -> Vec<NewEvent> {
        (0..n)
            .map(|i| {
                let id = format!("again-{i}");
                f.new_event(&f.webhook.id, Trigger::CallReceived, &id, Some(&id))
            })
            .collect()
    };
    // The listener connects in the background: fresh work until it hears some.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while heard.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no announcement heard"
        );
        f.events("fresh", 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        f.store.insert_events(batch(3)).await.unwrap(),
        vec![
            Inserted::New {
                deliveries: 1,
                leased: Vec::new()
            };
            3
        ]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = heard.load(Ordering::SeqCst);
    assert_eq!(
        f.store.insert_events(batch(3)).await.unwrap(),
        vec![Inserted::Duplicate; 3]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        heard.load(Ordering::SeqCst),
        before,
        "the duplicates were announced"
    );
    // The listener still hears new work.
    f.events("after", 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while heard.load(Ordering::SeqCst) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "new work after the duplicates unheard"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
