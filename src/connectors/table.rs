//! The calls of one PBX, kept the same way whatever the protocol: each call is pending until
//! its DID is known, then followed (through [`CallTrack`]) or ignored; which channels (legs)
//! belong to it and which of them rang an extension; the PBX's clock; the check after a
//! reconnect that the channels known before still exist; the calls this connector placed for
//! click-to-call requests, recognised by their reference; and the state saved across restarts
//! of callhook. The followers (`ami_calls`, `esl_calls`) add only what their protocol says and
//! when, through [`Pbx`]. Pure, like them.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::call::{Built, CallStart, CallTrack, DidFrom, Measured, PbxClock, Pickup, Place, Rules};
use super::numbers::present;
use crate::core::click_to_call::{LegEnd, Signal};
use crate::core::event::{CallType, DialVia};
use crate::core::number::E164;

/// The format of [`CallTable::save`]; a different one is not read back.
const SAVED_VERSION: u32 = 1;

/// How long a call being placed is waited for: an originate the PBX has not turned into a
/// channel by then never will.
const EXPECTED_FOR: jiff::SignedDuration = jiff::SignedDuration::from_secs(600);

/// What one PBX protocol keeps beside the table, and the little the table asks of it.
pub trait Pbx: Debug + Default + Serialize + DeserializeOwned + Send {
    /// What the follower keeps per channel (leg).
    type Channel: Debug + Serialize + DeserializeOwned + Send;
    /// What the follower keeps per call beside [`Call`]'s own fields.
    type Call: Debug + Serialize + DeserializeOwned + Send;

    /// The numbers a pending call has shown so far, for [`choose_did`]. `force`: something
    /// must be reported now.
    fn seen<'a>(
        channels: &'a HashMap<String, Self::Channel>,
        call: &'a Call<Self::Call>,
        force: bool,
    ) -> Seen<'a>;

    /// Channel `id` is gone (a resync did not see it again).
    fn channel_gone(table: &mut CallTable<Self>, id: &str, at: Timestamp, out: &mut Vec<Built>);

    /// Whether the customer of a call talks with an extension now.
    fn talking(call: &Self::Call) -> bool;

    /// How the PBX measured a call that ends, when it did.
    fn measured(_call: &Self::Call) -> Measured {
        Measured::default()
    }
}

/// Where a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    Inbound,
    /// Placed by an extension in an outbound context.
    Outbound,
    /// Placed by the PBX itself (an originate).
    Originated,
}

impl Origin {
    /// Where a call came from: its customer's leg was `placed` by the PBX itself, or it starts
    /// at `context` in the dialplan.
    pub fn of(placed: bool, context: &str, rules: &Rules) -> Origin {
        if placed {
            Origin::Originated
        } else if rules.is_outbound_context(context) {
            Origin::Outbound
        } else {
            Origin::Inbound
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Phase {
    /// Waiting to know the DID (a variable, or the originate's caller id).
    Pending,
    Followed(Box<CallTrack>),
    /// Not reported (no DID, or an internal call); its channels are ignored with it.
    Ignored,
}

/// A call this connector placed for a click-to-call request (SPEC §15). Its first leg is the
/// agent's, and the customer is dialled from it; the request named the customer and the DID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub ref_id: String,
    pub agent: String,
    #[serde(with = "super::call::e164")]
    pub customer: E164,
    #[serde(with = "super::call::e164")]
    pub did: E164,
}

impl Placed {
    /// What call `call_id`, placed for this request, did.
    pub fn progress(&self, call_id: &str, signal: Signal, cause: Option<String>) -> Progress {
        Progress {
            ref_id: self.ref_id.clone(),
            call_id: call_id.to_owned(),
            signal,
            cause,
        }
    }
}

/// What a placed call did, for the request that placed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub ref_id: String,
    pub call_id: String,
    pub signal: Signal,
    /// The PBX's words for a failure (a hangup cause).
    pub cause: Option<String>,
}

/// A leg that rang an extension.
#[derive(Debug, Serialize, Deserialize)]
pub struct Leg {
    pub extension: String,
    pub name: Option<String>,
    pub via: DialVia,
    pub place: Option<Place>,
    pub rang_at: Timestamp,
    /// The extension picked up (Asterisk's `DialEnd ANSWER`; the report may come later).
    #[serde(default)]
    pub answered: bool,
    /// Its `call.answered` was sent.
    pub reported: bool,
}

impl Leg {
    /// This leg picking up, as [`CallTrack::agent_answered`] reports it.
    pub fn pickup(&self, leg_id: &str, ring_time: Option<i64>, hold_time: Option<i64>) -> Pickup {
        Pickup {
            leg_id: leg_id.to_owned(),
            extension: self.extension.clone(),
            extension_name: self.name.clone(),
            via: self.via,
            place: self.place.clone(),
            ring_time,
            hold_time,
        }
    }

