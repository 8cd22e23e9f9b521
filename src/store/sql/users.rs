//! Users of the web page: their roles, the one-time links that let them set a password, and
//! their signed-in sessions. A change of role or a removal never leaves an account without
//! an owner.

use jiff::Timestamp;
use sqlx::AssertSqlSafe;

use super::Backend;
use super::audit;
use super::db::{Conn, RowsAffected, SqlDb};
use super::rows::{
    Cols, USER_COLUMNS, limit_plus_one, link_from_row, session_user_from_row, to_ms, user_from_row,
};
use crate::core::id::{AccountId, UserId};
use crate::store::{
    AuditEntry, Page, PageRequest, Result, Role, Session, StoreError, User, UserLink,
};

pub async fn insert<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    user: &User,
    link: Option<&UserLink>,
    audit: &AuditEntry,
) -> Result<()> {
    let (u, link, audit) = (user.clone(), link.cloned(), audit.clone());
    b.write(move |c| {
        Box::pin(async move {
            let r = sqlx::query(
                "INSERT INTO users (id, account_id, email, password_hash, role, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT(email) DO NOTHING",
            )
            .bind(&u.id)
            .bind(&u.account_id)
            .bind(&u.email)
            .bind(&u.password_hash)
            .bind(u.role.as_str())
            .bind(to_ms(u.created_at))
            .execute(&mut *c)
            .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!(
                    "a user with email {} already exists",
                    u.email
                )));
            }
            if let Some(link) = &link {
                insert_link::<DB>(c, link).await?;
            }
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

async fn insert_link<DB: SqlDb>(c: &mut Conn<DB>, link: &UserLink) -> Result<()> {
    sqlx::query(
        "INSERT INTO user_links (hash, user_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(link.hash.as_str())
    .bind(&link.user_id)
    .bind(link.purpose.as_str())
    .bind(to_ms(link.created_at))
    .bind(to_ms(link.expires_at))
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub async fn by_email<DB: SqlDb>(b: &impl Backend<Db = DB>, email: &str) -> Result<Option<User>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
    )))
    .bind(email)
    .fetch_optional(b.read())
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn get<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &UserId,
) -> Result<User> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE account_id = $1 AND id = $2"
    )))
    .bind(account_id)
    .bind(id)
    .fetch_one(b.read())
    .await?;
    user_from_row(&row)
}

/// The account's users, oldest first, each with when its pending link expires.
pub async fn list<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    page: &PageRequest,
) -> Result<Page<(User, Option<Timestamp>)>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS},
                (SELECT MAX(l.expires_at) FROM user_links l WHERE l.user_id = users.id) AS link_expires_at
         FROM users WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    )))
    .bind(account_id)
    .bind(page.after.as_deref().unwrap_or(""))
    .bind(limit_plus_one(page))
    .fetch_all(b.read())
    .await?;
    let items = rows
        .iter()
        .map(|r| Ok((user_from_row(r)?, r.opt_ts("link_expires_at")?)))
        .collect::<Result<_>>()?;
    Ok(Page::from_rows(items, page.limit, |(u, _): &(User, _)| {
        u.id.to_string()
    }))
}

/// Takes the account's row lock until the transaction ends, so that two changes of its
/// users' roles (PostgreSQL runs them side by side) cannot both count the other's owner and
/// leave none. SQLite's one writer runs them one after the other anyway.
async fn lock_account<DB: SqlDb>(c: &mut Conn<DB>, account_id: &AccountId) -> Result<()> {
    let r = sqlx::query("UPDATE accounts SET name = name WHERE id = $1")
        .bind(account_id)
        .execute(&mut *c)
        .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The role of user `id` of the account, read in the transaction.
async fn role_of<DB: SqlDb>(c: &mut Conn<DB>, account_id: &AccountId, id: &UserId) -> Result<Role> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE account_id = $1 AND id = $2"
    )))
    .bind(account_id)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(user_from_row(&row)?.role)
}

/// Refuses a change that takes the owner role from `id` when nobody else of the account has it.
async fn keep_an_owner<DB: SqlDb>(
    c: &mut Conn<DB>,
    account_id: &AccountId,
    id: &UserId,
    what: &str,
) -> Result<()> {
    let others: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE account_id = $1 AND role = 'owner' AND id <> $2",
    )
    .bind(account_id)
    .bind(id)
    .fetch_one(&mut *c)
    .await?;
    if others == 0 {
        return Err(StoreError::Conflict(format!(
            "this is the account's last owner, who cannot be {what}; make another user owner first"
        )));
    }
    Ok(())
}

