//! One call as a connector follows it, whatever the PBX: what has happened so far, and the call
//! events (SPEC §4) each step produces. The PBX-specific followers (`ami_calls`, `esl_calls`)
//! decide *when* something happened; this file decides what the event says, so both PBXs
//! report the same facts the same way.
//!
//! Event ids are derived from the PBX's own call id and the step (`pbx1/1790513783.0/answered/1`),
//! so reading the same PBX events again yields the same ids, and ingest stores them once.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::core::event::{CallEvent, CallType, DialVia, HangupBy, Stage};
use crate::core::number::E164;
use crate::core::validate::FieldErrors;

/// Longest text we put in an event field (the API's own limit).
const MAX_TEXT: usize = 256;

/// A call event, or why the event we built was refused by the same validation as
/// `POST /v1/events` (which would be a bug in a follower, reported rather than sent).
pub type Built = Result<CallEvent, FieldErrors>;

/// An IVR, ring group or queue as reported: its id and display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub id: String,
    pub name: Option<String>,
}

/// Where in the dialplan an IVR is: calls the PBX itself answers there are IVR answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvrRule {
    pub context: String,
    /// `None` matches every extension of the context.
    pub exten: Option<String>,
    pub place: Place,
}

/// A dial target: dialing from this context and extension rings a ring group or a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRule {
    /// `None` matches the extension in any context.
    pub context: Option<String>,
    pub exten: String,
    pub via: DialVia,
    pub place: Place,
}

/// What the operator told us about their dialplan, resolved from the connector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Starts every event id; the connector's name keeps two PBXs' ids apart.
    pub name: String,
    /// Empty: every answer by the PBX itself is an IVR answer, named after its context.
    pub ivrs: Vec<IvrRule>,
    pub targets: Vec<TargetRule>,
    pub queue_names: std::collections::BTreeMap<String, String>,
    pub extension_names: std::collections::BTreeMap<String, String>,
    /// Calls that start in these contexts are placed by an extension: `outbound`.
    pub outbound_contexts: Vec<String>,
    /// The call type of calls the PBX places itself (originate): `click_to_call` or `outbound`.
    pub originated: CallType,
    pub numbers: super::numbers::NumberPlan,
    /// Where the DID of an inbound call is: the dialed extension, or a channel variable.
    pub did_from: DidFrom,
    /// A channel variable that carries a click-to-call request's reference (`ref_id`).
    pub ref_id_variable: Option<String>,
}

/// Where the DID of an inbound call is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DidFrom {
    /// The extension the call was placed to (Asterisk `Exten`, FreeSWITCH destination number).
    Exten,
    /// A channel variable the dialplan sets (Asterisk `VarSet`, FreeSWITCH `variable_NAME`).
    Variable(String),
}

impl Rules {
    /// The IVR at this place in the dialplan, if the PBX answering here is an IVR answer.
    pub fn ivr(&self, context: &str, exten: &str) -> Option<Place> {
        if self.ivrs.is_empty() {
            return Some(Place {
                id: clip(context),
                name: None,
            });
        }
        self.ivrs
            .iter()
            .find(|r| r.context == context && r.exten.as_deref().is_none_or(|e| e == exten))
            .map(|r| r.place.clone())
    }

    /// What dialing from this place in the dialplan rings, when it is a ring group or queue.
    pub fn target(&self, context: &str, exten: &str) -> Option<(DialVia, Place)> {
        self.targets
            .iter()
            .find(|t| t.exten == exten && t.context.as_deref().is_none_or(|c| c == context))
            .map(|t| (t.via, t.place.clone()))
    }

    /// A queue as reported: the PBX's queue name is its id.
    pub fn queue(&self, queue: &str) -> Place {
        Place {
            id: clip(queue),
            name: self.queue_names.get(queue).map(|n| clip(n)),
        }
    }

    pub fn extension_name(&self, extension: &str) -> Option<String> {
        self.extension_names.get(extension).map(|n| clip(n))
    }

    pub fn is_outbound_context(&self, context: &str) -> bool {
        self.outbound_contexts.iter().any(|c| c == context)
    }
}

