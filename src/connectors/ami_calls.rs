//! Following Asterisk calls from AMI events: channels are grouped into calls by `Linkedid`
//! (legs by `Uniqueid`), and what happens to them becomes call events (through the call
//! table, [`super::table`], and [`super::call::CallTrack`]). This file holds what is
//! Asterisk's own: which frame means what. Pure: frames and the time they were read in,
//! events out.
//!
//! The rules, as Asterisk 22 shows them (see `tests/fixtures/asterisk-ami/README.md`):
//! - A channel whose `Linkedid` is its own `Uniqueid` starts a call; it is the customer's leg.
//!   Created `Down` it was placed by the PBX (an originate: click-to-call); created in an
//!   outbound context it was placed by an extension; otherwise it came in.
//! - A channel keeps the call it was created in, even when Asterisk later changes its
//!   `Linkedid` (an `AgentRequest` bridge links the member into the agent's login call).
//! - The customer's leg going `Up` before any dial from it was answered is the PBX answering:
//!   an IVR, if the dialplan place is one.
//! - `AgentCalled` / `DialBegin` from the customer's leg ring an extension; legs dialed at once
//!   are reported in one `call.dialed`. `DialEnd ANSWER` is an extension picking up (for queue
//!   members the answer is reported at `AgentConnect`, which carries hold and ring times).
//! - The last channel of the call hanging up ends it.
//! - A call this connector placed for a click-to-call request (its first channel carries the
//!   request's reference) rings the agent first: that channel going `Up` is the agent
//!   answering, its own dial is the customer's leg, and that dial's `DialEnd` says whether the
//!   customer answered.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ami::Frame;
use super::call::{Built, DidFrom, Rules};
use super::numbers::present;
use super::table::{Call, CallTable, Leg, Origin, Pbx, Phase, Seen};
use crate::core::click_to_call::{LegEnd, Signal};
use crate::core::event::{DialVia, HangupBy};

/// Events that arrive in a burst while a dial starts; a pending `call.dialed` waits for the
/// first event of the call that is not one of these, so legs rung together are one event.
const DIAL_BURST: &[&str] = &[
    "Newchannel",
    "NewCallerid",
    "NewConnectedLine",
    "NewAccountCode",
    "VarSet",
    "Newexten",
    "LocalBridge",
    "LocalOptimizationBegin",
    "AgentCalled",
    "DialBegin",
    "DeviceStateChange",
    "RTCPSent",
    "RTCPReceived",
];

/// What the Asterisk follower keeps per call, beside the table's [`Call`].
#[derive(Debug, Serialize, Deserialize)]
pub struct AmiCall {
    /// The queue the customer waits in now.
    queue: Option<String>,
    /// The extension the call was placed to, as first seen (the inbound DID).
    first_exten: String,
    /// The customer's caller id, as first seen.
    first_caller: String,
    /// An originate's `DialBegin`: the caller id it presents and the number it dials.
    originate: Option<(String, String)>,
    dial_answered: bool,
    /// The bridge in which the customer talks with an extension.
    talking: Option<String>,
    transferring: bool,
}

/// An Asterisk channel.
#[derive(Debug, Serialize, Deserialize)]
pub struct Chan {
    call: Option<String>,
    name: String,
    linkedid: String,
    context: String,
    exten: String,
    caller: String,
}

/// What the Asterisk follower keeps beside its calls: the members of each bridge.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Asterisk {
    bridges: HashMap<String, Vec<String>>,
}

impl Pbx for Asterisk {
    type Channel = Chan;
    type Call = AmiCall;

    fn seen<'a>(
        channels: &'a HashMap<String, Chan>,
        call: &'a Call<AmiCall>,
        _force: bool,
    ) -> Seen<'a> {
        Seen {
            exten: &call.pbx.first_exten,
            caller: &call.pbx.first_caller,
            caller_now: channels
                .get(&call.customer)
                .map_or("", |c| c.caller.as_str()),
            did_var: call.did_var.as_deref(),
            originate: call
                .pbx
                .originate
                .as_ref()
                .map(|(presented, dialed)| (presented.as_str(), dial_number(dialed))),
        }
    }

    fn channel_gone(calls: &mut AmiCalls, id: &str, at: Timestamp, out: &mut Vec<Built>) {
        calls.hangup(id, None, at, out);
    }

    fn talking(call: &AmiCall) -> bool {
        call.talking.is_some()
    }
}

/// All calls of one Asterisk.
pub type AmiCalls = CallTable<Asterisk>;

impl AmiCalls {
    pub fn on_frame(&mut self, f: &Frame, local: Timestamp, out: &mut Vec<Built>) {
        let Some(event) = f.event() else { return };
        let precise = f.get("Timestamp").and_then(epoch);
        if let Some(t) = precise {
            self.clock.observe(t, local);
        } else if event == "Newchannel"
            && let Some(t) = f.get("Uniqueid").and_then(epoch)
        {
            self.clock.observe(t, local);
        }
        let at = precise.unwrap_or_else(|| self.clock.now(local));
        for key in ["Uniqueid", "DestUniqueid"] {
            if let Some(u) = f.get(key) {
                self.confirm(u);
            }
        }
        if !DIAL_BURST.contains(&event)
            && let Some(call) = self.call_of(f)
        {
            self.flush_dial(&call, out);
        }
        match event {
            "Newchannel" => self.newchannel(f, at, out),
            "Newstate" => self.newstate(f, at, out),
            "NewCallerid" => {
                self.update(f);
            }
            "VarSet" => self.varset(f, at, out),
            "DialBegin" => self.dial_begin(f, at, out),
            "AgentCalled" => self.agent_called(f, at, out),
            "DialEnd" => self.dial_end(f, at, out),
            "AgentConnect" => self.agent_connect(f, at, out),
            "AgentComplete" => self.agent_complete(f),
            "QueueCallerJoin" | "Join" => self.queue_join(f, at, out),
            "QueueCallerLeave" | "Leave" => {
                if let Some(call) = self.customer_call(f) {
                    call.pbx.queue = None;
                }
            }
            "BridgeEnter" => self.bridge_enter(f, at, out),
            "BridgeLeave" => self.bridge_leave(f),
            "BlindTransfer" | "AttendedTransfer" => self.transfer(f),
            "DTMFEnd" => self.dtmf(f, at, out),
            "HangupRequest" => self.hangup_request(f, false),
            "SoftHangupRequest" => self.hangup_request(f, true),
            "Hangup" => {
                if let Some(u) = f.get("Uniqueid") {
                    let cause = f.get("Cause").and_then(q850);
                    self.hangup(u, cause, at, out);
                }
            }
            _ => {}
        }
    }

    /// The call a frame is about, through its channel (or the dialed channel).
    fn call_of(&self, f: &Frame) -> Option<String> {
        ["Uniqueid", "DestUniqueid"]
            .iter()
            .filter_map(|k| f.get(k))
            .find_map(|u| self.channels.get(u).and_then(|c| c.call.clone()))
    }

    /// The followed call whose customer leg the frame's `Uniqueid` is.
    fn customer_call(&mut self, f: &Frame) -> Option<&mut Call<AmiCall>> {
        let u = f.get("Uniqueid")?;
        let id = self.channels.get(u)?.call.clone()?;
        self.calls.get_mut(&id).filter(|c| c.customer == u)
    }

    /// Keeps what a channel's frame says about it (caller id, dialplan place, `Linkedid`).
    fn update(&mut self, f: &Frame) -> Option<String> {
        let u = f.get("Uniqueid")?;
        let ch = self.channels.get_mut(u)?;
        if let Some(c) = f.get("CallerIDNum") {
            c.clone_into(&mut ch.caller);
        }
        if let Some(c) = f.get("Context") {
            c.clone_into(&mut ch.context);
        }
        if let Some(e) = f.get("Exten") {
            e.clone_into(&mut ch.exten);
        }
        if let Some(l) = f.get("Linkedid") {
            l.clone_into(&mut ch.linkedid);
        }
        ch.call.clone()
    }

