//! Users of the web page and their signed-in sessions.

use jiff::Timestamp;

use super::Backend;
use super::db::{RowsAffected, SqlDb};
use super::rows::{session_user_from_row, to_ms, user_from_row};
use crate::store::{Result, Session, StoreError, User};

pub async fn insert<DB: SqlDb>(b: &impl Backend<Db = DB>, user: &User) -> Result<()> {
    let u = user.clone();
    b.write(move |c| {
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
                return Err(StoreError::Conflict(format!(
                    "a user with email {} already exists",
                    u.email
                )));
            }
            Ok(())
        })
    })
    .await
}

pub async fn by_email<DB: SqlDb>(b: &impl Backend<Db = DB>, email: &str) -> Result<Option<User>> {
    let row = sqlx::query(
        "SELECT id, account_id, email, password_hash, created_at FROM users WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(b.read())
    .await?;
    row.as_ref().map(user_from_row).transpose()
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
                u.account_id, u.email, u.password_hash, u.created_at AS user_created_at
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
