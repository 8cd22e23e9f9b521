//! Click-to-call requests handed over between nodes through the database (SPEC §15,
//! docs/operations.md). Every request is stored `queued`, on whichever node took it. On the
//! node whose connector places the account's calls, this task takes the queued requests
//! ([`Store::claim_click_to_calls`]: each is taken once, so none is placed twice), places them
//! through the connector and records every change of their state. Every node runs it: each
//! publishes the status of the placing connectors it runs, so any node can say whether a
//! request can be placed now, and each fails the requests nobody could place in time, so none
//! stays queued forever.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::originate::{ClickToCallRequest, OriginateError, StateChange};
use super::{Connectors, Originating, PlacerState};
use crate::core::click_to_call::{FailReason, Status};
use crate::core::id::{CallId, ClickToCallId, NodeId};
use crate::shutdown::Shutdown;
use crate::store::{ClickToCallChange, PlacingConnector, Store, StoredClickToCall};

/// How often a node says again what its placing connectors are doing (and sooner when that
/// changes).
const PUBLISH_EVERY: Duration = Duration::from_secs(5);
/// What a node said of a connector counts this long: a node silent for longer is taken for
/// gone, and so are its connectors.
pub const FRESH_FOR: Duration = Duration::from_secs(15);
/// Most requests one claim takes.
const CLAIM_BATCH: u32 = 16;
/// How often the expired requests are looked for.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// How long a stopping node waits for the requests it places to record their last change.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How the hand-over runs.
#[derive(Debug, Clone)]
pub struct Handover {
    /// How long a request may wait for a node to take it, and how long the node placing a
    /// request may stay silent (`click_to_call_timeout`); then it fails, `connector_lost`.
    pub timeout: Duration,
    /// How often to look for queued requests when nothing wakes the task.
    pub poll: Duration,
    /// This node, as its claims of requests name it (the id its dispatcher's leases carry).
    pub node: NodeId,
}

/// Wakes the hand-over: a request was stored (here, or on another node).
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(Timestamp::MAX)
}

fn minus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_sub(SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(Timestamp::MIN)
}

struct Task {
    connectors: Connectors,
    store: Arc<dyn Store>,
    settings: Handover,
    /// This node, as it signs its claims and what it publishes.
    node_id: String,
    /// What was published last, and when.
    published: Option<(Vec<PlacerState>, tokio::time::Instant)>,
    expired_at: Option<tokio::time::Instant>,
    renewed_at: tokio::time::Instant,
    /// One task per request being placed, recording its changes.
    following: JoinSet<()>,
}

/// Runs the hand-over until shutdown.
pub(super) async fn run(
    connectors: Connectors,
    store: Arc<dyn Store>,
    settings: Handover,
    wake: Wake,
    mut shutdown: Shutdown,
) {
    let mut task = Task {
        connectors,
        store,
        node_id: settings.node.to_string(),
        settings,
        published: None,
        expired_at: None,
        renewed_at: tokio::time::Instant::now(),
        following: JoinSet::new(),
    };
    loop {
        task.publish(false).await;
        task.claim_and_place().await;
        task.renew().await;
        task.expire().await;
        while task.following.try_join_next().is_some() {}
        tokio::select! {
            _ = wake.0.notified() => {}
            _ = tokio::time::sleep(task.settings.poll) => {}
            _ = shutdown.recv() => break,
        }
    }
    // The connectors stop too: the requests still in flight get their last change (lost,
    // unless their call showed up), which is recorded before this node goes.
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while task.following.join_next().await.is_some() {}
    })
    .await;
    task.publish(true).await;
}

impl Task {
    /// Says what this node's placing connectors are doing, when it changed or is due; all
    /// as disconnected when `stopping`.
    async fn publish(&mut self, stopping: bool) {
        let mut now = self.connectors.placing();
        if now.is_empty() {
            return;
        }
        if stopping {
            for p in &mut now {
                p.connected = false;
            }
        }
        let due = match &self.published {
            Some((last, at)) => *last != now || at.elapsed() >= PUBLISH_EVERY || stopping,
            None => true,
        };
        if !due {
            return;
        }
        let seen_at = Timestamp::now();
        let rows: Vec<PlacingConnector> = now
            .iter()
            .map(|p| PlacingConnector {
                name: p.name.clone(),
                node_id: self.node_id.clone(),
                account_id: p.account_id.clone(),
                connected: p.connected,
                default_did: p.default_did.clone(),
                seen_at,
            })
            .collect();
        match self.store.publish_placing_connectors(&rows).await {
            Ok(()) => self.published = Some((now, tokio::time::Instant::now())),
            Err(e) => tracing::warn!(error = %e, "cannot publish the placing connectors' status"),
        }
    }

