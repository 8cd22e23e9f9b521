//! Following FreeSWITCH calls from event-socket events: legs are grouped into calls by the
//! A-leg's UUID (`Channel-Call-UUID`, `Other-Leg-Unique-ID` for bridged B-legs, and
//! `variable_cc_member_session_uuid` for mod_callcenter's agent legs), and what happens to
//! them becomes call events through the call table ([`super::table`]) and
//! [`super::call::CallTrack`]. This file holds what is FreeSWITCH's own: which event means
//! what. Pure: events and read times in, call events out.
//!
//! The rules:
//! - The first leg of a call is the customer's. `Call-Direction: outbound` means FreeSWITCH
//!   placed it (originate: click-to-call); a leg from an outbound context was placed by an
//!   extension; otherwise it came in.
//! - `CHANNEL_ANSWER` of the customer's leg before any extension answered is the PBX answering
//!   (an IVR, if the dialplan place is one). A B-leg's answer is an extension picking up.
//! - B-legs created together (a `bridge` to several endpoints) are one `call.dialed`;
//!   mod_callcenter's `agent-offering` rings an agent, `bridge-agent-start` is the answer (with
//!   its hold and ring times), `bridge-agent-fail` a miss.
//! - `CHANNEL_HANGUP_COMPLETE` of the last leg ends the call, with FreeSWITCH's own duration,
//!   billing seconds and hangup cause.
//! - A call this connector placed for a click-to-call request (its first leg carries the
//!   request's reference) rings the agent first: that leg's answer is the agent's, the B-leg
//!   its dialplan bridges to is the customer's, and that leg's answer or hangup says whether
//!   the customer answered.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::call::{Built, DidFrom, Measured, Pickup};
use super::esl::Headers;
use super::numbers::present;
use super::table::{Call, CallTable, Leg, Origin, Pbx, Phase, Seen};
use crate::core::click_to_call::{LegEnd, Signal};
use crate::core::event::{DialVia, HangupBy};

/// What the FreeSWITCH follower keeps per call, beside the table's [`Call`].
#[derive(Debug, Serialize, Deserialize)]
pub struct EslCall {
    /// The customer leg's destination number.
    did_raw: String,
    /// The customer leg's caller id.
    caller: String,
    /// The customer's dialplan place now (for ring-group targets and IVRs).
    context: String,
    exten: String,
    talking: bool,
    duration: Option<i64>,
    billsec: Option<i64>,
}

/// FreeSWITCH keeps nothing beside its calls; a leg is known by the call it belongs to
/// (`None`: not ours).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FreeSwitch {}

impl Pbx for FreeSwitch {
    type Channel = Option<String>;
    type Call = EslCall;

    fn seen<'a>(
        _channels: &'a HashMap<String, Option<String>>,
        call: &'a Call<EslCall>,
        force: bool,
    ) -> Seen<'a> {
        let c = &call.pbx;
        Seen {
            exten: &c.did_raw,
            caller: &c.caller,
            caller_now: &c.caller,
            did_var: call.did_var.as_deref(),
            // A leg FreeSWITCH placed may yet show it belongs to another call (see `relink`),
            // so it waits until it must be reported. FreeSWITCH presents its caller id to the
            // customer it dials.
            originate: force.then_some((c.caller.as_str(), c.did_raw.as_str())),
        }
    }

    fn channel_gone(calls: &mut EslCalls, id: &str, at: Timestamp, out: &mut Vec<Built>) {
        calls.leg_gone(id, at, out);
    }

    fn talking(c: &EslCall) -> bool {
        c.talking
    }

    fn measured(c: &EslCall) -> Measured {
        Measured {
            duration: c.duration,
            billsec: c.billsec,
        }
    }
}

/// All calls of one FreeSWITCH.
pub type EslCalls = CallTable<FreeSwitch>;

impl EslCalls {
    /// The answer to `show channels as json`: legs not in it are gone.
    pub fn channel_list(&mut self, body: &[u8], local: Timestamp, out: &mut Vec<Built>) {
        let Ok(list) = serde_json::from_slice::<serde_json::Value>(body) else {
            // Not a listing we understand: keep following, close nothing.
            self.cancel_resync();
            return;
        };
        if let Some(rows) = list.get("rows").and_then(|r| r.as_array()) {
            for u in rows.iter().filter_map(|row| row.get("uuid")?.as_str()) {
                self.confirm(u);
            }
        }
        self.finish_resync(local, out);
    }

