//! Settings callhook keeps for itself, the nodes' heartbeats, and the ping that proves the
//! write path works.

use jiff::Timestamp;

use super::db::{RowsAffected, SqlDb};
use super::rows::to_ms;
use super::{Backend, claims};
use crate::core::id::NodeId;
use crate::store::{Heartbeat, Result};

/// Notes that `node` is alive, and takes over the nodes that are not (see
/// [`crate::store::Store::heartbeat`]): one short transaction.
pub async fn heartbeat<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    node: &NodeId,
    now: Timestamp,
    alive_since: Timestamp,
) -> Result<Heartbeat> {
    let node = node.clone();
    let (now, alive_since) = (to_ms(now), to_ms(alive_since));
    b.write_work(move |c| {
        Box::pin(async move {
            let known = sqlx::query("UPDATE nodes SET seen_at = $2 WHERE id = $1")
                .bind(&node)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected()
                > 0;
            if !known {
                sqlx::query(
                    "INSERT INTO nodes (id, seen_at) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET seen_at = $2",
                )
                .bind(&node)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            // The dead, each taken by one live node: a row another heartbeat holds (its own
            // node's, or a dead one a second live node is taking over) is passed over.
            let dead: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM nodes WHERE seen_at < $1 AND id <> $2 ORDER BY id{}",
                DB::SKIP_LOCKED
            )))
            .bind(alive_since)
            .bind(&node)
            .fetch_all(&mut *c)
            .await?;
            let mut taken_over = Vec::with_capacity(dead.len());
            for id in dead {
                let id = NodeId::from_string(id);
                let leases = claims::take_over_in::<DB>(c, &id, now).await?;
                sqlx::query("DELETE FROM nodes WHERE id = $1")
                    .bind(&id)
                    .execute(&mut *c)
                    .await?;
                taken_over.push((id, leases));
            }
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM nodes WHERE seen_at >= $1")
                .bind(alive_since)
                .fetch_one(&mut *c)
                .await?;
            Ok(Heartbeat {
                nodes: n.max(1) as u32,
                known,
                taken_over,
            })
        })
    })
    .await
}

pub async fn ping<DB: SqlDb>(b: &impl Backend<Db = DB>) -> Result<()> {
    b.write_work(|c| {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&mut *c).await?;
            Ok(())
        })
    })
    .await
}

pub async fn get<DB: SqlDb>(b: &impl Backend<Db = DB>, key: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(b.read())
            .await?,
    )
}

pub async fn set<DB: SqlDb>(b: &impl Backend<Db = DB>, key: &str, value: &str) -> Result<()> {
    let (key, value) = (key.to_owned(), value.to_owned());
    b.write(move |c| {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT(key) DO UPDATE SET value = $2",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    })
    .await
}

pub async fn set_if_absent<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    key: &str,
    value: &str,
) -> Result<bool> {
    let (key, value) = (key.to_owned(), value.to_owned());
    b.write(move |c| {
        Box::pin(async move {
            let r = sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *c)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    })
    .await
}
