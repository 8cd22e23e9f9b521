//! The account's phone numbers (DIDs), which webhooks name to fire only for calls to them.

use sqlx::QueryBuilder;

use super::Backend;
use super::db::{RowsAffected, SqlDb};
use super::rows::{limit_plus_one, number_from_row, to_ms};
use crate::core::id::AccountId;
use crate::core::number::E164;
use crate::store::{Number, Page, PageRequest, Result, StoreError};

pub async fn insert<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    number: &Number,
) -> Result<()> {
    let (account_id, n) = (account_id.to_owned(), number.clone());
    b.write(move |c| {
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
                return Err(StoreError::Conflict(format!(
                    "{} is already one of your numbers",
                    n.number
                )));
            }
            Ok(())
        })
    })
    .await
}

pub async fn list<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    page: &PageRequest,
) -> Result<Page<Number>> {
    let rows = sqlx::query(
        "SELECT number, label, created_at FROM numbers WHERE account_id = $1 AND number > $2 ORDER BY number LIMIT $3",
    )
    .bind(account_id)
    .bind(page.after.as_deref().unwrap_or(""))
    .bind(limit_plus_one(page))
    .fetch_all(b.read())
    .await?;
    let items = rows.iter().map(number_from_row).collect::<Result<_>>()?;
    Ok(Page::from_rows(items, page.limit, |n: &Number| {
        n.number.to_string()
    }))
}

pub async fn get<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    number: &E164,
) -> Result<Number> {
    let row = sqlx::query(
        "SELECT number, label, created_at FROM numbers WHERE account_id = $1 AND number = $2",
    )
    .bind(account_id)
    .bind(number.as_str())
    .fetch_one(b.read())
    .await?;
    number_from_row(&row)
}

pub async fn set_label<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    number: &E164,
    label: Option<&str>,
) -> Result<()> {
    let (account_id, number, label) = (
        account_id.to_owned(),
        number.clone(),
        label.map(str::to_owned),
    );
    b.write(move |c| {
        Box::pin(async move {
            let r =
                sqlx::query("UPDATE numbers SET label = $3 WHERE account_id = $1 AND number = $2")
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

/// Refused while webhooks name the number: without it, they would fire for every number.
pub async fn delete<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    number: &E164,
) -> Result<()> {
    let (account_id, number) = (account_id.to_owned(), number.clone());
    b.write(move |c| {
        Box::pin(async move {
            let using: Vec<String> = sqlx::query_scalar(DB::WEBHOOKS_USING_NUMBER)
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
            if r.rows_affected() == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
    })
    .await
}

pub async fn unknown<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    numbers: &[E164],
) -> Result<Vec<E164>> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<DB>::new("SELECT number FROM numbers WHERE account_id = ");
    q.push_bind(account_id);
    q.push(" AND number IN (");
    let mut sep = q.separated(", ");
    for n in numbers {
        sep.push_bind(n.as_str());
    }
    q.push(")");
    let known: Vec<String> = q.build_query_scalar().fetch_all(b.read()).await?;
    Ok(numbers
        .iter()
        .filter(|n| !known.iter().any(|k| k == n.as_str()))
        .cloned()
        .collect())
}
