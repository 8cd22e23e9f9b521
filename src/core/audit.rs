//! The audit log's words (SPEC §13): the actions it records, the kinds of resource they touch,
//! and the fields each change moved from what to what. Secrets never appear in a change: a
//! signing secret is only "rotated" or "revealed", and custom header values (which carry
//! receivers' credentials) only "changed".

use serde_json::{Map, Value, json};

use super::validate::Choice;
use super::webhook::WebhookSpec;

/// What was done. The list is closed: `GET /v1/audit?action=` takes these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    WebhookCreate,
    /// Changed settings (and perhaps more than enabled-ness).
    WebhookUpdate,
    WebhookEnable,
    WebhookDisable,
    WebhookDelete,
    SecretReveal,
    SecretRotate,
    /// The values of a webhook's custom headers were shown (in the web page); never the values.
    HeaderReveal,
    DeliveryResend,
    WebhookReplay,
    /// Failed and retrying deliveries of a webhook retried at once, by the log's filters.
    DeliveryBulkRetry,
    NumberAdd,
    NumberUpdate,
    NumberRemove,
    ApiKeyCreate,
    ApiKeyRevoke,
    /// Made on the command line or by the first start, with a password.
    UserCreate,
    UserInvite,
    /// An invited user set their password through the link.
    UserSignUp,
    UserRoleChange,
    UserRemove,
    /// An owner (or an admin key) made a new one-time link; the old password stopped working.
    UserReset,
    /// A user changed their own password (or set a new one through a reset link).
    UserPasswordChange,
    ClickToCallRequest,
    /// The account's alert settings (`alert_url`, `alert_after`) changed.
    AccountAlertsUpdate,
    AlertSecretReveal,
    AlertSecretRotate,
}

impl Action {
    pub const ALL: [Action; 27] = [
        Action::WebhookCreate,
        Action::WebhookUpdate,
        Action::WebhookEnable,
        Action::WebhookDisable,
        Action::WebhookDelete,
        Action::SecretReveal,
        Action::SecretRotate,
        Action::HeaderReveal,
        Action::DeliveryResend,
        Action::WebhookReplay,
        Action::DeliveryBulkRetry,
        Action::NumberAdd,
        Action::NumberUpdate,
        Action::NumberRemove,
        Action::ApiKeyCreate,
        Action::ApiKeyRevoke,
        Action::UserCreate,
        Action::UserInvite,
        Action::UserSignUp,
        Action::UserRoleChange,
        Action::UserRemove,
        Action::UserReset,
        Action::UserPasswordChange,
        Action::ClickToCallRequest,
        Action::AccountAlertsUpdate,
        Action::AlertSecretReveal,
        Action::AlertSecretRotate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::WebhookCreate => "webhook.create",
            Action::WebhookUpdate => "webhook.update",
            Action::WebhookEnable => "webhook.enable",
            Action::WebhookDisable => "webhook.disable",
            Action::WebhookDelete => "webhook.delete",
            Action::SecretReveal => "webhook.secret_reveal",
            Action::SecretRotate => "webhook.secret_rotate",
            Action::HeaderReveal => "webhook.header_reveal",
            Action::DeliveryResend => "delivery.resend",
            Action::WebhookReplay => "webhook.replay",
            Action::DeliveryBulkRetry => "webhook.retry",
            Action::NumberAdd => "number.add",
            Action::NumberUpdate => "number.update",
            Action::NumberRemove => "number.remove",
            Action::ApiKeyCreate => "api_key.create",
            Action::ApiKeyRevoke => "api_key.revoke",
            Action::UserCreate => "user.create",
            Action::UserInvite => "user.invite",
            Action::UserSignUp => "user.sign_up",
            Action::UserRoleChange => "user.role_change",
            Action::UserRemove => "user.remove",
            Action::UserReset => "user.reset",
            Action::UserPasswordChange => "user.password_change",
            Action::ClickToCallRequest => "click_to_call.request",
            Action::AccountAlertsUpdate => "account.alerts_update",
            Action::AlertSecretReveal => "account.alert_secret_reveal",
            Action::AlertSecretRotate => "account.alert_secret_rotate",
        }
    }

    /// The kind of resource the action is about.
    pub fn resource(self) -> ResourceKind {
        match self {
            Action::WebhookCreate
            | Action::WebhookUpdate
            | Action::WebhookEnable
            | Action::WebhookDisable
            | Action::WebhookDelete
            | Action::SecretReveal
            | Action::SecretRotate
            | Action::HeaderReveal
            | Action::WebhookReplay
            | Action::DeliveryBulkRetry => ResourceKind::Webhook,
            Action::DeliveryResend => ResourceKind::Delivery,
            Action::NumberAdd | Action::NumberUpdate | Action::NumberRemove => ResourceKind::Number,
            Action::ApiKeyCreate | Action::ApiKeyRevoke => ResourceKind::ApiKey,
            Action::UserCreate
            | Action::UserInvite
            | Action::UserSignUp
            | Action::UserRoleChange
            | Action::UserRemove
            | Action::UserReset
            | Action::UserPasswordChange => ResourceKind::User,
            Action::ClickToCallRequest => ResourceKind::ClickToCall,
            Action::AccountAlertsUpdate | Action::AlertSecretReveal | Action::AlertSecretRotate => {
                ResourceKind::Account
            }
        }
    }
}