    /// This leg picked up: its `call.answered`, with how long it rang; once.
    pub fn report(&mut self, leg_id: &str, track: &mut CallTrack, at: Timestamp) -> Option<Built> {
        if self.reported {
            return None;
        }
        self.reported = true;
        let ring_time = at.duration_since(self.rang_at).as_secs();
        Some(track.agent_answered(at, &self.pickup(leg_id, Some(ring_time), None)))
    }
}

/// Legs rung together, reported as one `call.dialed` once the burst is over.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingDial {
    via: DialVia,
    place: Option<Place>,
    at: Timestamp,
    rung: Vec<(String, String)>,
}

/// One call of the PBX; `X` is what the protocol's follower keeps beside.
#[derive(Debug, Serialize, Deserialize)]
pub struct Call<X> {
    pub id: String,
    /// The customer's leg.
    pub customer: String,
    pub origin: Origin,
    pub phase: Phase,
    pub started_at: Timestamp,
    /// Its channels (legs) now.
    pub channels: HashSet<String>,
    /// The legs that rang an extension.
    pub legs: HashMap<String, Leg>,
    pub pending_dial: Option<PendingDial>,
    /// The DID variable's value, once the dialplan set it.
    pub did_var: Option<String>,
    /// A click-to-call request's reference, from its channel variable.
    pub ref_id: Option<String>,
    /// Outbound: the leg to the customer.
    pub outbound_leg: Option<String>,
    /// The PBX answered the customer (an IVR answer).
    pub pbx_answered: bool,
    /// The customer answered a call placed to them.
    pub customer_answered: bool,
    /// The customer leg's hangup cause.
    pub cause: Option<String>,
    /// Placed by this connector for a click-to-call request: the first leg is the agent's,
    /// `outbound_leg` the customer's.
    #[serde(default)]
    pub placed: Option<Placed>,
    #[serde(flatten)]
    pub pbx: X,
}

impl<X> Call<X> {
    /// A call whose customer's leg `customer` just appeared; pending.
    pub fn new(id: String, customer: &str, origin: Origin, started_at: Timestamp, pbx: X) -> Self {
        Call {
            id,
            customer: customer.to_owned(),
            origin,
            phase: Phase::Pending,
            started_at,
            channels: HashSet::from([customer.to_owned()]),
            legs: HashMap::new(),
            pending_dial: None,
            did_var: None,
            ref_id: None,
            outbound_leg: None,
            pbx_answered: false,
            customer_answered: false,
            cause: None,
            placed: None,
            pbx,
        }
    }

    /// What this call did, for the request that placed it (if this connector placed it).
    pub fn progress(&self, signal: Signal, cause: Option<String>) -> Option<Progress> {
        self.placed
            .as_ref()
            .map(|p| p.progress(&self.id, signal, cause))
    }

    /// The first leg was answered, at `ivr` in the dialplan: by the PBX on a call that came in
    /// (unless an extension `answered` already), by the customer on a call the PBX placed, or
    /// by the agent on a call placed for a click-to-call request.
    pub fn customer_leg_up(
        &mut self,
        at: Timestamp,
        ivr: Option<Place>,
        answered: bool,
        out: &mut Vec<Built>,
        progress: &mut Vec<Progress>,
    ) {
        if self.placed.is_some() {
            progress.extend(self.progress(Signal::AgentAnswered, None));
            return;
        }
        let Phase::Followed(track) = &mut self.phase else {
            return;
        };
        match self.origin {
            Origin::Inbound if !answered && !self.pbx_answered => {
                self.pbx_answered = true;
                if let Some(ivr) = ivr {
                    out.push(track.ivr_answered(at, &self.customer, ivr));
                }
            }
            Origin::Originated if !self.customer_answered => {
                self.customer_answered = true;
                out.push(track.customer_answered(at, &self.customer, None, self.ref_id.as_deref()));
            }
            _ => {}
        }
    }
}

