//! A click-to-call request's life (SPEC §15): `queued` → `ringing_agent` → `ringing_customer`
//! → `answered`, or `failed` with the reason, driven by what the PBX says about the call it
//! places for the request. Pure: a connector turns its PBX's answers and the call's events
//! into [`Signal`]s; whatever keeps requests (the store, the API) reads the [`Status`].
//!
//! The PBX rings the agent first and, once the agent picked up, dials the customer from the
//! agent's call; so until the agent answered every failure is the agent's, after it the
//! customer's.

use serde::{Deserialize, Serialize};

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for the connector to place it, or for the PBX to take it.
    Queued,
    /// The PBX took the originate and rings the agent's phone.
    RingingAgent,
    /// The agent picked up; the PBX dials the customer.
    RingingCustomer,
    /// The customer answered: agent and customer talk. Final.
    Answered,
    /// No conversation came of it. Final.
    Failed(FailReason),
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// The agent's phone was busy.
    AgentBusy,
    /// The agent's phone rang and nobody took it (or the agent declined).
    AgentNoAnswer,
    /// The agent's phone could not be reached: unknown, not registered, congestion.
    AgentUnavailable,
    /// The agent hung up while the customer's phone was ringing.
    AgentHungUp,
    /// The customer's line was busy.
    CustomerBusy,
    /// The customer's phone rang and nobody took it (or the customer declined).
    CustomerNoAnswer,
    /// The customer could not be reached (congestion, a number the network refused), or the
    /// dialplan never dialled them.
    CustomerUnavailable,
    /// The PBX refused the originate itself (a permission it lacks, a channel it rejects).
    OriginateRefused,
    /// callhook lost sight of the request before its call showed up: the connection to the
    /// PBX dropped, or the PBX never said what became of it.
    ConnectorLost,
}

impl FailReason {
    pub const ALL: [FailReason; 9] = [
        FailReason::AgentBusy,
        FailReason::AgentNoAnswer,
        FailReason::AgentUnavailable,
        FailReason::AgentHungUp,
        FailReason::CustomerBusy,
        FailReason::CustomerNoAnswer,
        FailReason::CustomerUnavailable,
        FailReason::OriginateRefused,
        FailReason::ConnectorLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::AgentBusy => "agent_busy",
            FailReason::AgentNoAnswer => "agent_no_answer",
            FailReason::AgentUnavailable => "agent_unavailable",
            FailReason::AgentHungUp => "agent_hung_up",
            FailReason::CustomerBusy => "customer_busy",
            FailReason::CustomerNoAnswer => "customer_no_answer",
            FailReason::CustomerUnavailable => "customer_unavailable",
            FailReason::OriginateRefused => "originate_refused",
            FailReason::ConnectorLost => "connector_lost",
        }
    }

    pub fn parse(s: &str) -> Option<FailReason> {
        FailReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The agent's leg ended this way before the agent answered.
    fn agent(how: LegEnd) -> FailReason {
        match how {
            LegEnd::Busy => FailReason::AgentBusy,
            // An originate cancelled before the agent answered is its own timeout running out.
            LegEnd::NoAnswer | LegEnd::Cancelled => FailReason::AgentNoAnswer,
            LegEnd::Unavailable => FailReason::AgentUnavailable,
        }
    }

    /// The customer's leg ended this way before the customer answered.
    fn customer(how: LegEnd) -> FailReason {
        match how {
            LegEnd::Busy => FailReason::CustomerBusy,
            LegEnd::NoAnswer => FailReason::CustomerNoAnswer,
            LegEnd::Unavailable => FailReason::CustomerUnavailable,
            // The calling side (the agent's call) gave up on the customer's leg.
            LegEnd::Cancelled => FailReason::AgentHungUp,
        }
    }
}

