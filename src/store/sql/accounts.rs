//! Accounts.

use super::Backend;
use super::db::SqlDb;
use super::rows::{Cols, account_from_row, limit_plus_one, to_ms};
use crate::core::id::AccountId;
use crate::store::{Account, AccountCounts, Page, PageRequest, Result};

pub async fn insert<DB: SqlDb>(b: &impl Backend<Db = DB>, account: &Account) -> Result<()> {
    let a = account.clone();
    b.write(move |c| {
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

pub async fn get<DB: SqlDb>(b: &impl Backend<Db = DB>, id: &AccountId) -> Result<Account> {
    let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(b.read())
        .await?;
    account_from_row(&row)
}

pub async fn list<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    page: &PageRequest,
) -> Result<Page<Account>> {
    let rows =
        sqlx::query("SELECT id, name, created_at FROM accounts WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(limit_plus_one(page))
            .fetch_all(b.read())
            .await?;
    let items = rows.iter().map(account_from_row).collect::<Result<_>>()?;
    Ok(Page::from_rows(items, page.limit, |a: &Account| {
        a.id.to_string()
    }))
}

pub async fn counts<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
) -> Result<AccountCounts> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM webhooks WHERE account_id = $1) AS webhooks,
                (SELECT COUNT(*) FROM numbers WHERE account_id = $1) AS numbers,
                (SELECT COUNT(*) FROM api_keys WHERE account_id = $1) AS api_keys",
    )
    .bind(account_id)
    .fetch_one(b.read())
    .await?;
    let n = |name: &str| row.int(name).map(|v| u64::try_from(v).unwrap_or(0));
    Ok(AccountCounts {
        webhooks: n("webhooks")?,
        numbers: n("numbers")?,
        api_keys: n("api_keys")?,
    })
}
