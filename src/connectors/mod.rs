//! PBX connectors: callhook connects to an Asterisk (AMI) or FreeSWITCH (event socket) PBX,
//! follows its calls and turns them into call events that take the same path as
//! `POST /v1/events` ([`crate::ingest::Ingest::accept`]).
//!
//! The parsing and the call following are pure (`ami`, `ami_calls`, `esl`, `esl_calls`,
//! `table`, `call`): bytes in, call events out. [`runner`] is the thin shell that moves the
//! bytes and keeps the status shown on `/readyz`, the web page and `/metrics`. This file holds
//! the settings (`[[connectors]]` in the TOML file) and the handle the rest of the app uses,
//! which also places click-to-call calls through a connector that may (`originate`).

pub mod ami;
pub mod ami_calls;
pub mod call;
pub mod esl;
pub mod esl_calls;
pub mod handover;
pub mod numbers;
pub mod originate;
mod runner;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::core::event::{CallEvent, CallType, DialVia};
use crate::core::id::AccountId;
use crate::core::number::E164;
use crate::core::retry::Dur;
use crate::ingest::Ingest;
use crate::shutdown::Shutdown;
use crate::store::Store;
use call::{Built, DidFrom, IvrRule, Place, Rules, TargetRule};
use numbers::NumberPlan;
use originate::{
    ChannelTemplate, ClickToCallRequest, NumberTemplate, OriginateError, OriginateRules,
    Originations, Placing, StateChange,
};
use table::Follower;

/// Which PBX interface a connector speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// The Asterisk Manager Interface (`manager.conf`), port 5038.
    AsteriskAmi,
    /// The FreeSWITCH event socket (`event_socket.conf.xml`), port 8021.
    FreeswitchEsl,
}

impl ConnectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::AsteriskAmi => "asterisk_ami",
            ConnectorKind::FreeswitchEsl => "freeswitch_esl",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            ConnectorKind::AsteriskAmi => 5038,
            ConnectorKind::FreeswitchEsl => 8021,
        }
    }
}

/// One `[[connectors]]` table of the settings file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSettings {
    pub kind: ConnectorKind,
    /// Names the connector in event ids, metrics and the status; default `host:port`.
    /// Changing it changes the ids of events read afterwards.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub host: String,
    /// Default 5038 (AMI) or 8021 (event socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The AMI user (`manager.conf`); unused by the event socket.
    #[serde(default)]
    pub username: String,
    /// The AMI secret or the event socket password.
    #[serde(default)]
    pub password: String,
    /// The account the PBX's calls belong to.
    pub account: String,
    /// Where IVRs are: the PBX answering a call there is `call.answered` (ivr). Empty: every
    /// answer by the PBX itself is an IVR answer, named after its context.
    #[serde(default)]
    pub ivrs: Vec<IvrSetting>,
    /// Dialplan places whose dial rings a ring group or a queue; other dials are direct.
    #[serde(default)]
    pub dial_targets: Vec<DialTargetSetting>,
    /// Display names of the PBX's queues (app_queue / mod_callcenter), by queue name.
    #[serde(default)]
    pub queue_names: BTreeMap<String, String>,
    /// Display names of extensions, by extension.
    #[serde(default)]
    pub extension_names: BTreeMap<String, String>,
    /// Contexts of the account's own phones: calls starting there are `outbound`.
    #[serde(default)]
    pub outbound_contexts: Vec<String>,
    /// The call type of calls the PBX places itself: `click_to_call` or `outbound`.
    #[serde(default = "default_originated")]
    pub originated_call_type: CallType,
    /// Where the DID of an inbound call is: `exten` (the dialed extension / destination
    /// number) or `variable:NAME` (a channel variable the dialplan sets).
    #[serde(default = "default_did_from")]
    pub did_from: String,
    /// PBX numbers or extensions that stand for a DID: `"300" = "+918065251300"`.
    #[serde(default)]
    pub dids: BTreeMap<String, String>,
    /// The DID of calls whose own cannot be found; without it such calls are not reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_did: Option<String>,
    /// Country code of national numbers (`91`): turns `08065251305` into `+918065251305`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// A channel variable holding a click-to-call request's reference (`ref_id`); empty: none.
    #[serde(default = "default_ref_id_variable")]
    pub ref_id_variable: String,
    /// This connector places the account's click-to-call calls (SPEC §15); needs
    /// `originate_channel` and `originate_context`.
    #[serde(default)]
    pub originate: bool,
    /// The agent's channel (Asterisk) or endpoint (FreeSWITCH), `{extension}` standing for the
    /// agent's extension: `PJSIP/{extension}`, `user/{extension}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originate_channel: Option<String>,
    /// The dialplan context in which the customer is dialled: the extension is the
    /// customer's number (as `originate_dial` writes it), priority 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originate_context: Option<String>,
    /// How the customer's number is written for the dial: `{e164}` (the default),
    /// `{digits}`, `{national}`, with dial characters around it (`0{national}`, `9{e164}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originate_dial: Option<String>,
    /// With `{national}` in `originate_dial`: how numbers of other countries are written;
    /// default `00{digits}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originate_dial_international: Option<String>,
    /// How the DID is written as the caller id the customer sees; default `{e164}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originate_caller_id: Option<String>,
    /// How long the agent's phone rings; default 30 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originate_agent_timeout: Option<Dur>,
    /// More channel variables the PBX sets on the agent's channel.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub originate_variables: BTreeMap<String, String>,
}

