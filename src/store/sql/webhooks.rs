//! Webhooks: their spec and secrets as JSON, the columns matching and health read, and the
//! counts the list page shows.

use std::collections::HashMap;

use jiff::Timestamp;
use sqlx::{AssertSqlSafe, QueryBuilder};

use super::Backend;
use super::audit;
use super::db::{RowsAffected, SqlDb};
use super::rows::*;
use crate::core::delivery_state::{Unsent, after_attempt};
use crate::core::failure::{HealthState, LATENCY_BUCKETS, Window};
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
    let mut w = [webhook_from_row(keys, &row)?];
    fill_recent(b, &mut w, Timestamp::now()).await?;
    let [w] = w;
    Ok(w)
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
    let mut items: Vec<Webhook> = rows
        .iter()
        .map(|r| webhook_from_row(keys, r))
        .collect::<Result<_>>()?;
    fill_recent(b, &mut items, Timestamp::now()).await?;
    Ok(Page::from_rows(items, page.limit, |w: &Webhook| {
        w.id.to_string()
    }))
}

/// Fills in each webhook's last 24 hours (SPEC §12 health) from the hourly rollup, and its
/// deliveries retrying now from their small index: two statements for a whole page, never a
/// read of the log.
async fn fill_recent<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    webhooks: &mut [Webhook],
    now: Timestamp,
) -> Result<()> {
    if webhooks.is_empty() {
        return Ok(());
    }
    let now = to_ms(now);
    let since = now - now.rem_euclid(3_600_000) - 24 * 3_600_000;
    let mut q = QueryBuilder::<DB>::new(
        "SELECT webhook_id, CAST(SUM(succeeded) AS BIGINT) AS succeeded, CAST(SUM(failed) AS BIGINT) AS failed, \
         CAST(SUM(ok_attempts) AS BIGINT) AS ok_attempts, CAST(SUM(failed_attempts) AS BIGINT) AS failed_attempts",
    );
    for i in 0..LATENCY_BUCKETS {
        q.push(format!(", CAST(SUM(l{i}) AS BIGINT) AS l{i}"));
    }
    q.push(" FROM webhook_hours WHERE hour > ");
    q.push_bind(since);
    q.push(" AND webhook_id IN (");
    let mut sep = q.separated(", ");
    for w in webhooks.iter() {
        sep.push_bind(&w.id);
    }
    q.push(") GROUP BY webhook_id");
    let mut windows: HashMap<WebhookId, Window> = HashMap::with_capacity(webhooks.len());
    for row in q.build().fetch_all(b.read()).await? {
        let mut w = Window {
            succeeded: row.int("succeeded")? as u64,
            failed: row.int("failed")? as u64,
            ok_attempts: row.int("ok_attempts")? as u64,
            failed_attempts: row.int("failed_attempts")? as u64,
            ..Window::default()
        };
        for (i, l) in w.latency.iter_mut().enumerate() {
            *l = row.int(&format!("l{i}"))? as u64;
        }
        windows.insert(row.id("webhook_id")?, w);
    }
    let mut q = QueryBuilder::<DB>::new(
        "SELECT webhook_id, COUNT(*) AS n FROM deliveries WHERE state IN ('queued', 'waiting') \
         AND last_error_kind IS NOT NULL AND webhook_id IN (",
    );
    let mut sep = q.separated(", ");
    for w in webhooks.iter() {
        sep.push_bind(&w.id);
    }
    q.push(") GROUP BY webhook_id");
    for row in q.build().fetch_all(b.read()).await? {
        windows.entry(row.id("webhook_id")?).or_default().retrying = row.int("n")? as u64;
    }
    for w in webhooks {
        if let Some(window) = windows.remove(&w.id) {
            w.recent = window;
        }
    }
    Ok(())
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
            sqlx::query("DELETE FROM webhook_hours WHERE webhook_id = $1")
                .bind(&id)
                .execute(&mut *c)
                .await?;
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
        "SELECT {WEBHOOK_READ} FROM webhooks WHERE enabled AND account_id = "
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

/// Every webhook's health state, for metrics.
pub async fn states<DB: SqlDb>(b: &impl Backend<Db = DB>) -> Result<Vec<(WebhookId, HealthState)>> {
    let rows = sqlx::query(
        "SELECT id, enabled, failing_since, last_success_at, last_failure_at FROM webhooks",
    )
    .fetch_all(b.read())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.id("id")?,
                HealthState::of(
                    r.boolean("enabled")?,
                    r.opt_ts("failing_since")?,
                    r.opt_ts("last_success_at")?,
                    r.opt_ts("last_failure_at")?,
                ),
            ))
        })
        .collect()
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
                    ORDER BY d.created_at DESC, d.seq DESC LIMIT $2) AS r WHERE state = 'succeeded') AS succeeded,
                (SELECT COUNT(*) FROM (SELECT state FROM deliveries d WHERE d.webhook_id = w.id
                    ORDER BY d.created_at DESC, d.seq DESC LIMIT $2) AS r WHERE state = 'failed') AS failed,
                (SELECT COUNT(*) FROM (SELECT state FROM deliveries d WHERE d.webhook_id = w.id
                    ORDER BY d.created_at DESC, d.seq DESC LIMIT $2) AS r WHERE state IN ('queued', 'waiting')) AS pending,
                (SELECT MAX(last_attempt_at) FROM (SELECT last_attempt_at FROM deliveries d
                    WHERE d.webhook_id = w.id ORDER BY d.created_at DESC, d.seq DESC LIMIT $2) AS r) AS last_delivery_at
         FROM webhooks w WHERE w.account_id = $1",
    )
    .bind(account_id)
    .bind(recent as i64)
    .fetch_all(b.read())
    .await?;
    rows.iter().map(stats_from_row).collect()
}