    /// Takes the queued requests of the accounts whose placing connector is connected here,
    /// and places them.
    async fn claim_and_place(&mut self) {
        for placer in self.connectors.placing() {
            if !placer.connected {
                continue;
            }
            loop {
                let now = Timestamp::now();
                let taken = match self
                    .store
                    .claim_click_to_calls(
                        &placer.account_id,
                        &placer.name,
                        &self.node_id,
                        now,
                        plus(now, self.settings.timeout),
                        CLAIM_BATCH,
                    )
                    .await
                {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(error = %e, connector = %placer.name, "cannot take queued click-to-call requests");
                        break;
                    }
                };
                let more = taken.len() == CLAIM_BATCH as usize;
                for request in taken {
                    self.place(request).await;
                }
                if !more {
                    break;
                }
            }
        }
    }

    /// Hands one request to the connector; its changes are recorded as they come.
    async fn place(&mut self, r: StoredClickToCall) {
        let request = ClickToCallRequest {
            request_id: r.id.as_str().to_owned(),
            ref_id: r.ref_id.clone(),
            agent_extension: r.agent_extension.clone(),
            customer_number: r.customer_number.clone(),
            did_number: Some(r.did_number.clone()),
        };
        match self.connectors.originate(r.account_id.as_str(), request) {
            Ok(handle) => {
                self.following
                    .spawn(follow(self.store.clone(), r.id.clone(), handle));
            }
            Err(e) => {
                // Taken, so never taken again: it fails now rather than wait for nobody.
                let reason = match e {
                    OriginateError::Invalid { .. } => FailReason::OriginateRefused,
                    OriginateError::NoConnector | OriginateError::NotConnected(_) => {
                        FailReason::ConnectorLost
                    }
                };
                let change = ClickToCallChange {
                    status: Status::Failed(reason),
                    call_id: None,
                    cause: Some(e.to_string()),
                    at: Timestamp::now(),
                };
                record(&*self.store, &r.id, &change).await;
            }
        }
    }

    /// Keeps the requests this node places its own while it follows them.
    async fn renew(&mut self) {
        if self.following.is_empty() || self.renewed_at.elapsed() < self.settings.timeout / 4 {
            return;
        }
        let until = plus(Timestamp::now(), self.settings.timeout);
        match self.store.renew_click_to_calls(&self.node_id, until).await {
            Ok(_) => self.renewed_at = tokio::time::Instant::now(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the click-to-call requests being placed")
            }
        }
    }

    /// Fails what nobody took in time, and what a node that went silent was placing.
    async fn expire(&mut self) {
        if self
            .expired_at
            .is_some_and(|at| at.elapsed() < EXPIRE_EVERY)
        {
            return;
        }
        let now = Timestamp::now();
        match self
            .store
            .expire_click_to_calls(now, minus(now, self.settings.timeout))
            .await
        {
            Ok(ids) => {
                self.expired_at = Some(tokio::time::Instant::now());
                for id in ids {
                    tracing::warn!(request_id = %id, "click-to-call request failed: nobody could place it in time (connector_lost)");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot fail expired click-to-call requests"),
        }
    }
}

/// Records each change of a request being placed, in order, until its final one.
async fn follow(store: Arc<dyn Store>, id: ClickToCallId, mut handle: Originating) {
    while let Some(StateChange {
        status,
        call_id,
        cause,
        at,
        ..
    }) = handle.next().await
    {
        let change = ClickToCallChange {
            status,
            call_id: call_id.map(CallId::from_string),
            cause,
            at,
        };
        record(&*store, &id, &change).await;
    }
}

/// Records a change, trying a few times over a few seconds while the store fails.
async fn record(store: &dyn Store, id: &ClickToCallId, change: &ClickToCallChange) {
    let mut wait = Duration::from_millis(100);
    for _ in 0..6 {
        match store.record_click_to_call(id, change).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, request_id = %id, state = change.status.as_str(), "cannot record a click-to-call change; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    tracing::error!(request_id = %id, state = change.status.as_str(), "gave up recording a click-to-call change");
}
