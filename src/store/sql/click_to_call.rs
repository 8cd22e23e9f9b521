//! Click-to-call requests (SPEC §15) and the connectors that place them: a request is stored
//! `queued` by whichever node took it, claimed once by the node whose connector places the
//! account's calls, and its state recorded as the call goes; the connectors' status is
//! published here so every node knows whether a request can be placed now.

use jiff::Timestamp;

use super::Backend;
use super::db::{RowsAffected, SqlDb};
use super::rows::{Cols, to_ms};
use crate::core::click_to_call::{FailReason, Status};
use crate::core::id::{AccountId, ClickToCallId};
use crate::core::number::E164;
use crate::store::{ClickToCallChange, PlacingConnector, Result, StoreError, StoredClickToCall};

const COLUMNS: &str = "id, account_id, ref_id, agent_extension, customer_number, did_number, \
     state, reason, cause, call_id, connector, created_at, placed_at, ringing_agent_at, \
     ringing_customer_at, ended_at, updated_at";

/// How far along a state is, in SQL: a request never goes back (as in
/// [`crate::core::click_to_call`]).
const RANK: &str = "CASE state WHEN 'queued' THEN 0 WHEN 'ringing_agent' THEN 1 \
     WHEN 'ringing_customer' THEN 2 ELSE 3 END";

fn rank(s: Status) -> i64 {
    match s {
        Status::Queued => 0,
        Status::RingingAgent => 1,
        Status::RingingCustomer => 2,
        Status::Answered | Status::Failed(_) => 3,
    }
}

fn from_row(row: &impl Cols) -> Result<StoredClickToCall> {
    let number = |name: &str| -> Result<E164> {
        let s = row.text(name)?;
        E164::parse(&s).map_err(|e| StoreError::Corrupt(format!("{name} {s:?}: {e}")))
    };
    let (state, reason) = (row.text("state")?, row.opt_text("reason")?);
    let status = Status::from_parts(&state, reason.as_deref()).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "click-to-call state {state:?} with reason {reason:?}"
        ))
    })?;
    Ok(StoredClickToCall {
        id: row.id("id")?,
        account_id: row.id("account_id")?,
        ref_id: row.text("ref_id")?,
        agent_extension: row.text("agent_extension")?,
        customer_number: number("customer_number")?,
        did_number: number("did_number")?,
        status,
        cause: row.opt_text("cause")?,
        call_id: row
            .opt_text("call_id")?
            .map(crate::core::id::Id::from_string),
        connector: row.opt_text("connector")?,
        created_at: row.ts("created_at")?,
        placed_at: row.opt_ts("placed_at")?,
        ringing_agent_at: row.opt_ts("ringing_agent_at")?,
        ringing_customer_at: row.opt_ts("ringing_customer_at")?,
        ended_at: row.opt_ts("ended_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// Stores a new request; one with the same `ref_id` in the account is answered instead.
pub async fn insert<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    request: &StoredClickToCall,
) -> Result<(StoredClickToCall, bool)> {
    let r = request.clone();
    b.write(move |c| {
        Box::pin(async move {
            let inserted = sqlx::query(
                "INSERT INTO click_to_calls (id, account_id, ref_id, agent_extension, customer_number,
                     did_number, state, reason, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                 ON CONFLICT (account_id, ref_id) DO NOTHING",
            )
            .bind(r.id.as_str())
            .bind(r.account_id.as_str())
            .bind(&r.ref_id)
            .bind(&r.agent_extension)
            .bind(r.customer_number.as_str())
            .bind(r.did_number.as_str())
            .bind(r.status.as_str())
            .bind(r.status.reason().map(FailReason::as_str))
            .bind(to_ms(r.created_at))
            .execute(&mut *c)
            .await?
            .rows_affected()
                == 1;
            if inserted && let Some(announce) = DB::ANNOUNCE_WORK {
                sqlx::query(announce).execute(&mut *c).await?;
            }
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM click_to_calls WHERE account_id = $1 AND ref_id = $2"
            )))
            .bind(r.account_id.as_str())
            .bind(&r.ref_id)
            .fetch_one(&mut *c)
            .await?;
            Ok((from_row(&row)?, inserted))
        })
    })
    .await
}

