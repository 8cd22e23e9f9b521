//! The multi-row writes both databases share: storing events with their deliveries, recording
//! attempts, letting a call's next delivery go, completing claims. Their SQL is the same on
//! SQLite and PostgreSQL, so it is written once and instantiated per backend by
//! [`batched_writes!`], each backend supplying `lock_calls` (nothing on SQLite, whose single
//! writer already serialises; advisory locks on PostgreSQL, where nodes write concurrently).

/// Defines the shared write functions for one backend: `$db` is its `sqlx::Database`, `$conn`
/// its connection type.
macro_rules! batched_writes {
    ($db:ty, $conn:ty) => {
        /// Makes the earliest waiting delivery of each (webhook, call) due, unless one of that pair is
        /// already queued: the next of a call goes once the one before it has finished.
        async fn promote_next(
            conn: &mut $conn,
            pairs: &[(String, String)],
            now: i64,
        ) -> Result<()> {
            for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<$db>::new("WITH p(webhook_id, call_id) AS (");
                q.push_values(chunk, |mut b, (w, call)| {
                    b.push_bind(w).push_bind(call);
                });
                q.push(") UPDATE deliveries SET state = 'queued', next_attempt_at = ");
                q.push_bind(now);
                q.push(", updated_at = ");
                q.push_bind(now);
                q.push(
                    " WHERE seq IN (SELECT (SELECT d.seq FROM deliveries d WHERE d.webhook_id = p.webhook_id
                          AND d.call_id = p.call_id AND d.state = 'waiting' ORDER BY d.seq LIMIT 1) FROM p
                        WHERE NOT EXISTS (SELECT 1 FROM deliveries q WHERE q.webhook_id = p.webhook_id
                          AND q.call_id = p.call_id AND q.state = 'queued'))",
                );
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Records a chunk of attempts with one statement per table: the deliveries move on (only
        /// where the lease still holds), their attempts are logged, webhooks note successes or are
        /// disabled, and finished deliveries let the next of their call go.
        async fn record_chunk(c: &mut $conn, records: &[AttemptRecord], now: i64) -> Result<()> {
            use std::collections::HashMap;
            let mut q = QueryBuilder::<$db>::new(
                "WITH v(id, lease, state, next_at, has_attempt, started, status, err, latency) AS (",
            );
            q.push_values(records, |mut b, r| {
                let (state, next_at) = match &r.next {
                    Next::Succeeded => (STATE_SUCCEEDED, None),
                    Next::RetryAt(t) => (STATE_QUEUED, Some(to_ms(*t))),
                    Next::Failed => (STATE_FAILED, None),
                };
                let a = r.attempt.as_ref();
                b.push_bind(&r.delivery_id)
                    .push_bind(r.lease)
                    .push_bind(state)
                    .push_bind(next_at)
                    .push_bind(a.is_some() as i64)
                    .push_bind(a.map(|a| to_ms(a.started_at)))
                    .push_bind(a.and_then(|a| a.response_status.map(i64::from)))
                    .push_bind(match a {
                        Some(a) => a.error.as_deref(),
                        None => r.note.as_deref(),
                    })
                    .push_bind(a.map(|a| a.latency_ms as i64));
            });
            q.push(") UPDATE deliveries SET state = v.state, next_attempt_at = v.next_at, claimed_until = NULL, updated_at = ");
            q.push_bind(now);
            q.push(
                ", attempts = deliveries.attempts + v.has_attempt,
                   last_attempt_at = COALESCE(v.started, deliveries.last_attempt_at),
                   last_status = CASE WHEN v.has_attempt = 1 THEN v.status ELSE deliveries.last_status END,
                   last_error = v.err,
                   last_latency_ms = COALESCE(v.latency, deliveries.last_latency_ms)
                 FROM v WHERE deliveries.id = v.id AND deliveries.lease = v.lease
                 RETURNING deliveries.id AS id, deliveries.webhook_id AS webhook_id, deliveries.call_id AS call_id,
                           deliveries.attempts AS attempts",
            );
            let mut applied: HashMap<String, (String, String, i64)> = HashMap::with_capacity(records.len());
            for row in q.build().fetch_all(&mut *c).await? {
                applied.insert(
                    row.text("id")?,
                    (
                        row.text("webhook_id")?,
                        row.text("call_id")?,
                        row.int("attempts")?,
                    ),
                );
            }
            let mut attempts = Vec::new();
            // Real deliveries (not tests) tell whether a webhook is healthy: a success ends its
            // run of failures, a failed attempt starts one if none is running.
            let mut succeeded: Vec<&str> = Vec::new();
            let mut failing: Vec<&str> = Vec::new();
            let mut finished: Vec<(String, String)> = Vec::new();
            for r in records {
                let Some((webhook_id, call_id, n)) = applied.get(&r.delivery_id) else {
                    tracing::warn!(delivery = %r.delivery_id, "lease lost before the attempt was recorded; another worker owns it");
                    continue;
                };
                if let Some(a) = &r.attempt {
                    attempts.push((r.delivery_id.as_str(), *n, a));
                }
                if r.next == Next::Succeeded && !r.test && !succeeded.contains(&webhook_id.as_str()) {
                    succeeded.push(webhook_id);
                }
                if r.next != Next::Succeeded && r.attempt.is_some() && !r.test && !failing.contains(&webhook_id.as_str()) {
                    failing.push(webhook_id);
                }
                if !matches!(r.next, Next::RetryAt(_)) {
                    finished.push((webhook_id.clone(), call_id.clone()));
                }
                if let Some(reason) = &r.disable_webhook {
                    sqlx::query(
                        "UPDATE webhooks SET enabled = $4, disabled_reason = $2, updated_at = $3 WHERE id = $1 AND enabled",
                    )
                    .bind(webhook_id)
                    .bind(reason)
                    .bind(now)
                    .bind(false)
                    .execute(&mut *c)
                    .await?;
                }
            }
            if !attempts.is_empty() {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO attempts (delivery_id, n, started_at, latency_ms, request_method, request_url, \
                     request_headers, request_body, response_status, response_headers, response_body, error_kind, error) ",
                );
                q.push_values(&attempts, |mut b, (id, n, a)| {
                    b.push_bind(*id)
                        .push_bind(*n)
                        .push_bind(to_ms(a.started_at))
                        .push_bind(a.latency_ms as i64)
                        .push_bind(&a.request_method)
                        .push_bind(&a.request_url)
                        .push_bind(headers_to_json(&a.request_headers))
                        .push_bind(&a.request_body)
                        .push_bind(a.response_status.map(i64::from))
                        .push_bind(a.response_headers.as_deref().map(headers_to_json))
                        .push_bind(&a.response_body)
                        .push_bind(&a.error_kind)
                        .push_bind(&a.error);
                });
                q.build().execute(&mut *c).await?;
            }
            // A webhook with both in one batch ends failing: its latest attempt may be either,
            // and a failure noted with no run started is harmless.
            if !succeeded.is_empty() {
                let mut q = QueryBuilder::<$db>::new("UPDATE webhooks SET failing_since = NULL, last_success_at = ");
                q.push_bind(now);
                q.push(" WHERE id IN (");
                let mut sep = q.separated(", ");
                for w in &succeeded {
                    sep.push_bind(*w);
                }
                q.push(")");
                q.build().execute(&mut *c).await?;
            }
            if !failing.is_empty() {
                let mut q = QueryBuilder::<$db>::new("UPDATE webhooks SET failing_since = COALESCE(failing_since, ");
                q.push_bind(now);
                q.push(") WHERE id IN (");
                let mut sep = q.separated(", ");
                for w in &failing {
                    sep.push_bind(*w);
                }
                q.push(")");
                q.build().execute(&mut *c).await?;
            }
            finished.sort();
            finished.dedup();
            let keys: Vec<(&str, &str)> = finished.iter().map(|(w, call)| (w.as_str(), call.as_str())).collect();
            lock_calls(c, &keys).await?;
            promote_next(c, &finished, now).await
        }

        /// Loads what a dispatcher needs for leased rows `(id, lease, trigger, attempts, limit, event_seq, webhook_id)`.
        async fn complete_claims(
            conn: &mut $conn,
            rows: Vec<<$db as sqlx::Database>::Row>,
            lease_until: Timestamp,
        ) -> Result<Vec<Claimed>> {
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let mut event_seqs: Vec<i64> = Vec::with_capacity(rows.len());
            let mut webhook_ids: Vec<String> = Vec::new();
            for r in &rows {
                event_seqs.push(r.int("event_seq")?);
                let w = r.text("webhook_id")?;
                if !webhook_ids.contains(&w) {
                    webhook_ids.push(w);
                }
            }
            let mut q =
                QueryBuilder::<$db>::new("SELECT seq, event_id, payload, test FROM events WHERE seq IN (");
            let mut sep = q.separated(", ");
            for s in &event_seqs {
                sep.push_bind(*s);
            }
            q.push(")");
            let events: std::collections::HashMap<i64, (String, String, bool)> = q
                .build()
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        r.int("seq")?,
                        (r.text("event_id")?, r.text("payload")?, r.boolean("test")?),
                    ))
                })
                .collect::<Result<_>>()?;
            let mut q = QueryBuilder::<$db>::new(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id IN ("
            ));
            let mut sep = q.separated(", ");
            for w in &webhook_ids {
                sep.push_bind(w.as_str());
            }
            q.push(")");
            let webhooks: std::collections::HashMap<String, Webhook> = q
                .build()
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| webhook_from_row(r).map(|w| (w.id.clone(), w)))
                .collect::<Result<_>>()?;
            let mut out = Vec::with_capacity(rows.len());
            let mut gone = Vec::new();
            for r in rows {
                let delivery_id = r.text("id")?;
                let webhook_id = r.text("webhook_id")?;
                let event_seq = r.int("event_seq")?;
                let (Some(webhook), Some((event_id, payload, test))) =
                    (webhooks.get(&webhook_id), events.get(&event_seq))
                else {
                    // Its webhook was deleted (or its event pruned): nothing is left to send.
                    // It ends like any failed delivery, so the next of its call can go.
                    let what = if webhooks.contains_key(&webhook_id) { "event" } else { "webhook" };
                    gone.push(AttemptRecord {
                        delivery_id,
                        webhook_id,
                        lease: r.int("lease")?,
                        attempt: None,
                        next: Next::Failed,
                        disable_webhook: None,
                        note: Some(format!("not sent: its {what} no longer exists")),
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
                });
            }
            if !gone.is_empty() {
                record_chunk(conn, &gone, to_ms(Timestamp::now())).await?;
            }
            Ok(out)
        }

        /// Most deliveries one hold moves per statement.
        const HOLD_ROWS_PER_STATEMENT: i64 = 2000;

        /// Stores events and their deliveries; an event whose id the account used before is skipped.
        /// Most rows in one multi-row statement (SQLite allows 32766 bound values).
        const ROWS_PER_STATEMENT: usize = 250;

        /// Stores events and their deliveries with a few multi-row statements, whatever the batch
        /// size; an event whose id the account used before is skipped. When an event breaks the
        /// one-`call.ended` rule the batch is redone one event at a time, to name the culprit.
        async fn insert_events_in(c: &mut $conn, events: &[NewEvent]) -> Result<Vec<Inserted>> {
            sqlx::query("SAVEPOINT ingest").execute(&mut *c).await?;
            let batched = insert_events_batched(c, events).await;
            let undo = if batched.is_ok() {
                "RELEASE ingest"
            } else {
                "ROLLBACK TO ingest; RELEASE ingest"
            };
            sqlx::raw_sql(undo).execute(&mut *c).await?;
            match batched {
                Err(StoreError::Database(e))
                    if e.as_database_error()
                        .is_some_and(|d| d.is_unique_violation()) =>
                {
                    insert_events_one_by_one(c, events).await
                }
                other => other,
            }
        }

        async fn insert_events_batched(
            c: &mut $conn,
            events: &[NewEvent],
        ) -> Result<Vec<Inserted>> {
            use std::collections::{HashMap, HashSet};
            let mut seqs: HashMap<(String, String), i64> = HashMap::with_capacity(events.len());
            for chunk in events.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO events (id, account_id, event_id, call_id, type, occurred_at, received_at, test, payload) ",
                );
                q.push_values(chunk, |mut b, ne| {
                    let e = &ne.event;
                    b.push_bind(&e.id)
                        .push_bind(&e.account_id)
                        .push_bind(&e.event_id)
                        .push_bind(&e.call_id)
                        .push_bind(&e.event_type)
                        .push_bind(to_ms(e.occurred_at))
                        .push_bind(to_ms(e.received_at))
                        .push_bind(e.test)
                        .push_bind(&e.payload);
                });
                q.push(" ON CONFLICT(account_id, event_id) DO NOTHING RETURNING seq, account_id, event_id");
                for row in q.build().fetch_all(&mut *c).await? {
                    seqs.insert(
                        (row.text("account_id")?, row.text("event_id")?),
                        row.int("seq")?,
                    );
                }
            }
            // Which events are new (the first of a repeated id in the batch wins), and their seq.
            let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(events.len());
            let mut out = Vec::with_capacity(events.len());
            let mut fresh: Vec<(&NewEvent, i64)> = Vec::with_capacity(events.len());
            for ne in events {
                let e = &ne.event;
                let first = seen.insert((e.account_id.as_str(), e.event_id.as_str()));
                match seqs.get(&(e.account_id.clone(), e.event_id.clone())) {
                    Some(seq) if first => {
                        fresh.push((ne, *seq));
                        out.push(Inserted::New(ne.deliveries.len()));
                    }
                    _ => out.push(Inserted::Duplicate),
                }
            }
            // A delivery waits when its webhook still has an unfinished delivery of the same call,
            // stored before or earlier in this batch.
            let pairs: Vec<(&str, &str)> = fresh
                .iter()
                .flat_map(|(ne, _)| {
                    ne.deliveries
                        .iter()
                        .map(|d| (d.webhook_id.as_str(), ne.event.call_id.as_str()))
                })
                .collect();
            lock_calls(c, &pairs).await?;
            let mut busy: HashSet<(String, String)> = HashSet::new();
            for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<$db>::new("WITH p(webhook_id, call_id) AS (");
                q.push_values(chunk, |mut b, (w, call)| {
                    b.push_bind(*w).push_bind(*call);
                });
                q.push(
                    ") SELECT DISTINCT d.webhook_id, d.call_id FROM p JOIN deliveries d
                       ON d.webhook_id = p.webhook_id AND d.call_id = p.call_id WHERE d.state IN ('queued', 'waiting')",
                );
                for row in q.build().fetch_all(&mut *c).await? {
                    busy.insert((row.text("webhook_id")?, row.text("call_id")?));
                }
            }
            struct Row<'a> {
                d: &'a NewDelivery,
                e: &'a StoredEvent,
                seq: i64,
                waiting: bool,
            }
            let mut rows: Vec<Row> = Vec::with_capacity(pairs.len());
            for (ne, seq) in &fresh {
                for d in &ne.deliveries {
                    let waiting = !busy.insert((d.webhook_id.clone(), ne.event.call_id.clone()));
                    rows.push(Row {
                        d,
                        e: &ne.event,
                        seq: *seq,
                        waiting,
                    });
                }
            }
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO deliveries (id, account_id, webhook_id, event_seq, call_id, trigger, state, \
                     next_attempt_at, created_at, updated_at, attempt_limit) ",
                );
                q.push_values(chunk, |mut b, r| {
                    let at = to_ms(r.e.received_at);
                    let due = r.d.not_before.map_or(at, |t| to_ms(t).max(at));
                    b.push_bind(&r.d.id)
                        .push_bind(&r.e.account_id)
                        .push_bind(&r.d.webhook_id)
                        .push_bind(r.seq)
                        .push_bind(&r.e.call_id)
                        .push_bind(r.d.trigger.id())
                        .push_bind(if r.waiting {
                            STATE_WAITING
                        } else {
                            STATE_QUEUED
                        })
                        .push_bind((!r.waiting).then_some(due))
                        .push_bind(at)
                        .push_bind(at)
                        .push_bind(r.d.attempt_limit.map(i64::from));
                });
                q.build().execute(&mut *c).await?;
            }
            Ok(out)
        }

        /// The same, one statement per row: slow, but it tells which event broke a rule.
        async fn insert_events_one_by_one(
            c: &mut $conn,
            events: &[NewEvent],
        ) -> Result<Vec<Inserted>> {
            let mut out = Vec::with_capacity(events.len());
            for (i, ne) in events.iter().enumerate() {
                let e = &ne.event;
                let seq: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO events (id, account_id, event_id, call_id, type, occurred_at, received_at, test, payload)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT(account_id, event_id) DO NOTHING RETURNING seq",
                )
                .bind(&e.id)
                .bind(&e.account_id)
                .bind(&e.event_id)
                .bind(&e.call_id)
                .bind(&e.event_type)
                .bind(to_ms(e.occurred_at))
                .bind(to_ms(e.received_at))
                .bind(e.test)
                .bind(&e.payload)
                .fetch_optional(&mut *c)
                .await
                .map_err(|err| match err {
                    sqlx::Error::Database(d) if d.is_unique_violation() => {
                        let mut fe = FieldErrors::default();
                        fe.push(
                            if events.len() > 1 { format!("[{i}].type") } else { "type".into() },
                            format!("call {} already has a call.ended event; a call ends once", e.call_id),
                        );
                        StoreError::Rejected(fe)
                    }
                    other => other.into(),
                })?;
                let Some(seq) = seq else {
                    out.push(Inserted::Duplicate);
                    continue;
                };
                for d in &ne.deliveries {
                    sqlx::query(
                        "INSERT INTO deliveries (id, account_id, webhook_id, event_seq, call_id, trigger, state,
                                                 next_attempt_at, created_at, updated_at, attempt_limit)
                         SELECT $1, $2, $3, $4, $5, $6, CASE WHEN b THEN 'waiting' ELSE 'queued' END,
                                CASE WHEN b THEN NULL ELSE $7 END, $7, $7, $8
                         FROM (SELECT EXISTS (SELECT 1 FROM deliveries WHERE webhook_id = $3 AND call_id = $5
                                              AND state IN ('queued', 'waiting')) AS b) AS busy",
                    )
                    .bind(&d.id)
                    .bind(&e.account_id)
                    .bind(&d.webhook_id)
                    .bind(seq)
                    .bind(&e.call_id)
                    .bind(d.trigger.id())
                    .bind(to_ms(e.received_at))
                    .bind(d.attempt_limit.map(i64::from))
                    .execute(&mut *c)
                    .await?;
                }
                out.push(Inserted::New(ne.deliveries.len()));
            }
            Ok(out)
        }
    };
}

pub(crate) use batched_writes;
