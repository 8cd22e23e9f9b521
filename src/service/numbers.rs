//! My Numbers: the DID numbers an account owns, in E.164, each with an optional label. Every
//! role reads them; adding, relabelling and removing are changes, recorded in the audit log.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::{Actor, Denied, Failure, Holding, IntoFailure, Need, Quotas, invalid, or_not_found};
use crate::core::audit::{Action, Change};
use crate::core::number::E164;
use crate::core::validate::{FieldErrors, Fields};
use crate::store::{Number, Page, PageRequest, Store, StoreError};

const MAX_LABEL: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum NumberError {
    #[error("number not found")]
    NotFound,
    #[error("{0}")]
    Invalid(FieldErrors),
    /// Already the account's, or still named by a webhook (the message says which).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for NumberError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => NumberError::Conflict(m),
            e => NumberError::Store(e),
        }
    }
}

impl IntoFailure for NumberError {
    fn into_failure(self) -> Failure {
        match self {
            NumberError::NotFound => Failure::NotFound("number"),
            NumberError::Invalid(f) => Failure::Invalid(f),
            NumberError::Conflict(m) => Failure::Conflict(m),
            NumberError::Denied(d) => d.into_failure(),
            NumberError::Store(e) => e.into_failure(),
        }
    }
}

fn label(f: &mut Fields) -> Option<String> {
    let l = f.str("label").map(str::trim).filter(|l| !l.is_empty())?;
    if l.chars().count() > MAX_LABEL {
        f.error("label", format!("must be at most {MAX_LABEL} characters"));
        return None;
    }
    Some(l.to_owned())
}

/// The keys a body adding a number takes.
pub const NEW_NUMBER_KEYS: &[&str] = &["number", "label"];

/// The keys a body changing a number takes.
pub const NUMBER_PATCH_KEYS: &[&str] = &["label"];

/// A number to add, from `{number, label}`: every problem found, or the number.
pub fn parse_new(obj: &Map<String, Value>) -> Result<Number, FieldErrors> {
    let mut f = Fields::new("", obj, NEW_NUMBER_KEYS);
    let number = f.req_str("number").and_then(|s| match E164::parse(s) {
        Ok(n) => Some(n),
        Err(e) => {
            f.error("number", e);
            None
        }
    });
    let label = label(&mut f);
    f.finish().into_result(())?;
    Ok(Number {
        number: number.ok_or_else(|| invalid("number", "is required"))?,
        label,
        created_at: Timestamp::now(),
    })
}

/// A number named in a path; a malformed one is simply not the account's.
pub fn parse_path(s: &str) -> Result<E164, NumberError> {
    E164::parse(s).map_err(|_| NumberError::NotFound)
}

/// Adds a number from `{number, label}`.
pub async fn add(
    store: &dyn Store,
    quotas: &Quotas,
    actor: &Actor,
    obj: &Map<String, Value>,
) -> Result<Number, NumberError> {
    actor.may(Need::Change)?;
    let number = parse_new(obj).map_err(NumberError::Invalid)?;
    quotas
        .check(store, actor.account(), Holding::Numbers)
        .await
        .map_err(NumberError::Store)?;
    let entry = actor.entry(
        Action::NumberAdd,
        number.number.as_str(),
        vec![
            Change::set("number", json!(number.number.as_str())),
            Change::set("label", json!(number.label)),
        ],
    );
    store
        .insert_number(actor.account(), &number, &entry)
        .await?;
    Ok(number)
}

pub async fn list(
    store: &dyn Store,
    actor: &Actor,
    page: &PageRequest,
) -> Result<Page<Number>, NumberError> {
    actor.may(Need::Read)?;
    Ok(store.list_numbers(actor.account(), page).await?)
}

/// Every number of the account (for pickers), up to 1,000.
pub async fn all(store: &dyn Store, actor: &Actor) -> Result<Vec<Number>, NumberError> {
    let page = PageRequest {
        limit: 1000,
        after: None,
    };
    Ok(list(store, actor, &page).await?.items)
}

pub async fn get(store: &dyn Store, actor: &Actor, number: &E164) -> Result<Number, NumberError> {
    actor.may(Need::Read)?;
    store
        .get_number(actor.account(), number)
        .await
        .map_err(|e| or_not_found(e, NumberError::NotFound))
}

/// Changes a number's label from `{label}` (an absent `label` changes nothing; null or empty
/// removes it). Answers the number as it is now.
pub async fn update(
    store: &dyn Store,
    actor: &Actor,
    number: &E164,
    obj: &Map<String, Value>,
) -> Result<Number, NumberError> {
    actor.may(Need::Change)?;
    let mut f = Fields::new("", obj, NUMBER_PATCH_KEYS);
    let label = label(&mut f);
    f.finish().into_result(()).map_err(NumberError::Invalid)?;
    if obj.contains_key("label") {
        let before = get(store, actor, number).await?;
        let entry = actor.entry(
            Action::NumberUpdate,
            number.as_str(),
            vec![Change::new("label", json!(before.label), json!(label))],
        );
        store
            .set_number_label(actor.account(), number, label.as_deref(), &entry)
            .await
            .map_err(|e| or_not_found(e, NumberError::NotFound))?;
    }
    get(store, actor, number).await
}

/// Removes a number; refused while a webhook names it.
pub async fn remove(store: &dyn Store, actor: &Actor, number: &E164) -> Result<(), NumberError> {
    actor.may(Need::Change)?;
    let before = get(store, actor, number).await?;
    let entry = actor.entry(
        Action::NumberRemove,
        number.as_str(),
        vec![
            Change::new("number", json!(number.as_str()), Value::Null),
            Change::new("label", json!(before.label), Value::Null),
        ],
    );
    store
        .delete_number(actor.account(), number, &entry)
        .await
        .map_err(|e| or_not_found(e, NumberError::NotFound))
}