fn default_originated() -> CallType {
    CallType::ClickToCall
}

fn default_did_from() -> String {
    "exten".into()
}

fn default_ref_id_variable() -> String {
    "CALLHOOK_REF_ID".into()
}

/// An IVR: a context, optionally one extension of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrSetting {
    pub context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exten: Option<String>,
    /// Default: the context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What a dial from one dialplan place rings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialTargetSetting {
    /// Any context when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub exten: String,
    /// `ring_group` or `queue`.
    #[serde(rename = "type")]
    pub kind: TargetKind,
    /// Default: the extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    RingGroup,
    Queue,
}

/// Settings that cannot work, named precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("connector {connector}: {field} {problem}")]
    Invalid {
        connector: String,
        field: &'static str,
        problem: String,
    },
    #[error("two connectors are named {0:?}; give each its own `name`")]
    DuplicateName(String),
    #[error(
        "connectors {first:?} and {second:?} both place calls for account {account} \
         (`originate = true`); at most one connector per account may"
    )]
    TwoPlacers {
        account: String,
        first: String,
        second: String,
    },
}

/// The agent's phone rings this long unless `originate_agent_timeout` says otherwise.
const AGENT_TIMEOUT: Duration = Duration::from_secs(30);

impl ConnectorSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.kind.default_port())
    }

    pub fn name(&self) -> String {
        if self.name.is_empty() {
            format!("{}:{}", self.host, self.port())
        } else {
            self.name.clone()
        }
    }

    /// Checks the settings and resolves them into the rules the call followers apply.
    pub fn rules(&self) -> Result<Rules, SettingsError> {
        let name = self.name();
        let bad = |field: &'static str, problem: String| SettingsError::Invalid {
            connector: name.clone(),
            field,
            problem,
        };
        if self.host.trim().is_empty() {
            return Err(bad("host", "is required".into()));
        }
        if name.chars().count() > 64 || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(bad(
                "name",
                "must be at most 64 characters, without `/` or control characters".into(),
            ));
        }
        if self.account.trim().is_empty() {
            return Err(bad("account", "is required (an account id, acct_…)".into()));
        }
        if self.kind == ConnectorKind::AsteriskAmi && self.username.is_empty() {
            return Err(bad("username", "is required for asterisk_ami".into()));
        }
        for (field, v) in [("username", &self.username), ("password", &self.password)] {
            if v.contains(['\r', '\n']) {
                return Err(bad(field, "must not contain line breaks".into()));
            }
        }
        if self.originated_call_type == CallType::Inbound {
            return Err(bad(
                "originated_call_type",
                "must be click_to_call or outbound".into(),
            ));
        }
        let did_from = match self.did_from.split_once(':') {
            None if self.did_from == "exten" => DidFrom::Exten,
            Some(("variable", v)) if !v.trim().is_empty() => DidFrom::Variable(v.trim().into()),
            _ => {
                return Err(bad(
                    "did_from",
                    format!("{:?} is not `exten` or `variable:NAME`", self.did_from),
                ));
            }
        };
        if let Some(cc) = &self.country_code
            && (!(1..=3).contains(&cc.len())
                || !cc.bytes().all(|b| b.is_ascii_digit())
                || cc.starts_with('0'))
        {
            return Err(bad(
                "country_code",
                format!("{cc:?} is not a country code (1 to 3 digits, like 91)"),
            ));
        }
        let e164 = |field: &'static str, s: &str| E164::parse(s).map_err(|e| bad(field, e));
        let mut dids = BTreeMap::new();
        for (pbx, number) in &self.dids {
            dids.insert(pbx.trim().to_owned(), e164("dids", number)?);
        }
        let default_did = self
            .default_did
            .as_deref()
            .map(|d| e164("default_did", d))
            .transpose()?;
        let ivrs = self
            .ivrs
            .iter()
            .map(|i| IvrRule {
                context: i.context.clone(),
                exten: i.exten.clone(),
                place: Place {
                    id: call::clip(i.id.as_deref().unwrap_or(&i.context)),
                    name: i.name.as_deref().map(call::clip),
                },
            })
            .collect();
        let targets = self
            .dial_targets
            .iter()
            .map(|t| TargetRule {
                context: t.context.clone(),
                exten: t.exten.clone(),
                via: match t.kind {
                    TargetKind::RingGroup => DialVia::RingGroup,
                    TargetKind::Queue => DialVia::Queue,
                },
                place: Place {
                    id: call::clip(t.id.as_deref().unwrap_or(&t.exten)),
                    name: t.name.as_deref().map(call::clip),
                },
            })
            .collect();
        Ok(Rules {
            name,
            ivrs,
            targets,
            queue_names: self.queue_names.clone(),
            extension_names: self.extension_names.clone(),
            outbound_contexts: self.outbound_contexts.clone(),
            originated: self.originated_call_type,
            numbers: NumberPlan {
                country_code: self.country_code.clone(),
                dids,
                default_did,
            },
            did_from,
            ref_id_variable: Some(self.ref_id_variable.trim().to_owned()).filter(|v| !v.is_empty()),
        })
    }

    /// Checks the settings for placing calls and resolves them: `None` unless `originate`.
    pub fn originate_rules(&self) -> Result<Option<OriginateRules>, SettingsError> {
        let name = self.name();
        let bad = |field: &'static str, problem: String| SettingsError::Invalid {
            connector: name.clone(),
            field,
            problem,
        };
        if !self.originate {
            let set = [
                ("originate_channel", self.originate_channel.is_some()),
                ("originate_context", self.originate_context.is_some()),
                ("originate_dial", self.originate_dial.is_some()),
                (
                    "originate_dial_international",
                    self.originate_dial_international.is_some(),
                ),
                ("originate_caller_id", self.originate_caller_id.is_some()),
                (
                    "originate_agent_timeout",
                    self.originate_agent_timeout.is_some(),
                ),
                ("originate_variables", !self.originate_variables.is_empty()),
            ];
            if let Some((field, _)) = set.iter().find(|(_, is_set)| *is_set) {
                return Err(bad(field, "is set but `originate` is not true".into()));
            }
            return Ok(None);
        }
        let channel =
            ChannelTemplate::parse(self.originate_channel.as_deref().ok_or_else(|| {
                bad(
                    "originate_channel",
                    "is required with `originate = true`".into(),
                )
            })?)
            .map_err(|e| bad("originate_channel", e))?;
        let context = self
            .originate_context
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| {
                bad(
                    "originate_context",
                    "is required with `originate = true`".into(),
                )
            })?;
        if context.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                "originate_context",
                format!("{context:?} is not a dialplan context (no spaces)"),
            ));
        }
        let ref_id_variable = self.ref_id_variable.trim().to_owned();
        if !variable_name(&ref_id_variable) {
            return Err(bad(
                "ref_id_variable",
                "must name a channel variable (letters, digits, _) with `originate = true`: \
                 the request's reference travels in it"
                    .into(),
            ));
        }
        let template = |field: &'static str, v: &Option<String>, default: &str| {
            NumberTemplate::parse(v.as_deref().unwrap_or(default)).map_err(|e| bad(field, e))
        };
        let dial = template("originate_dial", &self.originate_dial, "{e164}")?;
        let dial_international = template(
            "originate_dial_international",
            &self.originate_dial_international,
            "00{digits}",
        )?;
        let caller_id = template("originate_caller_id", &self.originate_caller_id, "{e164}")?;
        if dial_international.is_national() {
            return Err(bad(
                "originate_dial_international",
                "is for numbers of other countries: {national} cannot write them".into(),
            ));
        }
        if self.originate_dial_international.is_some() && !dial.is_national() {
            return Err(bad(
                "originate_dial_international",
                "is used only when originate_dial holds {national}".into(),
            ));
        }
        for (field, t) in [
            ("originate_dial", &dial),
            ("originate_caller_id", &caller_id),
        ] {
            if t.is_national() && self.country_code.is_none() {
                return Err(bad(
                    field,
                    "holds {national}, which needs country_code".into(),
                ));
            }
        }
        let agent_timeout = self.originate_agent_timeout.map_or(AGENT_TIMEOUT, |d| d.0);
        if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&agent_timeout) {
            return Err(bad(
                "originate_agent_timeout",
                "must be between 1s and 10m".into(),
            ));
        }
        // Set by callhook itself on every originate.
        let ours: &[&str] = match self.kind {
            ConnectorKind::AsteriskAmi => &[],
            ConnectorKind::FreeswitchEsl => &["origination_caller_id_number", "originate_timeout"],
        };
        for (k, v) in &self.originate_variables {
            if !variable_name(k.trim_start_matches('_'))
                || k.trim_start_matches('_') == ref_id_variable.trim_start_matches('_')
                || ours.contains(&k.as_str())
            {
                return Err(bad(
                    "originate_variables",
                    format!(
                        "{k:?} is not a variable callhook can set (letters, digits, _; not \
                         ref_id_variable, not one callhook sets itself)"
                    ),
                ));
            }
            // Both PBXs split variable lists on commas; FreeSWITCH its command on spaces.
            if v.len() > 256
                || v.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || ",'\"{}".contains(c))
            {
                return Err(bad(
                    "originate_variables",
                    format!(
                        "the value of {k:?} must be at most 256 characters, without spaces, \
                         commas, quotes or braces"
                    ),
                ));
            }
        }
        let e164 = |field: &'static str, s: &str| E164::parse(s).map_err(|e| bad(field, e));
        Ok(Some(OriginateRules {
            channel,
            context,
            dial,
            dial_international,
            caller_id,
            country_code: self.country_code.clone(),
            agent_timeout,
            variables: self.originate_variables.clone(),
            ref_id_variable,
            default_did: self
                .default_did
                .as_deref()
                .map(|d| e164("default_did", d))
                .transpose()?,
        }))
    }

    fn session(&self, rules: Rules, originate: Option<OriginateRules>) -> Box<dyn Session> {
        match self.kind {
            ConnectorKind::AsteriskAmi => Box::new(ami::AmiSession::new(
                &self.username,
                &self.password,
                rules,
                originate,
            )),
            ConnectorKind::FreeswitchEsl => {
                Box::new(esl::EslSession::new(&self.password, rules, originate))
            }
        }
    }
}

