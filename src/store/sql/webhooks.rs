//! Webhooks: their spec and secrets as JSON, the columns matching and health read, and the
//! counts the list page shows.

use jiff::Timestamp;
use sqlx::{AssertSqlSafe, QueryBuilder};

use super::Backend;
use super::audit;
use super::db::{RowsAffected, SqlDb};
use super::rows::*;
use crate::core::delivery_state::{Unsent, after_attempt};
use crate::core::id::{AccountId, WebhookId};
use crate::core::seal::Keyring;
use crate::core::trigger::Trigger;
use crate::store::{AuditEntry, Page, PageRequest, Result, StoreError, Webhook, WebhookStats};

pub async fn insert<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: &Keyring,
    webhook: &Webhook,
    audit: &AuditEntry,
) -> Result<()> {
    let (w, audit) = (webhook.clone(), audit.clone());
    let spec = spec_to_json(keys, w.id.as_str(), &w.spec)?;
    let secrets = secrets_to_json(keys, w.id.as_str(), &w.secrets)?;
    b.write(move |c| {
        Box::pin(async move {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO webhooks ({WEBHOOK_COLUMNS}, trigger) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            )))
            .bind(&w.id)
            .bind(&w.account_id)
            .bind(spec)
            .bind(w.spec.enabled)
            .bind(&w.disabled_reason)
            .bind(secrets)
            .bind(to_ms(w.created_at))
            .bind(to_ms(w.updated_at))
            .bind(w.last_success_at.map(to_ms))
            .bind(w.failing_since.map(to_ms))
            .bind(w.hold_until.map(to_ms))
            .bind(w.spec.trigger.id())
            .execute(&mut *c)
            .await?;
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

pub async fn get<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: &Keyring,
    account_id: &AccountId,
    id: &WebhookId,
) -> Result<Webhook> {
    let row = sqlx::query(SELECT_WEBHOOK)
        .bind(account_id)
        .bind(id)
        .fetch_one(b.read())
        .await?;
    webhook_from_row(keys, &row)
}

pub async fn list<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: &Keyring,
    account_id: &AccountId,
    page: &PageRequest,
) -> Result<Page<Webhook>> {
    let rows = sqlx::query(LIST_WEBHOOKS)
        .bind(account_id)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(limit_plus_one(page))
        .fetch_all(b.read())
        .await?;
    let items = rows
        .iter()
        .map(|r| webhook_from_row(keys, r))
        .collect::<Result<_>>()?;
    Ok(Page::from_rows(items, page.limit, |w: &Webhook| {
        w.id.to_string()
    }))
}

/// Written only if the stored webhook is still as it was read at `read_at`.
pub async fn update<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: &Keyring,
    webhook: &Webhook,
    read_at: Timestamp,
    audit: &AuditEntry,
) -> Result<()> {
    let (w, audit) = (webhook.clone(), audit.clone());
    let spec = spec_to_json(keys, w.id.as_str(), &w.spec)?;
    let secrets = secrets_to_json(keys, w.id.as_str(), &w.secrets)?;
    b.write(move |c| {
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE webhooks SET spec = $3, trigger = $4, enabled = $5, disabled_reason = $6, secrets = $7,
                 updated_at = $8 WHERE account_id = $1 AND id = $2 AND updated_at = $9",
            )
            .bind(&w.account_id)
            .bind(&w.id)
            .bind(spec)
            .bind(w.spec.trigger.id())
            .bind(w.spec.enabled)
            .bind(&w.disabled_reason)
            .bind(secrets)
            .bind(to_ms(w.updated_at))
            .bind(to_ms(read_at))
            .execute(&mut *c)
            .await?;
            if r.rows_affected() == 1 {
                return audit::insert_in::<DB>(c, &audit).await;
            }
            let exists: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) FROM webhooks WHERE account_id = $1 AND id = $2",
            )
            .bind(&w.account_id)
            .bind(&w.id)
            .fetch_optional(&mut *c)
            .await?;
            match exists {
                None => Err(StoreError::NotFound),
                Some(_) => Err(StoreError::Conflict(
                    "the webhook changed since it was read (another edit, or callhook disabled it); \
                     load it again and repeat the change"
                        .into(),
                )),
            }
        })
    })
    .await
}

/// Deletes the webhook; its unfinished deliveries end, and their log rows go with retention.
pub async fn delete<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &WebhookId,
    audit: &AuditEntry,
) -> Result<()> {
    let (account_id, id, audit) = (account_id.to_owned(), id.to_owned(), audit.clone());
    b.write(move |c| {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM webhooks WHERE account_id = $1 AND id = $2")
                .bind(&account_id)
                .bind(&id)
                .execute(&mut *c)
                .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            let (state, _) = after_attempt(&Unsent::NEXT);
            sqlx::query(
                "UPDATE deliveries SET state = $2, next_attempt_at = NULL, last_error = $3
                 WHERE webhook_id = $1 AND state IN ('queued', 'waiting')",
            )
            .bind(&id)
            .bind(state.as_str())
            .bind(Unsent::WebhookDeleted.note())
            .execute(&mut *c)
            .await?;
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

/// Enabled webhooks of the account with one of `triggers`.
pub async fn matching<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: &Keyring,
    account_id: &AccountId,
    triggers: &[Trigger],
) -> Result<Vec<Webhook>> {
    if triggers.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<DB>::new(format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE enabled AND account_id = "
    ));
    q.push_bind(account_id);
    q.push(" AND trigger IN (");
    let mut sep = q.separated(", ");
    for t in triggers {
        sep.push_bind(t.id());
    }
    q.push(")");
    let rows = q.build().fetch_all(b.read()).await?;
    rows.iter().map(|r| webhook_from_row(keys, r)).collect()
}

/// Outcome counts over each webhook's `recent` latest deliveries.
pub async fn stats<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    recent: u32,
) -> Result<Vec<(WebhookId, WebhookStats)>> {
    // Every subquery in FROM is named: PostgreSQL before 16 refuses one without a name.
    let rows = sqlx::query(
        "SELECT w.id,
                (SELECT COUNT(*) FROM (SELECT state FROM deliveries d WHERE d.webhook_id = w.id
                    ORDER BY d.seq DESC LIMIT $2) AS r WHERE state = 'succeeded') AS succeeded,
                (SELECT COUNT(*) FROM (SELECT state FROM deliveries d WHERE d.webhook_id = w.id
                    ORDER BY d.seq DESC LIMIT $2) AS r WHERE state = 'failed') AS failed,
                (SELECT COUNT(*) FROM (SELECT state FROM deliveries d WHERE d.webhook_id = w.id
                    ORDER BY d.seq DESC LIMIT $2) AS r WHERE state IN ('queued', 'waiting')) AS pending,
                (SELECT MAX(last_attempt_at) FROM (SELECT last_attempt_at FROM deliveries d
                    WHERE d.webhook_id = w.id ORDER BY d.seq DESC LIMIT $2) AS r) AS last_delivery_at
         FROM webhooks w WHERE w.account_id = $1",
    )
    .bind(account_id)
    .bind(recent as i64)
    .fetch_all(b.read())
    .await?;
    rows.iter().map(stats_from_row).collect()
}