    fn newchannel(&mut self, f: &Frame, at: Timestamp, out: &mut Vec<Built>) {
        let Some(u) = f.get("Uniqueid").filter(|u| !u.trim().is_empty()) else {
            return;
        };
        if self.channels.contains_key(u) {
            self.update(f);
            return;
        }
        let linkedid = f
            .get("Linkedid")
            .filter(|l| !l.trim().is_empty())
            .unwrap_or(u);
        let context = f.get("Context").unwrap_or_default();
        let exten = f.get("Exten").unwrap_or_default();
        let caller = f.get("CallerIDNum").unwrap_or_default();
        let call = if self.calls.contains_key(linkedid) {
            Some(linkedid.to_owned())
        } else if linkedid == u {
            // Created `Down`: the PBX placed it (an originate).
            let placed = f.get("ChannelState") == Some("0");
            let origin = Origin::of(placed, context, &self.rules);
            self.calls.insert(
                u.to_owned(),
                Call::new(
                    super::call::clip(u),
                    u,
                    origin,
                    epoch(u).unwrap_or(at),
                    AmiCall {
                        queue: None,
                        first_exten: exten.to_owned(),
                        first_caller: caller.to_owned(),
                        originate: None,
                        dial_answered: false,
                        talking: None,
                        transferring: false,
                    },
                ),
            );
            Some(u.to_owned())
        } else {
            // Part of a call that began before we were connected: not ours to report.
            None
        };
        if let Some(id) = &call
            && let Some(c) = self.calls.get_mut(id)
        {
            c.channels.insert(u.to_owned());
        }
        self.channels.insert(
            u.to_owned(),
            Chan {
                call: call.clone(),
                name: f.get("Channel").unwrap_or_default().to_owned(),
                linkedid: linkedid.to_owned(),
                context: context.to_owned(),
                exten: exten.to_owned(),
                caller: caller.to_owned(),
            },
        );
        if let Some(id) = call {
            self.try_start(&id, at, false, out);
        }
    }

