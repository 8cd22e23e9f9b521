//! Ingest: storing a batch of events with their deliveries in a few multi-row statements,
//! whatever the batch size. PostgreSQL's ingest task, and SQLite's writer in a burst, call
//! [`insert_in`] inside a transaction of their own making, merging many requests into one
//! call. For a small group SQLite's writer stores events with the same rules through
//! `store::sqlite::direct::insert`, one row per statement: there a statement costs no round
//! trip to another thread.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::db::{Conn, SqlDb};
use super::rows::{Cols, to_ms};
use super::shapes::{chunks, padded_chunks};

use crate::core::delivery_state::{State, arrival};
use crate::core::event::EventType;
use crate::core::id::{AccountId, CallId, DeliveryId, PostedEventId, WebhookId};
use crate::core::validate::FieldErrors;
use crate::store::{Inserted, LeaseTo, NewDelivery, NewEvent, Result, StoreError};

/// Of the (webhook, call) pairs `p`, those with a delivery still pending: a new delivery of such
/// a call waits its turn. Read through `deliveries_call` (see `sql::plans` and
/// `postgres::tests`), one lookup per pair: the correlated subquery (with its `LIMIT`) leaves
/// PostgreSQL's planner no join to choose. As a join it chose, on tables that had grown since
/// their statistics were taken, a hash join over every pending delivery or a scan of the whole
/// table.
pub(crate) const BUSY_CALLS: &str =
    "SELECT p.webhook_id, p.call_id FROM p WHERE (SELECT 1 FROM deliveries d
    WHERE d.webhook_id = p.webhook_id AND d.call_id = p.call_id AND d.state IN ('queued', 'waiting')
    LIMIT 1) IS NOT NULL";

/// Stores events and their deliveries, all or nothing (a failure leaves nothing behind, so a
/// caller needs no savepoint of its own); an event whose id the account used before is
/// skipped. When an event breaks the one-`call.ended` rule the batch is redone one event at a
/// time, to name the culprit.
pub async fn insert_in<DB: SqlDb>(c: &mut Conn<DB>, events: &[NewEvent]) -> Result<Vec<Inserted>> {
    sqlx::query("SAVEPOINT ingest").execute(&mut *c).await?;
    let mut stored = insert_batched::<DB>(c, events).await;
    if let Err(StoreError::Database(e)) = &stored
        && e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
    {
        stored = match sqlx::raw_sql("ROLLBACK TO ingest").execute(&mut *c).await {
            Ok(_) => insert_one_by_one::<DB>(c, events).await,
            Err(e) => Err(e.into()),
        };
    }
    let end = if stored.is_ok() {
        "RELEASE ingest"
    } else {
        "ROLLBACK TO ingest; RELEASE ingest"
    };
    sqlx::raw_sql(end).execute(&mut *c).await?;
    stored
}

/// The calls that `events` end (their non-test `call.ended`), or `None` when two of them end
/// the same call. The first half of "can no unique rule refuse storing them together": the one
/// an insert that skips repeated ids can break is "a call ends once" (`events_one_end`); the
/// other half is that none of these calls has ended before (a read, per database). A repeated
/// event is counted again: that only ever answers "it might".
pub(crate) fn calls_ended_once<'a>(
    events: impl IntoIterator<Item = &'a NewEvent>,
) -> Option<HashSet<(&'a AccountId, &'a CallId)>> {
    let mut ending = HashSet::new();
    for ne in events {
        let e = &ne.event;
        if e.event_type == EventType::Ended.as_str()
            && !e.test
            && !ending.insert((&e.account_id, &e.call_id))
        {
            return None;
        }
    }
    Some(ending)
}

/// Whether no unique rule can refuse storing `events` together (see [`calls_ended_once`]):
/// none of them is a second `call.ended` of a call, in the batch or stored before.
pub(crate) async fn no_rule_refuses<DB: SqlDb>(c: &mut Conn<DB>, events: &[NewEvent]) -> bool {
    let Some(ending) = calls_ended_once(events) else {
        return false;
    };
    let ending: Vec<_> = ending.into_iter().collect();
    for chunk in padded_chunks(&ending) {
        let mut q = QueryBuilder::<DB>::new("WITH p(account_id, call_id) AS (");
        q.push_values(chunk, |mut b, (account, call)| {
            b.push_bind(*account).push_bind(*call);
        });
        q.push(
            ") SELECT 1 FROM p WHERE (SELECT 1 FROM events e WHERE e.account_id = p.account_id \
             AND e.call_id = p.call_id AND e.type = 'call.ended' AND NOT e.test LIMIT 1) IS NOT NULL \
             LIMIT 1",
        );
        if !matches!(q.build().fetch_optional(&mut *c).await, Ok(None)) {
            return false;
        }
    }
    true
}

