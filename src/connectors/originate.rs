//! Placing click-to-call calls (SPEC §15) through the PBX a connector is logged in to: the
//! settings resolved into [`OriginateRules`], the PBX's own originate written out (Asterisk's
//! `Action: Originate`, FreeSWITCH's `bgapi originate`), the PBX's answers read back, and the
//! requests in flight ([`Originations`]) with their state machines
//! ([`crate::core::click_to_call`]). Pure, like the rest of the protocol code: the sessions
//! (`ami`, `esl`) send what this writes and feed it what they read.
//!
//! The PBX rings the agent first (the channel or endpoint of `originate_channel`) and, when
//! the agent picks up, runs the dialplan at `originate_context` with the customer's number as
//! the extension: the dialplan dials the customer from the agent's call. The request's
//! reference travels as the channel variable `ref_id_variable`, which is how the call
//! followers recognise the call as the request's.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::Step;
use super::ami::{Frame, action};
use super::table::{CallTable, Pbx, Placed, Progress};
use crate::core::click_to_call::{self, ClickToCall, FailReason, LegEnd, Signal, Status};
use crate::core::number::E164;

/// How long after the agent's ring timeout a request may go unheard of (no answer to the
/// originate, no call) before it fails as `connector_lost`.
const SILENCE: Duration = Duration::from_secs(30);

/// Longest request id: FreeSWITCH keeps at most 36 characters of a `Job-UUID`.
const MAX_REQUEST_ID: usize = 36;

/// The form of a number in a [`NumberTemplate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `+919812345678`.
    E164,
    /// `919812345678`.
    Digits,
    /// `9812345678`: without the country code (`country_code`).
    National,
}

/// How the PBX wants a number written: literal dial characters around one of `{e164}`
/// (`+919812345678`), `{digits}` (`919812345678`) or `{national}` (`9812345678`, without the
/// country code). `0{national}` is national with a trunk prefix, `9{e164}` has a dial prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberTemplate {
    before: String,
    form: Form,
    after: String,
}

impl NumberTemplate {
    pub fn parse(s: &str) -> Result<NumberTemplate, String> {
        let forms = [
            ("{e164}", Form::E164),
            ("{digits}", Form::Digits),
            ("{national}", Form::National),
        ];
        let found: Vec<(usize, &str, Form)> = forms
            .iter()
            .filter_map(|(p, f)| s.find(p).map(|at| (at, *p, *f)))
            .collect();
        let [(at, placeholder, form)] = found[..] else {
            return Err(format!(
                "{s:?} must hold exactly one of {{e164}}, {{digits}} or {{national}}"
            ));
        };
        let (before, after) = (&s[..at], &s[at + placeholder.len()..]);
        let dial_chars = |t: &str| t.chars().all(|c| c.is_ascii_digit() || "*#+".contains(c));
        if !dial_chars(before) || !dial_chars(after) {
            return Err(format!(
                "{s:?} may hold only digits, *, # and + beside its placeholder"
            ));
        }
        Ok(NumberTemplate {
            before: before.to_owned(),
            form,
            after: after.to_owned(),
        })
    }

    pub fn is_national(&self) -> bool {
        self.form == Form::National
    }

    /// `number` written this way; `None` for `{national}` and a number of another country
    /// than `country_code`.
    fn write(&self, number: &E164, country_code: Option<&str>) -> Option<String> {
        let digits = &number.as_str()[1..];
        let middle = match self.form {
            Form::E164 => number.as_str(),
            Form::Digits => digits,
            Form::National => digits.strip_prefix(country_code?)?,
        };
        Some(format!("{}{middle}{}", self.before, self.after))
    }
}

/// The agent's channel (Asterisk) or endpoint (FreeSWITCH), with `{extension}` for the
/// agent's extension: `PJSIP/{extension}`, `user/{extension}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTemplate(String);

impl ChannelTemplate {
    pub fn parse(s: &str) -> Result<ChannelTemplate, String> {
        if !s.contains("{extension}") {
            return Err(format!(
                "{s:?} must hold {{extension}}, like PJSIP/{{extension}}"
            ));
        }
        let rest = s.replace("{extension}", "");
        if rest.contains(['{', '}']) {
            return Err(format!(
                "{s:?} may hold no placeholder but {{extension}} (channel variables go in originate_variables)"
            ));
        }
        if !rest.contains('/') || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{s:?} is not a channel: TECH/RESOURCE, without spaces"
            ));
        }
        Ok(ChannelTemplate(s.to_owned()))
    }

    fn render(&self, extension: &str) -> String {
        self.0.replace("{extension}", extension)
    }
}

/// A connector's settings for placing calls, checked and resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginateRules {
    pub channel: ChannelTemplate,
    /// The dialplan context (FreeSWITCH: of the XML dialplan) where the customer is dialled;
    /// the extension is the customer's number as `dial` writes it, priority 1.
    pub context: String,
    pub dial: NumberTemplate,
    /// For numbers of other countries when `dial` is `{national}`.
    pub dial_international: NumberTemplate,
    /// How the DID is presented as caller id.
    pub caller_id: NumberTemplate,
    pub country_code: Option<String>,
    /// How long the agent's phone rings.
    pub agent_timeout: Duration,
    /// More channel variables for the PBX to set on the agent's channel.
    pub variables: BTreeMap<String, String>,
    /// The variable carrying the request's reference.
    pub ref_id_variable: String,
    /// The caller id of requests that name no DID.
    pub default_did: Option<E164>,
}

/// A click-to-call request, as the API takes it (SPEC §15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickToCallRequest {
    /// The request's own id (1 to 36 letters, digits, `-` and `_`): it names the originate
    /// on the PBX (the AMI `ActionID`, the FreeSWITCH `Job-UUID`).
    pub request_id: String,
    pub ref_id: String,
    pub agent_extension: String,
    pub customer_number: E164,
    /// The caller id the customer sees; the connector's `default_did` when absent.
    pub did_number: Option<E164>,
}

/// A request ready to be placed: every field checked, the DID chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placing {
    pub request_id: String,
    pub ref_id: String,
    pub agent_extension: String,
    pub customer: E164,
    pub did: E164,
}