/// A channel variable's name as callhook writes it: letters, digits and `_`, at most 64.
fn variable_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks every connector's settings, that their names differ, and that at most one
/// connector per account places calls (a request must have one place to go).
pub fn check(settings: &[ConnectorSettings]) -> Result<(), SettingsError> {
    let mut names = BTreeSet::new();
    let mut placers: BTreeMap<&str, String> = BTreeMap::new();
    for s in settings {
        s.rules()?;
        s.originate_rules()?;
        if !names.insert(s.name()) {
            return Err(SettingsError::DuplicateName(s.name()));
        }
        if s.originate
            && let Some(first) = placers.insert(&s.account, s.name())
        {
            return Err(SettingsError::TwoPlacers {
                account: s.account.clone(),
                first,
                second: s.name(),
            });
        }
    }
    Ok(())
}

/// Every this many keep-alives (about five minutes) a session lists the PBX's live channels
/// again, as after a reconnect: a call whose hangup event was lost (a PBX that dropped events
/// for a slow reader) still ends, instead of staying open forever.
pub const LISTING_EVERY: u32 = 10;

/// What a session made of what it was given: bytes to send back, call events, changes of the
/// click-to-call requests it places, and news for the status. Sessions are pure; the runner
/// acts on this.
#[derive(Debug, Default)]
pub struct Step {
    pub send: Vec<u8>,
    pub events: Vec<CallEvent>,
    pub changes: Vec<StateChange>,
    /// PBX events read.
    pub frames: u64,
    /// The PBX accepted our login just now.
    pub logged_in: bool,
    /// The PBX refused us (a wrong password): disconnect and wait before trying again.
    pub refused: Option<String>,
    /// Things worth telling the operator that do not stop the session (a garbled frame).
    pub problems: Vec<String>,
}

