//! A delivery's life (SPEC §7): the states it passes through, the status the API shows for
//! them, and which moves between them each step may make. The store keeps the state and applies
//! these decisions; set-wise statements it runs (promotion, claims) follow the same rules:
//!
//! - a new delivery is [`State::Queued`], or [`State::Waiting`] behind an unfinished delivery
//!   of its call to the same webhook ([`arrival`]);
//! - an attempt leaves it queued for a retry, or finished ([`after_attempt`]);
//! - once a delivery has finished, the earliest waiting delivery of its call to that webhook
//!   becomes queued, unless one is queued already (promotion: one at a time, in event order);
//! - a resend ([`resend`]) or replay gives an ended delivery more attempts without breaking that
//!   order: it waits while its call is busy, and promotion lets it go.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::id::CallId;
use super::retry::Next;

/// Where a delivery is, as the deliveries table keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Due at its `next_attempt_at`: its first or next attempt, or being sent under a lease.
    Queued,
    /// Behind an earlier unfinished delivery of its call to the same webhook.
    Waiting,
    Succeeded,
    /// Every attempt used, or ended without a request (its webhook or event is gone).
    Failed,
}

impl State {
    pub const ALL: [State; 4] = [
        State::Queued,
        State::Waiting,
        State::Succeeded,
        State::Failed,
    ];

    /// The stored spelling. The schema's partial indexes (`WHERE state = 'queued'`) and the
    /// statements that read them name these words literally.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Waiting => "waiting",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// What the API shows for it.
    pub fn status(self) -> DeliveryStatus {
        match self {
            State::Queued | State::Waiting => DeliveryStatus::Pending,
            State::Succeeded => DeliveryStatus::Succeeded,
            State::Failed => DeliveryStatus::Failed,
        }
    }

    /// Whether it is done: no attempt follows, and the next delivery of its call may go.
    pub fn is_finished(self) -> bool {
        matches!(self, State::Succeeded | State::Failed)
    }

    /// Where a replay puts every delivery it takes: all wait, then promotion lets the earliest
    /// of each call go, so they leave in the order they did the first time.
    pub const REPLAYED: State = State::Waiting;
}

/// Where a delivery starts at `at` (and where a resent one goes), and when it is due: waiting,
/// not yet due, when its call already has an unfinished delivery to the same webhook, so a
/// call's deliveries leave in order; else queued, due at `at` or once its webhook's hold ends
/// (`not_before`), whichever is later.
pub fn arrival(
    call_busy: bool,
    at: Timestamp,
    not_before: Option<Timestamp>,
) -> (State, Option<Timestamp>) {
    if call_busy {
        (State::Waiting, None)
    } else {
        (State::Queued, Some(not_before.map_or(at, |t| t.max(at))))
    }
}

/// A delivery's state after an attempt (or after ending without one), and when it is due next.
pub fn after_attempt(next: &Next) -> (State, Option<Timestamp>) {
    match next {
        Next::Succeeded => (State::Succeeded, None),
        Next::RetryAt(t) => (State::Queued, Some(*t)),
        Next::Failed => (State::Failed, None),
    }
}

/// A delivery's state, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt, or for an earlier delivery of its call.
    Pending,
    Succeeded,
    /// Every attempt used.
    Failed,
}

impl DeliveryStatus {
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// The stored states this status covers.
    pub fn states(self) -> &'static [State] {
        match self {
            DeliveryStatus::Pending => &[State::Queued, State::Waiting],
            DeliveryStatus::Succeeded => &[State::Succeeded],
            DeliveryStatus::Failed => &[State::Failed],
        }
    }
}

/// What a resend does, by the state the delivery is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// It waits for a retry: the retry comes now.
    RetryNow,
    /// It had ended: exactly one more attempt, in its call's order (it arrives again, see
    /// [`arrival`]; being the earliest of its call, it goes next).
    OneMore,
}

/// Why a delivery cannot be resent now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResendRefused {
    #[error(
        "it waits for an earlier delivery of call {call_id} to the same webhook, and goes once that one has ended"
    )]
    Waiting { call_id: CallId },
    #[error("it is being sent right now")]
    BeingSent,
}

/// Decides a resend of a delivery in `state` of call `call_id`, leased until `claimed_until`.
pub fn resend(
    state: State,
    claimed_until: Option<Timestamp>,
    call_id: &CallId,
    now: Timestamp,
) -> Result<Resend, ResendRefused> {
    match state {
        State::Waiting => Err(ResendRefused::Waiting {
            call_id: call_id.clone(),
        }),
        State::Queued if claimed_until.is_some_and(|t| t > now) => Err(ResendRefused::BeingSent),
        State::Queued => Ok(Resend::RetryNow),
        State::Succeeded | State::Failed => Ok(Resend::OneMore),
    }
}

/// What an attempt says about its webhook's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Delivered: any run of failures ends.
    Succeeded,
    /// A request failed: a run of failures starts, unless one is running.
    Failing,
}

