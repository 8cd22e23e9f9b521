//! What the `callhook` subcommands do, behind the argument parsing in `main.rs`.

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::app::{App, open_database};
use crate::config::Settings;
use crate::core::id::AccountId;
use crate::core::role::Role;
use crate::core::validate::Choice;
use crate::service::{accounts, api_keys, users};
use crate::store::StoreError;

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
    app.serve(listener, crate::shutdown::signal()).await
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    open_database(settings).await?;
    println!("the database at {} is up to date", settings.database_url());
    Ok(())
}

/// `callhook rekey`: every secret sealed again under `secret_key`.
pub async fn rekey(settings: &Settings) -> anyhow::Result<()> {
    if settings.secret_key.is_empty() {
        anyhow::bail!(
            "rekey needs the new key in secret_key and the old one in previous_secret_keys (docs/security.md)"
        );
    }
    let store = open_database(settings).await?;
    let n = crate::secrets::rekey(settings, &*store).await?;
    let kid = crate::core::seal::Key::parse(&settings.secret_key)?
        .kid()
        .to_owned();
    println!(
        "{n} secrets re-encrypted under key id {kid}; once every node runs with this secret_key, previous_secret_keys may be emptied"
    );
    Ok(())
}

pub async fn create_account(settings: &Settings, name: &str) -> anyhow::Result<()> {
    // Checked before the database is opened (and perhaps created); `accounts` checks again.
    accounts::check_name(name).map_err(|m| anyhow::anyhow!("the name {m}"))?;
    let store = open_database(settings).await?;
    let made = accounts::create(&*store, name, "callhook account create").await?;
    println!(
        "account  {}\napi key  {}",
        made.account.id, made.api_key.secret
    );
    Ok(())
}

/// The account `id`, if it exists.
async fn existing_account(store: &dyn crate::store::Store, id: &str) -> anyhow::Result<AccountId> {
    let found = match AccountId::parse(id) {
        Some(id) => store.get_account(&id).await.map(|a| a.id),
        None => Err(StoreError::NotFound),
    };
    match found {
        Ok(id) => Ok(id),
        Err(StoreError::NotFound) => anyhow::bail!("there is no account {id}"),
        Err(e) => Err(e.into()),
    }
}

pub async fn create_api_key(
    settings: &Settings,
    account_id: &str,
    name: &str,
) -> anyhow::Result<()> {
    accounts::check_name(name).map_err(|m| anyhow::anyhow!("the name {m}"))?;
    let store = open_database(settings).await?;
    let account_id = existing_account(&*store, account_id).await?;
    let made = api_keys::create_in(&*store, &account_id, name, "callhook apikey create").await?;
    println!("{}", made.secret);
    Ok(())
}

/// `callhook user create`: a user with a generated password, by default an owner (the
/// account's first owner, or one an operator adds).
pub async fn create_user(
    settings: &Settings,
    account_id: &str,
    email: &str,
    role: &str,
) -> anyhow::Result<()> {
    users::check_email(email).map_err(anyhow::Error::msg)?;
    let role = <Role as Choice>::parse(role)
        .ok_or_else(|| anyhow::anyhow!("the role {role:?} is not one of {}", Role::choices()))?;
    let store = open_database(settings).await?;
    let account_id = existing_account(&*store, account_id).await?;
    let made = users::create(&*store, &account_id, email, role, "callhook user create").await?;
    println!(
        "user      {}\nrole      {}\npassword  {}",
        made.user.email,
        made.user.role.as_str(),
        made.password
    );
    Ok(())
}