impl std::fmt::Display for FailReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    /// The state's name in the API: `queued`, `ringing_agent`, `ringing_customer`,
    /// `answered`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::RingingAgent => "ringing_agent",
            Status::RingingCustomer => "ringing_customer",
            Status::Answered => "answered",
            Status::Failed(_) => "failed",
        }
    }

    pub fn reason(self) -> Option<FailReason> {
        match self {
            Status::Failed(r) => Some(r),
            _ => None,
        }
    }

    /// Answered and failed requests change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Answered | Status::Failed(_))
    }

    /// A status from its state name and reason, as [`Status::as_str`] and
    /// [`Status::reason`] wrote them; `None` for a pair that cannot be.
    pub fn from_parts(state: &str, reason: Option<&str>) -> Option<Status> {
        let status = match (state, reason) {
            ("queued", None) => Status::Queued,
            ("ringing_agent", None) => Status::RingingAgent,
            ("ringing_customer", None) => Status::RingingCustomer,
            ("answered", None) => Status::Answered,
            ("failed", Some(r)) => Status::Failed(FailReason::parse(r)?),
            _ => return None,
        };
        Some(status)
    }

    /// How far along the way a status is: a request never goes back.
    fn rank(self) -> u8 {
        match self {
            Status::Queued => 0,
            Status::RingingAgent => 1,
            Status::RingingCustomer => 2,
            Status::Answered | Status::Failed(_) => 3,
        }
    }
}

/// How a leg that was never answered ended, whatever the PBX's words for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEnd {
    Busy,
    /// It rang out, or was declined.
    NoAnswer,
    /// It could not be reached at all.
    Unavailable,
    /// The calling side gave up on it.
    Cancelled,
}

impl LegEnd {
    /// A Q.850 hangup cause by name (`USER_BUSY`, as FreeSWITCH writes it and callhook
    /// translates Asterisk's numbers).
    pub fn from_cause(cause: &str) -> LegEnd {
        match cause.trim().to_ascii_uppercase().as_str() {
            "USER_BUSY" => LegEnd::Busy,
            // A phone that rang and was declined or let ring; a hangup before an answer
            // (NORMAL_CLEARING) is one of those too.
            "NO_ANSWER" | "NO_USER_RESPONSE" | "ALLOTTED_TIMEOUT" | "CALL_REJECTED"
            | "NORMAL_CLEARING" | "NORMAL_UNSPECIFIED" => LegEnd::NoAnswer,
            "ORIGINATOR_CANCEL" | "LOSE_RACE" | "PICKED_OFF" => LegEnd::Cancelled,
            _ => LegEnd::Unavailable,
        }
    }
}

/// What happened to the call a request placed, as a connector saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The PBX took the originate: it rings the agent now.
    Accepted,
    /// The PBX refused the originate itself.
    Refused,
    /// The call showed up among the PBX's calls: from now on its own end says how it went.
    CallSeen,
    AgentAnswered,
    /// The agent's leg ended without an answer.
    AgentFailed(LegEnd),
    /// The agent's call dials the customer.
    CustomerRinging,
    CustomerAnswered,
    /// The customer's leg ended without an answer (final when the call ends: the dialplan
    /// may dial the customer again).
    CustomerFailed(LegEnd),
    /// The call is over (with how its first leg, the agent's, ended, when the PBX said).
    Ended(Option<LegEnd>),
    /// The connection to the PBX dropped, or the PBX stayed silent too long. Fails only a
    /// request whose call has not shown up: a call that did is followed to its end.
    Lost,
}

/// One request's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClickToCall {
    status: Status,
    call_seen: bool,
    agent_answered: bool,
    customer_rang: bool,
    /// How the customer's leg failed last: the dialplan may dial again (another trunk), so
    /// the request fails only when the call ends.
    customer_failed: Option<LegEnd>,
}

impl Default for ClickToCall {
    fn default() -> Self {
        ClickToCall::new()
    }
}

