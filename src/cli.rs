//! What the `callhook` subcommands do, behind the argument parsing in `main.rs`.

use anyhow::Context as _;
use jiff::Timestamp;
use tokio::net::TcpListener;

use crate::api::auth::{hash_password, new_api_key, random_token};
use crate::app::{App, open_store};
use crate::config::Settings;
use crate::core::id::new_id;
use crate::store::{Account, StoreError, User};

pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `callhook serve`: runs until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    init_tracing(&settings.log);
    let listen = settings.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let app = App::build(settings).await?;
    let addr = listener.local_addr()?;
    app.first_start.print(&format!("http://{addr}"));
    tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "callhook is listening");
    app.serve(listener, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    open_store(settings).await?;
    println!("the database at {} is up to date", settings.database_url());
    Ok(())
}

pub async fn create_account(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 100,
        "the name must be 1 to 100 characters"
    );
    let store = open_store(settings).await?;
    let account = Account {
        id: new_id("acct"),
        name: name.to_owned(),
        created_at: Timestamp::now(),
    };
    store.insert_account(&account).await?;
    let (key, hash, secret) = new_api_key(&account.id, "default");
    store.insert_api_key(&key, &hash).await?;
    println!("account  {}\napi key  {secret}", account.id);
    Ok(())
}

async fn existing_account(store: &dyn crate::store::Store, id: &str) -> anyhow::Result<()> {
    match store.get_account(id).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound) => anyhow::bail!("there is no account {id}"),
        Err(e) => Err(e.into()),
    }
}

pub async fn create_api_key(
    settings: &Settings,
    account_id: &str,
    name: &str,
) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    existing_account(&*store, account_id).await?;
    let (key, hash, secret) = new_api_key(account_id, name);
    store.insert_api_key(&key, &hash).await?;
    println!("{secret}");
    Ok(())
}

pub async fn create_user(settings: &Settings, account_id: &str, email: &str) -> anyhow::Result<()> {
    let email = email.trim().to_ascii_lowercase();
    anyhow::ensure!(
        email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(a, b)| !a.is_empty() && b.contains('.') || b == "localhost"),
        "{email:?} is not an email address"
    );
    let store = open_store(settings).await?;
    existing_account(&*store, account_id).await?;
    let password = random_token("")[..20].to_owned();
    store
        .insert_user(&User {
            id: new_id("usr"),
            account_id: account_id.to_owned(),
            email: email.clone(),
            password_hash: hash_password(&password)?,
            created_at: Timestamp::now(),
        })
        .await?;
    println!("user      {email}\npassword  {password}");
    Ok(())
}
