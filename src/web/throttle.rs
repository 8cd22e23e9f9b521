//! Limits on sign-in attempts. The sign-in form needs no secret to be posted (its CSRF token
//! is the visitor's own), and each attempt runs Argon2id (19 MiB, tens of milliseconds), so
//! without limits it burns CPU and memory on demand and lets passwords be guessed at speed.
//!
//! - At most [`CHECKING`] passwords are checked at once; one beyond that is refused at once.
//! - A client address with [`MAX_CLIENT_FAILURES`] failed sign-ins within [`WINDOW`] is
//!   refused, whatever the email; an email and client pair with [`MAX_PAIR_FAILURES`] too.
//! - An email with [`MAX_EMAIL_FAILURES`] failures (from any clients) is under attack: a client
//!   that has not signed in as it before is slowed to one try per [`SLOW`] for that email,
//!   while the clients it did sign in from are not. So a flood of wrong passwords from
//!   elsewhere never locks the owner out, and a spread-out guesser gets few tries.
//! - Unknown emails count like known ones, so refusals reveal nobody's account.
//!
//! Kept in memory, per process: a restart forgets them. Each table holds at most
//! [`MAX_TRACKED`] keys; when full, expired entries go first, then the one with the fewest
//! failures (the oldest of those): a spray of new keys flushes other sprayed keys, never the
//! counters of those attacked most.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Password checks running at once, at most.
pub const CHECKING: usize = 4;
/// Failed sign-ins one email may have from one client within [`WINDOW`].
pub const MAX_PAIR_FAILURES: u32 = 10;
/// Failed sign-ins one client may have within [`WINDOW`], whatever the emails.
pub const MAX_CLIENT_FAILURES: u32 = 30;
/// Failed sign-ins of one email, from any clients, that put it under attack.
pub const MAX_EMAIL_FAILURES: u32 = 10;
/// How long failures are counted from the first one.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Under attack, an email takes one try per this long from each client it does not know.
pub const SLOW: Duration = Duration::from_secs(30);
/// How long a client an email signed in from stays known to it.
pub const KNOWN_FOR: Duration = Duration::from_secs(30 * 86400);
/// Clients remembered per email.
const KNOWN_PER_EMAIL: usize = 8;
/// Keys each table remembers, at most.
const MAX_TRACKED: usize = 10_000;

/// Why a sign-in is not checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Enough passwords are being checked already.
    Busy,
    /// Too many failed sign-ins from this client, or for this email from it; refused for
    /// this long.
    TooManyFailures(Duration),
}

/// The sign-in limits of one running callhook (cheap to clone: one shared state).
#[derive(Clone)]
pub struct SignInThrottle {
    checking: Arc<Semaphore>,
    state: Arc<Mutex<State>>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            checking: Arc::new(Semaphore::new(CHECKING)),
            state: Arc::default(),
        }
    }
}

#[derive(Default)]
struct State {
    emails: Tally<String>,
    clients: Tally<IpAddr>,
    pairs: Tally<(String, Option<IpAddr>)>,
    /// Per email, the clients it signed in from and when last.
    known: HashMap<String, Vec<(IpAddr, Instant)>>,
}