    fn newstate(&mut self, f: &Frame, at: Timestamp, out: &mut Vec<Built>) {
        let Some(id) = self.update(f) else { return };
        let Some(u) = f.get("Uniqueid") else { return };
        if f.get("ChannelState") != Some("6") {
            return;
        }
        let ivr = self.rules.ivr(
            f.get("Context").unwrap_or_default(),
            f.get("Exten").unwrap_or_default(),
        );
        if !self.started(&id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.customer == u {
            let answered = call.pbx.dial_answered;
            call.customer_leg_up(at, ivr, answered, out, &mut self.progress);
        }
    }

    fn varset(&mut self, f: &Frame, at: Timestamp, out: &mut Vec<Built>) {
        let (Some(var), Some(value)) = (f.get("Variable"), f.get("Value")) else {
            return;
        };
        // Inherited variables carry one or two leading underscores.
        let var = var.trim_start_matches('_');
        let did_var = match &self.rules.did_from {
            DidFrom::Variable(v) => v.trim_start_matches('_') == var,
            DidFrom::Exten => false,
        };
        let ref_var = self
            .rules
            .ref_id_variable
            .as_deref()
            .is_some_and(|v| v.trim_start_matches('_') == var);
        if !did_var && !ref_var {
            return;
        }
        let Some(call) = self.customer_call(f) else {
            return;
        };
        let id = call.id.clone();
        if did_var && present(value) {
            call.did_var = Some(value.to_owned());
        }
        if ref_var && !value.is_empty() {
            self.reference(&id, value, at, out);
        }
        if did_var && present(value) {
            self.try_start(&id, at, false, out);
        }
    }

    fn dial_begin(&mut self, f: &Frame, at: Timestamp, out: &mut Vec<Built>) {
        let Some(dest) = f.get("DestUniqueid") else {
            return;
        };
        let Some(src) = f.get("Uniqueid") else {
            // No calling channel: the PBX originates a call to `dest`.
            let Some(id) = self.channels.get(dest).and_then(|c| c.call.clone()) else {
                return;
            };
            if let Some(call) = self.calls.get_mut(&id)
                && call.customer == dest
                && call.origin == Origin::Originated
                && call.pbx.originate.is_none()
            {
                call.pbx.originate = Some((
                    f.get("DestCallerIDNum").unwrap_or_default().to_owned(),
                    f.get("DialString").unwrap_or_default().to_owned(),
                ));
                self.try_start(&id, at, false, out);
            }
            return;
        };
        let Some(id) = self.update(f) else { return };
        let context = f.get("Context").unwrap_or_default().to_owned();
        let exten = f.get("Exten").unwrap_or_default().to_owned();
        if !self.started(&id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.customer != src || call.legs.contains_key(dest) {
            // A member's own dial (a Local channel calling the phone) or an agent dialing
            // out mid-call: the customer's dial already covers it.
            return;
        }
        if let Some(p) = &call.placed {
            // The agent's call dials the customer (again, if the dialplan tries once more).
            if call.outbound_leg.is_none() {
                call.outbound_leg = Some(dest.to_owned());
                self.progress
                    .push(p.progress(&call.id, Signal::CustomerRinging, None));
            }
            return;
        }
        if call.origin == Origin::Outbound {
            call.outbound_leg.get_or_insert_with(|| dest.to_owned());
            return;
        }
        let (via, place) = match &call.pbx.queue {
            Some(q) => (DialVia::Queue, Some(self.rules.queue(q))),
            None => match self.rules.target(&context, &exten) {
                Some((via, place)) => (via, Some(place)),
                None => (DialVia::Direct, None),
            },
        };
        let ext = extension_of(f.get("DestChannel").unwrap_or_default());
        let name = self.rules.extension_name(&ext);
        self.ring(&id, dest, ext, name, via, place, at, out);
    }

    fn agent_called(&mut self, f: &Frame, at: Timestamp, out: &mut Vec<Built>) {
        let (Some(src), Some(dest)) = (f.get("Uniqueid"), f.get("DestUniqueid")) else {
            return;
        };
        let Some(id) = self.update(f) else { return };
        if !self.started(&id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.customer != src || call.legs.contains_key(dest) {
            return;
        }
        let (ext, name) = member(f, &self.rules);
        let place = self.rules.queue(f.get("Queue").unwrap_or_default());
        self.ring(&id, dest, ext, name, DialVia::Queue, Some(place), at, out);
    }

    fn dial_end(&mut self, f: &Frame, at: Timestamp, out: &mut Vec<Built>) {
        let Some(dest) = f.get("DestUniqueid") else {
            return;
        };
        let answer = f
            .get("DialStatus")
            .is_some_and(|s| s.eq_ignore_ascii_case("ANSWER"));
        let Some(src) = f.get("Uniqueid") else {
            // The originated call's customer answered.
            let Some(id) = self.channels.get(dest).and_then(|c| c.call.clone()) else {
                return;
            };
            if !self.started(&id, at, out) {
                return;
            }
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            if let Some(p) = &call.placed {
                // The originate's dial rings the agent.
                if call.customer == dest {
                    let status = f.get("DialStatus").unwrap_or_default();
                    let signal = if answer {
                        Signal::AgentAnswered
                    } else {
                        Signal::AgentFailed(dial_failure(status))
                    };
                    let cause = Some(status.to_owned()).filter(|_| !answer);
                    self.progress.push(p.progress(&call.id, signal, cause));
                }
                return;
            }
            if answer && call.customer == dest && !call.customer_answered {
                call.customer_answered = true;
                if let Phase::Followed(track) = &mut call.phase {
                    out.push(track.customer_answered(at, dest, None, call.ref_id.as_deref()));
                }
            }
            return;
        };
        let Some(id) = self.update(f) else { return };
        if !self.started(&id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.customer != src {
            return;
        }
        let Phase::Followed(track) = &mut call.phase else {
            return;
        };
        if let Some(p) = &call.placed {
            if call.outbound_leg.as_deref() != Some(dest) {
                return;
            }
            if !answer {
                // The customer was not reached; the dialplan may try again.
                let status = f.get("DialStatus").unwrap_or_default();
                let failed = Signal::CustomerFailed(dial_failure(status));
                self.progress
                    .push(p.progress(&call.id, failed, Some(status.to_owned())));
                call.outbound_leg = None;
            } else if !call.customer_answered {
                call.customer_answered = true;
                let name = self.rules.extension_name(&p.agent);
                out.push(track.customer_answered(
                    at,
                    dest,
                    Some((&p.agent, name.as_deref())),
                    call.ref_id.as_deref(),
                ));
                self.progress
                    .push(p.progress(&call.id, Signal::CustomerAnswered, None));
            }
            return;
        }
        if call.origin == Origin::Outbound {
            if answer && call.outbound_leg.as_deref() == Some(dest) && !call.customer_answered {
                call.customer_answered = true;
                let ext = extension_of(
                    self.channels
                        .get(&call.customer)
                        .map(|c| c.name.as_str())
                        .unwrap_or_default(),
                );
                out.push(track.customer_answered(at, dest, Some((&ext, None)), None));
            }
            return;
        }
        let Some(leg) = call.legs.get_mut(dest) else {
            return;
        };
        if !answer {
            track.ring_ended(dest);
            return;
        }
        leg.answered = true;
        call.pbx.dial_answered = true;
        track.picked_up();
        // A queue confirms with `AgentConnect`, which carries hold and ring times.
        if leg.via != DialVia::Queue {
            out.extend(leg.report(dest, track, at));
        }
    }

    fn agent_connect(&mut self, f: &Frame, at: Timestamp, out: &mut Vec<Built>) {
        let (Some(src), Some(dest)) = (f.get("Uniqueid"), f.get("DestUniqueid")) else {
            return;
        };
        let Some(id) = self.update(f) else { return };
        let (ext, name) = member(f, &self.rules);
        let place = self.rules.queue(f.get("Queue").unwrap_or_default());
        if !self.started(&id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.customer != src {
            return;
        }
        call.pbx.dial_answered = true;
        let leg = call.legs.entry(dest.to_owned()).or_insert(Leg {
            extension: ext,
            name,
            via: DialVia::Queue,
            place: Some(place),
            rang_at: at,
            answered: true,
            reported: false,
        });
        if leg.reported {
            return;
        }
        leg.reported = true;
        let secs = |k: &str| f.get(k).and_then(|v| v.trim().parse::<i64>().ok());
        let p = leg.pickup(dest, secs("RingTime"), secs("HoldTime"));
        if let Phase::Followed(track) = &mut call.phase {
            out.push(track.agent_answered(at, &p));
        }
    }

    fn agent_complete(&mut self, f: &Frame) {
        let who = match f.get("Reason") {
            Some(r) if r.eq_ignore_ascii_case("caller") => HangupBy::Customer,
            Some(r) if r.eq_ignore_ascii_case("agent") => HangupBy::Extension,
            _ => return,
        };
        if let Some(call) = self.customer_call(f)
            && let Phase::Followed(track) = &mut call.phase
        {
            track.hangup_by(who, true);
        }
    }

    fn queue_join(&mut self, f: &Frame, at: Timestamp, out: &mut Vec<Built>) {
        let Some(id) = self.update(f) else { return };
        let Some(u) = f.get("Uniqueid") else { return };
        if !self.started(&id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.customer != u {
            return;
        }
        call.pbx.queue = f.get("Queue").map(str::to_owned);
        call.pbx.transferring = false;
        if let Phase::Followed(track) = &mut call.phase {
            track.entered_queue();
        }
    }

    fn bridge_enter(&mut self, f: &Frame, at: Timestamp, out: &mut Vec<Built>) {
        let (Some(u), Some(b)) = (f.get("Uniqueid"), f.get("BridgeUniqueid")) else {
            return;
        };
        let members = self.pbx.bridges.entry(b.to_owned()).or_default();
        if !members.iter().any(|m| m == u) {
            members.push(u.to_owned());
        }
        let members = members.clone();
        let Some(id) = self.update(f) else { return };
        if !self.started(&id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if !members.contains(&call.customer) {
            return;
        }
        if call.placed.is_some() {
            // The agent talks with the customer it dialed.
            if call
                .outbound_leg
                .as_ref()
                .is_some_and(|c| members.contains(c))
            {
                call.pbx.talking = Some(b.to_owned());
                call.pbx.transferring = false;
            }
            return;
        }
        // The customer talks with one of the legs it dialed (or that leg's Local partner).
        let Some(leg_id) = members.iter().find_map(|m| {
            let name = self.channels.get(m).map(|c| c.name.as_str())?;
            call.legs
                .keys()
                .find(|l| {
                    *l == m
                        || self.channels.get(*l).is_some_and(|c| {
                            local_pair(&c.name).is_some_and(|p| local_pair(name) == Some(p))
                        })
                })
                .cloned()
        }) else {
            return;
        };
        call.pbx.talking = Some(b.to_owned());
        call.pbx.transferring = false;
        let Some(leg) = call.legs.get_mut(&leg_id) else {
            return;
        };
        // Answered without an `AgentConnect` (an older Asterisk, or a queue that bridges by
        // itself): the bridge is the proof.
        if leg.answered
            && let Phase::Followed(track) = &mut call.phase
        {
            out.extend(leg.report(&leg_id, track, at));
        }
    }

    fn bridge_leave(&mut self, f: &Frame) {
        let (Some(u), Some(b)) = (f.get("Uniqueid"), f.get("BridgeUniqueid")) else {
            return;
        };
        if let Some(m) = self.pbx.bridges.get_mut(b) {
            m.retain(|x| x != u);
            if m.is_empty() {
                self.pbx.bridges.remove(b);
            }
        }
        let Some(id) = self.update(f) else { return };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.pbx.talking.as_deref() != Some(b) {
            return;
        }
        call.pbx.talking = None;
        // Whoever leaves the conversation first hung up on the other (unless a transfer
        // moved them apart).
        if !std::mem::take(&mut call.pbx.transferring)
            && let Phase::Followed(track) = &mut call.phase
        {
            // The first channel is the customer's, but the agent's on a placed call.
            let who = if (call.customer == u) != call.placed.is_some() {
                HangupBy::Customer
            } else {
                HangupBy::Extension
            };
            track.hangup_by(who, false);
        }
    }

    fn transfer(&mut self, f: &Frame) {
        for key in [
            "TransfereeUniqueid",
            "TransfererUniqueid",
            "OrigTransfererUniqueid",
        ] {
            let Some(id) = f
                .get(key)
                .and_then(|u| self.channels.get(u))
                .and_then(|c| c.call.clone())
            else {
                continue;
            };
            if let Some(call) = self.calls.get_mut(&id) {
                call.pbx.transferring = true;
            }
        }
    }

    fn dtmf(&mut self, f: &Frame, at: Timestamp, out: &mut Vec<Built>) {
        if !f
            .get("Direction")
            .is_some_and(|d| d.eq_ignore_ascii_case("Received"))
        {
            return;
        }
        let (Some(u), Some(digit)) = (f.get("Uniqueid"), f.get("Digit")) else {
            return;
        };
        let Some(id) = self.update(f) else { return };
        let ivr = self.rules.ivr(
            f.get("Context").unwrap_or_default(),
            f.get("Exten").unwrap_or_default(),
        );
        self.customer_dtmf(&id, u, digit, ivr, at, out);
    }

    fn hangup_request(&mut self, f: &Frame, soft: bool) {
        let Some(u) = f.get("Uniqueid") else { return };
        let Some(id) = self.update(f) else { return };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let name = self
            .channels
            .get(u)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let Phase::Followed(track) = &mut call.phase else {
            return;
        };
        if call.customer == u {
            // A Local channel's hangup request only echoes its partner's.
            if local_pair(&name).is_some() || (soft && call.pbx.talking.is_some()) {
                return;
            }
            let far_end = if call.placed.is_some() {
                HangupBy::Extension
            } else {
                HangupBy::Customer
            };
            track.hangup_by(if soft { HangupBy::System } else { far_end }, false);
        } else if call.placed.is_some() {
            if !soft && call.outbound_leg.as_deref() == Some(u) {
                track.hangup_by(HangupBy::Customer, false);
            }
        } else if call.pbx.talking.is_some() {
            let of_talking_leg = call.legs.iter().any(|(l, leg)| {
                leg.answered
                    && (l == u
                        || self.channels.get(l).is_some_and(|c| {
                            local_pair(&c.name).is_some_and(|p| local_pair(&name) == Some(p))
                        }))
            });
            if of_talking_leg {
                track.hangup_by(HangupBy::Extension, false);
            }
        }
    }

    /// Channel `u` is gone; the call ends with its last channel.
    fn hangup(&mut self, u: &str, cause: Option<String>, at: Timestamp, out: &mut Vec<Built>) {
        let Some(ch) = self.channels.remove(u) else {
            return;
        };
        self.pbx.bridges.retain(|_, m| {
            m.retain(|x| x != u);
            !m.is_empty()
        });
        let Some(id) = ch.call else { return };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.channels.remove(u);
        if call.customer == u {
            call.cause = cause;
        }
        if let Some(leg) = call.legs.get(u)
            && !leg.answered
            && let Phase::Followed(track) = &mut call.phase
        {
            track.ring_ended(u);
        }
        // Channels that moved to another call (their `Linkedid` changed) do not keep this one
        // open once its customer is gone.
        let customer_gone = !call.channels.contains(&call.customer);
        let rest_elsewhere = call
            .channels
            .iter()
            .all(|c| self.channels.get(c).is_none_or(|ch| ch.linkedid != call.id));
        if !(call.channels.is_empty() || customer_gone && rest_elsewhere) {
            return;
        }
        let Some(call) = self.end_call(&id, at, out) else {
            return;
        };
        for c in &call.channels {
            if let Some(ch) = self.channels.get_mut(c) {
                ch.call = None;
            }
        }
    }
}

/// How a dial that was not answered ended, by Asterisk's `DialStatus`.
fn dial_failure(status: &str) -> LegEnd {
    match status.trim().to_ascii_uppercase().as_str() {
        "BUSY" => LegEnd::Busy,
        "NOANSWER" => LegEnd::NoAnswer,
        "CANCEL" => LegEnd::Cancelled,
        // CONGESTION, CHANUNAVAIL, DONTCALL, TORTURE, INVALIDARGS.
        _ => LegEnd::Unavailable,
    }
}

/// A queue member's extension and name from `AgentCalled` / `AgentConnect`: the interface
/// names the extension; a `MemberName` other than the interface is a person's name.
fn member(f: &Frame, rules: &Rules) -> (String, Option<String>) {
    let interface = f.get("Interface").unwrap_or_default();
    let ext = if interface.is_empty() {
        extension_of(f.get("DestChannel").unwrap_or_default())
    } else {
        extension_of(interface)
    };
    let name = rules.extension_name(&ext).or_else(|| {
        f.get("MemberName")
            .filter(|m| !m.is_empty() && *m != interface)
            .map(super::call::clip)
    });
    (ext, name)
}

/// The extension a channel or interface name stands for: `PJSIP/agent1-0000000b` → `agent1`,
/// `Local/600@n5-agents-00000001;1` → `600`, `PJSIP/400@tocaller` → `400`, `Agent/1001` → `1001`.
pub fn extension_of(channel: &str) -> String {
    let rest = channel.split_once('/').map_or(channel, |(_, r)| r);
    let rest = rest.split(';').next().unwrap_or(rest);
    if let Some((user, _)) = rest.split_once('@') {
        return user.to_owned();
    }
    // Strip the channel's sequence suffix: `-0000000b`.
    match rest.rsplit_once('-') {
        Some((name, seq)) if seq.len() >= 6 && seq.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => rest.to_owned(),
    }
}

/// `Local/600@n5-agents-00000001;1` and `;2` are two halves of one Local channel.
fn local_pair(name: &str) -> Option<&str> {
    name.strip_prefix("Local/")
        .and_then(|r| r.rsplit_once(';'))
        .map(|(pair, _)| pair)
}

/// The number an originate dials: `400@tocaller` → `400`, `PJSIP/1001@pstn` → `1001`.
fn dial_number(dial_string: &str) -> &str {
    let s = dial_string.rsplit('/').find(|p| !p.is_empty() && *p != "n");
    let s = s.unwrap_or(dial_string);
    s.split('@').next().unwrap_or(s)
}

/// The time in an AMI `Uniqueid` (`1790513783.0`, the channel's creation second) or
/// `Timestamp` header (`1790513783.123456`).
fn epoch(s: &str) -> Option<Timestamp> {
    let (secs, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    let secs: i64 = secs.parse().ok()?;
    // Channel ids like `1790513783.12` carry a sequence, not a fraction: only a 6-digit
    // part (a `Timestamp` header's microseconds) is read as time.
    let micros: i64 = if frac.len() == 6 {
        frac.parse().ok()?
    } else {
        0
    };
    // Anything before 2000 is not a time Asterisk wrote.
    if secs < 946_684_800 {
        return None;
    }
    Timestamp::from_microsecond(secs.checked_mul(1_000_000)?.checked_add(micros)?).ok()
}

/// The Q.850 name of an Asterisk hangup cause (the names FreeSWITCH uses too), so both PBXs
/// report causes the same way. `0` means none.
fn q850(code: &str) -> Option<String> {
    let n: u16 = code.trim().parse().ok()?;
    let name = match n {
        0 => return None,
        1 => "UNALLOCATED_NUMBER",
        2 => "NO_ROUTE_TRANSIT_NET",
        3 => "NO_ROUTE_DESTINATION",
        6 => "CHANNEL_UNACCEPTABLE",
        7 => "CALL_AWARDED_DELIVERED",
        16 => "NORMAL_CLEARING",
        17 => "USER_BUSY",
        18 => "NO_USER_RESPONSE",
        19 => "NO_ANSWER",
        20 => "SUBSCRIBER_ABSENT",
        21 => "CALL_REJECTED",
        22 => "NUMBER_CHANGED",
        23 => "REDIRECTION_TO_NEW_DESTINATION",
        25 => "EXCHANGE_ROUTING_ERROR",
        26 => "ANSWERED_ELSEWHERE",
        27 => "DESTINATION_OUT_OF_ORDER",
        28 => "INVALID_NUMBER_FORMAT",
        29 => "FACILITY_REJECTED",
        30 => "RESPONSE_TO_STATUS_ENQUIRY",
        31 => "NORMAL_UNSPECIFIED",
        34 => "NORMAL_CIRCUIT_CONGESTION",
        38 => "NETWORK_OUT_OF_ORDER",
        41 => "NORMAL_TEMPORARY_FAILURE",
        42 => "SWITCH_CONGESTION",
        43 => "ACCESS_INFO_DISCARDED",
        44 => "REQUESTED_CHAN_UNAVAIL",
        50 => "FACILITY_NOT_SUBSCRIBED",
        52 => "OUTGOING_CALL_BARRED",
        54 => "INCOMING_CALL_BARRED",
        57 => "BEARERCAPABILITY_NOTAUTH",
        58 => "BEARERCAPABILITY_NOTAVAIL",
        63 => "SERVICE_UNAVAILABLE",
        65 => "BEARERCAPABILITY_NOTIMPL",
        66 => "CHAN_NOT_IMPLEMENTED",
        69 => "FACILITY_NOT_IMPLEMENTED",
        79 => "SERVICE_NOT_IMPLEMENTED",
        81 => "INVALID_CALL_REFERENCE",
        88 => "INCOMPATIBLE_DESTINATION",
        95 => "INVALID_MSG_UNSPECIFIED",
        96 => "MANDATORY_IE_MISSING",
        97 => "MESSAGE_TYPE_NONEXIST",
        98 => "WRONG_MESSAGE",
        99 => "IE_NONEXIST",
        100 => "INVALID_IE_CONTENTS",
        101 => "WRONG_CALL_STATE",
        102 => "RECOVERY_ON_TIMER_EXPIRE",
        103 => "MANDATORY_IE_LENGTH_ERROR",
        111 => "PROTOCOL_ERROR",
        127 => "INTERWORKING",
        other => return Some(format!("CAUSE_{other}")),
    };
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::connectors::ami::{Item, Parser};
    use crate::connectors::call::tests::describe;
    use crate::connectors::call::{IvrRule, Place, TargetRule};
    use crate::core::event::{CallEvent, CallType, EventDetail};
    use crate::core::number::E164;

    const CALL_SHAPES: &[u8] =
        include_bytes!("../../tests/fixtures/asterisk-ami/call-shapes-asterisk-22.9.0.raw");
    const QUEUE_SHAPES: &[u8] =
        include_bytes!("../../tests/fixtures/asterisk-ami/queue-shapes-asterisk-22.9.0.raw");

    fn place(id: &str, name: Option<&str>) -> Place {
        Place {
            id: id.into(),
            name: name.map(str::to_owned),
        }
    }

    /// The rules the call-shapes lab calls for: IVRs in `from-external`, 303 a ring group.
    pub fn call_shapes_rules() -> Rules {
        let mut r = crate::connectors::call::tests::rules();
        r.ivrs = vec![IvrRule {
            context: "from-external".into(),
            exten: None,
            place: place("ivr_main", Some("Main IVR")),
        }];
        r.targets = vec![TargetRule {
            context: Some("from-external".into()),
            exten: "303".into(),
            via: DialVia::RingGroup,
            place: place("rg_sales", Some("Sales")),
        }];
        r.queue_names = [("n5q".to_owned(), "Support".to_owned())].into();
        r.extension_names = [("600".to_owned(), "Asha".to_owned())].into();
        r.numbers.default_did = E164::parse("+15550000100").ok();
        r
    }

    /// The queue-shapes lab: DIDs by extension, no default (the agents' login calls have no
    /// DID and are not reported), IVRs at 4004 and 4012 only.
    pub fn queue_shapes_rules() -> Rules {
        let mut r = crate::connectors::call::tests::rules();
        r.ivrs = ["4004", "4012"]
            .iter()
            .map(|e| IvrRule {
                context: "from-pstn".into(),
                exten: Some((*e).into()),
                place: place(&format!("ivr_{e}"), None),
            })
            .collect();
        r.numbers.country_code = Some("1".into());
        r.numbers.dids = (4001..=4016)
            .map(|e| (e.to_string(), E164::parse(&format!("+1555010{e}")).unwrap()))
            .chain([("7000".to_owned(), E164::parse("+15550107000").unwrap())])
            .collect();
        r
    }

    /// Replays a capture as if read at one frame per 10 ms; answers the events, and for each
    /// call the most recent `Scenario` marker before it began.
    fn replay(bytes: &[u8], rules: Rules) -> (Vec<CallEvent>, BTreeMap<String, String>) {
        let mut items = Vec::new();
        Parser::new().feed(bytes, &mut items);
        let mut calls = AmiCalls::new(rules);
        let mut built = Vec::new();
        let mut scenario = String::new();
        let mut scenarios = BTreeMap::new();
        let local = Timestamp::from_second(2_000_000_000).unwrap();
        for (i, item) in items.iter().enumerate() {
            let Item::Frame(f) = item else { continue };
            if let Some(s) = f.get("Scenario") {
                scenario = s.to_owned();
            }
            if f.event() == Some("Newchannel")
                && let (Some(u), Some(l)) = (f.get("Uniqueid"), f.get("Linkedid"))
                && u == l
            {
                let name = match f.get("CallerIDNum") {
                    Some(n) if scenario.is_empty() && n.starts_with("555") => n.to_owned(),
                    _ => scenario.clone(),
                };
                scenarios.insert(u.to_owned(), name);
            }
            let at = local
                .checked_add(jiff::SignedDuration::from_millis(10 * i as i64))
                .unwrap();
            calls.on_frame(f, at, &mut built);
        }
        assert_eq!(calls.open(), 0, "every call ended");
        let events = built
            .into_iter()
            .map(|b| b.unwrap_or_else(|e| panic!("invalid event: {e}")))
            .collect();
        (events, scenarios)
    }

    fn by_scenario(bytes: &[u8], rules: Rules) -> BTreeMap<String, Vec<String>> {
        let (events, scenarios) = replay(bytes, rules);
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &events {
            let s = scenarios
                .get(e.call.call_id.as_str())
                .cloned()
                .unwrap_or_default();
            out.entry(s).or_default().push(describe(e));
        }
        out
    }

    fn assert_scenarios(got: BTreeMap<String, Vec<String>>, want: &[(&str, &[&str])]) {
        let want: BTreeMap<String, Vec<String>> = want
            .iter()
            .map(|(s, evs)| (s.to_string(), evs.iter().map(|e| e.to_string()).collect()))
            .collect();
        for (s, evs) in &want {
            assert_eq!(got.get(s), Some(evs), "scenario {s}");
        }
        assert_eq!(
            got.len(),
            want.len(),
            "{:#?}",
            got.keys().collect::<Vec<_>>()
        );
    }

    const IVR: &str = "answered ivr id=ivr_main name=Main IVR ext=- ext_name=- ring=- hold=-";
    const CUSTOMER: &str = "answered customer id=- name=- ext=- ext_name=- ring=- hold=-";
    const N5Q_600: &str = "answered queue id=n5q name=Support ext=600 ext_name=Asha ring=0 hold=0";

    #[test]
    fn call_shapes_scenario_by_scenario() {
        let inbound = "received inbound did=+15550000100 customer=-";
        let c2c = "received click_to_call did=+15550000100 customer=-";
        assert_scenarios(
            by_scenario(CALL_SHAPES, call_shapes_rules()),
            &[
                (
                    "S1-ivr-pbx-hangs-up",
                    &[
                        inbound,
                        IVR,
                        "ended missed ext=- missed=[] stage=ivr by=system cause=NORMAL_CLEARING",
                    ],
                ),
                (
                    "S2-ivr-caller-hangs-up",
                    &[
                        inbound,
                        IVR,
                        "ended missed ext=- missed=[] stage=ivr by=customer cause=NORMAL_CLEARING",
                    ],
                ),
                (
                    "S3-originate-answered-no-dial",
                    &[
                        c2c,
                        CUSTOMER,
                        "ended missed ext=- missed=[] stage=- by=system cause=NORMAL_CLEARING",
                    ],
                ),
                (
                    // The customer's side is a Local channel: its hangup requests only echo
                    // the other half's, so who hung up is not known.
                    "S4-originate-local-answered",
                    &[
                        c2c,
                        CUSTOMER,
                        "ended missed ext=- missed=[] stage=- by=- cause=NORMAL_CLEARING",
                    ],
                ),
                (
                    "S5-originate-never-answered",
                    &[
                        c2c,
                        "ended missed ext=- missed=[] stage=- by=- cause=NO_ANSWER",
                    ],
                ),
                (
                    "S6-dialer-queued-agent-answers",
                    &[
                        c2c,
                        CUSTOMER,
                        "dialed queue id=n5q name=Support [600]",
                        N5Q_600,
                        "ended answered ext=600 missed=[] stage=extension by=extension cause=NORMAL_CLEARING",
                    ],
                ),
                (
                    "S7-dialer-queued-abandoned",
                    &[
                        c2c,
                        CUSTOMER,
                        "ended missed ext=- missed=[] stage=queue by=system cause=NORMAL_CLEARING",
                    ],
                ),
                (
                    "S8-long-ivr",
                    &[
                        inbound,
                        IVR,
                        "ended missed ext=- missed=[] stage=ivr by=system cause=NORMAL_CLEARING",
                    ],
                ),
                (
                    "S9-control-inbound-dialed",
                    &[
                        inbound,
                        "dialed ring_group id=rg_sales name=Sales [600]",
                        "answered ring_group id=rg_sales name=Sales ext=600 ext_name=Asha ring=0 hold=-",
                        "ended answered ext=600 missed=[] stage=extension by=extension cause=NORMAL_CLEARING",
                    ],
                ),
                (
                    "S10-ivr-then-queue-agent-answers",
                    &[
                        inbound,
                        IVR,
                        "dialed queue id=n5q name=Support [600]",
                        N5Q_600,
                        "ended answered ext=600 missed=[] stage=extension by=extension cause=NORMAL_CLEARING",
                    ],
                ),
                (
                    "S11-ivr-then-queue-abandoned",
                    &[
                        inbound,
                        IVR,
                        "ended missed ext=- missed=[] stage=queue by=system cause=NORMAL_CLEARING",
                    ],
                ),
                (
                    "S12-ivr-then-dial-agent",
                    &[
                        inbound,
                        IVR,
                        "dialed direct id=- name=- [600]",
                        "answered extension id=- name=- ext=600 ext_name=Asha ring=0 hold=-",
                        "ended answered ext=600 missed=[] stage=extension by=extension cause=NORMAL_CLEARING",
                    ],
                ),
            ],
        );
    }

    /// SPEC §15: the lab's originates read as a dialer's calls (`originated_call_type =
    /// "outbound"`). A call that never rings an extension is answered when the customer
    /// answered (S3, S4, S7); one that does is answered when an extension talked (S6); one the
    /// customer never answered is missed (S5).
    #[test]
    fn dialer_calls_are_answered_when_the_customer_answered() {
        let mut r = call_shapes_rules();
        r.originated = CallType::Outbound;
        let got = by_scenario(CALL_SHAPES, r.clone());
        let received = "received outbound did=+15550000100 customer=-";
        let want: &[(&str, &[&str])] = &[
            (
                "S3-originate-answered-no-dial",
                &[
                    received,
                    CUSTOMER,
                    "ended answered ext=- missed=[] stage=- by=system cause=NORMAL_CLEARING",
                ],
            ),
            (
                "S4-originate-local-answered",
                &[
                    received,
                    CUSTOMER,
                    "ended answered ext=- missed=[] stage=- by=- cause=NORMAL_CLEARING",
                ],
            ),
            (
                "S5-originate-never-answered",
                &[
                    received,
                    "ended missed ext=- missed=[] stage=- by=- cause=NO_ANSWER",
                ],
            ),
            (
                "S6-dialer-queued-agent-answers",
                &[
                    received,
                    CUSTOMER,
                    "dialed queue id=n5q name=Support [600]",
                    N5Q_600,
                    "ended answered ext=600 missed=[] stage=extension by=extension cause=NORMAL_CLEARING",
                ],
            ),
            (
                "S7-dialer-queued-abandoned",
                &[
                    received,
                    CUSTOMER,
                    "ended answered ext=- missed=[] stage=queue by=system cause=NORMAL_CLEARING",
                ],
            ),
        ];
        for (scenario, lines) in want {
            let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            assert_eq!(got.get(*scenario), Some(&lines), "{scenario}");
        }
        // Answered when the customer answered: billed from then.
        let (events, _) = replay(CALL_SHAPES, r);
        let s3: Vec<&CallEvent> = events
            .iter()
            .filter(|e| e.call.call_id == "1790513796.2")
            .collect();
        let EventDetail::Ended(end) = &s3[2].detail else {
            panic!()
        };
        assert_eq!(end.answered_at, Some(s3[1].occurred_at));
        assert!(end.billsec.is_some_and(|b| b <= end.duration.unwrap_or(0)));
        assert_eq!(end.answered_extension, None);
    }

    fn queue_answer(queue: &str, ext: &str, name: &str, secs: u8) -> String {
        format!(
            "answered queue id={queue} name=- ext={ext} ext_name={name} ring={secs} hold={secs}"
        )
    }

    fn inbound(n: u32) -> String {
        let exten = if n == 15 { 4011 } else { 4000 + n };
        format!(
            "received inbound did=+1555010{exten} customer=+1555{:04}",
            n
        )
    }

    #[test]
    fn queue_shapes_scenario_by_scenario() {
        let answered = |ext: &str| {
            format!(
                "ended answered ext={ext} missed=[] stage=extension by=customer cause=NORMAL_CLEARING"
            )
        };
        let missed = |ext: &str, cause: &str| {
            format!("ended missed ext=- missed=[{ext}] stage=queue by=- cause={cause}")
        };
        let rows: Vec<(&str, Vec<String>)> = vec![
            // L: a Local member.
            ("5550001", vec![inbound(1), "dialed queue id=q-local name=- [agent]".into(), queue_answer("q-local", "agent", "-", 2), answered("agent")]),
            // P: a PJSIP member.
            ("5550002", vec![inbound(2), "dialed queue id=q-pjsip name=- [agent1]".into(), queue_answer("q-pjsip", "agent1", "-", 2), answered("agent1")]),
            // P2: ring-all; agent1 answers, agent2 was ringing too and is no miss.
            ("5550003", vec![inbound(3), "dialed queue id=q-ringall name=- [agent2,agent1]".into(), queue_answer("q-ringall", "agent1", "-", 2), answered("agent1")]),
            // PI: IVR, then the queue.
            ("5550004", vec![inbound(4), "answered ivr id=ivr_4004 name=- ext=- ext_name=- ring=- hold=-".into(), "dialed queue id=q-pjsip name=- [agent1]".into(), queue_answer("q-pjsip", "agent1", "-", 2), answered("agent1")]),
            // A and AO: app_agent_pool agents, through AgentRequest.
            ("5550005", vec![inbound(5), "dialed queue id=q-agent name=- [1001]".into(), queue_answer("q-agent", "1001", "Agent One", 0), answered("1001")]),
            ("5550006", vec![inbound(6), "dialed queue id=q-agent-opt name=- [1001]".into(), queue_answer("q-agent-opt", "1001", "Agent One", 0), answered("1001")]),
            // F: a FreePBX-style member (a Local channel that dials the phone).
            ("5550007", vec![inbound(7), "dialed queue id=q-freepbx name=- [agent1]".into(), queue_answer("q-freepbx", "agent1", "Agent1 FreePBX", 2), answered("agent1")]),
            // X1, X2, X3: nobody answers; abandoned.
            ("5550008", vec![inbound(8), "dialed queue id=q-noans name=- [agent2]".into(), missed("agent2", "NO_ANSWER")]),
            // X2: the PBX answers first, but 4009 is no IVR.
            ("5550009", vec![inbound(9), "dialed queue id=q-noans name=- [agent2]".into(), missed("agent2", "-")]),
            ("5550010", vec![inbound(10), "dialed queue id=q-noans name=- [agent2]".into(), missed("agent2", "NORMAL_CLEARING")]),
            // D: control, a direct dial.
            ("5550011", vec![inbound(11), "dialed direct id=- name=- [agent1]".into(), "answered extension id=- name=- ext=agent1 ext_name=- ring=0 hold=-".into(), answered("agent1")]),
            // I: control, IVR only.
            ("5550012", vec![inbound(12), "answered ivr id=ivr_4012 name=- ext=- ext_name=- ring=- hold=-".into(), "ended missed ext=- missed=[] stage=ivr by=- cause=NORMAL_CLEARING".into()]),
            // XC: the phone answers but the confirmation rejects it, twice; abandoned.
            ("5550013", vec![inbound(13), "dialed queue id=q-confirm name=- [agent1]".into(), "dialed queue id=q-confirm name=- [agent1]".into(), missed("agent1", "NO_ANSWER")]),
            // AX: the agent never acknowledges; abandoned.
            ("5550014", vec![inbound(14), "dialed queue id=q-agent-ack name=- [1002]".into(), missed("1002", "NO_ANSWER")]),
            // T: agent1 answers and blind-transfers into a queue, where agent3 answers.
            ("5550015", vec![inbound(15), "dialed direct id=- name=- [agent1]".into(), "answered extension id=- name=- ext=agent1 ext_name=- ring=0 hold=-".into(), "dialed queue id=q-pjsip3 name=- [agent3]".into(), queue_answer("q-pjsip3", "agent3", "-", 2), answered("agent1")]),
            // O: the first queue times out (agent2 missed), the overflow queue's agent3 answers.
            ("5550016", vec![inbound(16), "dialed queue id=q-noans name=- [agent2]".into(), "dialed queue id=q-pjsip3 name=- [agent3]".into(), queue_answer("q-pjsip3", "agent3", "-", 2), "ended answered ext=agent3 missed=[agent2] stage=extension by=customer cause=NORMAL_CLEARING".into()]),
            // PD: the dialer's call; the agents' own login calls have no DID and are not reported.
            ("", vec!["received click_to_call did=+15550107000 customer=-".into(), CUSTOMER.into(), "dialed queue id=q-pjsip name=- [agent1]".into(), queue_answer("q-pjsip", "agent1", "-", 2), answered("agent1")]),
        ];
        let want: Vec<(&str, Vec<&str>)> = rows
            .iter()
            .map(|(s, evs)| (*s, evs.iter().map(String::as_str).collect()))
            .collect();
        let want: Vec<(&str, &[&str])> = want.iter().map(|(s, e)| (*s, e.as_slice())).collect();
        assert_scenarios(by_scenario(QUEUE_SHAPES, queue_shapes_rules()), &want);
    }

    #[test]
    fn ids_derive_from_the_pbx_so_a_replay_repeats_them() {
        let (first, _) = replay(QUEUE_SHAPES, queue_shapes_rules());
        // Read the capture again, into the same follower state and into a fresh one.
        let mut items = Vec::new();
        Parser::new().feed(QUEUE_SHAPES, &mut items);
        let ids = |events: &[CallEvent]| -> Vec<String> {
            events
                .iter()
                .filter_map(|e| e.id.clone().map(|id| id.into_string()))
                .collect()
        };
        let mut calls = AmiCalls::new(queue_shapes_rules());
        let mut built = Vec::new();
        for _ in 0..2 {
            for item in &items {
                if let Item::Frame(f) = item {
                    calls.on_frame(f, Timestamp::UNIX_EPOCH, &mut built);
                }
            }
        }
        let twice: Vec<CallEvent> = built.into_iter().map(Result::unwrap).collect();
        let first_ids = ids(&first);
        assert_eq!(ids(&twice[..first.len()]), first_ids);
        assert_eq!(ids(&twice[first.len()..]), first_ids);
        assert!(first_ids.contains(&"pbx/1790519558.2/received".to_owned()));
        assert!(first_ids.contains(&"pbx/1790519558.2/answered/1".to_owned()));
        assert!(first_ids.contains(&"pbx/1790519558.2/ended".to_owned()));
        let unique: std::collections::BTreeSet<&String> = first_ids.iter().collect();
        assert_eq!(unique.len(), first_ids.len(), "ids are unique within a run");
    }

    /// callhook restarts in the middle of the capture: the calls it was following are saved
    /// and picked up, and the run ends exactly as an uninterrupted one.
    #[test]
    fn saved_calls_are_picked_up_after_a_restart() {
        let (whole, _) = replay(QUEUE_SHAPES, queue_shapes_rules());
        let mut items = Vec::new();
        Parser::new().feed(QUEUE_SHAPES, &mut items);
        let frames: Vec<&Frame> = items
            .iter()
            .filter_map(|i| match i {
                Item::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        let local = Timestamp::from_second(2_000_000_000).unwrap();
        let at = |i: usize| {
            local
                .checked_add(jiff::SignedDuration::from_millis(10 * i as i64))
                .unwrap()
        };
        for cut in [1, 100, 260, 355, 600] {
            let mut built = Vec::new();
            let mut before = AmiCalls::new(queue_shapes_rules());
            for (i, f) in frames[..cut].iter().enumerate() {
                before.on_frame(f, at(i), &mut built);
            }
            let saved = before.save();
            let mut after = AmiCalls::new(queue_shapes_rules());
            after.restore(&saved).unwrap();
            assert_eq!(after.open(), before.open());
            for (i, f) in frames.iter().enumerate().skip(cut) {
                after.on_frame(f, at(i), &mut built);
            }
            let got: Vec<CallEvent> = built.into_iter().map(Result::unwrap).collect();
            assert_eq!(got, whole, "restarted after frame {cut}");
        }
        let mut calls = AmiCalls::new(queue_shapes_rules());
        assert!(calls.restore("not json").is_err());
        assert!(
            calls
                .restore(r#"{"version":99,"clock":{"anchor":null},"channels":{},"calls":{},"bridges":{}}"#)
                .is_err()
        );
    }

    #[test]
    fn times_come_from_the_pbx() {
        let (events, _) = replay(CALL_SHAPES, call_shapes_rules());
        let s1: Vec<&CallEvent> = events
            .iter()
            .filter(|e| e.call.call_id == "1790513783.0")
            .collect();
        let started = Timestamp::from_second(1_790_513_783).unwrap();
        assert_eq!(s1[0].call.started_at, Some(started));
        assert!(
            s1.iter().all(|e| e.occurred_at >= started
                && e.occurred_at.duration_since(started).as_secs() < 60)
        );
        let EventDetail::Ended(end) = &s1[2].detail else {
            panic!()
        };
        assert!(end.duration.is_some_and(|d| (0..60).contains(&d)));
    }

    fn frame(pairs: &[(&str, &str)]) -> Frame {
        Frame::from_pairs(pairs.iter().copied())
    }

    fn chan<'a>(
        event: &'a str,
        u: &'a str,
        name: &'a str,
        state: &'a str,
        ctx: &'a str,
        exten: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("Event", event),
            ("Channel", name),
            ("ChannelState", state),
            ("CallerIDNum", "08065251399"),
            ("Context", ctx),
            ("Exten", exten),
            ("Uniqueid", u),
            ("Linkedid", "1790000000.1"),
        ]
    }

    fn run(rules: Rules, frames: &[Vec<(&str, &str)>]) -> (AmiCalls, Vec<String>) {
        let mut calls = AmiCalls::new(rules);
        let mut built = Vec::new();
        for f in frames {
            calls.on_frame(&frame(f), Timestamp::UNIX_EPOCH, &mut built);
        }
        let lines = built.into_iter().map(|b| describe(&b.unwrap())).collect();
        (calls, lines)
    }

    #[test]
    fn dtmf_in_an_ivr() {
        let mut r = call_shapes_rules();
        r.numbers.country_code = Some("91".into());
        let u = "1790000000.1";
        let mut dtmf = chan(
            "DTMFEnd",
            u,
            "PJSIP/trunk-00000001",
            "6",
            "from-external",
            "300",
        );
        dtmf.extend([("Digit", "5"), ("Direction", "Received")]);
        let mut sent = dtmf.clone();
        sent[9] = ("Direction", "Sent");
        let (calls, lines) = run(
            r,
            &[
                chan(
                    "Newchannel",
                    u,
                    "PJSIP/trunk-00000001",
                    "4",
                    "from-external",
                    "300",
                ),
                chan(
                    "Newstate",
                    u,
                    "PJSIP/trunk-00000001",
                    "6",
                    "from-external",
                    "300",
                ),
                dtmf.clone(),
                sent,
                dtmf,
            ],
        );
        assert_eq!(calls.open(), 1);
        assert_eq!(
            lines,
            [
                "received inbound did=+15550000100 customer=+918065251399",
                IVR,
                "dtmf 5 digits=5",
                "dtmf 5 digits=55",
            ]
        );
    }

    #[test]
    fn the_did_can_come_from_a_variable() {
        let mut r = call_shapes_rules();
        r.did_from = DidFrom::Variable("DID".into());
        r.numbers.country_code = Some("91".into());
        let u = "1790000000.1";
        let mut var = chan(
            "VarSet",
            u,
            "PJSIP/trunk-00000001",
            "4",
            "from-external",
            "300",
        );
        var.extend([("Variable", "__DID"), ("Value", "08065251305")]);
        let (_, lines) = run(
            r.clone(),
            &[
                chan(
                    "Newchannel",
                    u,
                    "PJSIP/trunk-00000001",
                    "4",
                    "from-external",
                    "300",
                ),
                var,
            ],
        );
        assert_eq!(
            lines,
            ["received inbound did=+918065251305 customer=+918065251399"]
        );
        // Never set: the dialed extension is used when something has to be reported.
        let (_, lines) = run(
            r,
            &[
                chan(
                    "Newchannel",
                    u,
                    "PJSIP/trunk-00000001",
                    "4",
                    "from-external",
                    "300",
                ),
                chan(
                    "Newstate",
                    u,
                    "PJSIP/trunk-00000001",
                    "6",
                    "from-external",
                    "300",
                ),
            ],
        );
        assert_eq!(
            lines[0],
            "received inbound did=+15550000100 customer=+918065251399"
        );
    }

    #[test]
    fn calls_without_a_did_are_not_reported() {
        let mut r = call_shapes_rules();
        r.numbers.default_did = None;
        let u = "1790000000.1";
        let (calls, lines) = run(
            r,
            &[
                chan(
                    "Newchannel",
                    u,
                    "PJSIP/trunk-00000001",
                    "4",
                    "from-external",
                    "300",
                ),
                chan(
                    "Newstate",
                    u,
                    "PJSIP/trunk-00000001",
                    "6",
                    "from-external",
                    "300",
                ),
                chan(
                    "Hangup",
                    u,
                    "PJSIP/trunk-00000001",
                    "6",
                    "from-external",
                    "300",
                ),
            ],
        );
        assert!(lines.is_empty());
        assert_eq!(calls.open(), 0);
    }

    #[test]
    fn outbound_calls_and_internal_ones() {
        let mut r = call_shapes_rules();
        r.outbound_contexts = vec!["from-internal".into()];
        r.numbers.country_code = Some("44".into());
        let a = "1790000000.1";
        let b = "1790000000.2";
        let phone = |ev, exten| {
            let mut f = chan(ev, a, "PJSIP/101-00000001", "4", "from-internal", exten);
            f[3] = ("CallerIDNum", "101");
            f
        };
        let dial = |ev: &'static str, status: &'static str| {
            let mut f = phone(ev, "02079460958");
            f.extend([
                ("DestChannel", "PJSIP/carrier-00000002"),
                ("DestUniqueid", b),
                ("DialStatus", status),
            ]);
            f
        };
        let (_, lines) = run(
            r.clone(),
            &[
                phone("Newchannel", "02079460958"),
                chan(
                    "Newchannel",
                    b,
                    "PJSIP/carrier-00000002",
                    "0",
                    "from-carrier",
                    "s",
                ),
                dial("DialBegin", ""),
                dial("DialEnd", "ANSWER"),
                chan(
                    "Hangup",
                    b,
                    "PJSIP/carrier-00000002",
                    "6",
                    "from-carrier",
                    "s",
                ),
                phone("Hangup", "02079460958"),
            ],
        );
        assert_eq!(
            lines,
            [
                "received outbound did=+15550000100 customer=+442079460958",
                "answered customer id=- name=- ext=101 ext_name=- ring=- hold=-",
                "ended answered ext=101 missed=[] stage=extension by=- cause=-",
            ]
        );
        // 101 calling 102 is nobody's business outside.
        let (calls, lines) = run(r, &[phone("Newchannel", "102"), phone("Hangup", "102")]);
        assert!(lines.is_empty() && calls.open() == 0);
    }

    #[test]
    fn a_resync_closes_calls_whose_channels_vanished() {
        let u = "1790000000.1";
        let v = "1790000001.5";
        let mut calls = AmiCalls::new(call_shapes_rules());
        let mut built = Vec::new();
        let mut v_new = chan(
            "Newchannel",
            v,
            "PJSIP/trunk-00000002",
            "4",
            "from-external",
            "301",
        );
        v_new[7] = ("Linkedid", v);
        for f in [
            chan(
                "Newchannel",
                u,
                "PJSIP/trunk-00000001",
                "4",
                "from-external",
                "300",
            ),
            chan(
                "Newstate",
                u,
                "PJSIP/trunk-00000001",
                "6",
                "from-external",
                "300",
            ),
            v_new,
        ] {
            calls.on_frame(&frame(&f), Timestamp::UNIX_EPOCH, &mut built);
        }
        assert_eq!(calls.open(), 2);
        calls.begin_resync();
        calls.confirm(v);
        calls.finish_resync(Timestamp::UNIX_EPOCH, &mut built);
        assert_eq!(calls.open(), 1);
        let last = describe(&built.pop().unwrap().unwrap());
        assert_eq!(last, "ended missed ext=- missed=[] stage=ivr by=- cause=-");
        // Nothing pending: completing a listing that was never asked for does nothing.
        calls.finish_resync(Timestamp::UNIX_EPOCH, &mut built);
        assert_eq!(calls.open(), 1);
    }

    #[test]
    fn channel_names_to_extensions() {
        for (name, ext) in [
            ("PJSIP/agent1-0000000b", "agent1"),
            ("PJSIP/agent1", "agent1"),
            ("Local/600@n5-agents-00000001;1", "600"),
            ("Local/600@n5-agents/n", "600"),
            ("PJSIP/400@tocaller", "400"),
            ("SIP/101-0a1b2c3d", "101"),
            ("Agent/1001", "1001"),
            ("DAHDI/1-1", "1-1"),
            ("", ""),
        ] {
            assert_eq!(extension_of(name), ext, "{name}");
        }
        assert_eq!(dial_number("400@tocaller"), "400");
        assert_eq!(dial_number("PJSIP/1001@pstn"), "1001");
        assert_eq!(dial_number("Local/300@from-external/n"), "300");
        assert_eq!(q850("16").as_deref(), Some("NORMAL_CLEARING"));
        assert_eq!(q850("0"), None);
        assert_eq!(q850("200").as_deref(), Some("CAUSE_200"));
        assert_eq!(q850("x"), None);
        assert_eq!(
            epoch("1790513783.12"),
            Timestamp::from_second(1_790_513_783).ok()
        );
        assert_eq!(
            epoch("1790513783.123456"),
            Timestamp::from_microsecond(1_790_513_783_123_456).ok()
        );
        assert_eq!(epoch("12.5"), None);
        assert_eq!(epoch("abc"), None);
    }

    /// Frames made of the keys the follower reads, with values from the plausible to the
    /// absurd: empty ids, ids shared by everything, huge numbers, non-digits, long text.
    fn arbitrary_frame() -> impl proptest::strategy::Strategy<Value = Frame> {
        use proptest::prelude::*;
        let events = prop::sample::select(vec![
            "Newchannel",
            "Newstate",
            "NewCallerid",
            "VarSet",
            "DialBegin",
            "AgentCalled",
            "DialEnd",
            "AgentConnect",
            "AgentComplete",
            "QueueCallerJoin",
            "QueueCallerLeave",
            "BridgeEnter",
            "BridgeLeave",
            "BlindTransfer",
            "DTMFEnd",
            "HangupRequest",
            "SoftHangupRequest",
            "Hangup",
            "CoreShowChannel",
            "Bogus",
        ]);
        let id = prop::sample::select(vec![
            "",
            "1790000000.1",
            "1790000000.2",
            "1790000001.3",
            "x",
            "0.0",
        ]);
        let text = prop::sample::select(vec![
            "",
            "0",
            "4",
            "6",
            "ANSWER",
            "CANCEL",
            "Received",
            "Sent",
            "caller",
            "agent",
            "5",
            "#",
            "12",
            "from-external",
            "300",
            "s",
            "PJSIP/agent1-00000001",
            "Local/600@q-0001;1",
            "Local/600@q-0001;2",
            "q1",
            "99999999999999999999",
            "-5",
            "1790000000.123456",
            "<unknown>",
            "08065251305",
            "DID",
            "CALLHOOK_REF_ID",
            "a,b",
            "\u{1F600}",
        ]);
        let long = "L".repeat(300);
        let key = prop::sample::select(vec![
            "Uniqueid",
            "Linkedid",
            "DestUniqueid",
            "ChannelState",
            "Channel",
            "DestChannel",
            "CallerIDNum",
            "DestCallerIDNum",
            "Context",
            "Exten",
            "DialStatus",
            "DialString",
            "Queue",
            "Interface",
            "MemberName",
            "RingTime",
            "HoldTime",
            "Reason",
            "Digit",
            "Direction",
            "Cause",
            "Variable",
            "Value",
            "BridgeUniqueid",
            "TransfereeUniqueid",
            "Timestamp",
        ]);
        let value = prop_oneof![
            id.prop_map(str::to_owned),
            text.prop_map(str::to_owned),
            Just(long)
        ];
        (events, proptest::collection::vec((key, value), 0..14)).prop_map(|(event, pairs)| {
            let mut f = vec![("Event".to_owned(), event.to_owned())];
            f.extend(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)));
            Frame::from_pairs(f)
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever the frames say, the follower neither panics nor builds an event the API
        /// would refuse, and a resync or a flush afterwards is as safe.
        #[test]
        fn arbitrary_frames_give_only_valid_events(frames in proptest::collection::vec(arbitrary_frame(), 0..60)) {
            let mut r = call_shapes_rules();
            r.did_from = DidFrom::Variable("DID".into());
            r.ref_id_variable = Some("CALLHOOK_REF_ID".into());
            r.numbers.country_code = Some("91".into());
            let mut calls = AmiCalls::new(r);
            let mut built = Vec::new();
            for f in &frames {
                calls.on_frame(f, Timestamp::UNIX_EPOCH, &mut built);
            }
            calls.begin_resync();
            calls.finish_resync(Timestamp::UNIX_EPOCH, &mut built);
            calls.flush(&mut built);
            for b in built {
                proptest::prop_assert!(b.is_ok(), "{:?}", b);
            }
            proptest::prop_assert_eq!(calls.open(), 0);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Frames lost, repeated or reordered (a flaky network, a resumed replay) never make the
        /// follower panic or build an event the API would refuse, and a call ends at most once
        /// per run of its channels.
        #[test]
        fn damaged_streams_still_give_valid_events(
            ops in proptest::collection::vec((0usize..1227, 0u8..4), 0..200),
        ) {
            let mut items = Vec::new();
            Parser::new().feed(CALL_SHAPES, &mut items);
            Parser::new().feed(QUEUE_SHAPES, &mut items);
            let mut frames: Vec<Frame> = items.into_iter().filter_map(|i| match i { Item::Frame(f) => Some(f), _ => None }).collect();
            for (at, op) in ops {
                let at = at % frames.len();
                match op {
                    0 => { frames.remove(at); }
                    1 => { let f = frames[at].clone(); frames.insert(at, f); }
                    2 => { let j = (at * 7 + 3) % frames.len(); frames.swap(at, j); }
                    _ => { let f = frames[at].clone(); frames.push(f); }
                }
            }
            let mut calls = AmiCalls::new(call_shapes_rules());
            let mut built = Vec::new();
            for f in &frames {
                calls.on_frame(f, Timestamp::UNIX_EPOCH, &mut built);
            }
            calls.flush(&mut built);
            for b in built {
                proptest::prop_assert!(b.is_ok(), "{:?}", b);
            }
        }
    }
}