pub async fn get<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &ClickToCallId,
) -> Result<StoredClickToCall> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM click_to_calls WHERE account_id = $1 AND id = $2"
    )))
    .bind(account_id.as_str())
    .bind(id.as_str())
    .fetch_one(b.read())
    .await?;
    from_row(&row)
}

pub async fn by_ref<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    ref_id: &str,
) -> Result<Option<StoredClickToCall>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM click_to_calls WHERE account_id = $1 AND ref_id = $2"
    )))
    .bind(account_id.as_str())
    .bind(ref_id)
    .fetch_optional(b.read())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Takes the account's oldest queued requests nobody took. The `claimed_by IS NULL` in the
/// update itself is what makes a request taken once: a second node's update of the same row
/// (PostgreSQL re-reads it after the first commits) finds it taken and changes nothing.
#[allow(clippy::too_many_arguments)]
pub async fn claim<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    connector: &str,
    node_id: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<StoredClickToCall>> {
    let (account_id, connector, node_id) = (
        account_id.as_str().to_owned(),
        connector.to_owned(),
        node_id.to_owned(),
    );
    b.write(move |c| {
        Box::pin(async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE click_to_calls SET connector = $2, claimed_by = $3, placed_at = $4,
                     lease_until = $5, updated_at = $4
                 WHERE id IN (SELECT id FROM click_to_calls
                              WHERE account_id = $1 AND claimed_by IS NULL AND state = 'queued'
                              ORDER BY created_at, id LIMIT $6)
                   AND claimed_by IS NULL AND state = 'queued'
                 RETURNING {COLUMNS}"
            )))
            .bind(&account_id)
            .bind(&connector)
            .bind(&node_id)
            .bind(to_ms(now))
            .bind(to_ms(lease_until))
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?;
            let mut taken = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
            taken.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
            Ok(taken)
        })
    })
    .await
}

/// Records a change of state, unless the request is final or further along already.
pub async fn record<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    id: &ClickToCallId,
    change: &ClickToCallChange,
) -> Result<bool> {
    let (id, ch) = (id.as_str().to_owned(), change.clone());
    let at = to_ms(ch.at);
    let time_column = match ch.status {
        Status::Queued => None,
        Status::RingingAgent => Some("ringing_agent_at"),
        Status::RingingCustomer => Some("ringing_customer_at"),
        Status::Answered | Status::Failed(_) => Some("ended_at"),
    };
    let set_time = time_column
        .map(|col| format!(", {col} = COALESCE({col}, $5)"))
        .unwrap_or_default();
    b.write(move |c| {
        Box::pin(async move {
            let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE click_to_calls SET state = $2, reason = $3,
                     cause = COALESCE($4, cause), call_id = COALESCE($6, call_id),
                     updated_at = $5{set_time}
                 WHERE id = $1 AND {RANK} < $7"
            )))
            .bind(&id)
            .bind(ch.status.as_str())
            .bind(ch.status.reason().map(FailReason::as_str))
            .bind(ch.cause.as_deref())
            .bind(at)
            .bind(ch.call_id.as_ref().map(|c| c.as_str()))
            .bind(rank(ch.status))
            .execute(&mut *c)
            .await?
            .rows_affected();
            // A call id learnt after the request's end (a final change names none) is kept.
            if changed == 0 && ch.call_id.is_some() {
                sqlx::query(
                    "UPDATE click_to_calls SET call_id = $2 WHERE id = $1 AND call_id IS NULL",
                )
                .bind(&id)
                .bind(ch.call_id.as_ref().map(|c| c.as_str()))
                .execute(&mut *c)
                .await?;
            }
            Ok(changed == 1)
        })
    })
    .await
}

