//! API keys: stored by the hash of the key, never the key itself, with their role.

use jiff::Timestamp;

use super::Backend;
use super::audit;
use super::db::{RowsAffected, SqlDb};
use super::rows::{api_key_from_row, limit_plus_one, to_ms};
use crate::core::id::{AccountId, ApiKeyId};
use crate::store::{ApiKey, AuditEntry, Page, PageRequest, Result, StoreError};

pub async fn insert<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    key: &ApiKey,
    hash: &str,
    audit: &AuditEntry,
) -> Result<()> {
    let (k, hash, audit) = (key.clone(), hash.to_owned(), audit.clone());
    b.write(move |c| {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO api_keys (id, account_id, name, prefix, hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&k.id)
            .bind(&k.account_id)
            .bind(&k.name)
            .bind(&k.prefix)
            .bind(hash)
            .bind(k.role.as_str())
            .bind(to_ms(k.created_at))
            .execute(&mut *c)
            .await?;
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

pub async fn get<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &ApiKeyId,
) -> Result<ApiKey> {
    let row = sqlx::query(
        "SELECT id, account_id, name, prefix, role, created_at, last_used_at FROM api_keys
         WHERE account_id = $1 AND id = $2",
    )
    .bind(account_id)
    .bind(id)
    .fetch_one(b.read())
    .await?;
    api_key_from_row(&row)
}

pub async fn list<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    page: &PageRequest,
) -> Result<Page<ApiKey>> {
    let rows = sqlx::query(
        "SELECT id, account_id, name, prefix, role, created_at, last_used_at FROM api_keys
         WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(account_id)
    .bind(page.after.as_deref().unwrap_or(""))
    .bind(limit_plus_one(page))
    .fetch_all(b.read())
    .await?;
    let items = rows.iter().map(api_key_from_row).collect::<Result<_>>()?;
    Ok(Page::from_rows(items, page.limit, |k: &ApiKey| {
        k.id.to_string()
    }))
}

/// Revokes a key; with `keep_an_admin`, not the account's last admin key.
pub async fn delete<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &ApiKeyId,
    keep_an_admin: bool,
    audit: &AuditEntry,
) -> Result<()> {
    let (account_id, id, audit) = (account_id.to_owned(), id.to_owned(), audit.clone());
    b.write(move |c| {
        Box::pin(async move {
            if keep_an_admin {
                // The account's row lock: two keys revoking themselves at once (PostgreSQL)
                // cannot both count the other.
                sqlx::query("UPDATE accounts SET name = name WHERE id = $1")
                    .bind(&account_id)
                    .execute(&mut *c)
                    .await?;
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM api_keys WHERE account_id = $1 AND role = 'admin' AND id <> $2",
                )
                .bind(&account_id)
                .bind(&id)
                .fetch_one(&mut *c)
                .await?;
                if others == 0 {
                    return Err(StoreError::Conflict(
                        "this is the account's last admin API key, which cannot revoke itself; \
                         make another admin key first (or revoke it from the web page)"
                            .into(),
                    ));
                }
            }
            let r = sqlx::query("DELETE FROM api_keys WHERE account_id = $1 AND id = $2")
                .bind(&account_id)
                .bind(&id)
                .execute(&mut *c)
                .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

pub async fn by_hash<DB: SqlDb>(b: &impl Backend<Db = DB>, hash: &str) -> Result<Option<ApiKey>> {
    let row = sqlx::query(
        "SELECT id, account_id, name, prefix, role, created_at, last_used_at FROM api_keys WHERE hash = $1",
    )
    .bind(hash)
    .fetch_optional(b.read())
    .await?;
    row.as_ref().map(api_key_from_row).transpose()
}

pub async fn touch<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    id: &ApiKeyId,
    now: Timestamp,
) -> Result<()> {
    let id = id.to_owned();
    b.write(move |c| {
        Box::pin(async move {
            sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(to_ms(now))
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    })
    .await
}