/// Stores `events` as [`insert_in`] does, without its savepoint: a failure leaves what was
/// stored before it, so the caller must end the transaction instead.
pub(crate) async fn insert_batched<DB: SqlDb>(
    c: &mut Conn<DB>,
    events: &[NewEvent],
) -> Result<Vec<Inserted>> {
    let mut seqs: HashMap<(AccountId, PostedEventId), i64> = HashMap::with_capacity(events.len());
    for chunk in chunks(events) {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO events (id, account_id, event_id, call_id, type, occurred_at, received_at, test, \
             did_number, customer_number, payload) ",
        );
        q.push_values(chunk, |mut b, ne| {
            let e = &ne.event;
            b.push_bind(&e.id)
                .push_bind(&e.account_id)
                .push_bind(&e.event_id)
                .push_bind(&e.call_id)
                .push_bind(&e.event_type)
                .push_bind(to_ms(e.occurred_at))
                .push_bind(to_ms(e.received_at))
                .push_bind(e.test)
                .push_bind(&e.did_number)
                .push_bind(&e.customer_number)
                .push_bind(&e.payload);
        });
        q.push(" ON CONFLICT(account_id, event_id) DO NOTHING RETURNING seq, account_id, event_id");
        for row in q.build().fetch_all(&mut *c).await? {
            seqs.insert(
                (row.id("account_id")?, row.id("event_id")?),
                row.int("seq")?,
            );
        }
    }
    // Which events are new (the first of a repeated id in the batch wins), and their seq.
    let mut seen: HashSet<(&AccountId, &PostedEventId)> = HashSet::with_capacity(events.len());
    let mut out = Vec::with_capacity(events.len());
    let mut fresh: Vec<(&NewEvent, i64)> = Vec::with_capacity(events.len());
    for ne in events {
        let e = &ne.event;
        let first = seen.insert((&e.account_id, &e.event_id));
        match seqs.get(&(e.account_id.clone(), e.event_id.clone())) {
            Some(seq) if first => {
                fresh.push((ne, *seq));
                out.push(Inserted::New {
                    deliveries: ne.deliveries.len(),
                    leased: Vec::new(),
                });
            }
            _ => out.push(Inserted::Duplicate),
        }
    }
    let mut leased = insert_deliveries::<DB>(c, &fresh).await?.into_iter();
    for o in &mut out {
        if let Inserted::New { leased: l, .. } = o {
            *l = leased.next().unwrap_or_default();
        }
    }
    Ok(out)
}

