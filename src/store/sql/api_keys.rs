//! API keys: stored by the hash of the key, never the key itself.

use jiff::Timestamp;

use super::Backend;
use super::db::{RowsAffected, SqlDb};
use super::rows::{api_key_from_row, limit_plus_one, to_ms};
use crate::core::id::{AccountId, ApiKeyId};
use crate::store::{ApiKey, Page, PageRequest, Result, StoreError};

pub async fn insert<DB: SqlDb>(b: &impl Backend<Db = DB>, key: &ApiKey, hash: &str) -> Result<()> {
    let (k, hash) = (key.clone(), hash.to_owned());
    b.write(move |c| {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO api_keys (id, account_id, name, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&k.id)
            .bind(&k.account_id)
            .bind(&k.name)
            .bind(&k.prefix)
            .bind(hash)
            .bind(to_ms(k.created_at))
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    })
    .await
}

pub async fn list<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    page: &PageRequest,
) -> Result<Page<ApiKey>> {
    let rows = sqlx::query(
        "SELECT id, account_id, name, prefix, created_at, last_used_at FROM api_keys
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

pub async fn delete<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &ApiKeyId,
) -> Result<()> {
    let (account_id, id) = (account_id.to_owned(), id.to_owned());
    b.write(move |c| {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM api_keys WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(id)
                .execute(&mut *c)
                .await?;
            if r.rows_affected() == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    })
    .await
}

pub async fn by_hash<DB: SqlDb>(b: &impl Backend<Db = DB>, hash: &str) -> Result<Option<ApiKey>> {
    let row = sqlx::query(
        "SELECT id, account_id, name, prefix, created_at, last_used_at FROM api_keys WHERE hash = $1",
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
