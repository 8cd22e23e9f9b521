//! An account's API keys (`chk_…`), each `admin` or `viewer`. The secret exists only in the
//! answer to a create; the store keeps its SHA-256. Listing keys is for the roles that see
//! secrets; making and revoking them are changes, and making an admin key — which manages
//! users — is for those who manage users.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::accounts::check_name;
use super::{
    Actor, Denied, Failure, Holding, IntoFailure, Need, Quotas, Role, Who, invalid, operator_entry,
    or_not_found,
};
use crate::core::audit::{Action, Change};
use crate::core::credentials::{hash_token, random_token};
use crate::core::id::{AccountId, ApiKeyId};
use crate::core::validate::{FieldErrors, Fields};
use crate::store::{ApiKey, AuditEntry, Page, PageRequest, Store, StoreError};

pub const API_KEY_PREFIX: &str = "chk_";

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API key not found")]
    NotFound,
    #[error("{0}")]
    Invalid(FieldErrors),
    /// The last admin key revoking itself.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ApiKeyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiKeyError::Conflict(m),
            e => ApiKeyError::Store(e),
        }
    }
}

impl IntoFailure for ApiKeyError {
    fn into_failure(self) -> Failure {
        match self {
            ApiKeyError::NotFound => Failure::NotFound("API key"),
            ApiKeyError::Invalid(f) => Failure::Invalid(f),
            ApiKeyError::Conflict(m) => Failure::Conflict(m),
            ApiKeyError::Denied(d) => d.into_failure(),
            ApiKeyError::Store(e) => e.into_failure(),
        }
    }
}

/// An API key just made: the row as stored, and the secret, which exists only now.
#[derive(Debug)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub secret: String,
}

/// The keys a body making an API key takes.
pub const NEW_KEY_KEYS: &[&str] = &["name", "role"];

/// A key to make, from `{name, role}` (`role` `admin` by default, or `viewer`).
pub fn parse_new(obj: &Map<String, Value>) -> Result<(String, Role), FieldErrors> {
    let mut f = Fields::new("", obj, NEW_KEY_KEYS);
    let name = f
        .req_str("name")
        .and_then(|n| check_name(n).map_err(|m| f.error("name", m)).ok());
    let role = f.choice_or("role", Role::Admin);
    if role == Some(Role::Owner) {
        f.error("role", "an API key is admin or viewer; owners are people");
    }
    f.finish().into_result(())?;
    match (name, role) {
        (Some(name), Some(role)) => Ok((name, role)),
        _ => Err(invalid("name", "is required")),
    }
}

/// Makes an API key for the actor's account from `{name, role}`. An admin key manages users,
/// so only those who manage users may make one; anyone who may change things may make a
/// viewer key.
pub async fn create(
    store: &dyn Store,
    quotas: &Quotas,
    actor: &Actor,
    obj: &Map<String, Value>,
) -> Result<NewApiKey, ApiKeyError> {
    actor.may(Need::Change)?;
    let (name, role) = parse_new(obj).map_err(ApiKeyError::Invalid)?;
    if role == Role::Admin {
        actor.may(Need::ManageUsers)?;
    }
    quotas
        .check(store, actor.account(), Holding::ApiKeys)
        .await?;
    let id = ApiKeyId::new();
    let entry = actor.entry(Action::ApiKeyCreate, id.as_str(), made(&name, role));
    insert(store, actor.account(), id, name, role, &entry).await
}

/// What the audit log says of a key made.
fn made(name: &str, role: Role) -> Vec<Change> {
    vec![
        Change::set("name", json!(name)),
        Change::set("role", json!(role.as_str())),
    ]
}

/// Makes an admin API key named `name` for account `account_id`, as the operator (`how`: the
/// operator API, the command line, the first start).
pub async fn create_in(
    store: &dyn Store,
    account_id: &AccountId,
    name: &str,
    how: &str,
) -> Result<NewApiKey, ApiKeyError> {
    let name = check_name(name).map_err(|m| ApiKeyError::Invalid(invalid("name", m)))?;
    let id = ApiKeyId::new();
    let entry = operator_entry(
        account_id,
        how,
        Action::ApiKeyCreate,
        id.as_str(),
        made(&name, Role::Admin),
    );
    insert(store, account_id, id, name, Role::Admin, &entry).await
}

async fn insert(
    store: &dyn Store,
    account_id: &AccountId,
    id: ApiKeyId,
    name: String,
    role: Role,
    entry: &AuditEntry,
) -> Result<NewApiKey, ApiKeyError> {
    let secret = random_token(API_KEY_PREFIX);
    let key = ApiKey {
        id,
        account_id: account_id.clone(),
        name,
        prefix: secret[..API_KEY_PREFIX.len() + 6].to_owned(),
        role,
        created_at: Timestamp::now(),
        last_used_at: None,
    };
    store
        .insert_api_key(&key, &hash_token(&secret), entry)
        .await?;
    Ok(NewApiKey { key, secret })
}

/// The account's keys (never their secrets): for the roles that see secrets.
pub async fn list(
    store: &dyn Store,
    actor: &Actor,
    page: &PageRequest,
) -> Result<Page<ApiKey>, ApiKeyError> {
    actor.may(Need::ReadSecrets)?;
    Ok(store.list_api_keys(actor.account(), page).await?)
}

/// Revokes a key: it stops working at once. A key may revoke itself, unless it is the
/// account's last admin key (the account would be left with no key that manages it).
pub async fn revoke(store: &dyn Store, actor: &Actor, id: &ApiKeyId) -> Result<(), ApiKeyError> {
    actor.may(Need::Change)?;
    let key = store
        .get_api_key(actor.account(), id)
        .await
        .map_err(|e| or_not_found(e, ApiKeyError::NotFound))?;
    let itself = matches!(&actor.who, Who::ApiKey { id: me, .. } if me == id);
    let entry = actor.entry(
        Action::ApiKeyRevoke,
        id.as_str(),
        vec![
            Change::new("name", json!(key.name), Value::Null),
            Change::new("role", json!(key.role.as_str()), Value::Null),
        ],
    );
    store
        .delete_api_key(
            actor.account(),
            id,
            itself && key.role == Role::Admin,
            &entry,
        )
        .await
        .map_err(|e| or_not_found(e, ApiKeyError::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(v: Value) -> Result<(String, Role), Vec<String>> {
        parse_new(v.as_object().unwrap()).map_err(|e| e.0.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn a_key_is_admin_unless_it_says_viewer() {
        assert_eq!(
            parsed(json!({"name": "CRM"})),
            Ok(("CRM".into(), Role::Admin))
        );
        assert_eq!(
            parsed(json!({"name": "Support", "role": "viewer"})),
            Ok(("Support".into(), Role::Viewer))
        );
        assert_eq!(
            parsed(json!({"name": "x", "role": "owner"})),
            Err(vec!["role".into()])
        );
        assert_eq!(
            parsed(json!({"role": "boss", "colour": 1})),
            Err(vec!["name".into(), "role".into(), "colour".into()])
        );
    }
}