    pub fn on_event(&mut self, e: &Headers, local: Timestamp, out: &mut Vec<Built>) {
        let name = e.get("Event-Name").unwrap_or_default();
        let precise = e
            .get("Event-Date-Timestamp")
            .and_then(|t| t.trim().parse::<i64>().ok())
            .and_then(|us| Timestamp::from_microsecond(us).ok());
        if let Some(t) = precise {
            self.clock.observe(t, local);
        }
        let at = precise.unwrap_or_else(|| self.clock.now(local));
        if let Some(u) = e.get("Unique-ID") {
            self.confirm(u);
        }
        let action = e.get("CC-Action").unwrap_or_default();
        let burst = matches!(name, "CHANNEL_CREATE" | "CHANNEL_OUTGOING" | "HEARTBEAT")
            || action == "agent-offering";
        if !burst && let Some(id) = self.call_of(e) {
            self.flush_dial(&id, out);
        }
        if name != "CHANNEL_CREATE" {
            self.relink(e, at, out);
        }
        self.reference_in(e, at, out);
        match name {
            "CHANNEL_CREATE" | "CHANNEL_OUTGOING" => self.create(e, at, out),
            "CHANNEL_PROGRESS" | "CHANNEL_PROGRESS_MEDIA" => {
                if let Some(u) = e.get("Unique-ID")
                    && !self.channels.contains_key(u)
                {
                    self.create(e, at, out);
                }
            }
            "CHANNEL_ANSWER" => self.answer(e, at, out),
            "CHANNEL_BRIDGE" => self.bridge(e, at, out),
            "DTMF" => self.dtmf(e, at, out),
            "CHANNEL_HANGUP_COMPLETE" => self.hangup(e, at, out),
            "CUSTOM" if e.get("Event-Subclass") == Some("callcenter::info") => {
                self.callcenter(e, action, at, out)
            }
            _ => {}
        }
    }

    fn call_of(&self, e: &Headers) -> Option<String> {
        ["Unique-ID", "CC-Member-Session-UUID"]
            .iter()
            .filter_map(|k| e.get(k))
            .find_map(|u| self.channels.get(u).cloned().flatten())
    }

    /// The followed call another leg links `u` to: a callcenter member, the originator of a
    /// bridge, or the call UUID FreeSWITCH gave it.
    fn parent_of(&self, e: &Headers, u: &str) -> Option<(String, bool)> {
        let known = |k: &str| {
            e.get(k)
                .filter(|v| *v != u)
                .and_then(|v| self.channels.get(v).cloned().flatten())
        };
        if let Some(id) = known("variable_cc_member_session_uuid") {
            return Some((id, true));
        }
        e.get("Other-Type")
            .filter(|t| t.eq_ignore_ascii_case("originator"))
            .and_then(|_| known("Other-Leg-Unique-ID"))
            .or_else(|| known("Channel-Call-UUID"))
            .or_else(|| known("variable_originating_leg_uuid"))
            .map(|id| (id, false))
    }

