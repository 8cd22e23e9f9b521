//! Typed ids: an [`Id<K>`] says which kind of thing it names (`AccountId`, `WebhookId`,
//! `DeliveryId`, …), so `get_delivery(&AccountId, &DeliveryId)` cannot take its arguments
//! swapped. The ids callhook makes are prefixed and time-ordered (`wh_01JDX…`): a UUIDv7 in
//! Crockford base32, so they sort by creation time as plain strings and read like ULIDs. The
//! ids that come from outside (a PBX's call id, an event's posted id) are kept as given.
//!
//! Everywhere outside the process an id is its plain string: JSON, forms, URLs and the
//! database see no difference.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A kind of thing with an id.
pub trait Kind: 'static {
    /// What the thing is called in messages (`webhook`).
    const NAME: &'static str;
}

/// A kind whose ids callhook makes: [`Id::new`] and [`Id::parse`] know their prefix.
pub trait Made: Kind {
    /// `wh` in `wh_01JDX…`.
    const PREFIX: &'static str;
}

/// The id of a `K`: its string, typed by kind.
pub struct Id<K> {
    value: String,
    // `fn() -> K`: an id owns no `K`, and is Send + Sync whatever `K` is.
    kind: PhantomData<fn() -> K>,
}

/// The kinds. They are never made; they only tell ids apart.
pub mod kind {
    use super::{Kind, Made};

    /// A tenant (`acct_…`).
    pub enum Account {}
    /// A person who signs in to the web page (`usr_…`).
    pub enum User {}
    /// An account's API key (`key_…`).
    pub enum ApiKey {}
    /// A webhook (`wh_…`).
    pub enum Webhook {}
    /// A delivery: one event to one webhook (`dlv_…`); also the `webhook-id` header.
    pub enum Delivery {}
    /// An event as callhook stored it (`evt_…`).
    pub enum Event {}
    /// A call, by the PBX's id for it (`call.call_id`): kept as posted.
    pub enum Call {}
    /// An event's `id` as posted, or callhook's own id for it when none was: the `event_id`
    /// receivers get, unique per account.
    pub enum PostedEvent {}
    /// A click-to-call request (`c2c_…`, SPEC §15); it also names the originate on the PBX.
    pub enum ClickToCall {}
    /// One row of the audit log (`aud_…`, SPEC §13).
    pub enum AuditEntry {}
    /// A running `callhook serve` process (`node_…`): it heartbeats and holds leases.
    pub enum Node {}

    impl Kind for Account {
        const NAME: &'static str = "account";
    }
    impl Made for Account {
        const PREFIX: &'static str = "acct";
    }
    impl Kind for User {
        const NAME: &'static str = "user";
    }
    impl Made for User {
        const PREFIX: &'static str = "usr";
    }
    impl Kind for ApiKey {
        const NAME: &'static str = "API key";
    }
    impl Made for ApiKey {
        const PREFIX: &'static str = "key";
    }
    impl Kind for Webhook {
        const NAME: &'static str = "webhook";
    }
    impl Made for Webhook {
        const PREFIX: &'static str = "wh";
    }
    impl Kind for Delivery {
        const NAME: &'static str = "delivery";
    }
    impl Made for Delivery {
        const PREFIX: &'static str = "dlv";
    }
    impl Kind for Event {
        const NAME: &'static str = "event";
    }
    impl Made for Event {
        const PREFIX: &'static str = "evt";
    }
    impl Kind for Call {
        const NAME: &'static str = "call";
    }
    impl Kind for PostedEvent {
        const NAME: &'static str = "event";
    }
    impl Kind for ClickToCall {
        const NAME: &'static str = "click-to-call request";
    }
    impl Made for ClickToCall {
        const PREFIX: &'static str = "c2c";
    }
    impl Kind for AuditEntry {
        const NAME: &'static str = "audit entry";
    }
    impl Made for AuditEntry {
        const PREFIX: &'static str = "aud";
    }
    impl Kind for Node {
        const NAME: &'static str = "node";
    }
    impl Made for Node {
        const PREFIX: &'static str = "node";
    }
}