/// The numbers a pending call has shown, as a follower read them from its PBX.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// Where the customer's leg was placed to: the DID of an inbound call, the customer's
    /// number of an outbound one.
    pub exten: &'a str,
    /// The caller id the customer's leg first showed: the customer (inbound) or the calling
    /// extension (outbound).
    pub caller: &'a str,
    /// The customer leg's caller id now (it may have changed since).
    pub caller_now: &'a str,
    /// The DID variable's value, once set.
    pub did_var: Option<&'a str>,
    /// A call the PBX placed: the caller id it presents and the customer's number it dials,
    /// once known.
    pub originate: Option<(&'a str, &'a str)>,
}

/// What to do with a pending call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Its DID is not known yet.
    Wait,
    /// It has no DID (or is an internal call): nobody to report it to.
    Ignore,
    Report {
        call_type: CallType,
        did: E164,
        customer: Option<E164>,
    },
}

/// The call type, DID and customer of a pending call from what it showed; `force`: it must be
/// decided now (the DID then falls back to the dialed extension and the default DID).
pub fn choose_did(rules: &Rules, origin: Origin, seen: &Seen, force: bool) -> Choice {
    let plan = &rules.numbers;
    let (call_type, did, customer) = match origin {
        Origin::Inbound => {
            let raw = match &rules.did_from {
                DidFrom::Exten => seen.exten,
                DidFrom::Variable(_) => match seen.did_var {
                    Some(v) if plan.knows(v) => v,
                    _ if !force => return Choice::Wait,
                    // The variable never came: the dialed extension is the next best.
                    _ => seen.exten,
                },
            };
            let caller = if present(seen.caller) {
                seen.caller
            } else {
                seen.caller_now
            };
            (CallType::Inbound, plan.did(Some(raw)), plan.to_e164(caller))
        }
        Origin::Originated => {
            let (presented, dialed) = match seen.originate {
                Some(o) => o,
                None if !force => return Choice::Wait,
                None => (seen.caller_now, ""),
            };
            (
                rules.originated,
                plan.did(Some(presented).filter(|p| present(p))),
                plan.to_e164(dialed),
            )
        }
        Origin::Outbound => {
            let customer = plan.to_e164(seen.exten);
            // A call from an extension to something that is no phone number is an internal
            // call: nobody outside to report it to.
            let did = customer
                .as_ref()
                .and_then(|_| plan.did(Some(seen.caller).filter(|c| present(c))));
            (CallType::Outbound, did, customer)
        }
    };
    match did {
        Some(did) => Choice::Report {
            call_type,
            did,
            customer,
        },
        None => Choice::Ignore,
    }
}

/// All calls of one PBX.
#[derive(Debug)]
pub struct CallTable<P: Pbx> {
    pub(super) rules: Rules,
    pub(super) clock: PbxClock,
    pub(super) channels: HashMap<String, P::Channel>,
    pub(super) calls: HashMap<String, Call<P::Call>>,
    /// What the protocol keeps beside its calls.
    pub(super) pbx: P,
    /// During a resync: channels known before the reconnect and not seen since.
    unconfirmed: Option<HashSet<String>>,
    keepalives: u32,
    /// Calls being placed, by reference, until their channel shows up (and since when).
    expected: HashMap<String, (Placed, Timestamp)>,
    /// What placed calls did since the session last took it.
    pub(super) progress: Vec<Progress>,
}

impl<P: Pbx> CallTable<P> {
    pub fn new(rules: Rules) -> Self {
        CallTable {
            rules,
            clock: PbxClock::default(),
            channels: HashMap::new(),
            calls: HashMap::new(),
            pbx: P::default(),
            unconfirmed: None,
            keepalives: 0,
            expected: HashMap::new(),
            progress: Vec::new(),
        }
    }

    /// A call this connector is placing now: the call that shows up with its reference is the
    /// request's.
    pub fn expect(&mut self, placed: Placed, now: Timestamp) {
        self.expected
            .retain(|_, (_, since)| now.duration_since(*since) < EXPECTED_FOR);
        self.expected.insert(placed.ref_id.clone(), (placed, now));
    }

    /// What placed calls did since last asked.
    pub fn take_progress(&mut self) -> Vec<Progress> {
        std::mem::take(&mut self.progress)
    }

