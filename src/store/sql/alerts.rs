//! Alerts (SPEC §12): an account's alert settings, and the alerts themselves, decided by
//! `core::alert` and stored as events with one delivery each (in the account's alert scope)
//! in the transaction that records the attempts that caused them, or in a sweep for what only
//! time brings. The per-webhook state of what was alerted is written in that same
//! transaction, under a lock per webhook, so no transition is alerted twice or lost.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, json};
use sqlx::QueryBuilder;

use super::Backend;
use super::audit;
use super::db::{Conn, RowsAffected, SqlDb};
use super::events::insert_in;
use super::rows::*;
use crate::core::alert::{self, About, Alert, Config, Detail, Seen, State};
use crate::core::delivery_state::{Health, health};
use crate::core::id::{AccountId, CallId, DeliveryId, EventId, PostedEventId, WebhookId};
use crate::core::retry::Next;
use crate::core::seal::Keyring;
use crate::core::trigger::Trigger;
use crate::core::webhook::WebhookSpec;
use crate::store::{
    AccountAlerts, AttemptRecord, AuditEntry, NewDelivery, NewEvent, Result, StoreError,
    StoredEvent, Webhook,
};

const COLUMNS: &str = "account_id, id, url, after_ms, secrets, created_at, updated_at";

fn from_row(keys: &Keyring, row: &impl Cols) -> Result<AccountAlerts> {
    let id: WebhookId = row.id("id")?;
    Ok(AccountAlerts {
        account_id: row.id("account_id")?,
        secrets: secrets_from_json(keys, id.as_str(), &row.text("secrets")?)?,
        id,
        url: row.opt_text("url")?,
        after: Duration::from_millis(row.int("after_ms")?.max(0) as u64),
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// The account's alert settings, made on first need.
pub async fn get_or_make<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: std::sync::Arc<Keyring>,
    account_id: &AccountId,
) -> Result<AccountAlerts> {
    let found = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM account_alerts WHERE account_id = $1"
    )))
    .bind(account_id)
    .fetch_optional(b.read())
    .await?;
    if let Some(row) = found {
        return from_row(&keys, &row);
    }
    let fresh = AccountAlerts::new(account_id, Timestamp::now());
    let secrets = secrets_to_json(&keys, fresh.id.as_str(), &fresh.secrets)?;
    b.write(move |c| {
        Box::pin(async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO account_alerts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (account_id) DO NOTHING"
            )))
            .bind(&fresh.account_id)
            .bind(&fresh.id)
            .bind(&fresh.url)
            .bind(fresh.after.as_millis() as i64)
            .bind(secrets)
            .bind(to_ms(fresh.created_at))
            .bind(to_ms(fresh.updated_at))
            .execute(&mut *c)
            .await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM account_alerts WHERE account_id = $1"
            )))
            .bind(&fresh.account_id)
            .fetch_one(&mut *c)
            .await?;
            from_row(&keys, &row)
        })
    })
    .await
}

/// Written only if the stored settings are still as read at `read_at`.
pub async fn update<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: &Keyring,
    alerts: &AccountAlerts,
    read_at: Timestamp,
    audit: &AuditEntry,
) -> Result<()> {
    let (a, audit) = (alerts.clone(), audit.clone());
    let secrets = secrets_to_json(keys, a.id.as_str(), &a.secrets)?;
    b.write(move |c| {
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE account_alerts SET url = $2, after_ms = $3, secrets = $4, updated_at = $5
                 WHERE account_id = $1 AND updated_at = $6",
            )
            .bind(&a.account_id)
            .bind(&a.url)
            .bind(a.after.as_millis() as i64)
            .bind(secrets)
            .bind(to_ms(a.updated_at))
            .bind(to_ms(read_at))
            .execute(&mut *c)
            .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::Conflict(
                    "the alert settings changed since they were read; load them again and repeat the change"
                        .into(),
                ));
            }
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