/// What a follower knows when it starts reporting a call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallStart {
    /// The PBX's id of the call (Asterisk `Linkedid`, FreeSWITCH A-leg UUID).
    pub call_id: String,
    /// The customer's leg.
    pub leg_id: String,
    pub call_type: CallType,
    #[serde(with = "e164")]
    pub did: E164,
    #[serde(with = "e164::opt")]
    pub customer: Option<E164>,
    pub started_at: Timestamp,
}

/// Who picked up, as a follower saw it.
#[derive(Debug, Clone)]
pub struct Pickup {
    pub leg_id: String,
    pub extension: String,
    pub extension_name: Option<String>,
    pub via: DialVia,
    /// The ring group or queue, when `via` is not `direct`.
    pub place: Option<Place>,
    pub ring_time: Option<i64>,
    pub hold_time: Option<i64>,
}

/// How the PBX itself measured the call, when it did (FreeSWITCH does; Asterisk does not).
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub duration: Option<i64>,
    pub billsec: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Talker {
    extension: String,
    name: Option<String>,
    at: Timestamp,
}

/// One followed call (serializable: a restart picks it up where it was).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallTrack {
    id_prefix: String,
    start: CallStart,
    answers: u32,
    dials: u32,
    dtmfs: u32,
    stage: Option<Stage>,
    ivr: Option<Place>,
    digits: String,
    /// The first extension that talked with the customer: what makes a call answered.
    talked: Option<Talker>,
    /// When the customer answered a call placed to them.
    #[serde(default)]
    customer_at: Option<Timestamp>,
    /// Legs ringing an extension now.
    ringing: Vec<(String, String)>,
    /// Extensions that rang and stopped without anyone answering meanwhile.
    missed: Vec<String>,
    hangup_by: Option<HangupBy>,
    hangup_by_final: bool,
}

impl CallTrack {
    /// Starts following a call; answers its `call.received`.
    pub fn start(rules: &Rules, start: CallStart, at: Timestamp) -> (CallTrack, Built) {
        let track = CallTrack {
            id_prefix: format!("{}/{}", rules.name, start.call_id),
            start,
            answers: 0,
            dials: 0,
            dtmfs: 0,
            stage: None,
            ivr: None,
            digits: String::new(),
            talked: None,
            customer_at: None,
            ringing: Vec::new(),
            missed: Vec::new(),
            hangup_by: None,
            hangup_by_final: false,
        };
        let leg = track.start.leg_id.clone();
        let ev = track.build("received", None, at, Some(&leg), None);
        (track, ev)
    }

    /// Whether an extension has talked with the customer.
    pub fn answered(&self) -> bool {
        self.talked.is_some()
    }

    fn talked_extension(&self) -> Option<&str> {
        self.talked.as_ref().map(|t| t.extension.as_str())
    }

    /// The PBX answered the customer in an IVR.
    pub fn ivr_answered(&mut self, at: Timestamp, leg: &str, ivr: Place) -> Built {
        self.enter_ivr(ivr.clone());
        self.answers += 1;
        let detail = answered_by("ivr", Some(&ivr), None, None, None, None, None);
        self.build("answered", Some(self.answers), at, Some(leg), Some(detail))
    }

    /// The customer moved to another IVR without a new answer (a menu choice).
    pub fn enter_ivr(&mut self, ivr: Place) {
        if self.ivr.as_ref() != Some(&ivr) {
            self.digits.clear();
        }
        self.ivr = Some(ivr);
        self.stage = Some(Stage::Ivr);
    }

    /// The customer is waiting in a queue.
    pub fn entered_queue(&mut self) {
        self.stage = Some(Stage::Queue);
    }

