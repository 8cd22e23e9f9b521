//! Claims: leasing due deliveries to a dispatcher with everything needed to send them, giving
//! them back, and holding a stuck webhook's deliveries back.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use sqlx::{Database, QueryBuilder};

use super::Backend;
use super::attempts::record_chunk;
use super::db::{Conn, RowsAffected, SqlDb};
use super::events::insert_in;
use super::rows::*;
use super::shapes::padded;
use crate::core::delivery_state::{State, Unsent};
use crate::core::id::{DeliveryId, NodeId, PostedEventId, WebhookId};
use crate::core::seal::Keyring;
use crate::store::{
    AttemptRecord, Claimed, NewEvent, Release, Result, Shares, StoreError, Webhook,
};

/// Most deliveries one hold moves per statement.
const HOLD_ROWS_PER_STATEMENT: i64 = 2000;

/// Leases up to `limit` due deliveries to `node` until `lease_until`, with the statement of
/// the database (see [`SqlDb::claim_due`]), at most a webhook's share of `shares` of each.
#[allow(clippy::too_many_arguments)]
pub async fn claim_due<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: Arc<Keyring>,
    node: &NodeId,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
    shares: &Shares,
    exclude: &[WebhookId],
) -> Result<Vec<Claimed>> {
    let (node, shares, exclude) = (node.clone(), shares.clone(), exclude.to_vec());
    b.write_work(move |c| {
        Box::pin(async move {
            let mut rows =
                DB::claim_due(c, &node, now, lease_until, limit, &shares, &exclude).await?;
            // RETURNING gives no order; send oldest first.
            rows.sort_by_key(|r| r.int("seq").unwrap_or(0));
            complete::<DB>(c, &keys, rows, lease_until).await
        })
    })
    .await
}

/// Stores a test event with its one delivery and leases that delivery to `node` at once.
pub async fn insert_test_delivery<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: Arc<Keyring>,
    node: &NodeId,
    event: NewEvent,
    lease_until: Timestamp,
) -> Result<Claimed> {
    let node = node.clone();
    b.write(move |c| {
        Box::pin(async move {
            let ids: Vec<DeliveryId> = event.deliveries.iter().map(|d| d.id.clone()).collect();
            insert_in::<DB>(c, std::slice::from_ref(&event)).await?;
            let mut q =
                QueryBuilder::<DB>::new("UPDATE deliveries SET lease = lease + 1, state = ");
            q.push_bind(State::Queued.as_str());
            q.push(", next_attempt_at = ");
            q.push_bind(to_ms(lease_until));
            q.push(", claimed_until = ");
            q.push_bind(to_ms(lease_until));
            q.push(", leased_by = ");
            q.push_bind(&node);
            q.push(" WHERE id IN (");
            let mut sep = q.separated(", ");
            for id in padded(&ids) {
                sep.push_bind(id);
            }
            q.push(
                ") RETURNING id, lease, trigger, attempts, attempt_limit, event_seq, webhook_id",
            );
            let rows = q.build().fetch_all(&mut *c).await?;
            complete::<DB>(c, &keys, rows, lease_until)
                .await?
                .pop()
                .ok_or(StoreError::NotFound)
        })
    })
    .await
}

/// Loads what a dispatcher needs for leased rows `(id, lease, trigger, attempts,
/// attempt_limit, event_seq, webhook_id)`. A delivery whose webhook or event is gone ends here.
async fn complete<DB: SqlDb>(
    conn: &mut Conn<DB>,
    keys: &Keyring,
    rows: Vec<<DB as Database>::Row>,
    lease_until: Timestamp,
) -> Result<Vec<Claimed>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut event_seqs: Vec<i64> = Vec::with_capacity(rows.len());
    let mut webhook_ids: Vec<WebhookId> = Vec::new();
    for r in &rows {
        event_seqs.push(r.int("event_seq")?);
        let w: WebhookId = r.id("webhook_id")?;
        if !webhook_ids.contains(&w) {
            webhook_ids.push(w);
        }
    }
    let mut q =
        QueryBuilder::<DB>::new("SELECT seq, event_id, payload, test FROM events WHERE seq IN (");
    let mut sep = q.separated(", ");
    for s in padded(&event_seqs) {
        sep.push_bind(*s);
    }
    q.push(")");
    let events: HashMap<i64, (PostedEventId, Arc<str>, bool)> = q
        .build()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.int("seq")?,
                (
                    r.id("event_id")?,
                    Arc::from(r.text("payload")?),
                    r.boolean("test")?,
                ),
            ))
        })
        .collect::<Result<_>>()?;
    let mut q =
        QueryBuilder::<DB>::new(format!("SELECT {WEBHOOK_READ} FROM webhooks WHERE id IN ("));
    let mut sep = q.separated(", ");
    for w in padded(&webhook_ids) {
        sep.push_bind(w);
    }
    q.push(")");
    let webhooks: HashMap<WebhookId, Arc<Webhook>> = q
        .build()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| webhook_from_row(keys, r).map(|w| (w.id.clone(), Arc::new(w))))
        .collect::<Result<_>>()?;
    // The rest may be alerts: their receiver is an account's alert settings.
    let others: Vec<&WebhookId> = webhook_ids
        .iter()
        .filter(|w| !webhooks.contains_key(*w))
        .collect();
    let receivers: HashMap<WebhookId, Arc<Webhook>> =
        super::alerts::webhooks_in::<DB>(conn, keys, &others)
            .await?
            .into_iter()
            .map(|(w, r)| (w, Arc::new(r)))
            .collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut gone = Vec::new();
    for r in rows {
        let delivery_id = r.id("id")?;
        let webhook_id = r.id("webhook_id")?;
        let event_seq = r.int("event_seq")?;
        let alert = receivers.contains_key(&webhook_id);
        let (Some(webhook), Some((event_id, payload, test))) = (
            webhooks
                .get(&webhook_id)
                .or_else(|| receivers.get(&webhook_id)),
            events.get(&event_seq),
        ) else {
            // Its webhook was deleted (or its event pruned): nothing is left to send.
            let why = if webhooks.contains_key(&webhook_id) || alert {
                Unsent::EventGone
            } else {
                Unsent::WebhookGone
            };
            gone.push(AttemptRecord {
                delivery_id,
                webhook_id,
                lease: r.int("lease")?,
                attempt: None,
                next: Unsent::NEXT,
                disable_webhook: None,
                note: Some(why.note().to_owned()),
                test: false,
            });
            continue;
        };
        out.push(Claimed {
            delivery_id,
            lease: r.int("lease")?,
            trigger: r.trigger("trigger")?,
            attempts: r.int("attempts")? as u32,
            attempt_limit: r.opt_int("attempt_limit")?.map(|n| n as u32),
            event_id: event_id.clone(),
            event_payload: payload.clone(),
            webhook: webhook.clone(),
            lease_until,
            test: *test,
            alert,
        });
    }
    if !gone.is_empty() {
        record_chunk::<DB>(conn, &gone, to_ms(Timestamp::now())).await?;
    }
    Ok(out)
}