/// The account's alert receiver as the dispatcher sends to it: a webhook that POSTs JSON to
/// the alert URL, signed with the alert secrets, and is disabled while no URL is set.
pub fn as_webhook(a: &AccountAlerts) -> Result<Webhook> {
    let mut obj = Map::new();
    obj.insert("name".into(), json!("Alerts"));
    obj.insert("trigger".into(), json!(Trigger::ALL[0].id()));
    obj.insert(
        "url".into(),
        json!(a.url.as_deref().unwrap_or("https://alerts.invalid/")),
    );
    let mut spec =
        WebhookSpec::from_json(&obj).map_err(|e| StoreError::Corrupt(format!("alert url: {e}")))?;
    spec.enabled = a.url.is_some();
    Ok(Webhook {
        id: a.id.clone(),
        account_id: a.account_id.clone(),
        spec,
        disabled_reason: a.url.is_none().then(|| "no alert_url is set".to_owned()),
        secrets: a.secrets.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
        last_success_at: None,
        failing_since: None,
        hold_until: None,
        last_failure_at: None,
        last_error: None,
        recent: Default::default(),
    })
}

/// The alert receivers with these ids (for claimed alert deliveries).
pub async fn webhooks_in<DB: SqlDb>(
    conn: &mut Conn<DB>,
    keys: &Keyring,
    ids: &[&WebhookId],
) -> Result<HashMap<WebhookId, Webhook>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = QueryBuilder::<DB>::new(format!(
        "SELECT {COLUMNS} FROM account_alerts WHERE id IN ("
    ));
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    q.push(")");
    q.build()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            let w = as_webhook(&from_row(keys, r)?)?;
            Ok((w.id.clone(), w))
        })
        .collect()
}

/// A webhook with its account's alert settings and what it was last alerted about.
struct Watched {
    webhook: WebhookId,
    account: AccountId,
    about: About,
    trigger: Trigger,
    enabled: bool,
    failing_since: Option<Timestamp>,
    /// The account's alert receiver (its settings made), if any.
    receiver: Option<WebhookId>,
    cfg: Config,
    state: State,
}

/// Whether webhook `$1` may move its alerts: its account has alert settings, or it was
/// alerted about (the webhooks [`after_records`] takes up; of others it does nothing). SQLite's
/// writer asks this first and records the attempts of webhooks where it is false on its
/// connection directly.
pub(crate) const MAY_ALERT: &str = "SELECT EXISTS (SELECT 1 FROM webhooks w
    LEFT JOIN account_alerts a ON a.account_id = w.account_id
    LEFT JOIN webhook_alerts s ON s.webhook_id = w.id
    WHERE w.id = $1 AND (a.url IS NOT NULL OR s.failing_alerted IS NOT NULL
      OR s.failed_alert_at IS NOT NULL OR s.failed_count > 0 OR s.failed_last IS NOT NULL))";

/// Reads [`Watched`] rows for `ids` (webhooks of accounts; alert receivers are not among them).
async fn watched<DB: SqlDb>(
    conn: &mut Conn<DB>,
    ids: &[&WebhookId],
    failed_every: Duration,
) -> Result<Vec<Watched>> {
    let mut out = Vec::new();
    for chunk in super::shapes::padded_chunks(ids) {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT w.id, w.account_id, w.spec, w.enabled, w.failing_since, a.id AS receiver,
                    a.url, a.after_ms, s.failing_alerted, s.failed_alert_at, s.failed_count,
                    s.failed_last
             FROM webhooks w LEFT JOIN account_alerts a ON a.account_id = w.account_id
             LEFT JOIN webhook_alerts s ON s.webhook_id = w.id WHERE w.id IN (",
        );
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        q.push(")");
        for r in q.build().fetch_all(&mut *conn).await? {
            let spec = spec_without_headers(&r.text("spec")?)?;
            out.push(Watched {
                webhook: r.id("id")?,
                account: r.id("account_id")?,
                about: About {
                    id: r.text("id")?,
                    name: spec.name.clone(),
                    url: spec.url.as_str().to_owned(),
                },
                trigger: spec.trigger,
                enabled: r.boolean("enabled")?,
                failing_since: r.opt_ts("failing_since")?,
                receiver: r.opt_text("receiver")?.map(WebhookId::from_string),
                cfg: Config {
                    on: r.opt_text("url")?.is_some(),
                    after: Duration::from_millis(r.opt_int("after_ms")?.unwrap_or(0).max(0) as u64),
                    failed_every,
                },
                state: State {
                    failing_alerted: r.opt_ts("failing_alerted")?,
                    failed_alert_at: r.opt_ts("failed_alert_at")?,
                    failed_count: r.opt_int("failed_count")?.unwrap_or(0).max(0) as u32,
                    failed_last: r.opt_text("failed_last")?,
                },
            });
        }
    }
    Ok(out)
}