impl Step {
    fn take(&mut self, built: Vec<Built>) {
        for b in built {
            match b {
                Ok(ev) => self.events.push(ev),
                // The follower built an event the API would refuse: a bug, never sent.
                Err(e) => self
                    .problems
                    .push(format!("dropped an invalid call event (a bug): {e}")),
            }
        }
    }
}

/// One PBX protocol's session, as a pure state machine the runner drives.
pub trait Session: Send {
    /// A new TCP connection is up (a reconnect keeps the calls being followed).
    fn connected(&mut self, now: Timestamp) -> Step;
    /// Bytes from the PBX, read at `now`.
    fn received(&mut self, bytes: &[u8], now: Timestamp) -> Step;
    /// What to send now and then so a dead connection is noticed.
    fn keepalive(&mut self) -> Option<Vec<u8>>;
    /// What to send before closing on shutdown.
    fn logoff(&mut self) -> Option<Vec<u8>>;
    /// The calls the session follows.
    fn calls(&self) -> &dyn Follower;
    fn calls_mut(&mut self) -> &mut dyn Follower;
    /// Places a click-to-call request: the originate to send, or the request's failure.
    fn originate(&mut self, placing: Placing, now: Timestamp) -> Step;
    /// The click-to-call requests placed and not seen to an end.
    fn originations(&mut self) -> &mut Originations;