/// Gives leased deliveries back, due at `due`.
pub async fn release<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    releases: Vec<Release>,
    due: Timestamp,
) -> Result<()> {
    let now = to_ms(due);
    b.write_work(move |c| {
        Box::pin(async move {
            for r in releases {
                sqlx::query(
                    "UPDATE deliveries SET next_attempt_at = $3, claimed_until = NULL WHERE id = $1 AND lease = $2 AND state = 'queued'",
                )
                .bind(&r.delivery_id)
                .bind(r.lease)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            Ok(())
        })
    })
    .await
}

/// Gives back, due at `now`, every delivery leased until later: where one node is all there
/// is, those leases were this node's before it died. Answers how many.
pub async fn release_all<DB: SqlDb>(b: &impl Backend<Db = DB>, now: Timestamp) -> Result<u64> {
    let now = to_ms(now);
    b.write(move |c| {
        Box::pin(async move {
            let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE deliveries SET next_attempt_at = $1, claimed_until = NULL WHERE {}",
                DB::LEASE_RUNNING
            )))
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(done.rows_affected())
        })
    })
    .await
}

/// Gives back, due at `now`, the running leases of `dead` (a node that stopped heartbeating),
/// inside the caller's transaction: the lease counter moves on, so should the node be alive
/// after all, its records of them are dropped. Answers how many.
pub async fn take_over_in<DB: SqlDb>(c: &mut Conn<DB>, dead: &NodeId, now: i64) -> Result<u64> {
    // Only leases still running: one that ran out is due already. (No index has leased_by:
    // on SQLite the running leases are read through the future part of deliveries_due; on
    // PostgreSQL, whose claims keep no index entry for a lease, through the queued ones. A
    // node dies rarely; a claim happens all the time.)
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE deliveries SET lease = lease + 1, next_attempt_at = $1, claimed_until = NULL \
         WHERE leased_by = $2 AND {}",
        DB::LEASE_RUNNING
    )))
    .bind(now)
    .bind(dead)
    .execute(&mut *c)
    .await?;
    Ok(done.rows_affected())
}

/// Holds a webhook's deliveries until `until`; `None` lifts the hold.
pub async fn hold_webhook<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    webhook_id: &WebhookId,
    until: Option<Timestamp>,
) -> Result<()> {
    let id = webhook_id.clone();
    b.write(move |c| {
        Box::pin(async move {
            sqlx::query("UPDATE webhooks SET hold_until = $2 WHERE id = $1")
                .bind(&id)
                .bind(until.map(to_ms))
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    })
    .await?;
    let Some(until) = until else { return Ok(()) };
    // A stuck endpoint's backlog can be large: it moves in bounded transactions, oldest first,
    // so neither memory nor other writers wait on one huge one. Claimed deliveries (being
    // sent, or waiting in a lane) stay as they are.
    loop {
        let id = webhook_id.clone();
        let moved = b
            .write_work(move |c| {
                Box::pin(async move {
                    Ok(sqlx::query(
                        "UPDATE deliveries SET next_attempt_at = $2 WHERE seq IN (
                            SELECT seq FROM deliveries
                            WHERE webhook_id = $1 AND state = 'queued' AND next_attempt_at < $2
                              AND claimed_until IS NULL
                            ORDER BY next_attempt_at LIMIT $3)",
                    )
                    .bind(&id)
                    .bind(to_ms(until))
                    .bind(HOLD_ROWS_PER_STATEMENT)
                    .execute(&mut *c)
                    .await?
                    .rows_affected())
                })
            })
            .await?;
        if moved < HOLD_ROWS_PER_STATEMENT as u64 {
            return Ok(());
        }
    }
}
