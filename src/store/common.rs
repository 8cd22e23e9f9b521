//! The `Store` methods whose SQL is the same on SQLite and PostgreSQL, written once.
//!
//! Each backend has the same two entry points, `self.write(|conn| …)` (one transaction, answered
//! once committed) and `self.read` (a pool for reads); [`impl_store!`] writes the trait impl
//! for a backend from these shared methods plus the few whose SQL differs, which the backend
//! passes in.

/// `impl Store for $store` from the shared methods and the backend's own (`$($own)*`). Where
/// only a fragment of SQL differs, the backend defines it as a constant the shared code names:
/// `WEBHOOKS_USING_NUMBER` (JSON array search) and `CALL_FIELDS` (JSON field access).
macro_rules! impl_store {
    ($store:ty, $db:ty, $conn:ty, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl Store for $store {
            $($own)*

            async fn delete_number(&self, account_id: &str, number: &E164) -> Result<()> {
                let (account_id, number) = (account_id.to_owned(), number.clone());
                self.write(move |c| {
                    Box::pin(async move {
                        let using: Vec<String> = sqlx::query_scalar(WEBHOOKS_USING_NUMBER)
                        .bind(&account_id)
                        .bind(number.as_str())
                        .fetch_all(&mut *c)
                        .await?;
                        if !using.is_empty() {
                            return Err(StoreError::Conflict(format!(
                                "{number} is used by webhook{} {}; remove it from {} first, or a webhook would start firing for every number",
                                if using.len() == 1 { "" } else { "s" },
                                using.join(", "),
                                if using.len() == 1 { "it" } else { "them" },
                            )));
                        }
                        let r = sqlx::query("DELETE FROM numbers WHERE account_id = $1 AND number = $2")
                            .bind(&account_id)
                            .bind(number.as_str())
                            .execute(&mut *c)
                            .await?;
                        if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
                    })
                })
                .await
            }

            async fn recent_calls(&self, account_id: &str, limit: u32) -> Result<Vec<CallSummary>> {
                // Only the account's latest events are grouped, so the page stays quick however long
                // the history is; a call older than that window simply drops off the list.
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "WITH recent AS (
                         SELECT seq, call_id, received_at FROM events
                         WHERE account_id = $1 AND NOT test ORDER BY seq DESC LIMIT 5000),
                     calls AS (
                         SELECT call_id, COUNT(*) AS events, MIN(received_at) AS first_at,
                                MAX(received_at) AS last_at, MAX(seq) AS last_seq
                         FROM recent GROUP BY call_id ORDER BY last_seq DESC LIMIT $2)
                     SELECT c.call_id, c.events, c.first_at, c.last_at, l.type AS last_type, {CALL_FIELDS},
                            (SELECT COUNT(*) FROM deliveries d WHERE d.event_seq IN
                                (SELECT seq FROM events e WHERE e.account_id = $1 AND e.call_id = c.call_id)) AS deliveries
                     FROM calls c JOIN events l ON l.seq = c.last_seq
                     ORDER BY c.last_seq DESC"
                )))
                .bind(account_id)
                .bind(limit as i64)
                .fetch_all(&self.read)
                .await?;
                rows.iter().map(call_summary_from_row).collect()
            }

                async fn heartbeat(&self, node_id: &str, now: Timestamp, alive_since: Timestamp) -> Result<u32> {
                    let node_id = node_id.to_owned();
                    let (now, alive_since) = (to_ms(now), to_ms(alive_since));
                    self.write(move |c| {
                        Box::pin(async move {
                            sqlx::query(
                                "INSERT INTO nodes (id, seen_at) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET seen_at = $2",
                            )
                            .bind(&node_id)
                            .bind(now)
                            .execute(&mut *c)
                            .await?;
                            sqlx::query("DELETE FROM nodes WHERE seen_at < $1")
                                .bind(now - 3_600_000)
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

                async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<bool> {
                    let (key, value) = (key.to_owned(), value.to_owned());
                    self.write(move |c| {
                        Box::pin(async move {
                            let r = sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                                .bind(key)
                                .bind(value)
                                .execute(&mut *c)
                                .await?;
                            Ok(r.rows_affected() == 1)
                        })
                    })
                    .await
                }

                async fn ping(&self) -> Result<()> {
                    self.write(|c| {
                        Box::pin(async move {
                            sqlx::query("SELECT 1").execute(&mut *c).await?;
                            Ok(())
                        })
                    })
                    .await
                }

                async fn get_setting(&self, key: &str) -> Result<Option<String>> {
                    Ok(
                        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                            .bind(key)
                            .fetch_optional(&self.read)
                            .await?,
                    )
                }

                async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
                    let (key, value) = (key.to_owned(), value.to_owned());
                    self.write(move |c| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT(key) DO UPDATE SET value = $2")
                                .bind(key)
                                .bind(value)
                                .execute(&mut *c)
                                .await?;
                            Ok(())
                        })
                    })
                    .await
                }

                async fn insert_account(&self, account: &Account) -> Result<()> {
                    let a = account.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
                                .bind(&a.id)
                                .bind(&a.name)
                                .bind(to_ms(a.created_at))
                                .execute(&mut *c)
                                .await?;
                            Ok(())
                        })
                    })
                    .await
                }

                async fn get_account(&self, id: &str) -> Result<Account> {
                    let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE id = $1")
                        .bind(id)
                        .fetch_one(&self.read)
                        .await?;
                    account_from_row(&row)
                }

                async fn list_accounts(&self, page: &PageRequest) -> Result<Page<Account>> {
                    let rows = sqlx::query(
                        "SELECT id, name, created_at FROM accounts WHERE id > $1 ORDER BY id LIMIT $2",
                    )
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(limit_plus_one(page))
                    .fetch_all(&self.read)
                    .await?;
                    let items = rows.iter().map(account_from_row).collect::<Result<_>>()?;
                    Ok(Page::from_rows(items, page.limit, |a: &Account| {
                        a.id.clone()
                    }))
                }

                async fn insert_api_key(&self, key: &ApiKey, hash: &str) -> Result<()> {
                    let (k, hash) = (key.clone(), hash.to_owned());
                    self.write(move |c| {
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

                async fn list_api_keys(&self, account_id: &str, page: &PageRequest) -> Result<Page<ApiKey>> {
                    let rows = sqlx::query(
                        "SELECT id, account_id, name, prefix, created_at, last_used_at FROM api_keys
                         WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                    )
                    .bind(account_id)
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(limit_plus_one(page))
                    .fetch_all(&self.read)
                    .await?;
                    let items = rows.iter().map(api_key_from_row).collect::<Result<_>>()?;
                    Ok(Page::from_rows(items, page.limit, |k: &ApiKey| {
                        k.id.clone()
                    }))
                }

                async fn delete_api_key(&self, account_id: &str, id: &str) -> Result<()> {
                    let (account_id, id) = (account_id.to_owned(), id.to_owned());
                    self.write(move |c| {
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

                async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
                    let row = sqlx::query(
                        "SELECT id, account_id, name, prefix, created_at, last_used_at FROM api_keys WHERE hash = $1",
                    )
                    .bind(hash)
                    .fetch_optional(&self.read)
                    .await?;
                    row.as_ref().map(api_key_from_row).transpose()
                }

                async fn touch_api_key(&self, id: &str, now: Timestamp) -> Result<()> {
                    let id = id.to_owned();
                    self.write(move |c| {
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

                async fn insert_user(&self, user: &User) -> Result<()> {
                    let u = user.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            let r = sqlx::query(
                                "INSERT INTO users (id, account_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)
                                 ON CONFLICT(email) DO NOTHING",
                            )
                            .bind(&u.id)
                            .bind(&u.account_id)
                            .bind(&u.email)
                            .bind(&u.password_hash)
                            .bind(to_ms(u.created_at))
                            .execute(&mut *c)
                            .await?;
                            if r.rows_affected() == 0 {
                                return Err(StoreError::Conflict(format!("a user with email {} already exists", u.email)));
                            }
                            Ok(())
                        })
                    })
                    .await
                }

                async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
                    let row = sqlx::query(
                        "SELECT id, account_id, email, password_hash, created_at FROM users WHERE email = $1",
                    )
                    .bind(email)
                    .fetch_optional(&self.read)
                    .await?;
                    row.as_ref().map(user_from_row).transpose()
                }

                async fn insert_number(&self, account_id: &str, number: &Number) -> Result<()> {
                    let (account_id, n) = (account_id.to_owned(), number.clone());
                    self.write(move |c| {
                        Box::pin(async move {
                            let r = sqlx::query(
                                "INSERT INTO numbers (account_id, number, label, created_at) VALUES ($1, $2, $3, $4)
                                 ON CONFLICT(account_id, number) DO NOTHING",
                            )
                            .bind(&account_id)
                            .bind(n.number.as_str())
                            .bind(&n.label)
                            .bind(to_ms(n.created_at))
                            .execute(&mut *c)
                            .await?;
                            if r.rows_affected() == 0 {
                                return Err(StoreError::Conflict(format!("{} is already one of your numbers", n.number)));
                            }
                            Ok(())
                        })
                    })
                    .await
                }

                async fn list_numbers(&self, account_id: &str, page: &PageRequest) -> Result<Page<Number>> {
                    let rows = sqlx::query(
                        "SELECT number, label, created_at FROM numbers WHERE account_id = $1 AND number > $2 ORDER BY number LIMIT $3",
                    )
                    .bind(account_id)
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(limit_plus_one(page))
                    .fetch_all(&self.read)
                    .await?;
                    let items = rows.iter().map(number_from_row).collect::<Result<_>>()?;
                    Ok(Page::from_rows(items, page.limit, |n: &Number| {
                        n.number.to_string()
                    }))
                }

                async fn get_number(&self, account_id: &str, number: &E164) -> Result<Number> {
                    let row = sqlx::query(
                        "SELECT number, label, created_at FROM numbers WHERE account_id = $1 AND number = $2",
                    )
                    .bind(account_id)
                    .bind(number.as_str())
                    .fetch_one(&self.read)
                    .await?;
                    number_from_row(&row)
                }

                async fn set_number_label(
                    &self,
                    account_id: &str,
                    number: &E164,
                    label: Option<&str>,
                ) -> Result<()> {
                    let (account_id, number, label) = (
                        account_id.to_owned(),
                        number.clone(),
                        label.map(str::to_owned),
                    );
                    self.write(move |c| {
                        Box::pin(async move {
                            let r = sqlx::query(
                                "UPDATE numbers SET label = $3 WHERE account_id = $1 AND number = $2",
                            )
                            .bind(account_id)
                            .bind(number.as_str())
                            .bind(label)
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

                async fn unknown_numbers(&self, account_id: &str, numbers: &[E164]) -> Result<Vec<E164>> {
                    if numbers.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut q = QueryBuilder::<$db>::new("SELECT number FROM numbers WHERE account_id = ");
                    q.push_bind(account_id);
                    q.push(" AND number IN (");
                    let mut sep = q.separated(", ");
                    for n in numbers {
                        sep.push_bind(n.as_str());
                    }
                    q.push(")");
                    let known: Vec<String> = q.build_query_scalar().fetch_all(&self.read).await?;
                    Ok(numbers
                        .iter()
                        .filter(|n| !known.iter().any(|k| k == n.as_str()))
                        .cloned()
                        .collect())
                }

                async fn insert_webhook(&self, webhook: &Webhook) -> Result<()> {
                    let w = webhook.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            sqlx::query(AssertSqlSafe(format!(
                                "INSERT INTO webhooks ({WEBHOOK_COLUMNS}, trigger) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                            )))
                            .bind(&w.id)
                            .bind(&w.account_id)
                            .bind(serde_json::Value::Object(w.spec.to_json()).to_string())
                            .bind(w.spec.enabled)
                            .bind(&w.disabled_reason)
                            .bind(secrets_to_json(&w.secrets))
                            .bind(to_ms(w.created_at))
                            .bind(to_ms(w.updated_at))
                            .bind(w.last_success_at.map(to_ms))
                            .bind(w.failing_since.map(to_ms))
                            .bind(w.hold_until.map(to_ms))
                            .bind(w.spec.trigger.id())
                            .execute(&mut *c)
                            .await?;
                            Ok(())
                        })
                    })
                    .await
                }

                async fn get_webhook(&self, account_id: &str, id: &str) -> Result<Webhook> {
                    let row = sqlx::query(SELECT_WEBHOOK)
                        .bind(account_id)
                        .bind(id)
                        .fetch_one(&self.read)
                        .await?;
                    webhook_from_row(&row)
                }

                async fn list_webhooks(&self, account_id: &str, page: &PageRequest) -> Result<Page<Webhook>> {
                    let rows = sqlx::query(LIST_WEBHOOKS)
                        .bind(account_id)
                        .bind(page.after.as_deref().unwrap_or(""))
                        .bind(limit_plus_one(page))
                        .fetch_all(&self.read)
                        .await?;
                    let items = rows.iter().map(webhook_from_row).collect::<Result<_>>()?;
                    Ok(Page::from_rows(items, page.limit, |w: &Webhook| {
                        w.id.clone()
                    }))
                }

                async fn update_webhook(&self, webhook: &Webhook, read_at: Timestamp) -> Result<()> {
                    let w = webhook.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            let r = sqlx::query(
                                "UPDATE webhooks SET spec = $3, trigger = $4, enabled = $5, disabled_reason = $6, secrets = $7,
                                 updated_at = $8 WHERE account_id = $1 AND id = $2 AND updated_at = $9",
                            )
                            .bind(&w.account_id)
                            .bind(&w.id)
                            .bind(serde_json::Value::Object(w.spec.to_json()).to_string())
                            .bind(w.spec.trigger.id())
                            .bind(w.spec.enabled)
                            .bind(&w.disabled_reason)
                            .bind(secrets_to_json(&w.secrets))
                            .bind(to_ms(w.updated_at))
                            .bind(to_ms(read_at))
                            .execute(&mut *c)
                            .await?;
                            if r.rows_affected() == 1 {
                                return Ok(());
                            }
                            let exists: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM webhooks WHERE account_id = $1 AND id = $2")
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

                async fn delete_webhook(&self, account_id: &str, id: &str) -> Result<()> {
                    let (account_id, id) = (account_id.to_owned(), id.to_owned());
                    self.write(move |c| {
                        Box::pin(async move {
                            let r = sqlx::query("DELETE FROM webhooks WHERE account_id = $1 AND id = $2")
                                .bind(&account_id)
                                .bind(&id)
                                .execute(&mut *c)
                                .await?;
                            if r.rows_affected() == 0 {
                                return Err(StoreError::NotFound);
                            }
                            // Unfinished deliveries end here; the log rows go with retention.
                            sqlx::query(
                                "UPDATE deliveries SET state = 'failed', next_attempt_at = NULL, last_error = 'the webhook was deleted'
                                 WHERE webhook_id = $1 AND state IN ('queued', 'waiting')",
                            )
                            .bind(&id)
                            .execute(&mut *c)
                            .await?;
                            Ok(())
                        })
                    })
                    .await
                }

                async fn webhooks_for(&self, account_id: &str, triggers: &[Trigger]) -> Result<Vec<Webhook>> {
                    if triggers.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut q = QueryBuilder::<$db>::new(format!(
                        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE enabled AND account_id = "
                    ));
                    q.push_bind(account_id);
                    q.push(" AND trigger IN (");
                    let mut sep = q.separated(", ");
                    for t in triggers {
                        sep.push_bind(t.id());
                    }
                    q.push(")");
                    let rows = q.build().fetch_all(&self.read).await?;
                    rows.iter().map(webhook_from_row).collect()
                }

                async fn webhook_stats(
                    &self,
                    account_id: &str,
                    recent: u32,
                ) -> Result<Vec<(String, WebhookStats)>> {
                    let rows = sqlx::query(
                        "SELECT w.id,
                                (SELECT COUNT(*) FROM (SELECT state FROM deliveries d WHERE d.webhook_id = w.id
                                    ORDER BY d.seq DESC LIMIT $2) WHERE state = 'succeeded') AS succeeded,
                                (SELECT COUNT(*) FROM (SELECT state FROM deliveries d WHERE d.webhook_id = w.id
                                    ORDER BY d.seq DESC LIMIT $2) WHERE state = 'failed') AS failed,
                                (SELECT COUNT(*) FROM (SELECT state FROM deliveries d WHERE d.webhook_id = w.id
                                    ORDER BY d.seq DESC LIMIT $2) WHERE state IN ('queued', 'waiting')) AS pending,
                                (SELECT MAX(last_attempt_at) FROM (SELECT last_attempt_at FROM deliveries d
                                    WHERE d.webhook_id = w.id ORDER BY d.seq DESC LIMIT $2)) AS last_delivery_at
                         FROM webhooks w WHERE w.account_id = $1",
                    )
                    .bind(account_id)
                    .bind(recent as i64)
                    .fetch_all(&self.read)
                    .await?;
                    rows.iter().map(stats_from_row).collect()
                }

                async fn insert_test_delivery(
                    &self,
                    event: NewEvent,
                    lease_until: Timestamp,
                ) -> Result<Claimed> {
                    self.write(move |c| {
                        Box::pin(async move {
                            let ids: Vec<String> = event.deliveries.iter().map(|d| d.id.clone()).collect();
                            insert_events_in(c, std::slice::from_ref(&event)).await?;
                            let mut q = QueryBuilder::<$db>::new("UPDATE deliveries SET lease = lease + 1, state = 'queued', next_attempt_at = ");
                            q.push_bind(to_ms(lease_until));
                            q.push(", claimed_until = ");
                            q.push_bind(to_ms(lease_until));
                            q.push(" WHERE id IN (");
                            let mut sep = q.separated(", ");
                            for id in &ids {
                                sep.push_bind(id.as_str());
                            }
                            q.push(") RETURNING id, lease, trigger, attempts, attempt_limit, event_seq, webhook_id");
                            let rows = q.build().fetch_all(&mut *c).await?;
                            complete_claims(c, rows, lease_until).await?.pop().ok_or(StoreError::NotFound)
                        })
                    })
                    .await
                }

                async fn record_attempts(&self, records: Vec<AttemptRecord>, now: Timestamp) -> Result<()> {
                    let now = to_ms(now);
                    self.write(move |c| {
                        Box::pin(async move {
                            for chunk in records.chunks(ROWS_PER_STATEMENT) {
                                record_chunk(c, chunk, now).await?;
                            }
                            Ok(())
                        })
                    })
                    .await
                }

                async fn release(&self, releases: Vec<Release>, due: Timestamp) -> Result<()> {
                    let now = to_ms(due);
                    self.write(move |c| {
                        Box::pin(async move {
                            for r in releases {
                                sqlx::query("UPDATE deliveries SET next_attempt_at = $3, claimed_until = NULL WHERE id = $1 AND lease = $2 AND state = 'queued'")
                                    .bind(&r.delivery_id)
                                    .bind(r.lease)
                                    .bind(now)
                                    .execute(&mut *c)
                                    .await?;
                            }
                            Ok(())
                        })
                    })
                    .await
                }

                async fn hold_webhook(&self, webhook_id: &str, until: Option<Timestamp>) -> Result<()> {
                    let id = webhook_id.to_owned();
                    self.write(move |c| {
                        Box::pin(async move {
                            sqlx::query("UPDATE webhooks SET hold_until = $2 WHERE id = $1")
                                .bind(&id)
                                .bind(until.map(to_ms))
                                .execute(&mut *c)
                                .await?;
                            Ok(())
                        })
                    })
                    .await?;
                    let Some(until) = until else { return Ok(()) };
                    // A stuck endpoint's backlog can be large: it moves in bounded transactions,
                    // oldest first, so neither memory nor other writers wait on one huge one.
                    // Claimed deliveries (being sent, or waiting in a lane) stay as they are.
                    loop {
                        let id = webhook_id.to_owned();
                        let moved = self
                            .write(move |c| {
                                Box::pin(async move {
                                    Ok(sqlx::query(
                                        "UPDATE deliveries SET next_attempt_at = $2 WHERE seq IN (
                                            SELECT seq FROM deliveries
                                            WHERE webhook_id = $1 AND state = 'queued' AND next_attempt_at < $2
                                              AND claimed_until IS NULL
                                            ORDER BY next_attempt_at LIMIT $3)",
                                    )
                                    .bind(&id)
                                    .bind(to_ms(until))
                                    .bind(HOLD_ROWS_PER_STATEMENT)
                                    .execute(&mut *c)
                                    .await?
                                    .rows_affected())
                                })
                            })
                            .await?;
                        if moved < HOLD_ROWS_PER_STATEMENT as u64 {
                            return Ok(());
                        }
                    }
                }

                async fn get_delivery(&self, account_id: &str, id: &str) -> Result<(Delivery, Vec<Attempt>)> {
                    let row = sqlx::query(AssertSqlSafe(format!(
                        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
                         WHERE d.account_id = $1 AND d.id = $2"
                    )))
                    .bind(account_id)
                    .bind(id)
                    .fetch_one(&self.read)
                    .await?;
                    let d = delivery_from_row(&row)?;
                    let attempts = sqlx::query("SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY n, seq")
                        .bind(id)
                        .fetch_all(&self.read)
                        .await?
                        .iter()
                        .map(attempt_from_row)
                        .collect::<Result<_>>()?;
                    Ok((d, attempts))
                }

                async fn list_deliveries(
                    &self,
                    account_id: &str,
                    webhook_id: &str,
                    filter: &DeliveryFilter,
                    page: &PageRequest,
                ) -> Result<Page<Delivery>> {
                    let mut q = QueryBuilder::<$db>::new(format!(
                        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.account_id = "
                    ));
                    q.push_bind(account_id);
                    q.push(" AND d.webhook_id = ");
                    q.push_bind(webhook_id);
                    if let Some(after) = &page.after {
                        // The cursor counts only as one of this webhook's own deliveries.
                        q.push(" AND d.seq < (SELECT seq FROM deliveries WHERE id = ");
                        q.push_bind(after.as_str());
                        q.push(" AND account_id = ");
                        q.push_bind(account_id);
                        q.push(" AND webhook_id = ");
                        q.push_bind(webhook_id);
                        q.push(")");
                    }
                    if let Some(status) = filter.status {
                        q.push(" AND d.state IN (");
                        let mut sep = q.separated(", ");
                        for s in status.states() {
                            sep.push_bind(*s);
                        }
                        q.push(")");
                    }
                    if let Some(call_id) = &filter.call_id {
                        q.push(" AND d.call_id = ");
                        q.push_bind(call_id.as_str());
                    }
                    q.push(" ORDER BY d.seq DESC LIMIT ");
                    q.push_bind(limit_plus_one(page));
                    let rows = q.build().fetch_all(&self.read).await?;
                    let items = rows.iter().map(delivery_from_row).collect::<Result<_>>()?;
                    Ok(Page::from_rows(items, page.limit, |d: &Delivery| {
                        d.id.clone()
                    }))
                }

                async fn resend(&self, account_id: &str, id: &str, now: Timestamp) -> Result<()> {
                    let (account_id, id, now) = (account_id.to_owned(), id.to_owned(), to_ms(now));
                    self.write(move |c| {
                        Box::pin(async move {
                            let row = sqlx::query(
                                "SELECT state, claimed_until, webhook_id, call_id FROM deliveries WHERE account_id = $1 AND id = $2",
                            )
                            .bind(&account_id)
                            .bind(&id)
                            .fetch_optional(&mut *c)
                            .await?
                            .ok_or(StoreError::NotFound)?;
                            let state = row.text("state")?;
                            let (webhook_id, call_id) = (row.text("webhook_id")?, row.text("call_id")?);
                            match state.as_str() {
                                STATE_WAITING => Err(StoreError::Conflict(format!(
                                    "it waits for an earlier delivery of call {call_id} to the same webhook, and goes once that one has ended"
                                ))),
                                STATE_QUEUED if row.opt_int("claimed_until")?.is_some_and(|t| t > now) => {
                                    Err(StoreError::Conflict("it is being sent right now".into()))
                                }
                                STATE_QUEUED => {
                                    // Waiting for a retry: the retry comes now.
                                    sqlx::query("UPDATE deliveries SET next_attempt_at = $2, updated_at = $2 WHERE id = $1")
                                        .bind(&id)
                                        .bind(now)
                                        .execute(&mut *c)
                                        .await?;
                                    Ok(())
                                }
                                _ => {
                                    // It had ended: exactly one more attempt, keeping its call's order (it
                                    // waits if a later delivery of the call is still under way; being the
                                    // earliest, it then goes next).
                                    lock_calls(c, &[(webhook_id.as_str(), call_id.as_str())]).await?;
                                    sqlx::query(
                                        "UPDATE deliveries SET attempt_limit = attempts + 1, updated_at = $2,
                                            state = CASE WHEN b THEN 'waiting' ELSE 'queued' END,
                                            next_attempt_at = CASE WHEN b THEN NULL ELSE $2 END
                                         FROM (SELECT EXISTS (SELECT 1 FROM deliveries WHERE webhook_id = $3 AND call_id = $4
                                                              AND state IN ('queued', 'waiting')) AS b) AS busy
                                         WHERE id = $1",
                                    )
                                    .bind(&id)
                                    .bind(now)
                                    .bind(&webhook_id)
                                    .bind(&call_id)
                                    .execute(&mut *c)
                                    .await?;
                                    Ok(())
                                }
                            }
                        })
                    })
                    .await
                }

                async fn replay(
                    &self,
                    account_id: &str,
                    webhook_id: &str,
                    since: Timestamp,
                    status: DeliveryStatus,
                    attempts: u32,
                    now: Timestamp,
                ) -> Result<u64> {
                    let (account_id, webhook_id, now) =
                        (account_id.to_owned(), webhook_id.to_owned(), to_ms(now));
                    let states: Vec<&'static str> = status.states().to_vec();
                    self.write(move |c| {
                        Box::pin(async move {
                            // Everything replayed waits first; then the head of each call goes, so a call's
                            // deliveries leave in order exactly as they did the first time. The calls are
                            // locked before anything changes (nodes write concurrently on PostgreSQL).
                            let matching = |q: &mut QueryBuilder<$db>| {
                                q.push(" WHERE account_id = ");
                                q.push_bind(account_id.clone());
                                q.push(" AND webhook_id = ");
                                q.push_bind(webhook_id.clone());
                                q.push(" AND created_at >= ");
                                q.push_bind(to_ms(since));
                                q.push(" AND state IN (");
                                let mut sep = q.separated(", ");
                                for s in &states {
                                    sep.push_bind(*s);
                                }
                                q.push(")");
                            };
                            let mut q = QueryBuilder::<$db>::new("SELECT DISTINCT call_id FROM deliveries");
                            matching(&mut q);
                            let calls: Vec<String> = q.build_query_scalar().fetch_all(&mut *c).await?;
                            let keys: Vec<(&str, &str)> = calls.iter().map(|call| (webhook_id.as_str(), call.as_str())).collect();
                            lock_calls(c, &keys).await?;
                            let mut q = QueryBuilder::<$db>::new(
                                "UPDATE deliveries SET state = 'waiting', next_attempt_at = NULL, attempt_limit = attempts + ",
                            );
                            q.push_bind(attempts as i64);
                            q.push(", updated_at = ");
                            q.push_bind(now);
                            matching(&mut q);
                            let n = q.build().execute(&mut *c).await?.rows_affected();
                            let mut pairs: Vec<(String, String)> =
                                calls.into_iter().map(|call| (webhook_id.clone(), call)).collect();
                            pairs.sort();
                            promote_next(c, &pairs, now).await?;
                            Ok(n)
                        })
                    })
                    .await
                }

                async fn call_timeline(
                    &self,
                    account_id: &str,
                    call_id: &str,
                ) -> Result<Vec<(StoredEvent, Vec<Delivery>)>> {
                    let events: Vec<StoredEvent> = sqlx::query(
                        "SELECT id, account_id, event_id, call_id, type, occurred_at, received_at, test, payload FROM events
                         WHERE account_id = $1 AND call_id = $2 ORDER BY seq",
                    )
                    .bind(account_id)
                    .bind(call_id)
                    .fetch_all(&self.read)
                    .await?
                    .iter()
                    .map(event_from_row)
                    .collect::<Result<_>>()?;
                    if events.is_empty() {
                        return Err(StoreError::NotFound);
                    }
                    let rows = sqlx::query(AssertSqlSafe(format!(
                        "SELECT {DELIVERY_COLUMNS}, e.id AS event_row FROM deliveries d JOIN events e ON e.seq = d.event_seq
                         WHERE e.account_id = $1 AND e.call_id = $2 ORDER BY d.seq"
                    )))
                    .bind(account_id)
                    .bind(call_id)
                    .fetch_all(&self.read)
                    .await?;
                    let mut out: Vec<(StoredEvent, Vec<Delivery>)> =
                        events.into_iter().map(|e| (e, Vec::new())).collect();
                    for r in &rows {
                        let ev = r.text("event_row")?;
                        if let Some((_, ds)) = out.iter_mut().find(|(e, _)| e.id == ev) {
                            ds.push(delivery_from_row(r)?);
                        }
                    }
                    Ok(out)
                }

                async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats> {
                    let row = sqlx::query(
                        "SELECT (SELECT COUNT(*) FROM deliveries WHERE state IN ('queued', 'waiting')) AS pending,
                                (SELECT COUNT(*) FROM deliveries WHERE state = 'queued' AND next_attempt_at <= $1) AS due,
                                (SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'queued') AS oldest",
                    )
                    .bind(to_ms(now))
                    .fetch_one(&self.read)
                    .await?;
                    let oldest = row.opt_ts("oldest")?.filter(|t| *t <= now);
                    Ok(QueueStats {
                        pending: row.int("pending")? as u64,
                        due: row.int("due")? as u64,
                        oldest_due_at: oldest,
                    })
                }

                async fn prune(&self, before: Timestamp, batch: u32) -> Result<u64> {
                    let (before, batch) = (to_ms(before), batch as i64);
                    self.write(move |c| {
                        Box::pin(async move {
                            // Oldest first: finished deliveries last touched before the cut, then
                            // their attempts (all of them: a delivery's log goes whole or not at all),
                            // then events that no longer have a delivery.
                            let gone: Vec<String> = sqlx::query_scalar(
                                "DELETE FROM deliveries WHERE seq IN (
                                    SELECT seq FROM deliveries
                                    WHERE seq < COALESCE((SELECT seq FROM deliveries WHERE created_at >= $1 ORDER BY seq LIMIT 1),
                                                         9223372036854775807)
                                      AND state IN ('succeeded', 'failed') AND updated_at < $1
                                    ORDER BY seq LIMIT $2)
                                 RETURNING id",
                            )
                            .bind(before)
                            .bind(batch)
                            .fetch_all(&mut *c)
                            .await?;
                            let mut removed = gone.len() as u64;
                            for chunk in gone.chunks(ROWS_PER_STATEMENT) {
                                let mut q = QueryBuilder::<$db>::new("DELETE FROM attempts WHERE delivery_id IN (");
                                let mut sep = q.separated(", ");
                                for id in chunk {
                                    sep.push_bind(id.as_str());
                                }
                                q.push(")");
                                q.build().execute(&mut *c).await?;
                            }
                            removed += sqlx::query(
                                "DELETE FROM events WHERE seq IN (
                                    SELECT e.seq FROM events e WHERE e.received_at < $1
                                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq)
                                    ORDER BY e.received_at LIMIT $2)",
                            )
                            .bind(before)
                            .bind(batch)
                            .execute(&mut *c)
                            .await?
                            .rows_affected();
                            Ok(removed)
                        })
                    })
                    .await
                }

                async fn insert_session(&self, session: &Session) -> Result<()> {
                    let s = session.clone();
                    self.write(move |c| {
                        Box::pin(async move {
                            sqlx::query(
                                "INSERT INTO sessions (id, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                            )
                            .bind(&s.id)
                            .bind(&s.user_id)
                            .bind(&s.csrf)
                            .bind(to_ms(s.created_at))
                            .bind(to_ms(s.expires_at))
                            .execute(&mut *c)
                            .await?;
                            Ok(())
                        })
                    })
                    .await
                }

                async fn session_with_user(&self, id: &str, now: Timestamp) -> Result<Option<(Session, User)>> {
                    let row = sqlx::query(
                        "SELECT s.id, s.user_id, s.csrf, s.created_at, s.expires_at,
                                u.account_id, u.email, u.password_hash, u.created_at AS user_created_at
                         FROM sessions s JOIN users u ON u.id = s.user_id
                         WHERE s.id = $1 AND s.expires_at > $2",
                    )
                    .bind(id)
                    .bind(to_ms(now))
                    .fetch_optional(&self.read)
                    .await?;
                    row.as_ref().map(session_user_from_row).transpose()
                }

                async fn extend_session(&self, id: &str, expires_at: Timestamp) -> Result<()> {
                    let id = id.to_owned();
                    self.write(move |c| {
                        Box::pin(async move {
                            sqlx::query("UPDATE sessions SET expires_at = $2 WHERE id = $1")
                                .bind(id)
                                .bind(to_ms(expires_at))
                                .execute(&mut *c)
                                .await?;
                            Ok(())
                        })
                    })
                    .await
                }

                async fn delete_session(&self, id: &str) -> Result<()> {
                    let id = id.to_owned();
                    self.write(move |c| {
                        Box::pin(async move {
                            sqlx::query("DELETE FROM sessions WHERE id = $1")
                                .bind(id)
                                .execute(&mut *c)
                                .await?;
                            Ok(())
                        })
                    })
                    .await
                }

                async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64> {
                    self.write(move |c| {
                        Box::pin(async move {
                            Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                                .bind(to_ms(now))
                                .execute(&mut *c)
                                .await?
                                .rows_affected())
                        })
                    })
                    .await
                }

                async fn hourly_deliveries(
                    &self,
                    account_id: &str,
                    webhook_id: &str,
                    since: Timestamp,
                ) -> Result<Vec<HourlyDeliveries>> {
                    let rows = sqlx::query(
                        "SELECT (created_at / 3600000) * 3600000 AS hour,
                                COUNT(*) FILTER (WHERE state = 'succeeded') AS succeeded,
                                COUNT(*) FILTER (WHERE state = 'failed') AS failed,
                                COUNT(*) FILTER (WHERE state IN ('queued', 'waiting')) AS pending
                         FROM deliveries WHERE account_id = $1 AND webhook_id = $2 AND created_at >= $3
                         GROUP BY hour ORDER BY hour",
                    )
                    .bind(account_id)
                    .bind(webhook_id)
                    .bind(to_ms(since))
                    .fetch_all(&self.read)
                    .await?;
                    rows.iter().map(hourly_from_row).collect()
                }
        }
    };
}

pub(crate) use impl_store;