    /// The connection is gone: dials still pending are reported (no later event will), and
    /// requests whose call never showed up are lost.
    fn disconnected(&mut self, now: Timestamp) -> Step {
        let mut built = Vec::new();
        self.calls_mut().flush(&mut built);
        let mut step = Step::default();
        step.take(built);
        self.originations().lost(now, &mut step.changes);
        step
    }

    fn calls_open(&self) -> usize {
        self.calls().open()
    }

    /// The calls being followed, to be picked up after a restart of callhook.
    fn save(&self) -> String {
        self.calls().save()
    }

    /// Picks up the calls a previous run saved; the channel listing after the next login
    /// closes those that ended meanwhile.
    fn restore(&mut self, saved: &str) -> Result<(), String> {
        self.calls_mut().restore(saved)
    }
}

/// A connector's state, as `/readyz` and the web page show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConnectorStatus {
    pub name: String,
    pub kind: ConnectorKind,
    /// `host:port` of the PBX.
    pub address: String,
    pub account_id: String,
    /// Logged in to the PBX now.
    pub connected: bool,
    /// Since when, if connected.
    pub connected_since: Option<String>,
    /// PBX events read since start.
    pub events_read: u64,
    /// Call events stored since start (repeats excluded).
    pub call_events: u64,
    /// Call events the store already had (a replay after a reconnect).
    pub duplicates: u64,
    /// Calls being followed now.
    pub calls_open: u64,
    /// Connections made since start.
    pub connects: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// The handle the app keeps: the connectors' status, and the way to place click-to-call calls.
#[derive(Clone, Default)]
pub struct Connectors {
    shared: Arc<Vec<Arc<runner::Shared>>>,
    placers: Arc<Vec<Placer>>,
    /// Wakes the hand-over task ([`handover`]) when a click-to-call request is stored.
    handover: handover::Wake,
}

/// A connector of this node that places an account's calls, as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacerState {
    pub name: String,
    pub account_id: AccountId,
    /// Logged in to its PBX now.
    pub connected: bool,
    /// The caller id of requests that name no DID.
    pub default_did: Option<E164>,
}

/// A connector that places calls: for whom, how, and the way to its task.
struct Placer {
    account: String,
    status: Arc<runner::Shared>,
    rules: OriginateRules,
    orders: mpsc::UnboundedSender<runner::Order>,
}

/// A click-to-call request on its way (from [`Connectors::originate`]): queued now, then
/// its changes of status as they happen, until the final one.
#[derive(Debug)]
pub struct Originating {
    /// The connector placing it.
    pub connector: String,
    pub request_id: String,
    pub ref_id: String,
    changes: mpsc::UnboundedReceiver<StateChange>,
}

impl Originating {
    /// The next change; `None` after the final one (`answered`, `failed`), or when the
    /// connector stopped.
    pub async fn next(&mut self) -> Option<StateChange> {
        self.changes.recv().await
    }
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.status()).finish()
    }
}