/// In the API document, an action is one of its names.
impl utoipa::PartialSchema for Action {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Action::ALL.iter().map(|a| a.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for Action {}

impl Choice for Action {
    fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn choices() -> String {
        let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        names.join(", ")
    }
}

/// The kind of thing an action touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Webhook,
    Delivery,
    Number,
    ApiKey,
    User,
    ClickToCall,
    Account,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 7] = [
        ResourceKind::Webhook,
        ResourceKind::Delivery,
        ResourceKind::Number,
        ResourceKind::ApiKey,
        ResourceKind::User,
        ResourceKind::ClickToCall,
        ResourceKind::Account,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Webhook => "webhook",
            ResourceKind::Delivery => "delivery",
            ResourceKind::Number => "number",
            ResourceKind::ApiKey => "api_key",
            ResourceKind::User => "user",
            ResourceKind::ClickToCall => "click_to_call",
            ResourceKind::Account => "account",
        }
    }

    pub fn parse(s: &str) -> Option<ResourceKind> {
        ResourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A user of the web page.
    User,
    /// An API key.
    ApiKey,
    /// The operator: the operator token, the command line, the first start.
    Operator,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiKey => "api_key",
            ActorKind::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<ActorKind> {
        [ActorKind::User, ActorKind::ApiKey, ActorKind::Operator]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The actor as the log keeps it: the name is written down, so the row still says who it was
/// once the user or key is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditActor {
    pub kind: ActorKind,
    /// `usr_…` or `key_…`; none for the operator.
    pub id: Option<String>,
    /// The user's email, the key's name, or how the operator acted (`callhook user create`).
    pub name: String,
}

/// One field a change moved: `before` → `after` (`null` where there was or is nothing).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

impl Change {
    pub fn new(field: impl Into<String>, before: Value, after: Value) -> Change {
        Change {
            field: field.into(),
            before,
            after,
        }
    }

    /// A field that came to be (`null` → `after`).
    pub fn set(field: impl Into<String>, after: Value) -> Change {
        Change::new(field, Value::Null, after)
    }

    /// Something happened to a secret: `"rotated"`, `"revealed"`, `"changed"`, `"reset"` —
    /// the word, never the value.
    pub fn secret(field: impl Into<String>, what: &str) -> Change {
        Change::new(field, Value::Null, json!(what))
    }
}

/// Every field of `fields` as made: `null` → value.
pub fn created(fields: Map<String, Value>) -> Vec<Change> {
    fields
        .into_iter()
        .map(|(k, v)| Change::new(k, Value::Null, v))
        .collect()
}

/// Every field of `fields` as gone: value → `null`.
pub fn removed(fields: Map<String, Value>) -> Vec<Change> {
    fields
        .into_iter()
        .map(|(k, v)| Change::new(k, v, Value::Null))
        .collect()
}

/// The fields whose values differ, in `after`'s order, then those only `before` had.
pub fn diff(before: &Map<String, Value>, after: &Map<String, Value>) -> Vec<Change> {
    let mut out: Vec<Change> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| {
            Change::new(
                k.clone(),
                before.get(k).cloned().unwrap_or(Value::Null),
                v.clone(),
            )
        })
        .collect();
    out.extend(
        before
            .iter()
            .filter(|(k, _)| !after.contains_key(*k))
            .map(|(k, v)| Change::new(k.clone(), v.clone(), Value::Null)),
    );
    out
}

