//! The rows that hold sealed values (SPEC §14): a webhook's signing secrets and its custom
//! header values, and an account's alert signing secrets. Sealing itself is `core::seal`; writing and reading them goes through
//! `rows.rs`. Here: sealing again what is stored plain (a database from before sealing) or
//! under an old key (`callhook rekey`).

use std::sync::Arc;

use super::Backend;
use super::db::SqlDb;
use super::rows::{Cols, reseal_secrets, reseal_spec};
use crate::core::seal::Keyring;
use crate::store::Result;

/// Webhooks read per transaction.
const BATCH: i64 = 200;

/// Seals every webhook's secrets and header values that need it; answers how many values.
/// A row is written only if its columns are still as read (compare and set), so another node
/// sealing at the same time, or an edit in between, loses nothing: that row is already right.
pub async fn reseal<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: Arc<Keyring>,
    all: bool,
) -> Result<u64> {
    let mut after = String::new();
    let mut total = 0u64;
    loop {
        let rows = sqlx::query(
            "SELECT id, spec, secrets FROM webhooks WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.as_str())
        .bind(BATCH)
        .fetch_all(b.read())
        .await?;
        let Some(last) = rows.last() else {
            total += reseal_alerts(b, &keys, all).await?;
            if total > 0 {
                b.scrub().await?;
            }
            return Ok(total);
        };
        after = last.text("id")?;
        let mut changes = Vec::new();
        for r in &rows {
            let (id, spec, secrets) = (r.text("id")?, r.text("spec")?, r.text("secrets")?);
            let new_spec = reseal_spec(&keys, &id, &spec, all)?;
            let new_secrets = reseal_secrets(&keys, &id, &secrets, all)?;
            if new_spec.is_some() || new_secrets.is_some() {
                total += count_changed(&spec, new_spec.as_deref())
                    + count_changed(&secrets, new_secrets.as_deref());
                changes.push((id, spec, secrets, new_spec, new_secrets));
            }
        }
        if changes.is_empty() {
            continue;
        }
        b.write(move |c| {
            Box::pin(async move {
                for (id, spec, secrets, new_spec, new_secrets) in changes {
                    sqlx::query(
                        "UPDATE webhooks SET spec = $2, secrets = $3 WHERE id = $1 AND spec = $4 AND secrets = $5",
                    )
                    .bind(&id)
                    .bind(new_spec.as_deref().unwrap_or(&spec))
                    .bind(new_secrets.as_deref().unwrap_or(&secrets))
                    .bind(&spec)
                    .bind(&secrets)
                    .execute(&mut *c)
                    .await?;
                }
                Ok(())
            })
        })
        .await?;
    }
}

/// Seals the accounts' alert secrets that need it (see [`reseal`]).
async fn reseal_alerts<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    keys: &Keyring,
    all: bool,
) -> Result<u64> {
    let rows = sqlx::query("SELECT id, secrets FROM account_alerts")
        .fetch_all(b.read())
        .await?;
    let mut changes = Vec::new();
    let mut total = 0;
    for r in &rows {
        let (id, secrets) = (r.text("id")?, r.text("secrets")?);
        if let Some(new) = reseal_secrets(keys, &id, &secrets, all)? {
            total += count_changed(&secrets, Some(&new));
            changes.push((id, secrets, new));
        }
    }
    if !changes.is_empty() {
        b.write(move |c| {
            Box::pin(async move {
                for (id, old, new) in changes {
                    sqlx::query(
                        "UPDATE account_alerts SET secrets = $2 WHERE id = $1 AND secrets = $3",
                    )
                    .bind(&id)
                    .bind(&new)
                    .bind(&old)
                    .execute(&mut *c)
                    .await?;
                }
                Ok(())
            })
        })
        .await?;
    }
    Ok(total)
}

/// How many sealed values a rewrite changed: those that differ between the two texts
/// (each sealed value is fresh, so a resealed one never equals the old).
fn count_changed(old: &str, new: Option<&str>) -> u64 {
    let Some(new) = new else { return 0 };
    let values = |s: &str| -> Vec<String> {
        let mut out = Vec::new();
        collect_strings(&serde_json::from_str(s).unwrap_or_default(), &mut out);
        out
    };
    let (a, b) = (values(old), values(new));
    b.iter().filter(|v| !a.contains(v)).count() as u64
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if crate::core::seal::is_sealed(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}
