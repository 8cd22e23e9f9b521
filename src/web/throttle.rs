//! Limits on sign-in attempts. The sign-in form needs no secret to be posted (its CSRF token
//! is the visitor's own), and each attempt runs Argon2id (19 MiB, tens of milliseconds), so
//! without limits it burns CPU and memory on demand and lets passwords be guessed at speed.
//!
//! At most [`CHECKING`] passwords are checked at once; an attempt beyond that is refused at
//! once rather than queued. An email, or a client address, with [`MAX_FAILURES`] failed
//! sign-ins within [`WINDOW`] is refused until that window ends, whatever password it sends.
//! Unknown emails count like known ones, so refusals reveal nobody's account.
//!
//! Kept in memory, per process: a restart forgets the failures. Each tally holds at most
//! [`MAX_TRACKED`] keys; when full, expired windows go first, then the oldest.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Password checks running at once, at most.
pub const CHECKING: usize = 4;
/// Failed sign-ins an email or a client may have within [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// How long failed sign-ins are counted from the first one.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Emails (and, apart, client addresses) whose failures are remembered, at most.
const MAX_TRACKED: usize = 10_000;

/// Why a sign-in is not checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Enough passwords are being checked already.
    Busy,
    /// Too many failed sign-ins for this email or from this client; refused for this long.
    TooManyFailures(Duration),
}

/// The sign-in limits of one running callhook (cheap to clone: one shared state).
#[derive(Clone)]
pub struct SignInThrottle {
    checking: Arc<Semaphore>,
    failures: Arc<Mutex<Failures>>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            checking: Arc::new(Semaphore::new(CHECKING)),
            failures: Arc::default(),
        }
    }
}

#[derive(Default)]
struct Failures {
    emails: Tally<String>,
    clients: Tally<IpAddr>,
}

impl SignInThrottle {
    /// Leave to check a sign-in for `email` from `client` now: a permit to hold until the
    /// password check is over.
    pub fn admit(
        &self,
        email: &str,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Result<OwnedSemaphorePermit, Refusal> {
        let refused = {
            let f = self.failures();
            let by_email = f.emails.refused_for(email, now);
            let by_client = client.and_then(|c| f.clients.refused_for(&c, now));
            by_email.max(by_client)
        };
        if let Some(wait) = refused {
            return Err(Refusal::TooManyFailures(wait));
        }
        self.checking
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)
    }

    /// A sign-in for `email` from `client` failed.
    pub fn failed(&self, email: &str, client: Option<IpAddr>, now: Instant) {
        let mut f = self.failures();
        f.emails.fail(email, now);
        if let Some(c) = client {
            f.clients.fail(&c, now);
        }
    }

    /// `email` signed in: its earlier failures no longer count (its client's still do).
    pub fn succeeded(&self, email: &str) {
        self.failures().emails.windows.remove(email);
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        // A panic while holding the lock leaves counts, never a broken invariant.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Failures per key, each counted in a window that starts with its first failure.
struct Tally<K> {
    windows: HashMap<K, Window>,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally {
            windows: HashMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    since: Instant,
    failures: u32,
}

impl Window {
    fn left(&self, now: Instant) -> Option<Duration> {
        WINDOW
            .checked_sub(now.saturating_duration_since(self.since))
            .filter(|left| !left.is_zero())
    }
}

impl<K: Hash + Eq + Clone> Tally<K> {
    /// How long `key` stays refused, if it has failed too often.
    fn refused_for<Q>(&self, key: &Q, now: Instant) -> Option<Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let w = self.windows.get(key)?;
        w.left(now).filter(|_| w.failures >= MAX_FAILURES)
    }

    fn fail<Q>(&mut self, key: &Q, now: Instant)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(w) = self.windows.get_mut(key) {
            if w.left(now).is_none() {
                *w = Window {
                    since: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
            return;
        }
        if self.windows.len() >= MAX_TRACKED {
            self.windows.retain(|_, w| w.left(now).is_some());
        }
        if self.windows.len() >= MAX_TRACKED
            && let Some(oldest) = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.since)
                .map(|(k, _)| k.clone())
        {
            self.windows.remove::<K>(&oldest);
        }
        self.windows.insert(
            key.to_owned(),
            Window {
                since: now,
                failures: 1,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "admin@acme.example";

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn fail_times(t: &SignInThrottle, email: &str, client: Option<IpAddr>, n: u32, at: Instant) {
        for _ in 0..n {
            t.failed(email, client, at);
        }
    }

    #[test]
    fn an_email_is_refused_after_ten_failures_until_the_window_ends() {
        let t = SignInThrottle::default();
        let start = Instant::now();
        fail_times(&t, EMAIL, None, MAX_FAILURES - 1, start);
        assert!(t.admit(EMAIL, None, start).is_ok());
        t.failed(EMAIL, None, start + Duration::from_secs(60));
        assert_eq!(
            t.admit(EMAIL, ip("198.51.100.9"), start + Duration::from_secs(60))
                .err(),
            Some(Refusal::TooManyFailures(Duration::from_secs(240)))
        );
        assert!(t.admit("other@acme.example", None, start).is_ok());
        // The window counts from the first failure.
        assert!(t.admit(EMAIL, None, start + WINDOW).is_ok());
        // A new window starts from scratch.
        t.failed(EMAIL, None, start + WINDOW);
        assert!(t.admit(EMAIL, None, start + WINDOW).is_ok());
    }

    #[test]
    fn a_client_is_refused_after_ten_failures_whatever_the_email() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        for i in 0..MAX_FAILURES {
            t.failed(&format!("u{i}@acme.example"), ip("198.51.100.1"), now);
        }
        assert!(matches!(
            t.admit("new@acme.example", ip("198.51.100.1"), now),
            Err(Refusal::TooManyFailures(_))
        ));
        assert!(t.admit("new@acme.example", ip("198.51.100.2"), now).is_ok());
        assert!(t.admit("new@acme.example", None, now).is_ok());
    }

    #[test]
    fn signing_in_forgets_the_emails_failures_not_the_clients() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        fail_times(&t, EMAIL, ip("198.51.100.1"), MAX_FAILURES - 1, now);
        t.succeeded(EMAIL);
        t.failed(EMAIL, ip("198.51.100.1"), now);
        assert!(t.admit(EMAIL, ip("198.51.100.2"), now).is_ok());
        assert!(t.admit(EMAIL, ip("198.51.100.1"), now).is_err());
    }

    #[test]
    fn only_four_passwords_are_checked_at_once() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        let held: Vec<_> = (0..CHECKING)
            .map(|_| t.admit(EMAIL, None, now).unwrap())
            .collect();
        assert_eq!(t.admit(EMAIL, None, now).err(), Some(Refusal::Busy));
        drop(held);
        assert!(t.admit(EMAIL, None, now).is_ok());
    }

    #[test]
    fn the_tallies_stay_bounded() {
        let t = SignInThrottle::default();
        let start = Instant::now();
        for i in 0..MAX_TRACKED + 50 {
            t.failed(&format!("u{i}@acme.example"), None, start);
        }
        assert_eq!(t.failures().emails.windows.len(), MAX_TRACKED);
        // Expired windows make room first.
        let later = start + WINDOW;
        t.failed("late@acme.example", None, later);
        assert_eq!(t.failures().emails.windows.len(), 1);
    }
}