impl Connectors {
    /// Checks the settings and starts one task per connector, and the hand-over of
    /// click-to-call requests ([`handover`], on every node, with or without connectors); they
    /// stop on `shutdown`, each connector after saving the calls it follows, and are done once
    /// they have dropped it.
    pub fn start(
        settings: &[ConnectorSettings],
        ingest: Ingest,
        store: Arc<dyn Store>,
        handover: handover::Handover,
        shutdown: &Shutdown,
    ) -> Result<Connectors, SettingsError> {
        check(settings)?;
        let mut shared = Vec::with_capacity(settings.len());
        let mut placers = Vec::new();
        for s in settings {
            let rules = s.rules()?;
            let originate = s.originate_rules()?;
            let sh = Arc::new(runner::Shared::new(s));
            let orders = originate.clone().map(|rules| {
                let (tx, rx) = mpsc::unbounded_channel();
                placers.push(Placer {
                    account: s.account.clone(),
                    status: sh.clone(),
                    rules,
                    orders: tx,
                });
                rx
            });
            let session = s.session(rules, originate);
            tokio::spawn(runner::run(
                sh.clone(),
                runner::Target {
                    address: format!("{}:{}", s.host, s.port()),
                    account: s.account.clone(),
                },
                session,
                orders,
                ingest.clone(),
                store.clone(),
                shutdown.clone(),
            ));
            shared.push(sh);
        }
        let connectors = Connectors {
            shared: Arc::new(shared),
            placers: Arc::new(placers),
            handover: handover::Wake::default(),
        };
        tokio::spawn(handover::run(
            connectors.clone(),
            store,
            handover,
            connectors.handover.clone(),
            shutdown.clone(),
        ));
        Ok(connectors)
    }

    /// A click-to-call request was stored (on this node or another): the node whose
    /// connector places it takes it now rather than at its next look.
    pub fn request_stored(&self) {
        self.handover.wake();
    }

    /// This node's connectors that place calls, as they are now.
    pub fn placing(&self) -> Vec<PlacerState> {
        self.placers
            .iter()
            .map(|p| PlacerState {
                name: p.status.name().to_owned(),
                account_id: AccountId::from_string(p.account.clone()),
                connected: p.status.is_connected(),
                default_did: p.rules.default_did.clone(),
            })
            .collect()
    }