    /// Call `id`'s first leg carries the reference `ref_id` (its channel variable). A call the
    /// PBX placed with a reference this connector is placing is the request's.
    pub fn reference(&mut self, id: &str, ref_id: &str, at: Timestamp, out: &mut Vec<Built>) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        call.ref_id = Some(ref_id.to_owned());
        self.bind(id, at, out);
    }

    /// The PBX says its channel `leg` is the agent's leg of the request with reference
    /// `ref_id` (in its answer to the originate, read at local time `local`), for a PBX that
    /// did not show the variable.
    pub fn reference_leg(
        &mut self,
        leg: &str,
        ref_id: &str,
        local: Timestamp,
        out: &mut Vec<Built>,
    ) {
        let at = self.clock.now(local);
        let Some((id, call)) = self.calls.iter_mut().find(|(_, c)| c.customer == leg) else {
            return;
        };
        let id = id.clone();
        call.ref_id.get_or_insert_with(|| ref_id.to_owned());
        self.bind(&id, at, out);
    }

    fn bind(&mut self, id: &str, at: Timestamp, out: &mut Vec<Built>) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.origin != Origin::Originated || call.placed.is_some() {
            return;
        }
        let Some((placed, _)) = call.ref_id.as_deref().and_then(|r| self.expected.remove(r)) else {
            return;
        };
        call.placed = Some(placed);
        self.progress.extend(call.progress(Signal::CallSeen, None));
        self.try_start(id, at, false, out);
    }

    /// The calls being followed and the channels they know, as JSON, so that a restart of
    /// callhook picks them up (the next channel listing then closes those that ended).
    pub fn save(&self) -> String {
        #[derive(Serialize)]
        #[serde(bound = "")]
        struct Saving<'a, P: Pbx> {
            version: u32,
            clock: &'a PbxClock,
            channels: &'a HashMap<String, P::Channel>,
            calls: &'a HashMap<String, Call<P::Call>>,
            #[serde(flatten)]
            pbx: &'a P,
        }
        serde_json::to_string(&Saving::<P> {
            version: SAVED_VERSION,
            clock: &self.clock,
            channels: &self.channels,
            calls: &self.calls,
            pbx: &self.pbx,
        })
        .unwrap_or_default()
    }

    /// Takes back what [`CallTable::save`] wrote (by this version of callhook).
    pub fn restore(&mut self, saved: &str) -> Result<(), String> {
        #[derive(Deserialize)]
        #[serde(bound = "")]
        struct Saved<P: Pbx> {
            version: u32,
            clock: PbxClock,
            channels: HashMap<String, P::Channel>,
            calls: HashMap<String, Call<P::Call>>,
            #[serde(flatten)]
            pbx: P,
        }
        let s: Saved<P> = serde_json::from_str(saved).map_err(|e| e.to_string())?;
        if s.version != SAVED_VERSION {
            return Err(format!("saved by another version ({})", s.version));
        }
        self.clock = s.clock;
        self.channels = s.channels;
        self.calls = s.calls;
        self.pbx = s.pbx;
        Ok(())
    }

    /// Calls being followed (or waiting for their DID).
    pub fn open(&self) -> usize {
        self.calls
            .values()
            .filter(|c| !matches!(c.phase, Phase::Ignored))
            .count()
    }

    /// After a reconnect: every channel we know must show up again (in the channel listing or
    /// in an event) or it hung up while we were away.
    pub fn begin_resync(&mut self) {
        self.unconfirmed = Some(self.channels.keys().cloned().collect());
    }

    /// Channel `id` still exists.
    pub fn confirm(&mut self, id: &str) {
        if let Some(u) = self.unconfirmed.as_mut() {
            u.remove(id);
        }
    }

    /// The channel listing could not be read: keep following, close nothing.
    pub fn cancel_resync(&mut self) {
        self.unconfirmed = None;
    }

    /// The channel listing is complete: channels not in it are gone; their calls end now.
    pub fn finish_resync(&mut self, local: Timestamp, out: &mut Vec<Built>) {
        let Some(gone) = self.unconfirmed.take() else {
            return;
        };
        let at = self.clock.now(local);
        let mut gone: Vec<String> = gone.into_iter().collect();
        gone.sort();
        for id in gone {
            P::channel_gone(self, &id, at, out);
        }
    }

    /// Counts a keep-alive. Every [`super::LISTING_EVERY`]th begins a resync and answers
    /// true: the session then lists the PBX's channels instead of pinging it.
    pub fn listing_due(&mut self) -> bool {
        self.keepalives = self.keepalives.wrapping_add(1);
        let due = self.keepalives.is_multiple_of(super::LISTING_EVERY);
        if due {
            self.begin_resync();
        }
        due
    }

    /// Sends every pending `call.dialed` (the connection is lost: no later event will).
    pub fn flush(&mut self, out: &mut Vec<Built>) {
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            self.flush_dial(&id, out);
        }
    }

    /// Sends call `id`'s pending `call.dialed`, if any.
    pub fn flush_dial(&mut self, id: &str, out: &mut Vec<Built>) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let Some(p) = call.pending_dial.take() else {
            return;
        };
        if let Phase::Followed(track) = &mut call.phase {
            out.push(track.dialed(p.at, p.via, p.place.as_ref(), &p.rung));
        }
    }

    /// Leg `leg` of call `id` starts ringing an extension; it joins the pending `call.dialed`
    /// when it rings together with the others (same way, same place). A leg rings once.
    #[allow(clippy::too_many_arguments)]
    pub fn ring(
        &mut self,
        id: &str,
        leg: &str,
        extension: String,
        name: Option<String>,
        via: DialVia,
        place: Option<Place>,
        at: Timestamp,
        out: &mut Vec<Built>,
    ) {
        let same = self
            .calls
            .get(id)
            .and_then(|c| c.pending_dial.as_ref())
            .is_some_and(|p| p.via == via && p.place == place);
        if !same {
            self.flush_dial(id, out);
        }
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.legs.contains_key(leg) {
            return;
        }
        call.pending_dial
            .get_or_insert_with(|| PendingDial {
                via,
                place: place.clone(),
                at,
                rung: Vec::new(),
            })
            .rung
            .push((leg.to_owned(), extension.clone()));
        call.legs.insert(
            leg.to_owned(),
            Leg {
                extension,
                name,
                via,
                place,
                rang_at: at,
                answered: false,
                reported: false,
            },
        );
    }

    /// Starts reporting a pending call once its DID is known, or now when `force`d (something
    /// must be reported: the DID falls back to the default, or the call is ignored).
    pub fn try_start(&mut self, id: &str, at: Timestamp, force: bool, out: &mut Vec<Built>) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        if !matches!(call.phase, Phase::Pending) {
            return;
        }
        let choice = match &call.placed {
            // The request said who is called and from which number.
            Some(p) => Choice::Report {
                call_type: CallType::ClickToCall,
                did: p.did.clone(),
                customer: Some(p.customer.clone()),
            },
            None => choose_did(
                &self.rules,
                call.origin,
                &P::seen(&self.channels, call, force),
                force,
            ),
        };
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let (call_type, did, customer) = match choice {
            Choice::Wait => return,
            Choice::Ignore => {
                call.phase = Phase::Ignored;
                return;
            }
            Choice::Report {
                call_type,
                did,
                customer,
            } => (call_type, did, customer),
        };
        let (track, received) = CallTrack::start(
            &self.rules,
            CallStart {
                call_id: call.id.clone(),
                leg_id: call.customer.clone(),
                call_type,
                did,
                customer,
                started_at: call.started_at,
            },
            at,
        );
        call.phase = Phase::Followed(Box::new(track));
        out.push(received);
    }

    /// Whether call `id` is reported, starting it if it was waiting (something happens now).
    pub fn started(&mut self, id: &str, at: Timestamp, out: &mut Vec<Built>) -> bool {
        self.try_start(id, at, true, out);
        self.calls
            .get(id)
            .is_some_and(|c| matches!(c.phase, Phase::Followed(_)))
    }

    /// The customer of call `id` pressed `digit` on leg `leg`, at `ivr` in the dialplan: an
    /// IVR the PBX answered them in, unless they talk with an extension by now.
    pub fn customer_dtmf(
        &mut self,
        id: &str,
        leg: &str,
        digit: &str,
        ivr: Option<Place>,
        at: Timestamp,
        out: &mut Vec<Built>,
    ) {
        if !self.started(id, at, out) {
            return;
        }
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.customer != leg {
            return;
        }
        let talking = P::talking(&call.pbx);
        if let Phase::Followed(track) = &mut call.phase {
            if call.pbx_answered
                && !talking
                && let Some(ivr) = ivr
            {
                track.enter_ivr(ivr);
            }
            if let Some(ev) = track.dtmf(at, leg, digit) {
                out.push(ev);
            }
        }
    }

    /// Call `id` is over: its pending `call.dialed` goes out, it is reported if it was still
    /// waiting, then its one `call.ended`. Answers the call, for what the follower unlinks.
    pub fn end_call(
        &mut self,
        id: &str,
        at: Timestamp,
        out: &mut Vec<Built>,
    ) -> Option<Call<P::Call>> {
        self.flush_dial(id, out);
        self.try_start(id, at, true, out);
        let mut call = self.calls.remove(id)?;
        if let Phase::Followed(track) = &mut call.phase {
            out.push(track.end(at, call.cause.as_deref(), P::measured(&call.pbx)));
        }
        let how = call.cause.as_deref().map(LegEnd::from_cause);
        self.progress
            .extend(call.progress(Signal::Ended(how), call.cause.clone()));
        Some(call)
    }
}