/// Locks what was alerted of these webhooks until the transaction ends (a lock per webhook,
/// the same on every node; SQLite's one writer needs none).
async fn lock<DB: SqlDb>(conn: &mut Conn<DB>, ids: &[&WebhookId]) -> Result<()> {
    let key = CallId::from_string("callhook:alerts".into());
    let keys: Vec<(&WebhookId, &CallId)> = ids.iter().map(|w| (*w, &key)).collect();
    DB::lock_calls(conn, &keys).await
}

/// The latest error of the webhook, and the failed delivery `last` when given.
async fn detail<DB: SqlDb>(
    conn: &mut Conn<DB>,
    webhook: &WebhookId,
    last: Option<&str>,
) -> Result<Detail> {
    let row = match last {
        Some(id) => sqlx::query(
            "SELECT id, call_id, attempts, last_status, last_error FROM deliveries WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?,
        None => {
            sqlx::query(
                "SELECT id, call_id, attempts, last_status, last_error FROM deliveries
                 WHERE webhook_id = $1 AND attempts > 0 ORDER BY created_at DESC, seq DESC LIMIT 1",
            )
            .bind(webhook)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let Some(r) = row else {
        return Ok(Detail::default());
    };
    Ok(Detail {
        delivery: Some((
            r.text("id")?,
            r.text("call_id")?,
            r.int("attempts")?.max(0) as u32,
        )),
        status: r
            .opt_int("last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        error: r.opt_text("last_error")?,
    })
}

/// Writes the new state of `w` and stores its alerts (events with one delivery each to the
/// account's alert receiver); answers how many.
async fn apply<DB: SqlDb>(
    conn: &mut Conn<DB>,
    w: &Watched,
    state: &State,
    alerts: &[Alert],
    now: Timestamp,
) -> Result<u64> {
    if *state != w.state {
        sqlx::query(
            "INSERT INTO webhook_alerts (webhook_id, account_id, failing_alerted, failed_alert_at, failed_count, failed_last)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (webhook_id) DO UPDATE SET failing_alerted = excluded.failing_alerted,
               failed_alert_at = excluded.failed_alert_at, failed_count = excluded.failed_count,
               failed_last = excluded.failed_last",
        )
        .bind(&w.webhook)
        .bind(&w.account)
        .bind(state.failing_alerted.map(to_ms))
        .bind(state.failed_alert_at.map(to_ms))
        .bind(i64::from(state.failed_count))
        .bind(&state.failed_last)
        .execute(&mut *conn)
        .await?;
    }
    let Some(receiver) = &w.receiver else {
        return Ok(0);
    };
    let mut events = Vec::with_capacity(alerts.len());
    for a in alerts {
        let last = match a {
            Alert::DeliveryFailed { last, .. } => Some(last.as_str()),
            _ => None,
        };
        let detail = match a {
            Alert::Failing { .. } | Alert::DeliveryFailed { .. } => {
                detail::<DB>(conn, &w.webhook, last).await?
            }
            _ => Detail::default(),
        };
        let id = EventId::new();
        events.push(NewEvent {
            event: StoredEvent {
                account_id: alert::scope(&w.account),
                // `<type>:<id>`: the log tells an alert's type from its event id.
                event_id: PostedEventId::from_string(format!("{}:{id}", a.kind().as_str())),
                id,
                call_id: CallId::from_string(w.webhook.as_str().to_owned()),
                event_type: a.kind().as_str().to_owned(),
                occurred_at: now,
                received_at: now,
                test: false,
                did_number: None,
                customer_number: None,
                payload: alert::body(a, &w.account, &w.about, &detail, now),
            },
            deliveries: vec![NewDelivery {
                id: DeliveryId::new(),
                webhook_id: receiver.clone(),
                trigger: w.trigger,
                attempt_limit: None,
                not_before: None,
                lease: None,
            }],
        });
    }
    if !events.is_empty() {
        insert_in::<DB>(conn, &events).await?;
    }
    Ok(events.len() as u64)
}

/// After a chunk of attempts is recorded (in its transaction): what each webhook's attempts
/// mean for its alerts. `applied` are the records whose lease held; `disabled` the webhooks
/// this chunk disabled, with the reason. Test sends never alert, nor do alerts themselves.
/// Answers how many alerts it stored.
pub async fn after_records<DB: SqlDb>(
    conn: &mut Conn<DB>,
    records: &[&AttemptRecord],
    disabled: &[(WebhookId, String)],
    now: i64,
) -> Result<u64> {
    let now = from_ms(now);
    let mut seen: HashMap<&WebhookId, Seen> = HashMap::new();
    for r in records.iter().filter(|r| !r.test) {
        let s = seen.entry(&r.webhook_id).or_default();
        if health(&r.next, r.attempt.is_some(), r.test) == Some(Health::Succeeded) {
            s.succeeded = true;
        }
        if matches!(r.next, Next::Failed) && r.attempt.is_some() {
            s.failed.push(r.delivery_id.as_str().to_owned());
        }
    }
    for (w, reason) in disabled {
        if let Some(s) = seen.get_mut(w) {
            s.disabled = Some(reason.clone());
        }
    }
    if seen.is_empty() {
        return Ok(0);
    }
    let mut ids: Vec<&WebhookId> = seen.keys().copied().collect();
    ids.sort();
    // Only webhooks whose account has alert settings, or that were alerted about, can move.
    let first = watched::<DB>(conn, &ids, alert::FAILED_EVERY_DEFAULT).await?;
    let mut involved: Vec<&WebhookId> = first
        .iter()
        .filter(|w| w.cfg.on || w.state != State::default())
        .filter_map(|w| seen.get_key_value(&w.webhook).map(|(k, _)| *k))
        .collect();
    if involved.is_empty() {
        return Ok(0);
    }
    involved.sort();
    lock::<DB>(conn, &involved).await?;
    let mut stored = 0;
    for w in watched::<DB>(conn, &involved, alert::FAILED_EVERY_DEFAULT).await? {
        let Some(s) = seen.get(&w.webhook) else {
            continue;
        };
        let s = Seen {
            failing_since: w.failing_since,
            enabled: w.enabled,
            ..s.clone()
        };
        let (state, alerts) = alert::after_attempts(&w.state, &s, &w.cfg, now);
        stored += apply::<DB>(conn, &w, &state, &alerts, now).await?;
    }
    Ok(stored)
}

/// The alerts that time alone brings (see [`crate::store::Store::sweep_alerts`]).
pub async fn sweep<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    now: Timestamp,
    failed_every: Duration,
) -> Result<u64> {
    let now_ms = to_ms(now);
    let every_ms = failed_every.as_millis().min(i64::MAX as u128) as i64;
    let rows = sqlx::query(
        "SELECT w.id AS id FROM webhooks w JOIN account_alerts a ON a.account_id = w.account_id
           LEFT JOIN webhook_alerts s ON s.webhook_id = w.id
         WHERE w.failing_since IS NOT NULL AND w.enabled AND a.url IS NOT NULL
           AND w.failing_since <= $1 - a.after_ms AND s.failing_alerted IS NULL
         UNION
         SELECT s.webhook_id AS id FROM webhook_alerts s JOIN account_alerts a ON a.account_id = s.account_id
           JOIN webhooks w ON w.id = s.webhook_id
         WHERE s.failed_count > 0 AND a.url IS NOT NULL
           AND (s.failed_alert_at IS NULL OR s.failed_alert_at <= $1 - $2)",
    )
    .bind(now_ms)
    .bind(every_ms)
    .fetch_all(b.read())
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut ids: Vec<WebhookId> = rows.iter().map(|r| r.id("id")).collect::<Result<_>>()?;
    ids.sort();
    ids.dedup();
    b.write(move |c| {
        Box::pin(async move {
            let refs: Vec<&WebhookId> = ids.iter().collect();
            lock::<DB>(c, &refs).await?;
            let mut n = 0;
            for w in watched::<DB>(c, &refs, failed_every).await? {
                let (state, alerts) =
                    alert::on_sweep(&w.state, w.failing_since, w.enabled, &w.cfg, now);
                n += apply::<DB>(c, &w, &state, &alerts, now).await?;
            }
            Ok(n)
        })
    })
    .await
}