/// Keeps the requests node `node_id` is placing its own until `lease_until`.
pub async fn renew<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    node_id: &str,
    lease_until: Timestamp,
) -> Result<u64> {
    let node_id = node_id.to_owned();
    b.write(move |c| {
        Box::pin(async move {
            Ok(sqlx::query(
                "UPDATE click_to_calls SET lease_until = $2
                 WHERE claimed_by = $1 AND state NOT IN ('answered', 'failed')",
            )
            .bind(&node_id)
            .bind(to_ms(lease_until))
            .execute(&mut *c)
            .await?
            .rows_affected())
        })
    })
    .await
}

/// Fails what nobody took in time and what a silent node was placing, both `connector_lost`.
pub async fn expire<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    now: Timestamp,
    queued_before: Timestamp,
) -> Result<Vec<ClickToCallId>> {
    let (now, queued_before) = (to_ms(now), to_ms(queued_before));
    b.write(move |c| {
        Box::pin(async move {
            let lost = FailReason::ConnectorLost.as_str();
            let mut ids: Vec<ClickToCallId> = sqlx::query_scalar(
                "UPDATE click_to_calls SET state = 'failed', reason = $3, ended_at = $1,
                     updated_at = $1,
                     cause = 'no node with the placing connector connected took the request in time'
                 WHERE claimed_by IS NULL AND state = 'queued' AND created_at < $2
                 RETURNING id",
            )
            .bind(now)
            .bind(queued_before)
            .bind(lost)
            .fetch_all(&mut *c)
            .await?;
            ids.extend(
                sqlx::query_scalar::<_, ClickToCallId>(
                    "UPDATE click_to_calls SET state = 'failed', reason = $2, ended_at = $1,
                         updated_at = $1,
                         cause = 'the node placing the request stopped before its end was known'
                     WHERE claimed_by IS NOT NULL AND state NOT IN ('answered', 'failed')
                       AND lease_until < $1
                     RETURNING id",
                )
                .bind(now)
                .bind(lost)
                .fetch_all(&mut *c)
                .await?,
            );
            Ok(ids)
        })
    })
    .await
}

/// Keeps what a node says of its placing connectors; forgets what nobody said for an hour.
pub async fn publish<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    connectors: &[PlacingConnector],
) -> Result<()> {
    let connectors = connectors.to_vec();
    b.write(move |c| {
        Box::pin(async move {
            let mut oldest = i64::MAX;
            for p in &connectors {
                let seen = to_ms(p.seen_at);
                oldest = oldest.min(seen);
                sqlx::query(
                    "INSERT INTO placing_connectors (name, node_id, account_id, connected, default_did, seen_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (name, node_id) DO UPDATE SET account_id = $3, connected = $4,
                         default_did = $5, seen_at = $6",
                )
                .bind(&p.name)
                .bind(&p.node_id)
                .bind(p.account_id.as_str())
                .bind(p.connected)
                .bind(p.default_did.as_ref().map(E164::as_str))
                .bind(seen)
                .execute(&mut *c)
                .await?;
            }
            if oldest != i64::MAX {
                sqlx::query("DELETE FROM placing_connectors WHERE seen_at < $1")
                    .bind(oldest - 3_600_000)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        })
    })
    .await
}

/// The account's placing connectors heard of since `seen_since`, latest first.
pub async fn placing<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    seen_since: Timestamp,
) -> Result<Vec<PlacingConnector>> {
    let rows = sqlx::query(
        "SELECT name, node_id, account_id, connected, default_did, seen_at FROM placing_connectors
         WHERE account_id = $1 AND seen_at >= $2 ORDER BY seen_at DESC, name",
    )
    .bind(account_id.as_str())
    .bind(to_ms(seen_since))
    .fetch_all(b.read())
    .await?;
    rows.iter()
        .map(|row| {
            let default_did = row
                .opt_text("default_did")?
                .map(|d| {
                    E164::parse(&d).map_err(|e| StoreError::Corrupt(format!("default_did: {e}")))
                })
                .transpose()?;
            Ok(PlacingConnector {
                name: row.text("name")?,
                node_id: row.text("node_id")?,
                account_id: row.id("account_id")?,
                connected: row.boolean("connected")?,
                default_did,
                seen_at: row.ts("seen_at")?,
            })
        })
        .collect()
}
