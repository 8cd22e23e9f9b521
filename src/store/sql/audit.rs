//! The audit log (SPEC §13): each entry is written by [`insert_in`] inside the transaction of
//! the change it records, so a change and its entry are committed together or not at all.
//! Read newest first, filtered by resource, actor, action and time.

use sqlx::QueryBuilder;

use super::Backend;
use super::db::{Conn, RowsAffected, SqlDb};
use super::rows::{audit_from_row, limit_plus_one, to_ms};
use crate::core::id::AccountId;
use crate::store::{AuditEntry, AuditFilter, Page, PageRequest, Result, StoreError};

const AUDIT_COLUMNS: &str = "id, account_id, at, actor_type, actor_id, actor_name, action, \
     resource_id, changes";

/// Writes `entry` on `c`, in the caller's transaction.
pub async fn insert_in<DB: SqlDb>(c: &mut Conn<DB>, entry: &AuditEntry) -> Result<()> {
    let changes = serde_json::to_string(&entry.changes)
        .map_err(|e| StoreError::Corrupt(format!("audit changes: {e}")))?;
    sqlx::query(
        "INSERT INTO audit_log (id, account_id, at, actor_type, actor_id, actor_name, action,
             resource_type, resource_id, changes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&entry.id)
    .bind(&entry.account_id)
    .bind(to_ms(entry.at))
    .bind(entry.actor.kind.as_str())
    .bind(entry.actor.id.as_deref())
    .bind(entry.actor.name.as_str())
    .bind(entry.action.as_str())
    .bind(entry.action.resource().as_str())
    .bind(entry.resource_id.as_str())
    .bind(changes)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Records an entry in a transaction of its own.
pub async fn record<DB: SqlDb>(b: &impl Backend<Db = DB>, entry: &AuditEntry) -> Result<()> {
    let entry = entry.clone();
    b.write(move |c| Box::pin(async move { insert_in::<DB>(c, &entry).await }))
        .await
}

/// The account's entries matching `filter`, newest first.
pub async fn list<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    filter: &AuditFilter,
    page: &PageRequest,
) -> Result<Page<AuditEntry>> {
    let mut q = QueryBuilder::<DB>::new(format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE account_id = "
    ));
    q.push_bind(account_id);
    if let Some(after) = &page.after {
        // The cursor counts only as one of this account's own entries.
        q.push(" AND seq < (SELECT seq FROM audit_log WHERE id = ");
        q.push_bind(after.as_str());
        q.push(" AND account_id = ");
        q.push_bind(account_id);
        q.push(")");
    }
    if let Some(r) = &filter.resource_id {
        q.push(" AND resource_id = ");
        q.push_bind(r.as_str());
    }
    if let Some(a) = &filter.actor {
        q.push(" AND (actor_id = ");
        q.push_bind(a.as_str());
        q.push(" OR actor_name = ");
        q.push_bind(a.as_str());
        q.push(")");
    }
    if let Some(action) = filter.action {
        q.push(" AND action = ");
        q.push_bind(action.as_str());
    }
    if let Some(t) = filter.since {
        q.push(" AND at >= ");
        q.push_bind(to_ms(t));
    }
    if let Some(t) = filter.until {
        q.push(" AND at < ");
        q.push_bind(to_ms(t));
    }
    q.push(" ORDER BY seq DESC LIMIT ");
    q.push_bind(limit_plus_one(page));
    let rows = q.build().fetch_all(b.read()).await?;
    let items = rows.iter().map(audit_from_row).collect::<Result<_>>()?;
    Ok(Page::from_rows(items, page.limit, |e: &AuditEntry| {
        e.id.to_string()
    }))
}

/// Deletes up to `batch` entries older than `before`, oldest first; answers how many.
pub async fn prune_in<DB: SqlDb>(c: &mut Conn<DB>, before: i64, batch: i64) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM audit_log WHERE seq IN (
            SELECT seq FROM audit_log WHERE at < $1 ORDER BY seq LIMIT $2)",
    )
    .bind(before)
    .bind(batch)
    .execute(&mut *c)
    .await?
    .rows_affected())
}