/// A session's calls, as the runner sees them through [`super::Session`].
pub trait Follower: Send {
    fn open(&self) -> usize;
    fn save(&self) -> String;
    fn restore(&mut self, saved: &str) -> Result<(), String>;
    fn flush(&mut self, out: &mut Vec<Built>);
}

impl<P: Pbx> Follower for CallTable<P> {
    fn open(&self) -> usize {
        CallTable::open(self)
    }

    fn save(&self) -> String {
        CallTable::save(self)
    }

    fn restore(&mut self, saved: &str) -> Result<(), String> {
        CallTable::restore(self, saved)
    }

    fn flush(&mut self, out: &mut Vec<Built>) {
        CallTable::flush(self, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::call::tests::rules;

    fn seen<'a>(exten: &'a str, caller: &'a str) -> Seen<'a> {
        Seen {
            exten,
            caller,
            caller_now: caller,
            did_var: None,
            originate: None,
        }
    }

    fn report(call_type: CallType, did: &str, customer: Option<&str>) -> Choice {
        Choice::Report {
            call_type,
            did: E164::parse(did).unwrap(),
            customer: customer.map(|c| E164::parse(c).unwrap()),
        }
    }

    #[test]
    fn dids_are_chosen_by_where_the_call_came_from() {
        let mut r = rules();
        r.numbers.country_code = Some("91".into());
        let inbound = seen("08065251305", "09812345678");
        assert_eq!(
            choose_did(&r, Origin::Inbound, &inbound, false),
            report(CallType::Inbound, "+918065251305", Some("+919812345678"))
        );
        // Outbound: the caller is the extension, the dialed number the customer.
        let outbound = seen("09812345678", "08065251305");
        assert_eq!(
            choose_did(&r, Origin::Outbound, &outbound, false),
            report(CallType::Outbound, "+918065251305", Some("+919812345678"))
        );
        // An extension dialing an extension: internal, not reported.
        assert_eq!(
            choose_did(&r, Origin::Outbound, &seen("102", "101"), false),
            Choice::Ignore
        );
    }

    #[test]
    fn a_did_variable_or_an_originate_is_waited_for_until_forced() {
        let mut r = rules();
        r.numbers.country_code = Some("91".into());
        r.did_from = DidFrom::Variable("DID".into());
        let mut s = seen("08065251305", "09812345678");
        assert_eq!(choose_did(&r, Origin::Inbound, &s, false), Choice::Wait);
        assert_eq!(
            choose_did(&r, Origin::Inbound, &s, true),
            report(CallType::Inbound, "+918065251305", Some("+919812345678"))
        );
        s.did_var = Some("08065251300");
        assert_eq!(
            choose_did(&r, Origin::Inbound, &s, false),
            report(CallType::Inbound, "+918065251300", Some("+919812345678"))
        );
        assert_eq!(choose_did(&r, Origin::Originated, &s, false), Choice::Wait);
        s.originate = Some(("08065251305", "09812345678"));
        assert_eq!(
            choose_did(&r, Origin::Originated, &s, false),
            report(
                CallType::ClickToCall,
                "+918065251305",
                Some("+919812345678")
            )
        );
    }
}