/// Why a click-to-call request cannot be placed (now).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginateError {
    #[error("no connector of this account places calls (`originate = true`)")]
    NoConnector,
    #[error("the connector {0} is not connected to its PBX")]
    NotConnected(String),
    #[error("{field} {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

impl OriginateRules {
    /// Checks a request against what this connector can place.
    pub fn placing(&self, r: ClickToCallRequest) -> Result<Placing, OriginateError> {
        let bad = |field: &'static str, problem: String| OriginateError::Invalid { field, problem };
        if r.request_id.is_empty()
            || r.request_id.len() > MAX_REQUEST_ID
            || !r
                .request_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                "request_id",
                format!("must be 1 to {MAX_REQUEST_ID} letters, digits, - or _"),
            ));
        }
        click_to_call::check_ref_id(&r.ref_id).map_err(|p| bad("ref_id", p))?;
        click_to_call::check_extension(&r.agent_extension)
            .map_err(|p| bad("agent_extension", p))?;
        let did = r
            .did_number
            .or_else(|| self.default_did.clone())
            .ok_or_else(|| {
                bad(
                    "did_number",
                    "is required: the connector has no default_did".into(),
                )
            })?;
        Ok(Placing {
            request_id: r.request_id,
            ref_id: r.ref_id,
            agent_extension: r.agent_extension,
            customer: r.customer_number,
            did,
        })
    }

    /// The customer's number as the dialplan receives it (the extension dialled).
    pub fn dial_number(&self, customer: &E164) -> String {
        let cc = self.country_code.as_deref();
        self.dial
            .write(customer, cc)
            .or_else(|| self.dial_international.write(customer, cc))
            .unwrap_or_else(|| customer.as_str().to_owned())
    }

    /// The DID as caller id; a DID of another country than `country_code` in E.164.
    pub fn caller_id_number(&self, did: &E164) -> String {
        self.caller_id
            .write(did, self.country_code.as_deref())
            .unwrap_or_else(|| did.as_str().to_owned())
    }

    /// Asterisk's `Originate`, asynchronous, answered under `action_id`: the agent's channel,
    /// then `context`/customer/1 with the DID as caller id and the reference as a variable.
    pub fn ami_originate(&self, p: &Placing, action_id: &str) -> Vec<u8> {
        let channel = self.channel.render(&p.agent_extension);
        let exten = self.dial_number(&p.customer);
        let caller_id = format!("<{}>", self.caller_id_number(&p.did));
        let timeout = self.agent_timeout.as_millis().to_string();
        let mut variables = vec![format!("{}={}", self.ref_id_variable, p.ref_id)];
        variables.extend(self.variables.iter().map(|(k, v)| format!("{k}={v}")));
        let mut pairs: Vec<(&str, &str)> = vec![
            ("Action", "Originate"),
            ("ActionID", action_id),
            ("Channel", &channel),
            ("Context", &self.context),
            ("Exten", &exten),
            ("Priority", "1"),
            ("CallerID", &caller_id),
            ("Timeout", &timeout),
            ("Async", "true"),
        ];
        pairs.extend(variables.iter().map(|v| ("Variable", v.as_str())));
        action(&pairs)
    }

    /// FreeSWITCH's `bgapi originate` under `job_uuid`: the agent's endpoint with the caller
    /// id, ring timeout and reference as channel variables, then the customer's number as the
    /// destination in the XML dialplan's `context`.
    pub fn esl_originate(&self, p: &Placing, job_uuid: &str) -> Vec<u8> {
        let secs = self.agent_timeout.as_secs_f64().ceil().max(1.0);
        let mut vars = vec![
            format!(
                "origination_caller_id_number={}",
                self.caller_id_number(&p.did)
            ),
            format!("originate_timeout={secs}"),
            format!("{}={}", self.ref_id_variable, p.ref_id),
        ];
        vars.extend(self.variables.iter().map(|(k, v)| format!("{k}={v}")));
        let line = format!(
            "bgapi originate {{{}}}{} {} XML {}",
            vars.join(","),
            self.channel.render(&p.agent_extension),
            self.dial_number(&p.customer),
            self.context,
        );
        let mut s: String = line.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        s.push_str("\nJob-UUID: ");
        s.extend(job_uuid.chars().filter(|c| *c != '\r' && *c != '\n'));
        s.push_str("\n\n");
        s.into_bytes()
    }
}

/// What the PBX said about an originate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It took the command.
    Accepted,
    /// It refused the command, in these words.
    Refused(String),
    /// The agent answered; the PBX's id of the agent's channel, when it said.
    AgentAnswered(Option<String>),
    /// The agent's leg failed; how, in the PBX's words.
    AgentFailed(LegEnd, String),
}

/// An AMI response to our `Originate` (`Response: Success` means queued, with `Async`).
pub fn ami_response(f: &Frame) -> Answer {
    if f.get("Response")
        .is_some_and(|r| r.eq_ignore_ascii_case("Success"))
    {
        Answer::Accepted
    } else {
        Answer::Refused(f.get("Message").unwrap_or("no reason given").to_owned())
    }
}

/// The `OriginateResponse` event: `Success` once the agent answered, else `Failure` with the
/// last control frame the channel saw as `Reason`: 0 the channel could not be placed, 1 it
/// hung up, 3 it was still ringing at the timeout, 5 busy, 8 congestion.
pub fn ami_originate_response(f: &Frame) -> Answer {
    if f.get("Response")
        .is_some_and(|r| r.eq_ignore_ascii_case("Success"))
    {
        let channel = f
            .get("Uniqueid")
            .filter(|u| !u.is_empty() && *u != "<unknown>");
        return Answer::AgentAnswered(channel.map(str::to_owned));
    }
    let reason = f.get("Reason").unwrap_or_default().trim();
    let how = match reason {
        "1" | "2" | "3" => LegEnd::NoAnswer,
        "5" => LegEnd::Busy,
        _ => LegEnd::Unavailable,
    };
    let what = match reason {
        "0" => "the channel could not be placed",
        "1" => "the agent's phone hung up",
        "3" => "the agent's phone rang until the timeout",
        "5" => "the agent's phone is busy",
        "8" => "congestion",
        _ => "the originate failed",
    };
    Answer::AgentFailed(how, format!("{what} (OriginateResponse reason {reason})"))
}