    /// Puts leg `u` into call `id`; a callcenter agent leg was rung by `agent-offering`
    /// already, any other leg rings now.
    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        id: String,
        cc_agent: bool,
        u: &str,
        e: &Headers,
        dialed: Option<String>,
        at: Timestamp,
        out: &mut Vec<Built>,
    ) {
        self.channels.insert(u.to_owned(), Some(id.clone()));
        if let Some(call) = self.calls.get_mut(&id) {
            call.channels.insert(u.to_owned());
        }
        if !cc_agent {
            self.b_leg(&id, u, e, dialed, at, out);
        }
    }

    /// A leg we took for a call FreeSWITCH placed turns out to be a B-leg of another call
    /// (its link showed only in a later event): move it there, nothing was reported yet.
    fn relink(&mut self, e: &Headers, at: Timestamp, out: &mut Vec<Built>) {
        let Some(u) = e.get("Unique-ID") else { return };
        let Some(Some(id)) = self.channels.get(u) else {
            return;
        };
        let lone_pending = self.calls.get(id).is_some_and(|c| {
            matches!(c.phase, Phase::Pending)
                && c.origin == Origin::Originated
                && c.channels.len() == 1
        });
        if !lone_pending {
            return;
        }
        if let Some((parent, cc_agent)) = self.parent_of(e, u) {
            let id = id.clone();
            let dialed = self.calls.remove(&id).map(|c| c.pbx.did_raw);
            self.join(parent, cc_agent, u, e, dialed, at, out);
        }
    }

    fn create(&mut self, e: &Headers, at: Timestamp, out: &mut Vec<Built>) {
        let Some(u) = e.get("Unique-ID").filter(|u| !u.trim().is_empty()) else {
            return;
        };
        if self.channels.contains_key(u) {
            return;
        }
        if let Some((id, cc_agent)) = self.parent_of(e, u) {
            self.join(id, cc_agent, u, e, None, at, out);
            return;
        }
        let context = e.get("Caller-Context").unwrap_or_default();
        let placed = e
            .get("Call-Direction")
            .is_some_and(|d| d.eq_ignore_ascii_case("outbound"));
        let origin = Origin::of(placed, context, &self.rules);
        let started_at = e
            .get("Caller-Channel-Created-Time")
            .and_then(|t| t.trim().parse::<i64>().ok())
            .filter(|us| *us > 0)
            .and_then(|us| Timestamp::from_microsecond(us).ok())
            .unwrap_or(at);
        let dest = e.get("Caller-Destination-Number").unwrap_or_default();
        let id = super::call::clip(u);
        self.channels.insert(u.to_owned(), Some(id.clone()));
        self.calls.insert(
            id.clone(),
            Call::new(
                id.clone(),
                u,
                origin,
                started_at,
                EslCall {
                    did_raw: dest.to_owned(),
                    caller: e
                        .get("Caller-Caller-ID-Number")
                        .unwrap_or_default()
                        .to_owned(),
                    context: context.to_owned(),
                    exten: dest.to_owned(),
                    talking: false,
                    duration: None,
                    billsec: None,
                },
            ),
        );
        self.variables(&id, e);
        self.reference_in(e, at, out);
        self.try_start(&id, at, false, out);
    }

    /// The reference a first leg carries (`variable_<ref_id_variable>`), from whichever of
    /// its events shows it first: it tells a call this connector placed.
    fn reference_in(&mut self, e: &Headers, at: Timestamp, out: &mut Vec<Built>) {
        let Some(var) = &self.rules.ref_id_variable else {
            return;
        };
        let Some(u) = e.get("Unique-ID") else { return };
        let Some(Some(id)) = self.channels.get(u) else {
            return;
        };
        if self
            .calls
            .get(id)
            .is_none_or(|c| c.customer != u || c.placed.is_some())
        {
            return;
        }
        let Some(value) = e.get(&format!("variable_{var}")).filter(|v| !v.is_empty()) else {
            return;
        };
        let (id, value) = (id.clone(), value.to_owned());
        self.reference(&id, &value, at, out);
    }

    /// Keeps what the customer leg's variables say (the DID variable, the reference).
    fn variables(&mut self, id: &str, e: &Headers) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if e.get("Unique-ID") != Some(call.customer.as_str()) {
            return;
        }
        if let DidFrom::Variable(v) = &self.rules.did_from
            && let Some(val) = e.get(&format!("variable_{v}")).filter(|v| present(v))
        {
            call.did_var = Some(val.to_owned());
        }
        if let Some(r) = &self.rules.ref_id_variable
            && let Some(val) = e.get(&format!("variable_{r}")).filter(|v| !v.is_empty())
        {
            call.ref_id = Some(val.to_owned());
        }
        if let Some(c) = e.get("Caller-Context") {
            c.clone_into(&mut call.pbx.context);
        }
        if let Some(d) = e.get("Caller-Destination-Number") {
            d.clone_into(&mut call.pbx.exten);
        }
    }

    /// A B-leg of call `id`: an extension rung, or (outbound) the customer being called.
    /// `dialed` is the leg's destination when the event at hand does not carry it.
    fn b_leg(
        &mut self,
        id: &str,
        u: &str,
        e: &Headers,
        dialed: Option<String>,
        at: Timestamp,
        out: &mut Vec<Built>,
    ) {
        if !self.started(id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if let Some(p) = &call.placed {
            // The agent's call bridges to the customer (again, if the dialplan tries once more).
            if call.outbound_leg.is_none() {
                call.outbound_leg = Some(u.to_owned());
                self.progress
                    .push(p.progress(&call.id, Signal::CustomerRinging, None));
            }
            return;
        }
        if call.origin == Origin::Outbound {
            call.outbound_leg.get_or_insert_with(|| u.to_owned());
            return;
        }
        // Where the customer's leg dials from: the B-leg names it (`Other-Leg-*`), else the
        // customer's last known place.
        let context = e.get("Other-Leg-Context").unwrap_or(&call.pbx.context);
        let exten = e
            .get("Other-Leg-Destination-Number")
            .unwrap_or(&call.pbx.exten);
        let (via, place) = match self.rules.target(context, exten) {
            Some((via, place)) => (via, Some(place)),
            None => (DialVia::Direct, None),
        };
        let ext = e
            .get("Caller-Destination-Number")
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .or(dialed.filter(|d| !d.is_empty()))
            .unwrap_or_else(|| user_of(e.get("Caller-Channel-Name").unwrap_or_default()));
        let name = self.rules.extension_name(&ext);
        self.ring(id, u, ext, name, via, place, at, out);
    }

    fn answer(&mut self, e: &Headers, at: Timestamp, out: &mut Vec<Built>) {
        let Some(u) = e.get("Unique-ID") else { return };
        let Some(id) = self.channels.get(u).cloned().flatten() else {
            return;
        };
        self.variables(&id, e);
        let ivr = self.rules.ivr(
            e.get("Caller-Context").unwrap_or_default(),
            e.get("Caller-Destination-Number").unwrap_or_default(),
        );
        if !self.started(&id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.customer == u {
            let answered = matches!(&call.phase, Phase::Followed(t) if t.answered());
            call.customer_leg_up(at, ivr, answered, out, &mut self.progress);
            return;
        }
        let Phase::Followed(track) = &mut call.phase else {
            return;
        };
        if call.outbound_leg.as_deref() == Some(u) {
            if !call.customer_answered {
                call.customer_answered = true;
                match &call.placed {
                    Some(p) => {
                        let name = self.rules.extension_name(&p.agent);
                        let caller = Some((p.agent.as_str(), name.as_deref()));
                        out.push(track.customer_answered(at, u, caller, call.ref_id.as_deref()));
                        self.progress
                            .push(p.progress(&call.id, Signal::CustomerAnswered, None));
                    }
                    None => {
                        let ext = call.pbx.caller.clone();
                        out.push(track.customer_answered(at, u, Some((&ext, None)), None));
                    }
                }
            }
            return;
        }
        if let Some(leg) = call.legs.get_mut(u) {
            out.extend(leg.report(u, track, at));
        }
    }

    fn bridge(&mut self, e: &Headers, at: Timestamp, out: &mut Vec<Built>) {
        let Some(id) = self.call_of(e) else { return };
        let b = e
            .get("Bridge-B-Unique-ID")
            .or_else(|| e.get("Other-Leg-Unique-ID"))
            .map(str::to_owned);
        if !self.started(&id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.pbx.talking = true;
        // Bridged without an answer we saw: the bridge is the proof.
        if let Some(b) = b
            && let Some(leg) = call.legs.get_mut(&b)
            && let Phase::Followed(track) = &mut call.phase
        {
            out.extend(leg.report(&b, track, at));
        }
    }

    fn dtmf(&mut self, e: &Headers, at: Timestamp, out: &mut Vec<Built>) {
        let (Some(u), Some(digit)) = (e.get("Unique-ID"), e.get("DTMF-Digit")) else {
            return;
        };
        let Some(id) = self.channels.get(u).cloned().flatten() else {
            return;
        };
        let ivr = self.rules.ivr(
            e.get("Caller-Context").unwrap_or_default(),
            e.get("Caller-Destination-Number").unwrap_or_default(),
        );
        self.customer_dtmf(&id, u, digit, ivr, at, out);
    }

    fn callcenter(&mut self, e: &Headers, action: &str, at: Timestamp, out: &mut Vec<Built>) {
        let Some(member) = e
            .get("CC-Member-Session-UUID")
            .or_else(|| e.get("Unique-ID"))
        else {
            return;
        };
        let Some(id) = self.channels.get(member).cloned().flatten() else {
            return;
        };
        if !self.started(&id, at, out) {
            return;
        }
        let queue = self.rules.queue(e.get("CC-Queue").unwrap_or_default());
        let agent = e.get("CC-Agent").unwrap_or_default();
        let ext = agent.split('@').next().unwrap_or(agent).to_owned();
        let key = format!("cc:{agent}");
        match action {
            "member-queue-start" => {
                if let Some(call) = self.calls.get_mut(&id)
                    && let Phase::Followed(track) = &mut call.phase
                {
                    track.entered_queue();
                }
            }
            "agent-offering" => {
                let name = self.rules.extension_name(&ext);
                self.ring(&id, &key, ext, name, DialVia::Queue, Some(queue), at, out);
            }
            "bridge-agent-fail" => {
                if let Some(call) = self.calls.get_mut(&id)
                    && let Phase::Followed(track) = &mut call.phase
                {
                    call.legs.remove(&key);
                    track.ring_ended(&key);
                }
            }
            "bridge-agent-start" => {
                let secs = |k: &str| e.get(k).and_then(|v| v.trim().parse::<i64>().ok());
                let answered = secs("CC-Agent-Answered-Time");
                let ring_time = answered
                    .zip(secs("CC-Agent-Called-Time"))
                    .map(|(a, c)| a - c);
                let hold_time = answered
                    .zip(secs("CC-Member-Joined-Time"))
                    .map(|(a, j)| a - j);
                let leg_id = e.get("CC-Agent-UUID").unwrap_or(&key).to_owned();
                let name = self.rules.extension_name(&ext);
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                call.pbx.talking = true;
                if let Phase::Followed(track) = &mut call.phase {
                    track.picked_up();
                    let p = Pickup {
                        leg_id: leg_id.clone(),
                        extension: ext,
                        extension_name: name,
                        via: DialVia::Queue,
                        place: Some(queue),
                        ring_time,
                        hold_time,
                    };
                    out.push(track.agent_answered(at, &p));
                }
                if let Some(leg) = call.legs.remove(&key) {
                    call.legs.insert(
                        leg_id,
                        Leg {
                            reported: true,
                            ..leg
                        },
                    );
                }
            }
            _ => {}
        }
    }

    fn hangup(&mut self, e: &Headers, at: Timestamp, out: &mut Vec<Built>) {
        let Some(u) = e.get("Unique-ID") else { return };
        let secs = |k: &str| e.get(k).and_then(|v| v.trim().parse::<i64>().ok());
        if let Some(id) = self.channels.get(u).cloned().flatten()
            && let Some(call) = self.calls.get_mut(&id)
        {
            let disposition = e.get("variable_sip_hangup_disposition").unwrap_or_default();
            let remote = disposition.starts_with("recv_");
            let talked_leg = call.legs.get(u).is_some_and(|l| l.reported)
                || call.outbound_leg.as_deref() == Some(u);
            if talked_leg {
                call.pbx.billsec = secs("variable_billsec").or(call.pbx.billsec);
            }
            if let Phase::Followed(track) = &mut call.phase {
                if call.customer == u {
                    call.cause = e.get("Hangup-Cause").map(str::to_owned);
                    call.pbx.duration = secs("variable_duration");
                    if remote {
                        // The first leg is the customer's, but the agent's on a placed call.
                        let far_end = if call.placed.is_some() {
                            HangupBy::Extension
                        } else {
                            HangupBy::Customer
                        };
                        track.hangup_by(far_end, true);
                    } else if disposition.starts_with("send_") {
                        track.hangup_by(HangupBy::System, false);
                    }
                } else if call.outbound_leg.as_deref() == Some(u) {
                    // The customer is the far end of the outbound leg.
                    track.hangup_by(
                        if remote {
                            HangupBy::Customer
                        } else {
                            HangupBy::Extension
                        },
                        remote,
                    );
                } else if talked_leg && call.pbx.talking && remote {
                    track.hangup_by(HangupBy::Extension, false);
                }
            }
            if let Some(p) = &call.placed
                && call.outbound_leg.as_deref() == Some(u)
                && !call.customer_answered
            {
                // The customer was not reached; the dialplan may try again.
                let cause = e.get("Hangup-Cause").unwrap_or_default();
                let failed = Signal::CustomerFailed(LegEnd::from_cause(cause));
                self.progress
                    .push(p.progress(&call.id, failed, Some(cause.to_owned())));
                call.outbound_leg = None;
            }
        }
        self.leg_gone(u, at, out);
    }

    /// Leg `u` is gone; the call ends with its last leg.
    fn leg_gone(&mut self, u: &str, at: Timestamp, out: &mut Vec<Built>) {
        let Some(id) = self.channels.remove(u).flatten() else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.channels.remove(u);
        if let Some(leg) = call.legs.get(u)
            && !leg.reported
            && let Phase::Followed(track) = &mut call.phase
        {
            track.ring_ended(u);
        }
        if !call.channels.is_empty() {
            return;
        }
        self.end_call(&id, at, out);
    }
}

/// The user of a FreeSWITCH channel name: `sofia/internal/1001@10.0.0.5` → `1001`.
fn user_of(channel: &str) -> String {
    let last = channel.rsplit('/').next().unwrap_or(channel);
    last.split('@').next().unwrap_or(last).to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::connectors::Session;
    use crate::connectors::call::tests::describe;
    use crate::connectors::call::{IvrRule, Place, Rules, TargetRule};
    use crate::connectors::esl::EslSession;
    use crate::core::event::{CallEvent, EventDetail};
    use crate::core::number::E164;

    /// The lab the session files describe: IVR at `default`/5000, ring group 600, queue
    /// `support@default`, phones in `default`, North American numbers.
    pub fn fs_rules() -> Rules {
        let mut r = crate::connectors::call::tests::rules();
        r.name = "fs".into();
        r.ivrs = vec![IvrRule {
            context: "default".into(),
            exten: Some("5000".into()),
            place: Place {
                id: "ivr_main".into(),
                name: Some("Main menu".into()),
            },
        }];
        r.targets = vec![TargetRule {
            context: Some("default".into()),
            exten: "600".into(),
            via: DialVia::RingGroup,
            place: Place {
                id: "rg_sales".into(),
                name: Some("Sales".into()),
            },
        }];
        r.queue_names = [("support@default".to_owned(), "Support".to_owned())].into();
        r.extension_names = [("1001".to_owned(), "Asha".to_owned())].into();
        r.outbound_contexts = vec!["default".into()];
        r.numbers.country_code = Some("1".into());
        r.numbers.dids = [("1001".to_owned(), E164::parse("+18005550100").unwrap())].into();
        r.ref_id_variable = Some("CALLHOOK_REF_ID".into());
        r
    }

    pub fn session_file(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/freeswitch-esl/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn play(name: &str) -> (Vec<CallEvent>, usize) {
        let mut s = EslSession::new("ClueCon", fs_rules(), None);
        s.connected(Timestamp::UNIX_EPOCH);
        let step = s.received(&session_file(name), Timestamp::UNIX_EPOCH);
        assert!(step.problems.is_empty(), "{:?}", step.problems);
        (step.events, s.calls_open())
    }

    fn lines(name: &str) -> Vec<String> {
        let (events, open) = play(name);
        assert_eq!(open, 0, "{name}: every call ended");
        events.iter().map(describe).collect()
    }

    #[test]
    fn ivr_dtmf_then_an_extension() {
        assert_eq!(
            lines("ivr-dtmf-extension.esl"),
            [
                "received inbound did=+18005550199 customer=+14155550100",
                "answered ivr id=ivr_main name=Main menu ext=- ext_name=- ring=- hold=-",
                "dtmf 1 digits=1",
                "dtmf 2 digits=12",
                "dialed direct id=- name=- [1001]",
                "answered extension id=- name=- ext=1001 ext_name=Asha ring=3 hold=-",
                "ended answered ext=1001 missed=[] stage=extension by=extension cause=NORMAL_CLEARING",
            ]
        );
        let (events, _) = play("ivr-dtmf-extension.esl");
        let EventDetail::Ended(end) = &events[6].detail else {
            panic!()
        };
        // FreeSWITCH's own measures: the A-leg's duration, the extension's billing seconds.
        assert_eq!((end.duration, end.billsec), (Some(40), Some(31)));
        let EventDetail::Dtmf(d) = &events[3].detail else {
            panic!()
        };
        assert_eq!(d.ivr_name.as_deref(), Some("Main menu"));
        assert_eq!(
            events[0].call.started_at,
            Timestamp::from_second(1_790_589_600).ok()
        );
        assert_eq!(
            events[0].id.as_ref().map(|id| id.as_str()),
            Some("fs/6c1a2f4e-1b3d-4c5e-8f70-1a2b3c4d5e01/received")
        );
    }

    #[test]
    fn callcenter_answered_and_abandoned() {
        assert_eq!(
            lines("callcenter-answered.esl"),
            [
                "received inbound did=+18005550111 customer=+14155550111",
                "dialed queue id=support@default name=Support [1002]",
                "answered queue id=support@default name=Support ext=1002 ext_name=- ring=3 hold=6",
                "ended answered ext=1002 missed=[] stage=extension by=customer cause=NORMAL_CLEARING",
            ]
        );
        assert_eq!(
            lines("callcenter-abandoned.esl"),
            [
                "received inbound did=+18005550112 customer=+14155550112",
                "dialed queue id=support@default name=Support [1002]",
                "ended missed ext=- missed=[1002] stage=queue by=customer cause=NORMAL_CLEARING",
            ]
        );
    }

    #[test]
    fn a_ring_group_nobody_answers() {
        assert_eq!(
            lines("missed-ring-group.esl"),
            [
                "received inbound did=+18005550124 customer=+14155550122",
                "dialed ring_group id=rg_sales name=Sales [1001,1002]",
                "ended missed ext=- missed=[1001,1002] stage=ring_group by=customer cause=ORIGINATOR_CANCEL",
            ]
        );
    }

    #[test]
    fn an_outbound_call() {
        assert_eq!(
            lines("outbound.esl"),
            [
                "received outbound did=+18005550100 customer=+14155550188",
                "answered customer id=- name=- ext=1001 ext_name=- ring=- hold=-",
                "ended answered ext=1001 missed=[] stage=extension by=customer cause=NORMAL_CLEARING",
            ]
        );
    }

    #[test]
    fn a_click_to_call() {
        assert_eq!(
            lines("click-to-call.esl"),
            [
                "received click_to_call did=+18005550100 customer=+14155550177",
                "answered customer id=- name=- ext=- ext_name=- ring=- hold=- ref=crm-42",
                "dialed direct id=- name=- [1001]",
                "answered extension id=- name=- ext=1001 ext_name=Asha ring=3 hold=-",
                "ended answered ext=1001 missed=[] stage=extension by=customer cause=NORMAL_CLEARING",
            ]
        );
    }

    #[test]
    fn saved_calls_are_picked_up_after_a_restart() {
        let (whole, _) = play("callcenter-answered.esl");
        let mut messages = Vec::new();
        crate::connectors::esl::Parser::default()
            .feed(&session_file("callcenter-answered.esl"), &mut messages);
        let events: Vec<Headers> = messages
            .iter()
            .filter_map(|m| match m {
                crate::connectors::esl::Item::Message(m)
                    if m.content_type() == "text/event-plain" =>
                {
                    Some(crate::connectors::esl::plain_event(&m.body))
                }
                _ => None,
            })
            .collect();
        for cut in 1..events.len() {
            let mut built = Vec::new();
            let mut before = EslCalls::new(fs_rules());
            for e in &events[..cut] {
                before.on_event(e, Timestamp::UNIX_EPOCH, &mut built);
            }
            let mut after = EslCalls::new(fs_rules());
            after.restore(&before.save()).unwrap();
            for e in &events[cut..] {
                after.on_event(e, Timestamp::UNIX_EPOCH, &mut built);
            }
            let got: Vec<CallEvent> = built.into_iter().map(Result::unwrap).collect();
            assert_eq!(got, whole, "restarted after event {cut}");
        }
        assert!(EslCalls::new(fs_rules()).restore("[]").is_err());
    }

    fn event(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn a_b_leg_linked_only_later_joins_its_call() {
        // The B-leg's CHANNEL_CREATE names no parent; its CHANNEL_PROGRESS does.
        let mut calls = EslCalls::new(fs_rules());
        let mut built = Vec::new();
        let now = Timestamp::UNIX_EPOCH;
        for e in [
            event(&[
                ("Event-Name", "CHANNEL_CREATE"),
                ("Unique-ID", "A"),
                ("Call-Direction", "inbound"),
                ("Caller-Context", "public"),
                ("Caller-Destination-Number", "18005550199"),
                ("Caller-Caller-ID-Number", "4155550100"),
            ]),
            event(&[
                ("Event-Name", "CHANNEL_CREATE"),
                ("Unique-ID", "B"),
                ("Call-Direction", "outbound"),
                ("Caller-Destination-Number", "1001"),
                ("Caller-Caller-ID-Number", "4155550100"),
            ]),
            event(&[
                ("Event-Name", "CHANNEL_PROGRESS"),
                ("Unique-ID", "B"),
                ("Other-Type", "originator"),
                ("Other-Leg-Unique-ID", "A"),
            ]),
            event(&[
                ("Event-Name", "CHANNEL_HANGUP_COMPLETE"),
                ("Unique-ID", "B"),
                ("Hangup-Cause", "NO_ANSWER"),
            ]),
            event(&[
                ("Event-Name", "CHANNEL_HANGUP_COMPLETE"),
                ("Unique-ID", "A"),
                ("Hangup-Cause", "NORMAL_CLEARING"),
                ("variable_sip_hangup_disposition", "recv_bye"),
            ]),
        ] {
            calls.on_event(&e, now, &mut built);
        }
        let got: Vec<String> = built.into_iter().map(|b| describe(&b.unwrap())).collect();
        assert_eq!(
            got,
            [
                "received inbound did=+18005550199 customer=+14155550100",
                "dialed direct id=- name=- [1001]",
                "ended missed ext=- missed=[1001] stage=extension by=customer cause=NORMAL_CLEARING",
            ]
        );
        assert_eq!(calls.open(), 0);
    }

    #[test]
    fn a_channel_listing_after_a_reconnect_closes_vanished_calls() {
        let mut calls = EslCalls::new(fs_rules());
        let mut built = Vec::new();
        let now = Timestamp::UNIX_EPOCH;
        for u in ["A", "C"] {
            calls.on_event(
                &event(&[
                    ("Event-Name", "CHANNEL_CREATE"),
                    ("Unique-ID", u),
                    ("Call-Direction", "inbound"),
                    ("Caller-Destination-Number", "18005550199"),
                ]),
                now,
                &mut built,
            );
        }
        calls.begin_resync();
        calls.channel_list(
            br#"{"row_count":1,"rows":[{"uuid":"C","direction":"inbound"}]}"#,
            now,
            &mut built,
        );
        assert_eq!(calls.open(), 1);
        assert!(describe(built.last().unwrap().as_ref().unwrap()).starts_with("ended missed"));
        // A listing we cannot read closes nothing.
        calls.begin_resync();
        calls.channel_list(b"-ERR no reply", now, &mut built);
        assert_eq!(calls.open(), 1);
    }

    fn arbitrary_event() -> impl proptest::strategy::Strategy<Value = Headers> {
        use proptest::prelude::*;
        let names = prop::sample::select(vec![
            "CHANNEL_CREATE",
            "CHANNEL_PROGRESS",
            "CHANNEL_PROGRESS_MEDIA",
            "CHANNEL_ANSWER",
            "CHANNEL_BRIDGE",
            "CHANNEL_HANGUP_COMPLETE",
            "DTMF",
            "CUSTOM",
            "HEARTBEAT",
            "BOGUS",
        ]);
        let key = prop::sample::select(vec![
            "Unique-ID",
            "Channel-Call-UUID",
            "Other-Type",
            "Other-Leg-Unique-ID",
            "variable_cc_member_session_uuid",
            "Call-Direction",
            "Caller-Context",
            "Caller-Destination-Number",
            "Caller-Caller-ID-Number",
            "Caller-Channel-Name",
            "Caller-Channel-Created-Time",
            "Event-Date-Timestamp",
            "DTMF-Digit",
            "Hangup-Cause",
            "variable_sip_hangup_disposition",
            "variable_billsec",
            "variable_duration",
            "Bridge-B-Unique-ID",
            "Event-Subclass",
            "CC-Action",
            "CC-Queue",
            "CC-Agent",
            "CC-Member-Session-UUID",
            "CC-Agent-UUID",
            "CC-Agent-Called-Time",
            "CC-Agent-Answered-Time",
            "CC-Member-Joined-Time",
            "Other-Leg-Context",
            "Other-Leg-Destination-Number",
            "variable_DID",
            "variable_CALLHOOK_REF_ID",
        ]);
        let value = prop::sample::select(vec![
            "",
            "A",
            "B",
            "C",
            "inbound",
            "outbound",
            "originator",
            "default",
            "public",
            "5000",
            "600",
            "1001",
            "18005550199",
            "+14155550100",
            "1790589600000000",
            "-1",
            "99999999999999999999",
            "1",
            "#",
            "xx",
            "recv_bye",
            "send_bye",
            "callcenter::info",
            "member-queue-start",
            "agent-offering",
            "bridge-agent-start",
            "bridge-agent-fail",
            "q@default",
            "1002@default",
            "NORMAL_CLEARING",
            "sofia/internal/1001@h",
        ]);
        (names, proptest::collection::vec((key, value), 0..12)).prop_map(|(name, pairs)| {
            let mut h = vec![("Event-Name".to_owned(), name.to_owned())];
            h.extend(pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
            Headers::from_pairs(h)
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_events_give_only_valid_call_events(events in proptest::collection::vec(arbitrary_event(), 0..50)) {
            let mut r = fs_rules();
            r.did_from = DidFrom::Variable("DID".into());
            let mut calls = EslCalls::new(r);
            let mut built = Vec::new();
            for e in &events {
                calls.on_event(e, Timestamp::UNIX_EPOCH, &mut built);
            }
            calls.begin_resync();
            calls.channel_list(br#"{"rows":[]}"#, Timestamp::UNIX_EPOCH, &mut built);
            calls.flush(&mut built);
            for b in built {
                proptest::prop_assert!(b.is_ok(), "{:?}", b);
            }
            proptest::prop_assert_eq!(calls.open(), 0);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// However the socket splits a session, the same call events come out.
        #[test]
        fn any_split_gives_the_same_events(cuts in proptest::collection::vec(0usize..20_000, 0..30), which in 0usize..6) {
            let name = ["ivr-dtmf-extension.esl", "callcenter-answered.esl", "callcenter-abandoned.esl", "missed-ring-group.esl", "outbound.esl", "click-to-call.esl"][which];
            let bytes = session_file(name);
            let (whole, _) = play(name);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % bytes.len()).collect();
            cuts.sort_unstable();
            let mut s = EslSession::new("ClueCon", fs_rules(), None);
            s.connected(Timestamp::UNIX_EPOCH);
            let mut events = Vec::new();
            let mut from = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                events.extend(s.received(&bytes[from..c], Timestamp::UNIX_EPOCH).events);
                from = c;
            }
            proptest::prop_assert_eq!(events, whole);
        }
    }
}