impl State {
    fn knows(&self, email: &str, client: Option<IpAddr>, now: Instant) -> bool {
        let Some(c) = client else { return false };
        self.known.get(email).is_some_and(|cs| {
            cs.iter()
                .any(|(k, at)| *k == c && now.saturating_duration_since(*at) < KNOWN_FOR)
        })
    }
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
            let s = self.state();
            let pair = (email.to_owned(), client);
            let by_client =
                client.and_then(|c| s.clients.refused_for(&c, now, MAX_CLIENT_FAILURES));
            let by_pair = s.pairs.refused_for(&pair, now, MAX_PAIR_FAILURES);
            let slowed = if s.emails.failures(email, now) >= MAX_EMAIL_FAILURES
                && !s.knows(email, client, now)
            {
                s.pairs.wait_since_last(&pair, now, SLOW)
            } else {
                None
            };
            by_client.max(by_pair).max(slowed)
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
        let mut s = self.state();
        s.emails.fail(email, now);
        s.pairs.fail(&(email.to_owned(), client), now);
        if let Some(c) = client {
            s.clients.fail(&c, now);
        }
    }

    /// `email` signed in from `client`: that client is known to it from now on, and their
    /// failures together no longer count (the client's own, and the email's, still do).
    pub fn succeeded(&self, email: &str, client: Option<IpAddr>, now: Instant) {
        let mut s = self.state();
        s.pairs.windows.remove(&(email.to_owned(), client));
        let Some(c) = client else { return };
        if !s.known.contains_key(email) && s.known.len() >= MAX_TRACKED {
            s.known.retain(|_, cs| {
                cs.retain(|(_, at)| now.saturating_duration_since(*at) < KNOWN_FOR);
                !cs.is_empty()
            });
            // Still full: the email whose last sign-in is oldest makes room. Only a real
            // sign-in adds here, so no spray of guesses can flush it.
            if s.known.len() >= MAX_TRACKED
                && let Some(oldest) = s
                    .known
                    .iter()
                    .min_by_key(|(_, cs)| cs.iter().map(|(_, at)| *at).max())
                    .map(|(k, _)| k.clone())
            {
                s.known.remove(&oldest);
            }
        }
        let cs = s.known.entry(email.to_owned()).or_default();
        cs.retain(|(k, _)| *k != c);
        cs.push((c, now));
        if cs.len() > KNOWN_PER_EMAIL {
            cs.remove(0);
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counts, never a broken invariant.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
    last: Instant,
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
    /// Failures of `key` in its current window.
    fn failures<Q>(&self, key: &Q, now: Instant) -> u32
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.windows
            .get(key)
            .filter(|w| w.left(now).is_some())
            .map_or(0, |w| w.failures)
    }

    /// How long `key` stays refused, if it has failed `max` times or more.
    fn refused_for<Q>(&self, key: &Q, now: Instant, max: u32) -> Option<Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let w = self.windows.get(key)?;
        w.left(now).filter(|_| w.failures >= max)
    }

    /// How long until `every` has passed since `key`'s last failure, if it has not.
    fn wait_since_last(&self, key: &K, now: Instant, every: Duration) -> Option<Duration> {
        let w = self.windows.get(key).filter(|w| w.left(now).is_some())?;
        every
            .checked_sub(now.saturating_duration_since(w.last))
            .filter(|d| !d.is_zero())
    }

    fn fail<Q>(&mut self, key: &Q, now: Instant)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(w) = self.windows.get_mut(key) {
            if w.left(now).is_none() {
                w.since = now;
                w.failures = 0;
            }
            w.failures = w.failures.saturating_add(1);
            w.last = now;
            return;
        }
        if self.windows.len() >= MAX_TRACKED {
            self.windows.retain(|_, w| w.left(now).is_some());
        }
        // Still full: the key with the fewest failures (the oldest of those) makes room, so
        // the most attacked keys are the last ever forgotten.
        if self.windows.len() >= MAX_TRACKED
            && let Some(least) = self
                .windows
                .iter()
                .min_by_key(|(_, w)| (w.failures, w.since))
                .map(|(k, _)| k.clone())
        {
            self.windows.remove::<K>(&least);
        }
        self.windows.insert(
            key.to_owned(),
            Window {
                since: now,
                last: now,
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

    fn refused(t: &SignInThrottle, email: &str, client: Option<IpAddr>, at: Instant) -> bool {
        matches!(t.admit(email, client, at), Err(Refusal::TooManyFailures(_)))
    }

    #[test]
    fn an_email_and_client_pair_is_refused_after_ten_failures_until_the_window_ends() {
        let t = SignInThrottle::default();
        let start = Instant::now();
        let c = ip("198.51.100.9");
        fail_times(&t, EMAIL, c, MAX_PAIR_FAILURES - 1, start);
        assert!(t.admit(EMAIL, c, start).is_ok());
        t.failed(EMAIL, c, start + Duration::from_secs(60));
        assert_eq!(
            t.admit(EMAIL, c, start + Duration::from_secs(60)).err(),
            Some(Refusal::TooManyFailures(Duration::from_secs(240)))
        );
        assert!(t.admit("other@acme.example", c, start).is_ok());
        // The window counts from the first failure; a new one starts from scratch.
        assert!(t.admit(EMAIL, c, start + WINDOW).is_ok());
        t.failed(EMAIL, c, start + WINDOW);
        assert!(t.admit(EMAIL, c, start + WINDOW).is_ok());
    }

    #[test]
    fn a_client_is_refused_after_thirty_failures_whatever_the_email() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        for i in 0..MAX_CLIENT_FAILURES {
            t.failed(&format!("u{i}@acme.example"), ip("198.51.100.1"), now);
        }
        assert!(refused(&t, "new@acme.example", ip("198.51.100.1"), now));
        assert!(t.admit("new@acme.example", ip("198.51.100.2"), now).is_ok());
    }

    #[test]
    fn a_flood_from_other_clients_only_slows_clients_the_email_does_not_know() {
        let t = SignInThrottle::default();
        let start = Instant::now();
        let owner = ip("192.0.2.10");
        t.succeeded(EMAIL, owner, start);
        // A spread-out flood: each attacker stays under every per-client limit.
        for i in 0..50u32 {
            t.failed(EMAIL, ip(&format!("198.51.100.{i}")), start);
        }
        // The owner's own client is let through, again and again.
        for _ in 0..3 {
            assert!(t.admit(EMAIL, owner, start).is_ok());
        }
        // A client new to the email gets one try, then waits SLOW for the next.
        let newcomer = ip("203.0.113.5");
        assert!(t.admit(EMAIL, newcomer, start).is_ok());
        t.failed(EMAIL, newcomer, start);
        assert_eq!(
            t.admit(EMAIL, newcomer, start + Duration::from_secs(10))
                .err(),
            Some(Refusal::TooManyFailures(Duration::from_secs(20)))
        );
        assert!(t.admit(EMAIL, newcomer, start + SLOW).is_ok());
        // An attacker that already failed is slowed too.
        assert!(refused(&t, EMAIL, ip("198.51.100.3"), start));
        // Other emails are untouched.
        assert!(t.admit("other@acme.example", newcomer, start).is_ok());
    }

    #[test]
    fn signing_in_forgets_the_pairs_failures_not_the_clients() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        let c = ip("198.51.100.1");
        fail_times(&t, EMAIL, c, MAX_PAIR_FAILURES - 1, now);
        t.succeeded(EMAIL, c, now);
        t.failed(EMAIL, c, now);
        assert!(t.admit(EMAIL, c, now).is_ok());
        fail_times(&t, "x@acme.example", c, MAX_CLIENT_FAILURES, now);
        assert!(refused(&t, EMAIL, c, now));
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
    fn a_spray_of_new_keys_cannot_flush_the_attacked() {
        let t = SignInThrottle::default();
        let start = Instant::now();
        let attacker = ip("198.51.100.1");
        fail_times(&t, EMAIL, attacker, MAX_PAIR_FAILURES, start);
        assert!(refused(&t, EMAIL, attacker, start));
        // Then a spray of more new emails than the tables hold, from many clients.
        for i in 0..MAX_TRACKED + 50 {
            let c = IpAddr::from(std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | i as u128));
            t.failed(&format!("u{i}@acme.example"), Some(c), start);
        }
        {
            let s = t.state();
            assert_eq!(s.emails.windows.len(), MAX_TRACKED);
            assert_eq!(s.pairs.windows.len(), MAX_TRACKED);
            assert!(s.clients.windows.len() <= MAX_TRACKED);
        }
        // The attacked email and its attacker are still counted.
        assert!(refused(&t, EMAIL, attacker, start));
        assert!(t.state().emails.failures(EMAIL, start) >= MAX_EMAIL_FAILURES);
        // Expired windows make room first.
        let later = start + WINDOW;
        t.failed("late@acme.example", None, later);
        assert_eq!(t.state().emails.windows.len(), 1);
    }
}
