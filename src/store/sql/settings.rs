//! Settings callhook keeps for itself, the nodes' heartbeats, and the ping that proves the
//! write path works.

use jiff::Timestamp;

use super::Backend;
use super::db::{RowsAffected, SqlDb};
use super::rows::to_ms;
use crate::store::Result;

/// How long a silent node is remembered.
const NODE_FORGOTTEN_AFTER_MS: i64 = 3_600_000;

pub async fn heartbeat<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    node_id: &str,
    now: Timestamp,
    alive_since: Timestamp,
) -> Result<u32> {
    let node_id = node_id.to_owned();
    let (now, alive_since) = (to_ms(now), to_ms(alive_since));
    b.write(move |c| {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO nodes (id, seen_at) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET seen_at = $2",
            )
            .bind(&node_id)
            .bind(now)
            .execute(&mut *c)
            .await?;
            sqlx::query("DELETE FROM nodes WHERE seen_at < $1")
                .bind(now - NODE_FORGOTTEN_AFTER_MS)
                .execute(&mut *c)
                .await?;
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM nodes WHERE seen_at >= $1")
                .bind(alive_since)
                .fetch_one(&mut *c)
                .await?;
            Ok(n.max(1) as u32)
        })
    })
    .await
}

pub async fn ping<DB: SqlDb>(b: &impl Backend<Db = DB>) -> Result<()> {
    b.write(|c| {
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
