//! Click-to-call (SPEC §15): an agent asks for a call; the PBX rings the agent, then the
//! customer. A request is checked here (every bad field at once), kept `queued` in the store,
//! and handed to the node whose connector places the account's calls
//! (`connectors/handover.rs`), which records each change of its state; any node reads it back.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Actor, Failure, IntoFailure, Services, or_not_found, stored_now};
use crate::connectors::handover::FRESH_FOR;
use crate::core::click_to_call::{self, Status};
use crate::core::id::{AccountId, ClickToCallId};
use crate::core::number::E164;
use crate::core::validate::{FieldErrors, Fields};
use crate::store::{Store, StoreError, StoredClickToCall};

#[derive(Debug, thiserror::Error)]
pub enum ClickToCallError {
    #[error("click-to-call request not found")]
    NotFound,
    /// Fields that break the rules, every one of them.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// The request is fine but cannot be taken now: no connector of the account places
    /// calls, or it is not connected (`connector`), or its `ref_id` names another call.
    #[error("{0}")]
    Conflict(FieldErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoFailure for ClickToCallError {
    fn into_failure(self) -> Failure {
        match self {
            ClickToCallError::NotFound => Failure::NotFound("click-to-call request"),
            ClickToCallError::Invalid(f) => Failure::Invalid(f),
            ClickToCallError::Conflict(f) => Failure::ConflictOn(f),
            ClickToCallError::Store(e) => e.into_failure(),
        }
    }
}

/// A request as asked for, its fields checked.
#[derive(Debug, Clone, PartialEq)]
struct Asked {
    agent_extension: String,
    customer_number: E164,
    did_number: Option<E164>,
    ref_id: Option<String>,
}

/// The keys of a request's body.
pub const REQUEST_KEYS: &[&str] = &["agent_extension", "customer_number", "did_number", "ref_id"];

/// Reads `{agent_extension, customer_number, did_number?, ref_id?}`, naming every problem.
/// Answers the request when every field is right, and the DID asked for whenever it reads
/// (whether it is the account's is checked against the store, beside the other problems).
fn parse(obj: &Map<String, Value>) -> (Option<Asked>, Option<E164>, FieldErrors) {
    let mut f = Fields::new("", obj, REQUEST_KEYS);
    let agent_extension = f.req_str("agent_extension").and_then(|x| {
        click_to_call::check_extension(x)
            .map_err(|e| f.error("agent_extension", e))
            .ok()
            .map(|()| x.to_owned())
    });
    let customer_number = f.req_str("customer_number").and_then(|n| {
        E164::parse(n)
            .map_err(|e| f.error("customer_number", e))
            .ok()
    });
    let did_number = f
        .str("did_number")
        .and_then(|n| E164::parse(n).map_err(|e| f.error("did_number", e)).ok());
    let ref_id = f.str("ref_id").and_then(|r| {
        click_to_call::check_ref_id(r)
            .map_err(|e| f.error("ref_id", e))
            .ok()
            .map(|()| r.to_owned())
    });
    let errors = f.finish();
    let asked = match (agent_extension, customer_number) {
        (Some(agent_extension), Some(customer_number)) if errors.is_empty() => Some(Asked {
            agent_extension,
            customer_number,
            did_number: did_number.clone(),
            ref_id,
        }),
        _ => None,
    };
    (asked, did_number, errors)
}

/// Where a request of the account goes: the placing connector's name and default DID.
struct Placer {
    name: String,
    default_did: Option<E164>,
}

/// One error on `connector`: a 409.
fn connector_conflict(message: String) -> ClickToCallError {
    let mut e = FieldErrors::default();
    e.push("connector", message);
    ClickToCallError::Conflict(e)
}

/// The connector that would place the account's requests now: this node's, or one another
/// node spoke of lately (connectors run on one node, docs/operations.md). Refused when none
/// places the account's calls, or none that does is connected.
async fn placer(svc: &Services, account_id: &AccountId) -> Result<Placer, ClickToCallError> {
    let here = svc
        .connectors
        .placing()
        .into_iter()
        .find(|p| p.account_id == *account_id);
    if let Some(p) = &here
        && p.connected
    {
        return Ok(Placer {
            name: p.name.clone(),
            default_did: p.default_did.clone(),
        });
    }
    let since = Timestamp::now()
        .checked_sub(jiff::SignedDuration::try_from(FRESH_FOR).unwrap_or_default())
        .unwrap_or(Timestamp::MIN);
    let elsewhere = svc.store.placing_connectors(account_id, since).await?;
    if let Some(p) = elsewhere.iter().find(|p| p.connected) {
        return Ok(Placer {
            name: p.name.clone(),
            default_did: p.default_did.clone(),
        });
    }
    let not_connected = here
        .map(|p| p.name)
        .or_else(|| elsewhere.into_iter().next().map(|p| p.name));
    Err(connector_conflict(match not_connected {
        Some(name) => format!("the connector {name} is not connected to its PBX; try again once it is"),
        None => "no connector of this account places calls (`originate = true` in its [[connectors]] table, see docs/connectors.md)".to_owned(),
    }))
}

/// The request kept under the reference asked for, if it is the same call; otherwise the
/// reference is taken (a 409 naming `ref_id`).
fn same_request(
    kept: StoredClickToCall,
    asked: &Asked,
) -> Result<StoredClickToCall, ClickToCallError> {
    let same = kept.agent_extension == asked.agent_extension
        && kept.customer_number == asked.customer_number
        && asked
            .did_number
            .as_ref()
            .is_none_or(|d| *d == kept.did_number);
    if same {
        return Ok(kept);
    }
    let mut e = FieldErrors::default();
    e.push(
        "ref_id",
        format!(
            "{:?} already names request {} (agent {} to {}); use another ref_id for another call",
            kept.ref_id, kept.id, kept.agent_extension, kept.customer_number
        ),
    );
    Err(ClickToCallError::Conflict(e))
}

/// Takes a click-to-call request from `{agent_extension, customer_number, did_number?,
/// ref_id?}`: checked, stored `queued` (durable before this answers) and handed to the placing
/// connector's node. The same `ref_id` again answers the request it made, placing nothing.
pub async fn request(
    svc: &Services,
    actor: &Actor,
    obj: &Map<String, Value>,
) -> Result<StoredClickToCall, ClickToCallError> {
    let store = &*svc.store;
    let account = actor.account();
    let (asked, did, mut errors) = parse(obj);
    if let Some(did) = &did
        && !store
            .unknown_numbers(account, std::slice::from_ref(did))
            .await?
            .is_empty()
    {
        errors.push(
            "did_number",
            format!("{did} is not one of your numbers; add it to My Numbers first"),
        );
    }
    let Some(asked) = asked.filter(|_| errors.is_empty()) else {
        return Err(ClickToCallError::Invalid(errors));
    };
    if let Some(ref_id) = &asked.ref_id
        && let Some(kept) = store.click_to_call_by_ref(account, ref_id).await?
    {
        return same_request(kept, &asked);
    }
    let placer = placer(svc, account).await?;
    let Some(did) = asked.did_number.clone().or(placer.default_did) else {
        let mut e = FieldErrors::default();
        e.push(
            "did_number",
            format!(
                "is required: the connector {} has no default_did",
                placer.name
            ),
        );
        return Err(ClickToCallError::Invalid(e));
    };
    let id = ClickToCallId::new();
    let now = stored_now();
    let new = StoredClickToCall {
        ref_id: asked
            .ref_id
            .clone()
            .unwrap_or_else(|| id.as_str().to_owned()),
        id,
        account_id: account.clone(),
        agent_extension: asked.agent_extension.clone(),
        customer_number: asked.customer_number.clone(),
        did_number: did,
        status: Status::Queued,
        cause: None,
        call_id: None,
        connector: None,
        created_at: now,
        placed_at: None,
        ringing_agent_at: None,
        ringing_customer_at: None,
        ended_at: None,
        updated_at: now,
    };
    let (kept, is_new) = store.insert_click_to_call(&new).await?;
    if !is_new {
        // The same reference came in twice at once: the other one made the request.
        return same_request(kept, &asked);
    }
    svc.connectors.request_stored();
    Ok(kept)
}

/// A request id from a path: one that cannot be a request's names nothing.
pub fn parse_id(s: &str) -> Result<ClickToCallId, ClickToCallError> {
    ClickToCallId::parse(s).ok_or(ClickToCallError::NotFound)
}

/// One request of the account.
pub async fn get(
    store: &dyn Store,
    actor: &Actor,
    id: &ClickToCallId,
) -> Result<StoredClickToCall, ClickToCallError> {
    store
        .get_click_to_call(actor.account(), id)
        .await
        .map_err(|e| or_not_found(e, ClickToCallError::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Vec<String> {
        let (_, _, errors) = parse(v.as_object().unwrap());
        errors.0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        assert_eq!(
            fields(
                json!({"agent_extension": "1 01", "customer_number": "98123",
                          "did_number": "0806", "ref_id": "a b", "colour": "red"})
            ),
            [
                "agent_extension",
                "customer_number",
                "did_number",
                "ref_id",
                "colour"
            ]
        );
        assert_eq!(fields(json!({})), ["agent_extension", "customer_number"]);
        assert_eq!(
            fields(json!({"agent_extension": 101, "customer_number": "+919812345678"})),
            ["agent_extension"]
        );
    }

    #[test]
    fn a_good_request_reads_whole() {
        let (asked, _, errors) = parse(
            json!({"agent_extension": "101", "customer_number": "+91 98123 45678",
                   "did_number": null, "ref_id": "crm-42"})
            .as_object()
            .unwrap(),
        );
        assert!(errors.is_empty(), "{errors}");
        let asked = asked.unwrap();
        assert_eq!(asked.customer_number.as_str(), "+919812345678");
        assert_eq!(asked.did_number, None);
        assert_eq!(asked.ref_id.as_deref(), Some("crm-42"));
    }
}