    /// Places a click-to-call request through the account's connector that places calls
    /// (SPEC §15): the PBX rings the agent, then the customer, with the DID as caller id and
    /// the reference as a channel variable. Answers at once, the request queued; its changes
    /// follow on the handle. Refused when no connector places the account's calls, when it
    /// is not connected, or when a field cannot be placed.
    pub fn originate(
        &self,
        account_id: &str,
        request: ClickToCallRequest,
    ) -> Result<Originating, OriginateError> {
        let p = self.placer(account_id)?;
        let placing = p.rules.placing(request)?;
        let connector = p.status.name().to_owned();
        if !p.status.is_connected() {
            return Err(OriginateError::NotConnected(connector));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = Originating {
            connector: connector.clone(),
            request_id: placing.request_id.clone(),
            ref_id: placing.ref_id.clone(),
            changes: rx,
        };
        p.orders
            .send(runner::Order {
                placing,
                changes: tx,
            })
            .map_err(|_| OriginateError::NotConnected(connector))?;
        Ok(handle)
    }

    fn placer(&self, account_id: &str) -> Result<&Placer, OriginateError> {
        self.placers
            .iter()
            .find(|p| p.account == account_id)
            .ok_or(OriginateError::NoConnector)
    }

    /// Every connector's status, in the order of the settings.
    pub fn status(&self) -> Vec<ConnectorStatus> {
        self.shared.iter().map(|s| s.status()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Vec<ConnectorSettings>, String> {
        #[derive(Deserialize)]
        struct Wrap {
            connectors: Vec<ConnectorSettings>,
        }
        use figment::providers::Format as _;
        figment::Figment::from(figment::providers::Toml::string(toml))
            .extract::<Wrap>()
            .map(|w| w.connectors)
            .map_err(|e| e.to_string())
    }

    const FULL: &str = r#"
        [[connectors]]
        kind = "asterisk_ami"
        name = "pbx1"
        host = "10.0.0.5"
        username = "callhook"
        password = "s3cret"
        account = "acct_1"
        country_code = "91"
        default_did = "+918065251305"
        did_from = "variable:DID"
        outbound_contexts = ["from-internal"]
        originated_call_type = "outbound"
        dids = { "300" = "+918065251300" }
        queue_names = { "support" = "Support" }
        extension_names = { "101" = "Asha" }
        [[connectors.ivrs]]
        context = "ivr-main"
        name = "Main menu"
        [[connectors.dial_targets]]
        context = "from-external"
        exten = "600"
        type = "ring_group"
        id = "rg_sales"
        name = "Sales"

        [[connectors]]
        kind = "freeswitch_esl"
        host = "fs.example.com"
        password = "ClueCon"
        account = "acct_1"
    "#;

    #[test]
    fn a_full_table_reads_and_resolves() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.len(), 2);
        check(&c).unwrap();
        let r = c[0].rules().unwrap();
        assert_eq!(r.name, "pbx1");
        assert_eq!(r.did_from, DidFrom::Variable("DID".into()));
        assert_eq!(r.originated, CallType::Outbound);
        assert_eq!(
            r.ivr("ivr-main", "s").unwrap().name.as_deref(),
            Some("Main menu")
        );
        assert_eq!(r.target("from-external", "600").unwrap().1.id, "rg_sales");
        assert_eq!(
            r.numbers.did(Some("300")).unwrap().as_str(),
            "+918065251300"
        );
        assert_eq!(r.ref_id_variable.as_deref(), Some("CALLHOOK_REF_ID"));
        assert_eq!(c[1].port(), 8021);
        assert_eq!(c[1].name(), "fs.example.com:8021");
        assert_eq!(c[1].rules().unwrap().did_from, DidFrom::Exten);
    }

    #[test]
    fn mistakes_are_named() {
        let base = "[[connectors]]\nkind = \"asterisk_ami\"\nhost = \"h\"\nusername = \"u\"\naccount = \"a\"\n";
        for (extra, field) in [
            ("default_did = \"8065251305\"", "default_did"),
            ("dids = { \"300\" = \"x\" }", "dids"),
            ("country_code = \"0091\"", "country_code"),
            ("did_from = \"header\"", "did_from"),
            ("did_from = \"variable:\"", "did_from"),
            ("originated_call_type = \"inbound\"", "originated_call_type"),
            ("password = \"a\\r\\nAction: Originate\"", "password"),
            ("name = \"a/b\"", "name"),
        ] {
            let c = parse(&format!("{base}{extra}\n")).unwrap();
            match check(&c) {
                Err(SettingsError::Invalid { field: f, .. }) => assert_eq!(f, field, "{extra}"),
                other => panic!("{extra}: {other:?}"),
            }
        }
        assert!(parse(&format!("{base}colour = \"red\"\n")).is_err());
        assert!(parse("[[connectors]]\nkind = \"yate\"\nhost = \"h\"\naccount = \"a\"\n").is_err());
        let no_user =
            parse("[[connectors]]\nkind = \"asterisk_ami\"\nhost = \"h\"\naccount = \"a\"\n")
                .unwrap();
        assert!(matches!(
            check(&no_user),
            Err(SettingsError::Invalid {
                field: "username",
                ..
            })
        ));
        let twice = parse(&format!("{base}{base}")).unwrap();
        assert_eq!(
            check(&twice),
            Err(SettingsError::DuplicateName("h:5038".into()))
        );
    }

    const PLACING: &str = r#"
        [[connectors]]
        kind = "asterisk_ami"
        name = "pbx1"
        host = "10.0.0.5"
        username = "callhook"
        account = "acct_1"
        country_code = "91"
        default_did = "+918065251305"
        originate = true
        originate_channel = "PJSIP/{extension}"
        originate_context = "callhook-click-to-call"
        originate_dial = "0{national}"
        originate_caller_id = "{digits}"
        originate_agent_timeout = "20s"
        originate_variables = { "__CRM" = "acme" }
    "#;

    #[test]
    fn a_connector_that_places_calls() {
        let c = parse(PLACING).unwrap();
        check(&c).unwrap();
        let o = c[0].originate_rules().unwrap().unwrap();
        assert_eq!(o.context, "callhook-click-to-call");
        assert_eq!(o.agent_timeout, Duration::from_secs(20));
        assert_eq!(o.ref_id_variable, "CALLHOOK_REF_ID");
        let did = E164::parse("+918065251305").unwrap();
        assert_eq!(o.default_did.as_ref(), Some(&did));
        assert_eq!(
            o.dial_number(&E164::parse("+919812345678").unwrap()),
            "09812345678"
        );
        assert_eq!(
            o.dial_number(&E164::parse("+14155550177").unwrap()),
            "0014155550177"
        );
        assert_eq!(o.caller_id_number(&did), "918065251305");
        assert_eq!(parse(FULL).unwrap()[0].originate_rules(), Ok(None));
    }

    #[test]
    fn originate_mistakes_are_named() {
        let base = "[[connectors]]\nkind = \"asterisk_ami\"\nhost = \"h\"\nusername = \"u\"\naccount = \"a\"\n";
        let placing = "originate = true\noriginate_channel = \"PJSIP/{extension}\"\noriginate_context = \"c2c\"\n";
        for (extra, field) in [
            (
                "originate_channel = \"PJSIP/{extension}\"",
                "originate_channel",
            ),
            (
                "originate_agent_timeout = \"5s\"",
                "originate_agent_timeout",
            ),
            (
                "originate_variables = { \"X\" = \"1\" }",
                "originate_variables",
            ),
            (
                "originate = true\noriginate_context = \"c2c\"",
                "originate_channel",
            ),
            (
                "originate = true\noriginate_channel = \"PJSIP/101\"\noriginate_context = \"c2c\"",
                "originate_channel",
            ),
            (
                "originate = true\noriginate_channel = \"PJSIP/{extension}\"",
                "originate_context",
            ),
            (
                "originate = true\noriginate_channel = \"PJSIP/{extension}\"\noriginate_context = \"a b\"",
                "originate_context",
            ),
            (
                &format!("{placing}ref_id_variable = \"\""),
                "ref_id_variable",
            ),
            (
                &format!("{placing}originate_dial = \"0{{national}}\""),
                "originate_dial",
            ),
            (
                &format!("{placing}originate_dial = \"9-{{e164}}\""),
                "originate_dial",
            ),
            (
                &format!("{placing}originate_caller_id = \"{{national}}\""),
                "originate_caller_id",
            ),
            (
                &format!("{placing}originate_dial_international = \"00{{digits}}\""),
                "originate_dial_international",
            ),
            (
                &format!(
                    "{placing}country_code = \"91\"\noriginate_dial = \"0{{national}}\"\noriginate_dial_international = \"{{national}}\""
                ),
                "originate_dial_international",
            ),
            (
                &format!("{placing}originate_agent_timeout = \"0s\""),
                "originate_agent_timeout",
            ),
            (
                &format!("{placing}originate_agent_timeout = \"1h\""),
                "originate_agent_timeout",
            ),
            (
                &format!("{placing}originate_variables = {{ \"CALLHOOK_REF_ID\" = \"x\" }}"),
                "originate_variables",
            ),
            (
                &format!("{placing}originate_variables = {{ \"A-B\" = \"x\" }}"),
                "originate_variables",
            ),
            (
                &format!("{placing}originate_variables = {{ \"A\" = \"x,y\" }}"),
                "originate_variables",
            ),
            (
                &format!("{placing}default_did = \"8065251305\""),
                "default_did",
            ),
        ] {
            let c = parse(&format!("{base}{extra}\n")).unwrap();
            match check(&c) {
                Err(SettingsError::Invalid { field: f, .. }) => assert_eq!(f, field, "{extra}"),
                other => panic!("{extra}: {other:?}"),
            }
        }
        let fs = "[[connectors]]\nkind = \"freeswitch_esl\"\nhost = \"h\"\naccount = \"a\"\noriginate = true\noriginate_channel = \"user/{extension}\"\noriginate_context = \"c2c\"\noriginate_variables = { \"originate_timeout\" = \"9\" }\n";
        assert!(matches!(
            check(&parse(fs).unwrap()),
            Err(SettingsError::Invalid {
                field: "originate_variables",
                ..
            })
        ));
        assert!(parse(&format!("{base}{placing}originate_channels = \"x\"\n")).is_err());
    }

    #[test]
    fn one_connector_per_account_places_calls() {
        let mut c = parse(PLACING).unwrap();
        let mut other = c[0].clone();
        other.name = "pbx2".into();
        c.push(other.clone());
        let err = check(&c).unwrap_err();
        assert_eq!(
            err,
            SettingsError::TwoPlacers {
                account: "acct_1".into(),
                first: "pbx1".into(),
                second: "pbx2".into(),
            }
        );
        assert!(
            err.to_string()
                .contains("at most one connector per account"),
            "{err}"
        );
        // Following calls with another connector of the account, or placing for another
        // account, is fine.
        c[1].originate = false;
        c[1].originate_channel = None;
        c[1].originate_context = None;
        c[1].originate_dial = None;
        c[1].originate_caller_id = None;
        c[1].originate_agent_timeout = None;
        c[1].originate_variables.clear();
        check(&c).unwrap();
        other.account = "acct_2".into();
        c[1] = other;
        check(&c).unwrap();
    }
}