pub type AccountId = Id<kind::Account>;
pub type UserId = Id<kind::User>;
pub type ApiKeyId = Id<kind::ApiKey>;
pub type WebhookId = Id<kind::Webhook>;
pub type DeliveryId = Id<kind::Delivery>;
pub type EventId = Id<kind::Event>;
pub type CallId = Id<kind::Call>;
pub type PostedEventId = Id<kind::PostedEvent>;
pub type ClickToCallId = Id<kind::ClickToCall>;
pub type AuditId = Id<kind::AuditEntry>;
pub type NodeId = Id<kind::Node>;

impl<K> Id<K> {
    /// An id as given: read back from the store, or of a kind callhook does not make (a call
    /// id, a posted event id), whose rules the event's parser keeps. Ids from a request of a
    /// kind callhook makes go through [`Id::parse`].
    pub fn from_string(value: String) -> Id<K> {
        Id {
            value,
            kind: PhantomData,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn into_string(self) -> String {
        self.value
    }
}

impl<K: Made> Id<K> {
    /// A new id, later than every id made before it in this process.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Id<K> {
        Id::from_string(new_id(K::PREFIX))
    }

    /// `s`, when it has the shape of an id of this kind; `None` means no such thing exists
    /// (a 404 early, without asking the store).
    pub fn parse(s: &str) -> Option<Id<K>> {
        is_id(K::PREFIX, s).then(|| Id::from_string(s.to_owned()))
    }
}

/// A new id with `prefix` (for ids that name no stored thing, like a node's).
pub fn new_id(prefix: &str) -> String {
    let value = uuid::Uuid::now_v7().as_u128();
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    // 128 bits in 26 base32 digits: the first digit carries the top 3 bits.
    for i in (0..26).rev() {
        let digit = ((value >> (i * 5)) & 0x1f) as usize;
        out.push(ALPHABET[digit] as char);
    }
    out
}

/// Whether `s` looks like an id made by [`new_id`] with `prefix`.
fn is_id(prefix: &str, s: &str) -> bool {
    s.len() == prefix.len() + 27
        && s.starts_with(prefix)
        && s.as_bytes()[prefix.len()] == b'_'
        && s[prefix.len() + 1..].bytes().all(|b| ALPHABET.contains(&b))
}

// Written out rather than derived: a derive would ask the same of `K`, which is never made.
impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        Id {
            value: self.value.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<K> Eq for Id<K> {}

impl<K> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl<K> Hash for Id<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl<K> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.value, f)
    }
}

/// Compared with its plain string, as tests and templates do.
impl<K> PartialEq<str> for Id<K> {
    fn eq(&self, other: &str) -> bool {
        self.value == other
    }
}

impl<K> PartialEq<&str> for Id<K> {
    fn eq(&self, other: &&str) -> bool {
        self.value == *other
    }
}

/// Looked up by its plain string in maps and sets (its hash is the string's).
impl<K> std::borrow::Borrow<str> for Id<K> {
    fn borrow(&self) -> &str {
        &self.value
    }
}

impl<K> AsRef<str> for Id<K> {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

/// In JSON an id is its plain string.
impl<K> serde::Serialize for Id<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_sort_by_time() {
        let ids: Vec<WebhookId> = (0..1000).map(|_| WebhookId::new()).collect();
        assert!(
            ids.iter()
                .all(|id| WebhookId::parse(id.as_str()).as_ref() == Some(id)),
            "{ids:?}"
        );
        assert!(ids.iter().all(|id| id.as_str().starts_with("wh_")));
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(AccountId::parse(ids[0].as_str()).is_none());
        assert!(WebhookId::parse("wh_short").is_none());
        assert!(WebhookId::parse("").is_none());
        // Lower case is not Crockford base32 as callhook writes it.
        assert!(WebhookId::parse(&ids[0].as_str().to_lowercase()).is_none());
    }

    #[test]
    fn an_id_reads_as_its_plain_string() {
        let id = CallId::from_string("1732680000.1042".into());
        assert_eq!(id.to_string(), "1732680000.1042");
        assert_eq!(format!("{id:?}"), "\"1732680000.1042\"");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"1732680000.1042\"");
        assert_eq!(id, "1732680000.1042");
    }
}