/// A webhook's settings as the audit log keeps them: every field, but of its custom headers
/// only the names.
pub fn webhook_fields(spec: &WebhookSpec) -> Map<String, Value> {
    let mut m = spec.to_json();
    let keys: Vec<&str> = spec.headers.iter().map(|h| h.key.as_str()).collect();
    m.insert("headers".into(), json!(keys));
    m
}

/// What changed between two versions of a webhook's settings: the fields that differ, and for
/// a header kept under the same name whose value changed, `headers.<name>` → `"changed"`.
pub fn webhook_changes(before: &WebhookSpec, after: &WebhookSpec) -> Vec<Change> {
    let mut out = diff(&webhook_fields(before), &webhook_fields(after));
    for h in &after.headers {
        let old = before.headers.iter().find(|o| o.key == h.key);
        if old.is_some_and(|o| o.value != h.value) {
            out.push(Change::secret(format!("headers.{}", h.key), "changed"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> WebhookSpec {
        let mut base = json!({"name": "CRM", "trigger": "call_missed",
            "url": "https://crm.example.com/hook", "headers": [{"key": "X-Api-Key", "value": "s3cr3t-one"}]});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        WebhookSpec::from_json(base.as_object().unwrap()).unwrap()
    }

    #[test]
    fn actions_read_back_and_name_their_resource() {
        for a in Action::ALL {
            assert_eq!(<Action as Choice>::parse(a.as_str()), Some(a));
            assert!(
                a.as_str().starts_with(a.resource().as_str()),
                "{} is about a {}",
                a.as_str(),
                a.resource().as_str()
            );
        }
        for k in ResourceKind::ALL {
            assert_eq!(ResourceKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn a_webhook_change_names_the_fields_that_moved() {
        let a = spec(json!({}));
        let b = spec(json!({"url": "https://crm.example.com/v2", "enabled": false}));
        let changes = webhook_changes(&a, &b);
        assert_eq!(
            changes,
            [
                Change::new(
                    "url",
                    json!("https://crm.example.com/hook"),
                    json!("https://crm.example.com/v2")
                ),
                Change::new("enabled", json!(true), json!(false)),
            ]
        );
        assert!(webhook_changes(&a, &a).is_empty());
    }

    #[test]
    fn header_values_never_enter_a_change() {
        let a = spec(json!({}));
        let b = spec(
            json!({"headers": [{"key": "X-Api-Key", "value": "s3cr3t-two"},
                                        {"key": "X-Other", "value": "s3cr3t-three"}]}),
        );
        let changes = webhook_changes(&a, &b);
        let text = serde_json::to_string(&changes).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(
            changes,
            [
                Change::new(
                    "headers",
                    json!(["X-Api-Key"]),
                    json!(["X-Api-Key", "X-Other"])
                ),
                Change::secret("headers.X-Api-Key", "changed"),
            ]
        );
        let made = serde_json::to_string(&created(webhook_fields(&b))).unwrap();
        assert!(!made.contains("s3cr3t"), "{made}");
    }

    #[test]
    fn a_diff_keeps_fields_only_one_side_has() {
        let before = json!({"a": 1, "b": 2}).as_object().unwrap().clone();
        let after = json!({"a": 1, "c": 3}).as_object().unwrap().clone();
        assert_eq!(
            diff(&before, &after),
            [
                Change::new("c", Value::Null, json!(3)),
                Change::new("b", json!(2), Value::Null),
            ]
        );
    }
}