/// The health signal of an attempt that led to `next`. Test deliveries never count, and a
/// delivery that ended without a request says nothing about the endpoint.
pub fn health(next: &Next, attempted: bool, test: bool) -> Option<Health> {
    match next {
        _ if test => None,
        Next::Succeeded => Some(Health::Succeeded),
        Next::RetryAt(_) | Next::Failed if attempted => Some(Health::Failing),
        Next::RetryAt(_) | Next::Failed => None,
    }
}

/// Why a delivery ends without (another) request, as its log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// Its webhook was deleted while it was unfinished.
    WebhookDeleted,
    /// Claimed, but its webhook no longer exists.
    WebhookGone,
    /// Claimed, but its event no longer exists (pruned).
    EventGone,
}

impl Unsent {
    /// It fails like any delivery that used its attempts, so the next of its call can go.
    pub const NEXT: Next = Next::Failed;

    pub fn note(self) -> &'static str {
        match self {
            Unsent::WebhookDeleted => "the webhook was deleted",
            Unsent::WebhookGone => "not sent: its webhook no longer exists",
            Unsent::EventGone => "not sent: its event no longer exists",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [State; 4] = State::ALL;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn states_keep_their_stored_spelling() {
        let words: Vec<&str> = ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(words, ["queued", "waiting", "succeeded", "failed"]);
        for s in ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("pending"), None);
    }

    #[test]
    fn every_state_shows_as_the_status_that_covers_it() {
        for s in ALL {
            assert!(s.status().states().contains(&s), "{s:?}");
        }
        for status in [
            DeliveryStatus::Pending,
            DeliveryStatus::Succeeded,
            DeliveryStatus::Failed,
        ] {
            assert_eq!(DeliveryStatus::parse(status.as_str()), Some(status));
            assert!(status.states().iter().all(|s| s.status() == status));
        }
        assert!(
            ALL.iter()
                .all(|s| s.is_finished() != (s.status() == DeliveryStatus::Pending))
        );
    }

    #[test]
    fn a_delivery_waits_behind_its_busy_call_and_its_webhooks_hold() {
        let now = at("2026-11-27T04:00:00Z");
        let (earlier, later) = (at("2026-11-27T03:00:00Z"), at("2026-11-27T05:00:00Z"));
        assert_eq!(arrival(false, now, None), (State::Queued, Some(now)));
        assert_eq!(
            arrival(false, now, Some(later)),
            (State::Queued, Some(later))
        );
        assert_eq!(
            arrival(false, now, Some(earlier)),
            (State::Queued, Some(now)),
            "a hold that has ended"
        );
        assert_eq!(arrival(true, now, None), (State::Waiting, None));
        assert_eq!(
            arrival(true, now, Some(later)),
            (State::Waiting, None),
            "promotion makes it due"
        );
        assert!(!State::REPLAYED.is_finished());
    }

    #[test]
    fn an_attempt_retries_or_finishes() {
        let t = at("2026-11-27T04:00:05Z");
        assert_eq!(
            after_attempt(&Next::RetryAt(t)),
            (State::Queued, Some(t)),
            "a retry keeps its place in its call"
        );
        assert_eq!(after_attempt(&Next::Succeeded), (State::Succeeded, None));
        assert_eq!(after_attempt(&Next::Failed), (State::Failed, None));
        assert_eq!(after_attempt(&Unsent::NEXT).0, State::Failed);
    }

    #[test]
    fn resend_respects_what_the_delivery_is_doing() {
        let now = at("2026-11-27T04:00:00Z");
        let (before, after) = (at("2026-11-27T03:59:59Z"), at("2026-11-27T04:00:01Z"));
        let c1 = CallId::from_string("c1".into());
        let err = resend(State::Waiting, None, &c1, now).unwrap_err();
        assert!(err.to_string().contains("call c1"), "{err}");
        assert_eq!(
            resend(State::Queued, Some(after), &c1, now),
            Err(ResendRefused::BeingSent)
        );
        assert_eq!(
            resend(State::Queued, Some(before), &c1, now),
            Ok(Resend::RetryNow),
            "an expired lease no longer holds it"
        );
        assert_eq!(resend(State::Queued, None, &c1, now), Ok(Resend::RetryNow));
        assert_eq!(
            resend(State::Succeeded, None, &c1, now),
            Ok(Resend::OneMore)
        );
        assert_eq!(resend(State::Failed, None, &c1, now), Ok(Resend::OneMore));
    }

    #[test]
    fn only_real_attempts_tell_a_webhooks_health() {
        let retry = Next::RetryAt(at("2026-11-27T04:00:05Z"));
        assert_eq!(
            health(&Next::Succeeded, true, false),
            Some(Health::Succeeded)
        );
        assert_eq!(health(&retry, true, false), Some(Health::Failing));
        assert_eq!(health(&Next::Failed, true, false), Some(Health::Failing));
        assert_eq!(
            health(&Next::Failed, false, false),
            None,
            "ended without a request"
        );
        for next in [Next::Succeeded, retry, Next::Failed] {
            assert_eq!(health(&next, true, true), None, "tests never count");
        }
    }
}