pub async fn set_role<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &UserId,
    role: Role,
    audit: &AuditEntry,
) -> Result<()> {
    let (account_id, id, audit) = (account_id.clone(), id.clone(), audit.clone());
    b.write(move |c| {
        Box::pin(async move {
            lock_account::<DB>(c, &account_id).await?;
            let was = role_of::<DB>(c, &account_id, &id).await?;
            if was == Role::Owner && role != Role::Owner {
                keep_an_owner::<DB>(c, &account_id, &id, "demoted").await?;
            }
            sqlx::query("UPDATE users SET role = $3 WHERE account_id = $1 AND id = $2")
                .bind(&account_id)
                .bind(&id)
                .bind(role.as_str())
                .execute(&mut *c)
                .await?;
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

pub async fn delete<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &UserId,
    audit: &AuditEntry,
) -> Result<()> {
    let (account_id, id, audit) = (account_id.clone(), id.clone(), audit.clone());
    b.write(move |c| {
        Box::pin(async move {
            lock_account::<DB>(c, &account_id).await?;
            if role_of::<DB>(c, &account_id, &id).await? == Role::Owner {
                keep_an_owner::<DB>(c, &account_id, &id, "removed").await?;
            }
            // Sessions and links go with the user (the foreign keys cascade too); said here
            // so that a removed user is signed out at once whatever the schema does.
            end_sessions::<DB>(c, &id, None).await?;
            sqlx::query("DELETE FROM user_links WHERE user_id = $1")
                .bind(&id)
                .execute(&mut *c)
                .await?;
            sqlx::query("DELETE FROM users WHERE account_id = $1 AND id = $2")
                .bind(&account_id)
                .bind(&id)
                .execute(&mut *c)
                .await?;
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

/// Ends every session of `user_id` but `keep`.
async fn end_sessions<DB: SqlDb>(
    c: &mut Conn<DB>,
    user_id: &UserId,
    keep: Option<&str>,
) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
        .bind(user_id)
        .bind(keep.unwrap_or(""))
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn reset<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    account_id: &AccountId,
    id: &UserId,
    link: &UserLink,
    audit: &AuditEntry,
) -> Result<()> {
    let (account_id, id, link, audit) =
        (account_id.clone(), id.clone(), link.clone(), audit.clone());
    b.write(move |c| {
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE users SET password_hash = '' WHERE account_id = $1 AND id = $2",
            )
            .bind(&account_id)
            .bind(&id)
            .execute(&mut *c)
            .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            end_sessions::<DB>(c, &id, None).await?;
            sqlx::query("DELETE FROM user_links WHERE user_id = $1")
                .bind(&id)
                .execute(&mut *c)
                .await?;
            insert_link::<DB>(c, &link).await?;
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

const LINK_COLUMNS: &str = "l.hash, l.user_id, l.purpose, l.created_at AS link_created_at, l.expires_at, \
     u.id, u.account_id, u.email, u.password_hash, u.role, u.created_at";

pub async fn link<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    hash: &str,
    now: Timestamp,
) -> Result<Option<(UserLink, User)>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {LINK_COLUMNS} FROM user_links l JOIN users u ON u.id = l.user_id
         WHERE l.hash = $1 AND l.expires_at > $2"
    )))
    .bind(hash)
    .bind(to_ms(now))
    .fetch_optional(b.read())
    .await?;
    row.as_ref()
        .map(|r| Ok((link_from_row(r)?, user_from_row(r)?)))
        .transpose()
}

pub async fn use_link<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    hash: &str,
    password_hash: &str,
    now: Timestamp,
    audit: &AuditEntry,
) -> Result<User> {
    let (hash, password_hash, audit) = (hash.to_owned(), password_hash.to_owned(), audit.clone());
    b.write(move |c| {
        Box::pin(async move {
            // Deleting it is what uses it: of two tabs following one link at once, one gets it.
            let user_id: Option<String> = sqlx::query_scalar(
                "DELETE FROM user_links WHERE hash = $1 AND expires_at > $2 RETURNING user_id",
            )
            .bind(hash.as_str())
            .bind(to_ms(now))
            .fetch_optional(&mut *c)
            .await?;
            let user_id = UserId::from_string(user_id.ok_or(StoreError::NotFound)?);
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(&user_id)
                .bind(password_hash.as_str())
                .execute(&mut *c)
                .await?;
            end_sessions::<DB>(c, &user_id, None).await?;
            sqlx::query("DELETE FROM user_links WHERE user_id = $1")
                .bind(&user_id)
                .execute(&mut *c)
                .await?;
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
            )))
            .bind(&user_id)
            .fetch_one(&mut *c)
            .await?;
            audit::insert_in::<DB>(c, &audit).await?;
            user_from_row(&row)
        })
    })
    .await
}

pub async fn set_password<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    user_id: &UserId,
    password_hash: &str,
    keep_session: &str,
    audit: &AuditEntry,
) -> Result<()> {
    let (user_id, password_hash, keep, audit) = (
        user_id.clone(),
        password_hash.to_owned(),
        keep_session.to_owned(),
        audit.clone(),
    );
    b.write(move |c| {
        Box::pin(async move {
            let r = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(&user_id)
                .bind(password_hash.as_str())
                .execute(&mut *c)
                .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            end_sessions::<DB>(c, &user_id, Some(&keep)).await?;
            audit::insert_in::<DB>(c, &audit).await
        })
    })
    .await
}

pub async fn insert_session<DB: SqlDb>(b: &impl Backend<Db = DB>, session: &Session) -> Result<()> {
    let s = session.clone();
    b.write(move |c| {
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

pub async fn session_with_user<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    id: &str,
    now: Timestamp,
) -> Result<Option<(Session, User)>> {
    let row = sqlx::query(
        "SELECT s.id, s.user_id, s.csrf, s.created_at, s.expires_at,
                u.account_id, u.email, u.password_hash, u.role, u.created_at AS user_created_at
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id = $1 AND s.expires_at > $2",
    )
    .bind(id)
    .bind(to_ms(now))
    .fetch_optional(b.read())
    .await?;
    row.as_ref().map(session_user_from_row).transpose()
}

pub async fn extend_session<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    id: &str,
    expires_at: Timestamp,
) -> Result<()> {
    let id = id.to_owned();
    b.write(move |c| {
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

pub async fn delete_session<DB: SqlDb>(b: &impl Backend<Db = DB>, id: &str) -> Result<()> {
    let id = id.to_owned();
    b.write(move |c| {
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

pub async fn delete_expired_sessions<DB: SqlDb>(
    b: &impl Backend<Db = DB>,
    now: Timestamp,
) -> Result<u64> {
    b.write(move |c| {
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