/// The reply to `bgapi`: `+OK Job-UUID: …` took it, `-ERR …` refused it.
pub fn esl_reply(reply_text: &str) -> Answer {
    if reply_text.starts_with("+OK") {
        Answer::Accepted
    } else {
        Answer::Refused(reply_text.trim().to_owned())
    }
}

/// The body of the originate's `BACKGROUND_JOB`: `+OK <uuid>` once the agent answered (the
/// agent leg's UUID), `-ERR <CAUSE>` when the agent's leg failed.
pub fn esl_job(body: &str) -> Answer {
    let body = body.trim();
    if let Some(uuid) = body.strip_prefix("+OK") {
        let uuid = uuid.trim();
        return Answer::AgentAnswered(Some(uuid.to_owned()).filter(|u| !u.is_empty()));
    }
    let cause = body.strip_prefix("-ERR").unwrap_or(body).trim();
    Answer::AgentFailed(LegEnd::from_cause(cause), cause.to_owned())
}

/// A change of a request's status, for whoever keeps the request.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub request_id: String,
    pub ref_id: String,
    pub status: Status,
    /// The PBX's id of the call, once it showed up (the call events' `call_id`).
    pub call_id: Option<String>,
    /// What the PBX said when it failed.
    pub cause: Option<String>,
    pub at: Timestamp,
}

impl StateChange {
    /// A request that fails before it reaches the PBX.
    pub fn failed(p: &Placing, reason: FailReason, cause: &str, at: Timestamp) -> StateChange {
        StateChange {
            request_id: p.request_id.clone(),
            ref_id: p.ref_id.clone(),
            status: Status::Failed(reason),
            call_id: None,
            cause: Some(cause.to_owned()),
            at,
        }
    }
}

/// A session takes a request: refused unless it places calls (`rules`) and is logged in
/// (`ready`); else the command `write` makes goes out under `key`, the call is expected and
/// the request is in flight.
#[allow(clippy::too_many_arguments)]
pub fn place<P: Pbx>(
    rules: Option<&OriginateRules>,
    ready: bool,
    placing: Placing,
    key: String,
    write: impl FnOnce(&OriginateRules, &Placing, &str) -> Vec<u8>,
    originations: &mut Originations,
    calls: &mut CallTable<P>,
    now: Timestamp,
) -> Step {
    let mut step = Step::default();
    let Some(rules) = rules else {
        let why = "this connector does not place calls";
        step.changes.push(StateChange::failed(
            &placing,
            FailReason::OriginateRefused,
            why,
            now,
        ));
        return step;
    };
    if !ready {
        let why = "not connected to the PBX";
        step.changes.push(StateChange::failed(
            &placing,
            FailReason::ConnectorLost,
            why,
            now,
        ));
        return step;
    }
    let command = write(rules, &placing, &key);
    let expected = Placed {
        ref_id: placing.ref_id.clone(),
        agent: placing.agent_extension.clone(),
        customer: placing.customer.clone(),
        did: placing.did.clone(),
    };
    match originations.sent(placing, key, rules.agent_timeout, now) {
        Ok(()) => {
            calls.expect(expected, now);
            step.send = command;
        }
        Err(refused) => step.changes.push(*refused),
    }
    step
}

#[derive(Debug)]
struct InFlight {
    placing: Placing,
    /// What the PBX's answers are filed under (`ActionID`, `Job-UUID`).
    key: String,
    machine: ClickToCall,
    call_id: Option<String>,
    /// Why the customer's leg failed last.
    cause: Option<String>,
    /// Heard nothing of it by then: lost.
    deadline: Timestamp,
}

/// The requests a session has sent and not seen to an end.
#[derive(Debug, Default)]
pub struct Originations {
    in_flight: Vec<InFlight>,
}

impl Originations {
    /// Takes a request sent under `key`; refused (a change to `failed`) when a request with
    /// this id or reference is in flight already, as two calls could not be told apart.
    pub fn sent(
        &mut self,
        placing: Placing,
        key: String,
        timeout: Duration,
        now: Timestamp,
    ) -> Result<(), Box<StateChange>> {
        if self.in_flight.iter().any(|f| {
            f.placing.request_id == placing.request_id || f.placing.ref_id == placing.ref_id
        }) {
            return Err(Box::new(StateChange::failed(
                &placing,
                FailReason::OriginateRefused,
                "a call with this request id or ref_id is being placed already",
                now,
            )));
        }
        let deadline = now.checked_add(timeout + SILENCE).unwrap_or(Timestamp::MAX);
        self.in_flight.push(InFlight {
            placing,
            key,
            machine: ClickToCall::new(),
            call_id: None,
            cause: None,
            deadline,
        });
        Ok(())
    }

    /// Whether `key` names a request in flight.
    pub fn knows(&self, key: &str) -> bool {
        self.in_flight.iter().any(|f| f.key == key)
    }