impl ClickToCall {
    /// A new request: queued.
    pub fn new() -> ClickToCall {
        ClickToCall {
            status: Status::Queued,
            call_seen: false,
            agent_answered: false,
            customer_rang: false,
            customer_failed: None,
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// Takes what happened; answers whether the status changed. A final status never
    /// changes, and a request never goes back (a late or repeated signal changes nothing).
    pub fn on(&mut self, signal: Signal) -> bool {
        if self.status.is_final() {
            return false;
        }
        let next = match signal {
            Signal::Accepted => Status::RingingAgent,
            Signal::Refused => Status::Failed(FailReason::OriginateRefused),
            Signal::CallSeen => {
                self.call_seen = true;
                return false;
            }
            Signal::AgentAnswered => {
                self.agent_answered = true;
                Status::RingingAgent
            }
            Signal::AgentFailed(how) if !self.agent_answered => {
                Status::Failed(FailReason::agent(how))
            }
            Signal::AgentFailed(_) => return false,
            Signal::CustomerRinging => {
                self.agent_answered = true;
                self.customer_rang = true;
                Status::RingingCustomer
            }
            Signal::CustomerAnswered => Status::Answered,
            Signal::CustomerFailed(how) => {
                self.customer_failed = Some(how);
                return false;
            }
            Signal::Ended(how) => Status::Failed(if !self.agent_answered {
                FailReason::agent(how.unwrap_or(LegEnd::NoAnswer))
            } else if !self.customer_rang {
                FailReason::CustomerUnavailable
            } else {
                FailReason::customer(self.customer_failed.unwrap_or(LegEnd::NoAnswer))
            }),
            Signal::Lost if self.call_seen => return false,
            Signal::Lost => Status::Failed(FailReason::ConnectorLost),
        };
        if next.rank() <= self.status.rank() {
            return false;
        }
        self.status = next;
        true
    }
}

/// Longest `ref_id` a request may carry.
pub const MAX_REF_ID: usize = 100;

/// Whether `ref_id` can travel as a channel variable: 1 to [`MAX_REF_ID`] characters, ASCII
/// letters, digits and `-_.:/@+#`. Both PBXs split variable lists on commas and FreeSWITCH
/// its command line on spaces, so nothing else is let through.
pub fn check_ref_id(ref_id: &str) -> Result<(), String> {
    if ref_id.is_empty() || ref_id.len() > MAX_REF_ID {
        return Err(format!("must be 1 to {MAX_REF_ID} characters"));
    }
    if !ref_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:/@+#".contains(c))
    {
        return Err("may hold only letters, digits and - _ . : / @ + #".into());
    }
    Ok(())
}

/// Whether `extension` can stand in a channel or endpoint: 1 to 64 characters, ASCII
/// letters, digits and `-_.@+`.
pub fn check_extension(extension: &str) -> Result<(), String> {
    if extension.is_empty() || extension.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !extension
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c))
    {
        return Err("may hold only letters, digits and - _ . @ +".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(signals: &[Signal]) -> (Status, Vec<&'static str>) {
        let mut c = ClickToCall::new();
        let mut seen = vec![c.status().as_str()];
        for s in signals {
            if c.on(*s) {
                seen.push(c.status().as_str());
            }
        }
        (c.status(), seen)
    }

    #[test]
    fn an_answered_request_goes_the_whole_way() {
        let (s, seen) = run(&[
            Signal::Accepted,
            Signal::CallSeen,
            Signal::AgentAnswered,
            Signal::CustomerRinging,
            Signal::CustomerAnswered,
            Signal::Ended(None),
        ]);
        assert_eq!(s, Status::Answered);
        assert_eq!(
            seen,
            ["queued", "ringing_agent", "ringing_customer", "answered"]
        );
    }

    #[test]
    fn failures_before_the_agent_answered_are_the_agents() {
        for (how, reason) in [
            (LegEnd::Busy, FailReason::AgentBusy),
            (LegEnd::NoAnswer, FailReason::AgentNoAnswer),
            (LegEnd::Cancelled, FailReason::AgentNoAnswer),
            (LegEnd::Unavailable, FailReason::AgentUnavailable),
        ] {
            let (s, _) = run(&[Signal::Accepted, Signal::AgentFailed(how)]);
            assert_eq!(s, Status::Failed(reason));
            // The call's end says the same when the PBX's answer was never seen.
            let (s, _) = run(&[Signal::Accepted, Signal::CallSeen, Signal::Ended(Some(how))]);
            assert_eq!(s, Status::Failed(reason));
        }
        let (s, _) = run(&[Signal::Accepted, Signal::Ended(None)]);
        assert_eq!(s, Status::Failed(FailReason::AgentNoAnswer));
    }

    #[test]
    fn failures_after_it_are_the_customers() {
        for (how, reason) in [
            (LegEnd::Busy, FailReason::CustomerBusy),
            (LegEnd::NoAnswer, FailReason::CustomerNoAnswer),
            (LegEnd::Unavailable, FailReason::CustomerUnavailable),
            (LegEnd::Cancelled, FailReason::AgentHungUp),
        ] {
            let (s, seen) = run(&[
                Signal::Accepted,
                Signal::AgentAnswered,
                Signal::CustomerRinging,
                Signal::CustomerFailed(how),
                Signal::Ended(Some(LegEnd::NoAnswer)),
            ]);
            assert_eq!(s, Status::Failed(reason));
            assert_eq!(
                seen,
                ["queued", "ringing_agent", "ringing_customer", "failed"]
            );
        }
        // A late agent failure (the originate's own answer after the call went on) is old news.
        let (s, _) = run(&[
            Signal::AgentAnswered,
            Signal::AgentFailed(LegEnd::Busy),
            Signal::CustomerRinging,
            Signal::Ended(None),
        ]);
        assert_eq!(s, Status::Failed(FailReason::CustomerNoAnswer));
        // The dialplan dials the customer again (another trunk), and this time they answer.
        let (s, _) = run(&[
            Signal::AgentAnswered,
            Signal::CustomerRinging,
            Signal::CustomerFailed(LegEnd::Unavailable),
            Signal::CustomerRinging,
            Signal::CustomerAnswered,
        ]);
        assert_eq!(s, Status::Answered);
        // The agent answered but the dialplan never dialled the customer.
        let (s, _) = run(&[Signal::Accepted, Signal::AgentAnswered, Signal::Ended(None)]);
        assert_eq!(s, Status::Failed(FailReason::CustomerUnavailable));
    }

    #[test]
    fn refusals_losses_and_late_news() {
        assert_eq!(
            run(&[Signal::Refused]).0,
            Status::Failed(FailReason::OriginateRefused)
        );
        assert_eq!(
            run(&[Signal::Accepted, Signal::Lost]).0,
            Status::Failed(FailReason::ConnectorLost)
        );
        // Once the call showed up, its own end decides, whatever the connection does.
        let (s, _) = run(&[
            Signal::Accepted,
            Signal::CallSeen,
            Signal::Lost,
            Signal::AgentAnswered,
            Signal::CustomerRinging,
            Signal::CustomerAnswered,
        ]);
        assert_eq!(s, Status::Answered);
        // Nothing moves a final status, and nothing goes back.
        let (s, seen) = run(&[
            Signal::CustomerRinging,
            Signal::Accepted,
            Signal::AgentAnswered,
            Signal::CustomerAnswered,
            Signal::Refused,
            Signal::Lost,
        ]);
        assert_eq!(s, Status::Answered);
        assert_eq!(seen, ["queued", "ringing_customer", "answered"]);
    }

    #[test]
    fn causes_read_as_leg_ends() {
        for (cause, how) in [
            ("USER_BUSY", LegEnd::Busy),
            ("no_answer", LegEnd::NoAnswer),
            ("NO_USER_RESPONSE", LegEnd::NoAnswer),
            ("CALL_REJECTED", LegEnd::NoAnswer),
            ("ORIGINATOR_CANCEL", LegEnd::Cancelled),
            ("NORMAL_TEMPORARY_FAILURE", LegEnd::Unavailable),
            ("USER_NOT_REGISTERED", LegEnd::Unavailable),
            ("SUBSCRIBER_ABSENT", LegEnd::Unavailable),
            ("UNALLOCATED_NUMBER", LegEnd::Unavailable),
        ] {
            assert_eq!(LegEnd::from_cause(cause), how, "{cause}");
        }
    }

    #[test]
    fn statuses_read_back_from_their_names() {
        let mut all = vec![
            Status::Queued,
            Status::RingingAgent,
            Status::RingingCustomer,
            Status::Answered,
        ];
        all.extend(FailReason::ALL.map(Status::Failed));
        for s in all {
            let reason = s.reason().map(FailReason::as_str);
            assert_eq!(Status::from_parts(s.as_str(), reason), Some(s));
        }
        assert_eq!(Status::from_parts("failed", None), None);
        assert_eq!(Status::from_parts("answered", Some("agent_busy")), None);
        assert_eq!(Status::from_parts("failed", Some("bored")), None);
    }

    #[test]
    fn references_and_extensions_that_can_travel() {
        for ok in ["crm-42", "lead:7/a@b+c#1", &"x".repeat(MAX_REF_ID)] {
            assert!(check_ref_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a,b",
            "a=b",
            "{x}",
            "é",
            &"x".repeat(MAX_REF_ID + 1),
        ] {
            assert!(check_ref_id(bad).is_err(), "{bad}");
        }
        for ok in ["101", "agent1", "1001@pbx.example.com", "+44-1"] {
            assert!(check_extension(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1 01",
            "101,102",
            "101&102",
            "PJSIP/101",
            &"1".repeat(65),
        ] {
            assert!(check_extension(bad).is_err(), "{bad}");
        }
    }
}