/// Stores the deliveries of stored events (with their seq). A delivery waits when its webhook
/// still has an unfinished delivery of the same call, stored before or earlier in this batch.
/// One that asked for a lease ([`NewDelivery::lease`]) and is due at once is stored leased.
/// Answers, for each event, the deliveries stored leased.
async fn insert_deliveries<DB: SqlDb>(
    c: &mut Conn<DB>,
    fresh: &[(&NewEvent, i64)],
) -> Result<Vec<Vec<DeliveryId>>> {
    let pairs: Vec<(&WebhookId, &CallId)> = fresh
        .iter()
        .flat_map(|(ne, _)| {
            ne.deliveries
                .iter()
                .map(|d| (&d.webhook_id, &ne.event.call_id))
        })
        .collect();
    DB::lock_calls(c, &pairs).await?;
    let mut busy: HashSet<(WebhookId, CallId)> = HashSet::new();
    for chunk in padded_chunks(&pairs) {
        let mut q = QueryBuilder::<DB>::new("WITH p(webhook_id, call_id) AS (");
        q.push_values(chunk, |mut b, (w, call)| {
            b.push_bind(*w).push_bind(*call);
        });
        q.push(") ");
        q.push(BUSY_CALLS);
        for row in q.build().fetch_all(&mut *c).await? {
            busy.insert((row.id("webhook_id")?, row.id("call_id")?));
        }
    }
    struct Row<'a> {
        ne: &'a NewEvent,
        d: &'a NewDelivery,
        seq: i64,
        state: State,
        due: Option<Timestamp>,
        lease: Option<&'a LeaseTo>,
    }
    let mut rows: Vec<Row> = Vec::with_capacity(pairs.len());
    let mut leased: Vec<Vec<DeliveryId>> = Vec::with_capacity(fresh.len());
    for (ne, seq) in fresh {
        let mut of_event = Vec::new();
        for d in &ne.deliveries {
            let call_busy = !busy.insert((d.webhook_id.clone(), ne.event.call_id.clone()));
            let (state, due) = arrival(call_busy, ne.event.received_at, d.not_before);
            // Leased only when due at once: a held or waiting delivery is not this node's yet.
            let lease = d
                .lease
                .as_ref()
                .filter(|_| state == State::Queued && due == Some(ne.event.received_at));
            if lease.is_some() {
                of_event.push(d.id.clone());
            }
            rows.push(Row {
                ne,
                d,
                seq: *seq,
                state,
                due,
                lease,
            });
        }
        leased.push(of_event);
    }
    for chunk in chunks(&rows) {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_seq, call_id, trigger, state, \
             next_attempt_at, created_at, updated_at, attempt_limit, lease, claimed_until, leased_by) ",
        );
        q.push_values(chunk, |mut b, r| {
            let e = &r.ne.event;
            let at = to_ms(e.received_at);
            // A leased delivery is due again when its lease runs out, as a claimed one is.
            let due = r.lease.map_or(r.due, |l| Some(l.until));
            b.push_bind(&r.d.id)
                .push_bind(&e.account_id)
                .push_bind(&r.d.webhook_id)
                .push_bind(r.seq)
                .push_bind(&e.call_id)
                .push_bind(r.d.trigger.id())
                .push_bind(r.state.as_str())
                .push_bind(due.map(to_ms))
                .push_bind(at)
                .push_bind(at)
                .push_bind(r.d.attempt_limit.map(i64::from))
                .push_bind(i64::from(r.lease.is_some()))
                .push_bind(r.lease.map(|l| to_ms(l.until)))
                .push_bind(r.lease.map(|l| l.node.as_str()));
        });
        q.build().execute(&mut *c).await?;
    }
    Ok(leased)
}

/// The same, one event at a time: slow, but it tells which event broke a rule.
async fn insert_one_by_one<DB: SqlDb>(
    c: &mut Conn<DB>,
    events: &[NewEvent],
) -> Result<Vec<Inserted>> {
    let mut out = Vec::with_capacity(events.len());
    for (i, ne) in events.iter().enumerate() {
        let e = &ne.event;
        let seq: Option<i64> = sqlx::query_scalar(
            "INSERT INTO events (id, account_id, event_id, call_id, type, occurred_at, received_at, test,
                                 did_number, customer_number, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT(account_id, event_id) DO NOTHING RETURNING seq",
        )
        .bind(&e.id)
        .bind(&e.account_id)
        .bind(&e.event_id)
        .bind(&e.call_id)
        .bind(&e.event_type)
        .bind(to_ms(e.occurred_at))
        .bind(to_ms(e.received_at))
        .bind(e.test)
        .bind(&e.did_number)
        .bind(&e.customer_number)
        .bind(&e.payload)
        .fetch_optional(&mut *c)
        .await
        .map_err(|err| match err {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                second_call_ended(events.len(), i, &e.call_id)
            }
            other => other.into(),
        })?;
        let Some(seq) = seq else {
            out.push(Inserted::Duplicate);
            continue;
        };
        let leased = insert_deliveries::<DB>(c, &[(ne, seq)]).await?;
        out.push(Inserted::New {
            deliveries: ne.deliveries.len(),
            leased: leased.into_iter().next().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The refusal of event `i` of a batch of `n`, a second `call.ended` of `call` (the one unique
/// index an event insert that skips repeated ids can break).
pub(crate) fn second_call_ended(n: usize, i: usize, call: &CallId) -> StoreError {
    let mut fe = FieldErrors::default();
    fe.push(
        if n > 1 {
            format!("[{i}].type")
        } else {
            "type".into()
        },
        format!("call {call} already has a call.ended event; a call ends once"),
    );
    StoreError::Rejected(fe)
}