    /// The reference of the request sent under `key`.
    pub fn ref_of(&self, key: &str) -> Option<&str> {
        self.in_flight
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.placing.ref_id.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The PBX's answer to the request sent under `key`.
    pub fn answer(
        &mut self,
        key: &str,
        answer: Answer,
        now: Timestamp,
        out: &mut Vec<StateChange>,
    ) {
        let Some(i) = self.in_flight.iter().position(|f| f.key == key) else {
            return;
        };
        let (signal, cause) = match answer {
            Answer::Accepted => (Signal::Accepted, None),
            Answer::Refused(why) => (Signal::Refused, Some(why)),
            Answer::AgentAnswered(_) => (Signal::AgentAnswered, None),
            Answer::AgentFailed(how, why) => (Signal::AgentFailed(how), Some(why)),
        };
        self.apply(i, signal, None, cause, now, out);
    }

    /// What the placed calls did, as the call table saw it.
    pub fn calls(&mut self, progress: Vec<Progress>, now: Timestamp, out: &mut Vec<StateChange>) {
        for p in progress {
            self.call(&p.ref_id, &p.call_id, p.signal, p.cause, now, out);
        }
    }

    /// What the call of the request with reference `ref_id` did (`call_id`).
    pub fn call(
        &mut self,
        ref_id: &str,
        call_id: &str,
        signal: Signal,
        cause: Option<String>,
        now: Timestamp,
        out: &mut Vec<StateChange>,
    ) {
        let Some(i) = self
            .in_flight
            .iter()
            .position(|f| f.placing.ref_id == ref_id)
        else {
            return;
        };
        self.apply(i, signal, Some(call_id), cause, now, out);
    }

    /// The connection dropped: requests whose call has not shown up are lost.
    pub fn lost(&mut self, now: Timestamp, out: &mut Vec<StateChange>) {
        for i in (0..self.in_flight.len()).rev() {
            let cause = Some("the connection to the PBX was lost".to_owned());
            self.apply(i, Signal::Lost, None, cause, now, out);
        }
    }

    /// Requests the PBX said nothing of in time are lost.
    pub fn expire(&mut self, now: Timestamp, out: &mut Vec<StateChange>) {
        for i in (0..self.in_flight.len()).rev() {
            if self.in_flight[i].deadline <= now {
                let cause = Some("the PBX never said what became of the call".to_owned());
                self.apply(i, Signal::Lost, None, cause, now, out);
            }
        }
    }

    fn apply(
        &mut self,
        i: usize,
        signal: Signal,
        call_id: Option<&str>,
        cause: Option<String>,
        now: Timestamp,
        out: &mut Vec<StateChange>,
    ) {
        let f = &mut self.in_flight[i];
        if let Some(c) = call_id {
            f.call_id.get_or_insert_with(|| c.to_owned());
        }
        // The customer's leg failing is final only when the call ends (the dialplan may try
        // again), and its cause says more than the agent's leg's then.
        if let Signal::CustomerFailed(_) = signal {
            f.cause = cause.clone();
        }
        if !f.machine.on(signal) {
            return;
        }
        let status = f.machine.status();
        let cause = match status {
            Status::Failed(_) => f.cause.take().or(cause),
            _ => None,
        };
        out.push(StateChange {
            request_id: f.placing.request_id.clone(),
            ref_id: f.placing.ref_id.clone(),
            status,
            call_id: f.call_id.clone(),
            cause,
            at: now,
        });
        if status.is_final() {
            self.in_flight.swap_remove(i);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn rules() -> OriginateRules {
        OriginateRules {
            channel: ChannelTemplate::parse("PJSIP/{extension}").unwrap(),
            context: "callhook-click-to-call".into(),
            dial: NumberTemplate::parse("{e164}").unwrap(),
            dial_international: NumberTemplate::parse("00{digits}").unwrap(),
            caller_id: NumberTemplate::parse("{e164}").unwrap(),
            country_code: Some("91".into()),
            agent_timeout: Duration::from_secs(30),
            variables: BTreeMap::new(),
            ref_id_variable: "CALLHOOK_REF_ID".into(),
            default_did: E164::parse("+918065251305").ok(),
        }
    }

    fn n(s: &str) -> E164 {
        E164::parse(s).unwrap()
    }

    pub fn request(id: &str, ref_id: &str) -> ClickToCallRequest {
        ClickToCallRequest {
            request_id: id.into(),
            ref_id: ref_id.into(),
            agent_extension: "101".into(),
            customer_number: n("+919812345678"),
            did_number: None,
        }
    }

    #[test]
    fn numbers_are_written_as_the_pbx_wants_them() {
        let mut r = rules();
        let home = n("+919812345678");
        let abroad = n("+14155550177");
        for (dial, want_home, want_abroad) in [
            ("{e164}", "+919812345678", "+14155550177"),
            ("{digits}", "919812345678", "14155550177"),
            ("0{national}", "09812345678", "0014155550177"),
            ("9{e164}", "9+919812345678", "9+14155550177"),
            ("9{digits}#", "9919812345678#", "914155550177#"),
        ] {
            r.dial = NumberTemplate::parse(dial).unwrap();
            assert_eq!(r.dial_number(&home), want_home, "{dial}");
            assert_eq!(r.dial_number(&abroad), want_abroad, "{dial}");
        }
        r.caller_id = NumberTemplate::parse("0{national}").unwrap();
        assert_eq!(r.caller_id_number(&n("+918065251305")), "08065251305");
        assert_eq!(r.caller_id_number(&abroad), "+14155550177");
        for bad in ["", "{e164}{digits}", "9-{e164}", "{national", "x{digits}"] {
            assert!(NumberTemplate::parse(bad).is_err(), "{bad}");
        }
        assert!(NumberTemplate::parse("0{national}").unwrap().is_national());
    }

    #[test]
    fn channels_need_the_extension_and_nothing_else() {
        let c = ChannelTemplate::parse("Local/{extension}@from-internal").unwrap();
        assert_eq!(c.render("101"), "Local/101@from-internal");
        for bad in [
            "PJSIP/101",
            "PJSIP/{ext}",
            "{extension}",
            "PJSIP/{extension} x",
            "{a=b}user/{extension}",
        ] {
            assert!(ChannelTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_are_checked_and_get_a_did() {
        let r = rules();
        let p = r.placing(request("c2c_1", "crm-42")).unwrap();
        assert_eq!(p.did.as_str(), "+918065251305");
        let mut own = request("c2c_1", "crm-42");
        own.did_number = Some(n("+918065251300"));
        assert_eq!(r.placing(own).unwrap().did.as_str(), "+918065251300");
        let field = |req: ClickToCallRequest, rules: &OriginateRules| match rules.placing(req) {
            Err(OriginateError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut no_default = rules();
        no_default.default_did = None;
        assert_eq!(field(request("c2c_1", "x"), &no_default), "did_number");
        assert_eq!(field(request("c2c 1", "x"), &r), "request_id");
        assert_eq!(field(request(&"a".repeat(37), "x"), &r), "request_id");
        assert_eq!(field(request("c2c_1", "a,b"), &r), "ref_id");
        let mut ext = request("c2c_1", "x");
        ext.agent_extension = "101&102".into();
        assert_eq!(field(ext, &r), "agent_extension");
    }

    #[test]
    fn the_asterisk_originate() {
        let mut r = rules();
        r.dial = NumberTemplate::parse("0{national}").unwrap();
        r.variables = [("__CRM".to_owned(), "acme".to_owned())].into();
        let p = r.placing(request("c2c_1", "crm-42")).unwrap();
        let sent = String::from_utf8(r.ami_originate(&p, "callhook-originate-c2c_1")).unwrap();
        assert_eq!(
            sent,
            "Action: Originate\r\nActionID: callhook-originate-c2c_1\r\nChannel: PJSIP/101\r\n\
             Context: callhook-click-to-call\r\nExten: 09812345678\r\nPriority: 1\r\n\
             CallerID: <+918065251305>\r\nTimeout: 30000\r\nAsync: true\r\n\
             Variable: CALLHOOK_REF_ID=crm-42\r\nVariable: __CRM=acme\r\n\r\n"
        );
    }

    #[test]
    fn the_freeswitch_originate() {
        let mut r = rules();
        r.channel = ChannelTemplate::parse("user/{extension}").unwrap();
        r.agent_timeout = Duration::from_millis(20_500);
        r.variables = [("sip_auto_answer".to_owned(), "true".to_owned())].into();
        let p = r.placing(request("c2c_1", "crm-42")).unwrap();
        let sent = String::from_utf8(r.esl_originate(&p, "c2c_1")).unwrap();
        assert_eq!(
            sent,
            "bgapi originate {origination_caller_id_number=+918065251305,originate_timeout=21,\
             CALLHOOK_REF_ID=crm-42,sip_auto_answer=true}user/101 +919812345678 XML \
             callhook-click-to-call\nJob-UUID: c2c_1\n\n"
        );
    }

    fn frame(pairs: &[(&str, &str)]) -> Frame {
        Frame::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn asterisk_answers() {
        assert_eq!(
            ami_response(&frame(&[
                ("Response", "Success"),
                ("Message", "Originate successfully queued")
            ])),
            Answer::Accepted
        );
        assert_eq!(
            ami_response(&frame(&[
                ("Response", "Error"),
                ("Message", "Permission denied")
            ])),
            Answer::Refused("Permission denied".into())
        );
        // As Asterisk 22.9.0 wrote them (tests/fixtures/asterisk-ami, S3 and S5).
        assert_eq!(
            ami_originate_response(&frame(&[
                ("Event", "OriginateResponse"),
                ("Response", "Success"),
                ("Channel", "PJSIP/tocaller-00000002"),
                ("Reason", "4"),
                ("Uniqueid", "1790513796.2"),
            ])),
            Answer::AgentAnswered(Some("1790513796.2".into()))
        );
        let failed = |reason: &str| {
            ami_originate_response(&frame(&[
                ("Event", "OriginateResponse"),
                ("Response", "Failure"),
                ("Channel", "PJSIP/401@tocaller"),
                ("Reason", reason),
                ("Uniqueid", "<unknown>"),
            ]))
        };
        for (reason, how) in [
            ("0", LegEnd::Unavailable),
            ("1", LegEnd::NoAnswer),
            ("3", LegEnd::NoAnswer),
            ("5", LegEnd::Busy),
            ("8", LegEnd::Unavailable),
        ] {
            let Answer::AgentFailed(got, why) = failed(reason) else {
                panic!("{reason}")
            };
            assert_eq!(got, how, "{reason}");
            assert!(why.ends_with(&format!("reason {reason})")), "{why}");
        }
    }

    #[test]
    fn freeswitch_answers() {
        assert_eq!(esl_reply("+OK Job-UUID: c2c_1"), Answer::Accepted);
        assert_eq!(
            esl_reply("-ERR command not found"),
            Answer::Refused("-ERR command not found".into())
        );
        assert_eq!(
            esl_job("+OK 1f2e3d4c-0000-4000-8000-000000000001\n"),
            Answer::AgentAnswered(Some("1f2e3d4c-0000-4000-8000-000000000001".into()))
        );
        for (body, how) in [
            ("-ERR USER_BUSY\n", LegEnd::Busy),
            ("-ERR NO_ANSWER\n", LegEnd::NoAnswer),
            ("-ERR CALL_REJECTED\n", LegEnd::NoAnswer),
            ("-ERR NORMAL_TEMPORARY_FAILURE\n", LegEnd::Unavailable),
            ("-ERR USER_NOT_REGISTERED\n", LegEnd::Unavailable),
        ] {
            let Answer::AgentFailed(got, cause) = esl_job(body) else {
                panic!("{body}")
            };
            assert_eq!(got, how, "{body}");
            assert_eq!(cause, body.trim().trim_start_matches("-ERR "));
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + s).unwrap()
    }

    fn placed(o: &mut Originations, id: &str, ref_id: &str) {
        let p = rules().placing(request(id, ref_id)).unwrap();
        o.sent(p, format!("key-{id}"), Duration::from_secs(30), t(0))
            .unwrap();
    }

    fn states(changes: &[StateChange]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c.status.reason() {
                Some(r) => format!("{} {} {r}", c.request_id, c.status.as_str()),
                None => format!("{} {}", c.request_id, c.status.as_str()),
            })
            .collect()
    }

    #[test]
    fn requests_in_flight_follow_answers_and_their_calls() {
        let mut o = Originations::default();
        let mut out = Vec::new();
        placed(&mut o, "a", "ref-a");
        placed(&mut o, "b", "ref-b");
        let again = rules().placing(request("c", "ref-a")).unwrap();
        let refused = o
            .sent(again, "key-c".into(), Duration::from_secs(30), t(0))
            .unwrap_err();
        assert_eq!(refused.status, Status::Failed(FailReason::OriginateRefused));
        assert!(o.knows("key-a") && !o.knows("key-c"));
        assert_eq!(o.ref_of("key-b"), Some("ref-b"));

        o.answer("key-a", Answer::Accepted, t(1), &mut out);
        o.answer("key-b", Answer::Accepted, t(1), &mut out);
        o.call("ref-a", "1790.1", Signal::CallSeen, None, t(1), &mut out);
        o.answer("key-a", Answer::AgentAnswered(None), t(5), &mut out);
        o.call(
            "ref-a",
            "1790.1",
            Signal::CustomerRinging,
            None,
            t(5),
            &mut out,
        );
        o.answer(
            "key-b",
            Answer::AgentFailed(LegEnd::Busy, "busy".into()),
            t(6),
            &mut out,
        );
        o.call(
            "ref-a",
            "1790.1",
            Signal::CustomerAnswered,
            None,
            t(9),
            &mut out,
        );
        // Nothing is heard of a finished request any more.
        o.call(
            "ref-a",
            "1790.1",
            Signal::Ended(None),
            None,
            t(60),
            &mut out,
        );
        assert!(o.is_empty());
        assert_eq!(
            states(&out),
            [
                "a ringing_agent",
                "b ringing_agent",
                "a ringing_customer",
                "b failed agent_busy",
                "a answered",
            ]
        );
        assert_eq!(out[2].call_id.as_deref(), Some("1790.1"));
        assert_eq!(out[3].cause.as_deref(), Some("busy"));
        assert_eq!(out[4].cause, None);
    }

    #[test]
    fn lost_connections_and_silent_pbxs() {
        let mut o = Originations::default();
        let mut out = Vec::new();
        placed(&mut o, "a", "ref-a");
        placed(&mut o, "b", "ref-b");
        placed(&mut o, "c", "ref-c");
        o.answer("key-b", Answer::Accepted, t(1), &mut out);
        o.call("ref-c", "1790.3", Signal::CallSeen, None, t(1), &mut out);
        // The connection drops: a and b never showed a call; c is followed to its end.
        o.lost(t(2), &mut out);
        assert_eq!(
            states(&out),
            [
                "b ringing_agent",
                "b failed connector_lost",
                "a failed connector_lost"
            ]
        );
        out.clear();
        placed(&mut o, "d", "ref-d");
        o.expire(t(59), &mut out);
        assert!(out.is_empty());
        o.expire(t(60), &mut out);
        assert_eq!(states(&out), ["d failed connector_lost"]);
        o.call(
            "ref-c",
            "1790.3",
            Signal::Ended(Some(LegEnd::Busy)),
            None,
            t(61),
            &mut out,
        );
        assert_eq!(states(&out)[1], "c failed agent_busy");
        assert!(o.is_empty());
    }

    // Whole calls placed agent first, through the sessions: the command sent, the PBX's
    // events, the call events and the request's changes.

    use crate::connectors::Session;
    use crate::connectors::ami::AmiSession;
    use crate::connectors::call::tests::describe;
    use crate::connectors::esl::EslSession;

    const ACTION: &str = "callhook-originate-c2c_1";
    const AGENT: &str = "1790600000.20";
    const CUSTOMER: &str = "1790600004.21";

    /// One AMI frame.
    fn f(pairs: &[(&str, &str)]) -> String {
        let mut s: String = pairs.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        s.push_str("\r\n");
        s
    }

    fn chan(event: &str, who: &str, state: &str, more: &[(&str, &str)]) -> String {
        let (name, u, caller) = match who {
            "agent" => ("PJSIP/101-00000010", AGENT, "+918065251305"),
            _ => ("PJSIP/trunk-00000011", CUSTOMER, "+919812345678"),
        };
        let mut p = vec![
            ("Event", event),
            ("Channel", name),
            ("ChannelState", state),
            ("CallerIDNum", caller),
            ("Context", "callhook-click-to-call"),
            ("Exten", "+919812345678"),
            ("Uniqueid", u),
            ("Linkedid", AGENT),
        ];
        p.extend_from_slice(more);
        f(&p)
    }

    /// Asterisk takes the originate and rings the agent (as the 22.9.0 captures' originates
    /// begin, S3 and S5: a `Down` channel, its variables, a dial with no calling channel).
    fn ami_agent_rings() -> String {
        [
            f(&[
                ("Response", "Success"),
                ("ActionID", ACTION),
                ("Message", "Originate successfully queued"),
            ]),
            chan("Newchannel", "agent", "0", &[]),
            chan(
                "VarSet",
                "agent",
                "0",
                &[("Variable", "CALLHOOK_REF_ID"), ("Value", "crm-42")],
            ),
            f(&[
                ("Event", "DialBegin"),
                ("DestChannel", "PJSIP/101-00000010"),
                ("DestCallerIDNum", "+918065251305"),
                ("DestUniqueid", AGENT),
                ("DestLinkedid", AGENT),
                ("DialString", "101"),
            ]),
            chan("Newstate", "agent", "5", &[]),
        ]
        .concat()
    }

    /// The agent answers; the dialplan dials the customer, whose phone rings.
    fn ami_customer_rings() -> String {
        [
            chan("Newstate", "agent", "6", &[]),
            f(&[
                ("Event", "OriginateResponse"),
                ("ActionID", ACTION),
                ("Response", "Success"),
                ("Channel", "PJSIP/101-00000010"),
                ("Context", "callhook-click-to-call"),
                ("Exten", "+919812345678"),
                ("Reason", "4"),
                ("Uniqueid", AGENT),
            ]),
            f(&[
                ("Event", "DialEnd"),
                ("DestChannel", "PJSIP/101-00000010"),
                ("DestUniqueid", AGENT),
                ("DialStatus", "ANSWER"),
            ]),
            chan("Newchannel", "customer", "0", &[]),
            chan(
                "DialBegin",
                "agent",
                "6",
                &[
                    ("DestChannel", "PJSIP/trunk-00000011"),
                    ("DestUniqueid", CUSTOMER),
                    ("DialString", "trunk/+919812345678"),
                ],
            ),
            chan("Newstate", "customer", "5", &[]),
        ]
        .concat()
    }

    fn customer_dial_ends(status: &str) -> String {
        chan(
            "DialEnd",
            "agent",
            "6",
            &[
                ("DestChannel", "PJSIP/trunk-00000011"),
                ("DestUniqueid", CUSTOMER),
                ("DialStatus", status),
            ],
        )
    }

    fn ami_placed(script: &str) -> (Vec<String>, Vec<String>) {
        let mut follow = crate::connectors::call::tests::rules();
        follow.ref_id_variable = Some("CALLHOOK_REF_ID".into());
        let mut s = AmiSession::new("hook", "pw", follow, Some(rules()));
        s.connected(t(0));
        s.received(b"Asterisk Call Manager/11.0.0\r\n", t(0));
        s.received(
            b"Response: Success\r\nActionID: callhook-login-1\r\n\r\n",
            t(0),
        );
        let p = rules().placing(request("c2c_1", "crm-42")).unwrap();
        let sent = s.originate(p, t(0));
        assert!(
            sent.send
                .starts_with(b"Action: Originate\r\nActionID: callhook-originate-c2c_1\r\n")
        );
        let step = s.received(script.as_bytes(), t(1));
        assert!(step.problems.is_empty(), "{:?}", step.problems);
        assert!(s.originations().is_empty(), "every request came to an end");
        (
            step.events.iter().map(describe).collect(),
            states(&step.changes),
        )
    }

    #[test]
    fn asterisk_calls_placed_agent_first() {
        let received = "received click_to_call did=+918065251305 customer=+919812345678";
        let b = [("BridgeUniqueid", "b1")];
        let answered = [
            ami_agent_rings(),
            ami_customer_rings(),
            chan("Newstate", "customer", "6", &[]),
            customer_dial_ends("ANSWER"),
            chan("BridgeEnter", "agent", "6", &b),
            chan("BridgeEnter", "customer", "6", &b),
            chan("HangupRequest", "customer", "6", &[("Cause", "16")]),
            chan("BridgeLeave", "customer", "6", &b),
            chan("Hangup", "customer", "6", &[("Cause", "16")]),
            chan("BridgeLeave", "agent", "6", &b),
            chan("Hangup", "agent", "6", &[("Cause", "16")]),
        ]
        .concat();
        assert_eq!(
            ami_placed(&answered),
            (
                vec![
                    received.to_owned(),
                    "answered customer id=- name=- ext=101 ext_name=Asha ring=- hold=- ref=crm-42".into(),
                    "ended answered ext=101 missed=[] stage=extension by=customer cause=NORMAL_CLEARING".into(),
                ],
                vec![
                    "c2c_1 ringing_agent".into(),
                    "c2c_1 ringing_customer".into(),
                    "c2c_1 answered".into(),
                ]
            )
        );

        let agent_busy = [
            ami_agent_rings(),
            f(&[
                ("Event", "DialEnd"),
                ("DestChannel", "PJSIP/101-00000010"),
                ("DestUniqueid", AGENT),
                ("DialStatus", "BUSY"),
            ]),
            f(&[
                ("Event", "OriginateResponse"),
                ("ActionID", ACTION),
                ("Response", "Failure"),
                ("Channel", "PJSIP/101"),
                ("Reason", "5"),
                ("Uniqueid", "<unknown>"),
            ]),
            chan("Hangup", "agent", "5", &[("Cause", "17")]),
        ]
        .concat();
        assert_eq!(
            ami_placed(&agent_busy),
            (
                vec![
                    received.to_owned(),
                    "ended missed ext=- missed=[] stage=- by=- cause=USER_BUSY".into(),
                ],
                vec![
                    "c2c_1 ringing_agent".into(),
                    "c2c_1 failed agent_busy".into()
                ]
            )
        );

        let customer_no_answer = [
            ami_agent_rings(),
            ami_customer_rings(),
            customer_dial_ends("NOANSWER"),
            chan("Hangup", "customer", "5", &[("Cause", "19")]),
            chan("Hangup", "agent", "6", &[("Cause", "16")]),
        ]
        .concat();
        assert_eq!(
            ami_placed(&customer_no_answer),
            (
                vec![
                    received.to_owned(),
                    "ended missed ext=- missed=[] stage=- by=- cause=NORMAL_CLEARING".into(),
                ],
                vec![
                    "c2c_1 ringing_agent".into(),
                    "c2c_1 ringing_customer".into(),
                    "c2c_1 failed customer_no_answer".into(),
                ]
            )
        );

        let refused = f(&[
            ("Response", "Error"),
            ("ActionID", ACTION),
            ("Message", "Permission denied"),
        ]);
        assert_eq!(
            ami_placed(&refused),
            (vec![], vec!["c2c_1 failed originate_refused".into()])
        );
    }

    #[test]
    fn a_session_places_only_when_it_may_and_can() {
        let p = || rules().placing(request("c2c_1", "crm-42")).unwrap();
        let follow = crate::connectors::call::tests::rules;
        let mut s = AmiSession::new("hook", "pw", follow(), Some(rules()));
        s.connected(t(0));
        let step = s.originate(p(), t(0));
        assert!(step.send.is_empty());
        assert_eq!(states(&step.changes), ["c2c_1 failed connector_lost"]);
        let mut s = EslSession::new("ClueCon", follow(), None);
        let step = s.originate(p(), t(0));
        assert!(step.send.is_empty());
        assert_eq!(states(&step.changes), ["c2c_1 failed originate_refused"]);
        // Requests sent whose call never showed up are lost with the connection.
        let mut s = AmiSession::new("hook", "pw", follow(), Some(rules()));
        s.connected(t(0));
        s.received(b"Asterisk Call Manager/11.0.0\r\n", t(0));
        s.received(
            b"Response: Success\r\nActionID: callhook-login-1\r\n\r\n",
            t(0),
        );
        assert!(!s.originate(p(), t(0)).send.is_empty());
        let step = s.disconnected(t(1));
        assert_eq!(states(&step.changes), ["c2c_1 failed connector_lost"]);
    }

    /// One FreeSWITCH event (plain), with `body` after its headers.
    fn fs(name: &str, uuid: &str, more: &[(&str, &str)], body: &str) -> String {
        let mut head = format!("Event-Name: {name}\nUnique-ID: {uuid}\n");
        for (k, v) in more {
            head.push_str(&format!("{k}: {}\n", v.replace(' ', "%20")));
        }
        if !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\n", body.len()));
        }
        head.push('\n');
        head.push_str(body);
        format!(
            "Content-Length: {}\nContent-Type: text/event-plain\n\n{head}",
            head.len()
        )
    }

    const A: &str = "5f1c2d3e-0000-4000-8000-00000000000a";
    const B: &str = "5f1c2d3e-0000-4000-8000-00000000000b";

    fn fs_agent_rings() -> String {
        [
            "Content-Type: command/reply\nReply-Text: +OK Job-UUID: c2c_1\nJob-UUID: c2c_1\n\n"
                .to_owned(),
            fs(
                "CHANNEL_CREATE",
                A,
                &[
                    ("Call-Direction", "outbound"),
                    ("Channel-Call-UUID", A),
                    ("Caller-Channel-Name", "sofia/internal/101@10.0.0.21"),
                    ("Caller-Context", "default"),
                    ("Caller-Destination-Number", "101"),
                    ("Caller-Caller-ID-Number", "+918065251305"),
                    ("variable_CALLHOOK_REF_ID", "crm-42"),
                ],
                "",
            ),
            fs("CHANNEL_PROGRESS", A, &[("Call-Direction", "outbound")], ""),
        ]
        .concat()
    }

    fn fs_customer_rings() -> String {
        [
            fs("CHANNEL_ANSWER", A, &[("Call-Direction", "outbound")], ""),
            fs(
                "BACKGROUND_JOB",
                "",
                &[("Job-UUID", "c2c_1"), ("Job-Command", "originate")],
                &format!("+OK {A}\n"),
            ),
            fs(
                "CHANNEL_CREATE",
                B,
                &[
                    ("Call-Direction", "outbound"),
                    ("Other-Type", "originator"),
                    ("Other-Leg-Unique-ID", A),
                    ("Channel-Call-UUID", A),
                    ("Caller-Channel-Name", "sofia/gateway/carrier/+919812345678"),
                    ("Caller-Destination-Number", "+919812345678"),
                    ("Caller-Caller-ID-Number", "+918065251305"),
                ],
                "",
            ),
            fs("CHANNEL_PROGRESS", B, &[], ""),
        ]
        .concat()
    }

    fn hangup(uuid: &str, cause: &str, disposition: &str) -> String {
        fs(
            "CHANNEL_HANGUP_COMPLETE",
            uuid,
            &[
                ("Hangup-Cause", cause),
                ("variable_sip_hangup_disposition", disposition),
            ],
            "",
        )
    }

    fn fs_placed(script: &str) -> (Vec<String>, Vec<String>) {
        let mut r = rules();
        r.channel = ChannelTemplate::parse("user/{extension}").unwrap();
        let follow = crate::connectors::esl_calls::tests::fs_rules();
        let mut s = EslSession::new("ClueCon", follow, Some(r));
        s.connected(t(0));
        s.received(b"Content-Type: auth/request\n\n", t(0));
        let step = s.received(
            b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n",
            t(0),
        );
        assert!(
            step.send.ends_with(b" BACKGROUND_JOB\n\n"),
            "subscribes to job results"
        );
        s.received(
            b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n",
            t(0),
        );
        let p = rules().placing(request("c2c_1", "crm-42")).unwrap();
        let sent = String::from_utf8(s.originate(p, t(0)).send).unwrap();
        assert!(
            sent.starts_with("bgapi originate {origination_caller_id_number=+918065251305,"),
            "{sent}"
        );
        assert!(
            sent.ends_with(
                "}user/101 +919812345678 XML callhook-click-to-call\nJob-UUID: c2c_1\n\n"
            ),
            "{sent}"
        );
        let step = s.received(script.as_bytes(), t(1));
        assert!(step.problems.is_empty(), "{:?}", step.problems);
        assert!(s.originations().is_empty(), "every request came to an end");
        (
            step.events.iter().map(describe).collect(),
            states(&step.changes),
        )
    }

    #[test]
    fn freeswitch_calls_placed_agent_first() {
        let received = "received click_to_call did=+918065251305 customer=+919812345678";
        let answered = [
            fs_agent_rings(),
            fs_customer_rings(),
            fs("CHANNEL_ANSWER", B, &[], ""),
            fs("CHANNEL_BRIDGE", A, &[("Bridge-B-Unique-ID", B)], ""),
            hangup(B, "NORMAL_CLEARING", "recv_bye"),
            hangup(A, "NORMAL_CLEARING", "send_bye"),
        ]
        .concat();
        assert_eq!(
            fs_placed(&answered),
            (
                vec![
                    received.to_owned(),
                    "answered customer id=- name=- ext=101 ext_name=- ring=- hold=- ref=crm-42".into(),
                    "ended answered ext=101 missed=[] stage=extension by=customer cause=NORMAL_CLEARING".into(),
                ],
                vec![
                    "c2c_1 ringing_agent".into(),
                    "c2c_1 ringing_customer".into(),
                    "c2c_1 answered".into(),
                ]
            )
        );

        let agent_busy = [
            fs_agent_rings(),
            hangup(A, "USER_BUSY", "recv_486"),
            fs(
                "BACKGROUND_JOB",
                "",
                &[("Job-UUID", "c2c_1")],
                "-ERR USER_BUSY\n",
            ),
        ]
        .concat();
        assert_eq!(
            fs_placed(&agent_busy),
            (
                vec![
                    received.to_owned(),
                    "ended missed ext=- missed=[] stage=- by=extension cause=USER_BUSY".into(),
                ],
                vec![
                    "c2c_1 ringing_agent".into(),
                    "c2c_1 failed agent_busy".into()
                ]
            )
        );

        let customer_no_answer = [
            fs_agent_rings(),
            fs_customer_rings(),
            hangup(B, "NO_ANSWER", "send_cancel"),
            hangup(A, "NORMAL_CLEARING", "send_bye"),
        ]
        .concat();
        assert_eq!(
            fs_placed(&customer_no_answer),
            (
                vec![
                    received.to_owned(),
                    "ended missed ext=- missed=[] stage=- by=extension cause=NORMAL_CLEARING"
                        .into(),
                ],
                vec![
                    "c2c_1 ringing_agent".into(),
                    "c2c_1 ringing_customer".into(),
                    "c2c_1 failed customer_no_answer".into(),
                ]
            )
        );

        let refused = "Content-Type: command/reply\nReply-Text: -ERR permission denied\n\n";
        assert_eq!(
            fs_placed(refused),
            (vec![], vec!["c2c_1 failed originate_refused".into()])
        );
    }
}
