//! The admin's tools of SPEC §12 beside the log: testing a webhook before saving it
//! (`POST /v1/webhooks/test`) and finding calls (`GET /v1/calls`). Real receivers on loopback,
//! on SQLite or PostgreSQL as the run says.

mod calls;
mod unsaved_test;

use std::time::Duration;

/// How many rows callhook's tables hold: webhooks, events, deliveries, attempts, audit.
async fn row_counts(database_url: &str) -> [i64; 5] {
    use sqlx::{Connection, Row};
    let q = "SELECT (SELECT COUNT(*) FROM webhooks) AS w, (SELECT COUNT(*) FROM events) AS e,
                    (SELECT COUNT(*) FROM deliveries) AS d, (SELECT COUNT(*) FROM attempts) AS a,
                    (SELECT COUNT(*) FROM audit_log) AS l";
    let pick = |get: &dyn Fn(&str) -> i64| ["w", "e", "d", "a", "l"].map(get);
    if database_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(database_url).await.unwrap();
        let r = sqlx::query(q).fetch_one(&mut c).await.unwrap();
        pick(&|k| r.get::<i64, _>(k))
    } else {
        let opts: sqlx::sqlite::SqliteConnectOptions = database_url.parse().unwrap();
        let mut c =
            sqlx::SqliteConnection::connect_with(&opts.busy_timeout(Duration::from_secs(10)))
                .await
                .unwrap();
        let r = sqlx::query(q).fetch_one(&mut c).await.unwrap();
        pick(&|k| r.get::<i64, _>(k))
    }
}