    /// The customer pressed `digit`. Anything but one DTMF symbol is ignored.
    pub fn dtmf(&mut self, at: Timestamp, leg: &str, digit: &str) -> Option<Built> {
        let d = digit.trim().to_ascii_uppercase();
        if !(d.len() == 1
            && d.chars()
                .all(|c| matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')))
        {
            return None;
        }
        if self.digits.chars().count() >= MAX_TEXT {
            self.digits.clear();
        }
        self.digits.push_str(&d);
        self.dtmfs += 1;
        let mut m = Map::new();
        m.insert("digit".into(), json!(d));
        m.insert("digits".into(), json!(self.digits));
        if let Some(ivr) = &self.ivr {
            m.insert("ivr_id".into(), json!(ivr.id));
            put(&mut m, "ivr_name", ivr.name.as_deref());
        }
        Some(self.build(
            "dtmf",
            Some(self.dtmfs),
            at,
            Some(leg),
            Some(("dtmf", Value::Object(m))),
        ))
    }

    /// Extensions started ringing (one `call.dialed` for all that ring together).
    pub fn dialed(
        &mut self,
        at: Timestamp,
        via: DialVia,
        place: Option<&Place>,
        rung: &[(String, String)],
    ) -> Built {
        let mut extensions: Vec<String> = Vec::with_capacity(rung.len());
        for (leg, ext) in rung {
            if !self.ringing.iter().any(|(l, _)| l == leg) {
                self.ringing.push((leg.clone(), ext.clone()));
            }
            let ext = extension(ext);
            if !ext.is_empty() && !extensions.contains(&ext) {
                extensions.push(ext);
            }
        }
        self.stage = Some(match via {
            DialVia::Direct => Stage::Extension,
            DialVia::RingGroup => Stage::RingGroup,
            DialVia::Queue => Stage::Queue,
        });
        self.dials += 1;
        let mut m = Map::new();
        m.insert("via".into(), json!(via.as_str()));
        if let Some(p) = place {
            m.insert("id".into(), json!(p.id));
            put(&mut m, "name", p.name.as_deref());
        }
        m.insert("extensions".into(), json!(extensions));
        self.build(
            "dialed",
            Some(self.dials),
            at,
            None,
            Some(("dialed", Value::Object(m))),
        )
    }

    /// A ringing leg stopped without being answered. It is a missed extension unless someone
    /// else already answered the customer (see [`CallTrack::picked_up`]).
    pub fn ring_ended(&mut self, leg: &str) {
        if let Some(i) = self.ringing.iter().position(|(l, _)| l == leg) {
            let (_, ext) = self.ringing.remove(i);
            self.note_missed(ext);
        }
    }

    /// Someone answered: the extensions still ringing were not missed, someone took the
    /// call (a ring group or ring-all queue member answering is never a miss for the others).
    /// Separate from [`CallTrack::agent_answered`] because a PBX may confirm the answer later
    /// (Asterisk's `AgentConnect` after `DialEnd`) while the others' rings end in between.
    pub fn picked_up(&mut self) {
        self.ringing.clear();
    }

    /// An extension picked up and talks with the customer.
    pub fn agent_answered(&mut self, at: Timestamp, p: &Pickup) -> Built {
        self.picked_up();
        let ext = extension(&p.extension);
        if self.talked.is_none() {
            self.talked = Some(Talker {
                extension: ext.clone(),
                name: p.extension_name.clone(),
                at,
            });
        }
        self.stage = Some(Stage::Extension);
        self.answers += 1;
        let kind = match p.via {
            DialVia::Direct => "extension",
            DialVia::RingGroup => "ring_group",
            DialVia::Queue => "queue",
        };
        let detail = answered_by(
            kind,
            p.place.as_ref(),
            Some(&ext).filter(|e| !e.is_empty()),
            p.extension_name.as_deref(),
            p.ring_time,
            p.hold_time,
            None,
        );
        self.build(
            "answered",
            Some(self.answers),
            at,
            Some(&p.leg_id),
            Some(detail),
        )
    }

    /// The customer answered a call placed to them: by the PBX (a click-to-call, a dialer) or
    /// by an extension dialling out. `caller` is the extension already on the call (the one
    /// dialling out, or the agent a click-to-call rang first), with its name: it talks with the
    /// customer from now on. Without one an agent still has to.
    pub fn customer_answered(
        &mut self,
        at: Timestamp,
        leg: &str,
        caller: Option<(&str, Option<&str>)>,
        ref_id: Option<&str>,
    ) -> Built {
        let ext = caller.map(|(e, _)| extension(e)).filter(|e| !e.is_empty());
        let name = caller.and_then(|(_, n)| n);
        self.customer_at.get_or_insert(at);
        if let Some(e) = &ext
            && self.talked.is_none()
        {
            self.talked = Some(Talker {
                extension: e.clone(),
                name: name.map(clip),
                at,
            });
            self.stage = Some(Stage::Extension);
        }
        self.answers += 1;
        let detail = answered_by("customer", None, ext.as_ref(), name, None, None, ref_id);
        self.build("answered", Some(self.answers), at, Some(leg), Some(detail))
    }

    /// SPEC §15: a call ends answered when the customer talked with an extension, or, in an
    /// `outbound` call the PBX placed that never rang an extension (a dialer or a broadcast
    /// playing to the customer), when the customer answered. A `click_to_call` is made for
    /// an agent: without one it is missed.
    fn answered_at(&self) -> Option<Timestamp> {
        match &self.talked {
            Some(t) => Some(t.at),
            None if self.start.call_type == CallType::Outbound && self.dials == 0 => {
                self.customer_at
            }
            None => None,
        }
    }

    /// Who hung up. A weak signal (the first side to go) only counts when nothing else was
    /// said; a `definite` one (the PBX said so) replaces any earlier guess.
    pub fn hangup_by(&mut self, who: HangupBy, definite: bool) {
        if self.hangup_by_final {
            return;
        }
        if definite {
            self.hangup_by = Some(who);
            self.hangup_by_final = true;
        } else if self.hangup_by.is_none() {
            self.hangup_by = Some(who);
        }
    }

    /// The call is over: its one `call.ended`, answered as [`CallTrack::answered_at`] says.
    pub fn end(&mut self, at: Timestamp, cause: Option<&str>, measured: Measured) -> Built {
        let answered_at = self.answered_at();
        let answered = answered_at.is_some();
        if !answered {
            let left: Vec<String> = self.ringing.drain(..).map(|(_, e)| e).collect();
            for ext in left {
                self.note_missed(ext);
            }
        }
        let secs = |from: Timestamp| at.duration_since(from).as_secs().max(0);
        let mut m = Map::new();
        m.insert(
            "status".into(),
            json!(if answered { "answered" } else { "missed" }),
        );
        if let Some(t) = answered_at {
            m.insert("answered_at".into(), json!(t.to_string()));
        }
        m.insert("ended_at".into(), json!(at.to_string()));
        m.insert(
            "duration".into(),
            json!(
                measured
                    .duration
                    .unwrap_or_else(|| secs(self.start.started_at))
                    .max(0)
            ),
        );
        if let Some(t) = answered_at {
            m.insert(
                "billsec".into(),
                json!(measured.billsec.unwrap_or_else(|| secs(t)).max(0)),
            );
        }
        put(&mut m, "hangup_cause", cause.map(clip).as_deref());
        put(&mut m, "hangup_by", self.hangup_by.map(HangupBy::as_str));
        if let Some(t) = &self.talked {
            m.insert("answered_extension".into(), json!(t.extension));
            put(&mut m, "answered_extension_name", t.name.as_deref());
        }
        let talked = self.talked_extension();
        let missed: Vec<&String> = self
            .missed
            .iter()
            .filter(|e| Some(e.as_str()) != talked)
            .collect();
        m.insert("missed_extensions".into(), json!(missed));
        put(&mut m, "last_stage", self.stage.map(Stage::as_str));
        self.build("ended", None, at, None, Some(("ended", Value::Object(m))))
    }

    fn note_missed(&mut self, ext: String) {
        let ext = extension(&ext);
        if !ext.is_empty() && !self.missed.contains(&ext) {
            self.missed.push(ext);
        }
    }

    /// Builds the event as JSON and reads it back through [`CallEvent::from_json`], the parser
    /// `POST /v1/events` uses: a connector can never produce what the API would refuse.
    fn build(
        &self,
        step: &str,
        seq: Option<u32>,
        at: Timestamp,
        leg: Option<&str>,
        detail: Option<(&'static str, Value)>,
    ) -> Built {
        let id = match seq {
            Some(n) => format!("{}/{step}/{n}", self.id_prefix),
            None => format!("{}/{step}", self.id_prefix),
        };
        let s = &self.start;
        let mut call = Map::new();
        call.insert("call_id".into(), json!(s.call_id));
        put(&mut call, "leg_id", leg.map(clip).as_deref());
        call.insert("call_type".into(), json!(s.call_type.as_str()));
        call.insert("did_number".into(), json!(s.did.as_str()));
        put(
            &mut call,
            "customer_number",
            s.customer.as_ref().map(E164::as_str),
        );
        call.insert("started_at".into(), json!(s.started_at.to_string()));
        let mut ev = Map::new();
        ev.insert("id".into(), json!(clip(&id)));
        ev.insert("type".into(), json!(format!("call.{step}")));
        ev.insert("occurred_at".into(), json!(at.to_string()));
        ev.insert("call".into(), Value::Object(call));
        if let Some((key, value)) = detail {
            ev.insert(key.into(), value);
        }
        CallEvent::from_json(&Value::Object(ev))
    }
}

fn answered_by(
    kind: &str,
    place: Option<&Place>,
    extension: Option<&String>,
    extension_name: Option<&str>,
    ring_time: Option<i64>,
    hold_time: Option<i64>,
    ref_id: Option<&str>,
) -> (&'static str, Value) {
    let mut m = Map::new();
    m.insert("type".into(), json!(kind));
    if let Some(p) = place {
        m.insert("id".into(), json!(p.id));
        put(&mut m, "name", p.name.as_deref());
    }
    put(&mut m, "extension", extension.map(String::as_str));
    put(
        &mut m,
        "extension_name",
        extension_name.map(clip).as_deref(),
    );
    if let Some(r) = ring_time {
        m.insert("ring_time".into(), json!(r.max(0)));
    }
    if let Some(h) = hold_time {
        m.insert("hold_time".into(), json!(h.max(0)));
    }
    put(&mut m, "ref_id", ref_id.map(clip).as_deref());
    ("answered_by", Value::Object(m))
}

fn put(m: &mut Map<String, Value>, key: &str, v: Option<&str>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

/// PBX text cut to what an event field holds (by characters, never inside one).
pub fn clip(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

/// An extension as events carry it: no commas (lists are comma-joined in forms), not too long.
pub fn extension(s: &str) -> String {
    clip(s.trim()).replace(',', ";")
}

/// The PBX's idea of "now", from the timestamps its own events carry.
///
/// Events are reported at the PBX's time, not at the time we read them, so a connector that
/// lags, reconnects or replays a recording still reports when things happened. When the PBX
/// gives only coarse times (Asterisk writes no timestamps unless `timestampevents = yes`, but
/// every channel's `Uniqueid` starts with its creation second) the clock runs on from the last
/// such time at the local clock's pace, and never goes backwards.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct PbxClock {
    anchor: Option<(Timestamp, Timestamp)>,
}

/// E.164 numbers in saved follower state: as their text, checked again when read back.
pub(super) mod e164 {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::core::number::E164;

    pub fn serialize<S: Serializer>(n: &E164, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(n.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<E164, D::Error> {
        E164::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    pub mod opt {
        use serde::{Deserialize, Deserializer, Serializer};

        use crate::core::number::E164;

        pub fn serialize<S: Serializer>(n: &Option<E164>, s: S) -> Result<S::Ok, S::Error> {
            match n {
                Some(n) => s.serialize_some(n.as_str()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<E164>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|n| E164::parse(&n).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// A PBX time this far behind our estimate means the estimate is wrong (the PBX's clock was
/// set back, or a recording of another day is being read), not that the time is stale.
const CLOCK_SLACK: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);

impl PbxClock {
    /// The PBX's time when we read something at local time `local`.
    pub fn now(&self, local: Timestamp) -> Timestamp {
        match self.anchor {
            Some((pbx, at)) => pbx
                .checked_add(local.duration_since(at).max(jiff::SignedDuration::ZERO))
                .unwrap_or(pbx),
            None => local,
        }
    }

    /// The PBX said it is (at least) `pbx` at local time `local`.
    pub fn observe(&mut self, pbx: Timestamp, local: Timestamp) {
        let est = self.now(local);
        if self.anchor.is_none() || pbx > est || est.duration_since(pbx) > CLOCK_SLACK {
            self.anchor = Some((pbx, local));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::event::{AnswerKind, EndStatus, EventDetail};

    pub fn rules() -> Rules {
        Rules {
            name: "pbx".into(),
            ivrs: vec![],
            targets: vec![],
            queue_names: [("sales-q".to_owned(), "Sales".to_owned())].into(),
            extension_names: [("101".to_owned(), "Asha".to_owned())].into(),
            outbound_contexts: vec![],
            originated: CallType::ClickToCall,
            numbers: Default::default(),
            did_from: DidFrom::Exten,
            ref_id_variable: None,
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_790_513_783 + s).unwrap()
    }

    fn start(call_type: CallType) -> CallStart {
        CallStart {
            call_id: "1790513783.0".into(),
            leg_id: "1790513783.0".into(),
            call_type,
            did: E164::parse("+918065251305").unwrap(),
            customer: E164::parse("+919812345678").ok(),
            started_at: t(0),
        }
    }

    /// One line per event, with what a reader of the webhooks would check.
    pub fn describe(e: &CallEvent) -> String {
        let c = &e.call;
        match &e.detail {
            EventDetail::Received => format!(
                "received {} did={} customer={}",
                c.call_type,
                c.did_number,
                c.customer_number.as_ref().map_or("-", E164::as_str)
            ),
            EventDetail::Answered(a) => format!(
                "answered {} id={} name={} ext={} ext_name={} ring={} hold={}{}",
                a.kind,
                a.id.as_deref().unwrap_or("-"),
                a.name.as_deref().unwrap_or("-"),
                a.extension.as_deref().unwrap_or("-"),
                a.extension_name.as_deref().unwrap_or("-"),
                a.ring_time.map_or("-".into(), |r| r.to_string()),
                a.hold_time.map_or("-".into(), |r| r.to_string()),
                a.ref_id
                    .as_ref()
                    .map_or(String::new(), |r| format!(" ref={r}")),
            ),
            EventDetail::Dialed(d) => format!(
                "dialed {} id={} name={} [{}]",
                d.via,
                d.id.as_deref().unwrap_or("-"),
                d.name.as_deref().unwrap_or("-"),
                d.extensions.join(",")
            ),
            EventDetail::Dtmf(d) => format!(
                "dtmf {} digits={}",
                d.digit,
                d.digits.as_deref().unwrap_or("")
            ),
            EventDetail::Ended(x) => format!(
                "ended {} ext={} missed=[{}] stage={} by={} cause={}",
                x.status,
                x.answered_extension.as_deref().unwrap_or("-"),
                x.missed_extensions.clone().unwrap_or_default().join(","),
                x.last_stage.map_or("-", |s| s.as_str()),
                x.hangup_by.map_or("-", |h| h.as_str()),
                x.hangup_cause.as_deref().unwrap_or("-"),
            ),
        }
    }

    fn ended(ev: &CallEvent) -> &crate::core::event::Ended {
        match &ev.detail {
            EventDetail::Ended(e) => e,
            other => panic!("not ended: {other:?}"),
        }
    }

    #[test]
    fn ids_come_from_the_pbx_and_the_step() {
        let (mut c, rx) = CallTrack::start(&rules(), start(CallType::Inbound), t(0));
        let rx = rx.unwrap();
        assert_eq!(
            rx.id.as_ref().map(|id| id.as_str()),
            Some("pbx/1790513783.0/received")
        );
        assert_eq!(rx.call.leg_id.as_deref(), Some("1790513783.0"));
        let ivr = Place {
            id: "main".into(),
            name: Some("Main".into()),
        };
        let a = c.ivr_answered(t(1), "1790513783.0", ivr).unwrap();
        assert_eq!(
            a.id.as_ref().map(|id| id.as_str()),
            Some("pbx/1790513783.0/answered/1")
        );
        let d1 = c.dtmf(t(2), "1790513783.0", "1").unwrap().unwrap();
        let d2 = c.dtmf(t(3), "1790513783.0", "#").unwrap().unwrap();
        assert_eq!(
            d2.id.as_ref().map(|id| id.as_str()),
            Some("pbx/1790513783.0/dtmf/2")
        );
        let EventDetail::Dtmf(dt) = &d2.detail else {
            panic!()
        };
        assert_eq!((dt.digit.as_str(), dt.digits.as_deref()), ("#", Some("1#")));
        assert_eq!(dt.ivr_id.as_deref(), Some("main"));
        assert_ne!(d1.id, d2.id);
        assert!(c.dtmf(t(3), "x", "x").is_none());
        assert!(c.dtmf(t(3), "x", "12").is_none());
        let e = c
            .end(t(9), Some("NORMAL_CLEARING"), Measured::default())
            .unwrap();
        assert_eq!(
            e.id.as_ref().map(|id| id.as_str()),
            Some("pbx/1790513783.0/ended")
        );
        let en = ended(&e);
        assert_eq!(en.status, EndStatus::Missed);
        assert_eq!(en.duration, Some(9));
        assert_eq!(en.last_stage, Some(Stage::Ivr));
        assert_eq!(en.billsec, None);
    }

    #[test]
    fn one_member_answering_is_no_miss_for_the_others() {
        let (mut c, _) = CallTrack::start(&rules(), start(CallType::Inbound), t(0));
        let q = rules().queue("sales-q");
        let rung = [
            ("l1".to_owned(), "101".to_owned()),
            ("l2".to_owned(), "102".to_owned()),
        ];
        let d = c.dialed(t(1), DialVia::Queue, Some(&q), &rung).unwrap();
        let EventDetail::Dialed(dd) = &d.detail else {
            panic!()
        };
        assert_eq!(dd.extensions, ["101", "102"]);
        assert_eq!(dd.name.as_deref(), Some("Sales"));
        c.picked_up();
        c.ring_ended("l2");
        let a = c
            .agent_answered(
                t(4),
                &Pickup {
                    leg_id: "l1".into(),
                    extension: "101".into(),
                    extension_name: rules().extension_name("101"),
                    via: DialVia::Queue,
                    place: Some(q),
                    ring_time: Some(3),
                    hold_time: Some(3),
                },
            )
            .unwrap();
        let EventDetail::Answered(ab) = &a.detail else {
            panic!()
        };
        assert_eq!(ab.kind, AnswerKind::Queue);
        assert_eq!(ab.extension_name.as_deref(), Some("Asha"));
        c.hangup_by(HangupBy::Customer, false);
        c.hangup_by(HangupBy::Extension, false);
        let e = c.end(t(10), None, Measured::default()).unwrap();
        let en = ended(&e);
        assert_eq!(en.status, EndStatus::Answered);
        assert_eq!(en.answered_extension.as_deref(), Some("101"));
        assert_eq!(en.missed_extensions, Some(vec![]));
        assert_eq!(en.billsec, Some(6));
        assert_eq!(en.hangup_by, Some(HangupBy::Customer));
        assert_eq!(en.last_stage, Some(Stage::Extension));
    }

    #[test]
    fn rings_that_end_unanswered_are_missed() {
        let (mut c, _) = CallTrack::start(&rules(), start(CallType::Inbound), t(0));
        let rung = [
            ("l1".to_owned(), "101".to_owned()),
            ("l2".to_owned(), "1,02".to_owned()),
        ];
        c.dialed(t(1), DialVia::RingGroup, None, &rung).unwrap();
        c.ring_ended("l1");
        c.ring_ended("l1");
        c.hangup_by(HangupBy::System, true);
        c.hangup_by(HangupBy::Customer, true);
        let e = c.end(t(5), Some("NO_ANSWER"), Measured::default()).unwrap();
        let en = ended(&e);
        assert_eq!(en.status, EndStatus::Missed);
        assert_eq!(
            en.missed_extensions,
            Some(vec!["101".into(), "1;02".into()])
        );
        assert_eq!(en.hangup_by, Some(HangupBy::System));
        assert_eq!(en.last_stage, Some(Stage::RingGroup));
    }

    #[test]
    fn outbound_calls_are_answered_when_the_customer_answers() {
        let (mut c, _) = CallTrack::start(&rules(), start(CallType::Outbound), t(0));
        let a = c
            .customer_answered(t(2), "b", Some(("101", None)), None)
            .unwrap();
        let EventDetail::Answered(ab) = &a.detail else {
            panic!()
        };
        assert_eq!(ab.kind, AnswerKind::Customer);
        let e = c
            .end(
                t(12),
                None,
                Measured {
                    duration: Some(13),
                    billsec: Some(10),
                },
            )
            .unwrap();
        let en = ended(&e);
        assert_eq!(
            (en.status, en.duration, en.billsec),
            (EndStatus::Answered, Some(13), Some(10))
        );
        let (mut c2, _) = CallTrack::start(&rules(), start(CallType::ClickToCall), t(0));
        c2.customer_answered(t(2), "b", None, Some("crm-42"))
            .unwrap();
        assert!(!c2.answered());
    }

    /// SPEC §15, for calls the PBX places.
    #[test]
    fn placed_calls_are_answered_as_spec_15_says() {
        let status = |call_type: CallType, steps: &dyn Fn(&mut CallTrack)| {
            let (mut c, _) = CallTrack::start(&rules(), start(call_type), t(0));
            steps(&mut c);
            let e = c.end(t(30), None, Measured::default()).unwrap();
            let en = ended(&e);
            (en.status, en.answered_extension.clone(), en.billsec)
        };
        let answer = |c: &mut CallTrack| {
            c.customer_answered(t(5), "a", None, None).unwrap();
        };
        // A dialer's or a broadcast's call that never rings an extension: the customer
        // answering is enough.
        assert_eq!(
            status(CallType::Outbound, &answer),
            (EndStatus::Answered, None, Some(25))
        );
        // Once extensions ring, one of them has to talk with the customer.
        let rung = |c: &mut CallTrack| {
            answer(c);
            let rung = [("l1".to_owned(), "600".to_owned())];
            c.dialed(t(6), DialVia::Queue, None, &rung).unwrap();
            c.ring_ended("l1");
        };
        assert_eq!(status(CallType::Outbound, &rung).0, EndStatus::Missed);
        // A click-to-call is made for an agent: without one it is missed.
        assert_eq!(
            status(CallType::ClickToCall, &answer),
            (EndStatus::Missed, None, None)
        );
        // With the agent rung first (on the line when the customer answers), it is answered.
        let agent_first = |c: &mut CallTrack| {
            let a = c
                .customer_answered(t(8), "c", Some(("101", Some("Asha"))), Some("crm-42"))
                .unwrap();
            let EventDetail::Answered(ab) = &a.detail else {
                panic!()
            };
            assert_eq!(
                (
                    ab.extension.as_deref(),
                    ab.extension_name.as_deref(),
                    ab.ref_id.as_deref()
                ),
                (Some("101"), Some("Asha"), Some("crm-42"))
            );
        };
        assert_eq!(
            status(CallType::ClickToCall, &agent_first),
            (EndStatus::Answered, Some("101".into()), Some(22))
        );
        // Nobody answered: missed, whatever the type.
        assert_eq!(status(CallType::Outbound, &|_| {}).0, EndStatus::Missed);
    }

    #[test]
    fn long_pbx_text_is_clipped_not_refused() {
        let mut r = rules();
        r.name = "n".repeat(300);
        let mut s = start(CallType::Inbound);
        s.leg_id = "l".repeat(1000);
        let (mut c, rx) = CallTrack::start(&r, s, t(0));
        assert!(rx.is_ok());
        let long = Place {
            id: "i".repeat(256),
            name: Some("é".repeat(256)),
        };
        assert!(c.ivr_answered(t(1), &"x".repeat(999), long).is_ok());
    }

    #[test]
    fn ivrs_and_targets_match_the_dialplan() {
        let mut r = rules();
        assert_eq!(r.ivr("from-pstn", "4001").unwrap().id, "from-pstn");
        r.ivrs = vec![IvrRule {
            context: "ivr".into(),
            exten: Some("5000".into()),
            place: Place {
                id: "main".into(),
                name: None,
            },
        }];
        assert!(r.ivr("ivr", "5000").is_some());
        assert!(r.ivr("ivr", "5001").is_none());
        r.targets = vec![TargetRule {
            context: None,
            exten: "600".into(),
            via: DialVia::RingGroup,
            place: Place {
                id: "rg".into(),
                name: None,
            },
        }];
        assert_eq!(r.target("any", "600").unwrap().0, DialVia::RingGroup);
        assert!(r.target("any", "601").is_none());
    }

    #[test]
    fn the_pbx_clock_follows_the_pbx_and_never_goes_back() {
        let local = |s: i64| Timestamp::from_second(2_000_000_000 + s).unwrap();
        let mut c = PbxClock::default();
        assert_eq!(c.now(local(0)), local(0));
        c.observe(t(0), local(0));
        assert_eq!(c.now(local(3)), t(3));
        // A coarse time a little behind the estimate is just coarse.
        c.observe(t(2), local(3));
        assert_eq!(c.now(local(3)), t(3));
        // A later one moves the clock forward.
        c.observe(t(10), local(4));
        assert_eq!(c.now(local(4)), t(10));
        // Far behind: the PBX clock was set back (or another recording is read); follow it.
        c.observe(t(-100), local(5));
        assert_eq!(c.now(local(6)), t(-99));
        // Local time going backwards never moves the PBX clock back.
        assert_eq!(c.now(local(0)), t(-100));
    }
}
