//! A webhook's signing secrets over time (SPEC §6): one current secret, and the ones rotated
//! out less than [`SECRET_OVERLAP`] ago, which keep signing so a receiver can switch to the new
//! secret without rejecting a single request.

use jiff::{SignedDuration, Timestamp};

use super::sign::Secret;

/// How long a rotated-out secret keeps signing.
pub const SECRET_OVERLAP: SignedDuration = SignedDuration::from_hours(24);

/// A webhook signing secret and how long it stays valid.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSecret {
    pub secret: Secret,
    pub created_at: Timestamp,
    /// `None` for the current secret; set when it was rotated out.
    pub expires_at: Option<Timestamp>,
}

impl StoredSecret {
    /// A fresh current secret.
    pub fn generate(now: Timestamp) -> StoredSecret {
        StoredSecret {
            secret: Secret::generate(),
            created_at: now,
            expires_at: None,
        }
    }

    /// Whether it still signs at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}

/// The secret that signs from now on; `secrets` is newest first.
pub fn current(secrets: &[StoredSecret]) -> Option<&StoredSecret> {
    secrets.iter().find(|s| s.expires_at.is_none())
}

/// Makes a new current secret at the front; the old current one keeps signing for
/// [`SECRET_OVERLAP`], and secrets already past their overlap are dropped.
pub fn rotate(secrets: &mut Vec<StoredSecret>, now: Timestamp) {
    let expires = now.saturating_add(SECRET_OVERLAP).unwrap_or(now);
    for s in secrets.iter_mut() {
        if s.expires_at.is_none() {
            s.expires_at = Some(expires);
        }
    }
    secrets.retain(|s| s.is_live(now));
    secrets.insert(0, StoredSecret::generate(now));
}

/// The secrets that sign requests at `now`: the current one and those rotated out less than
/// [`SECRET_OVERLAP`] ago.
pub fn live(secrets: &[StoredSecret], now: Timestamp) -> Vec<&Secret> {
    secrets
        .iter()
        .filter(|s| s.is_live(now))
        .map(|s| &s.secret)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn rotation_keeps_the_old_secret_signing_for_a_day() {
        let mut secrets = vec![StoredSecret::generate(at("2026-11-01T00:00:00Z"))];
        let old = secrets[0].secret.clone();
        let now = at("2026-11-27T12:00:00Z");
        rotate(&mut secrets, now);
        assert_eq!(secrets.len(), 2);
        let new = &current(&secrets).unwrap().secret;
        assert_ne!(new, &old, "a new secret");
        assert_eq!(secrets[0].secret, *new, "newest first");
        assert_eq!(secrets[1].expires_at, Some(at("2026-11-28T12:00:00Z")));
        assert_eq!(
            live(&secrets, now),
            [new, &old],
            "both sign during the overlap"
        );
        let later = at("2026-11-28T12:00:00Z");
        assert_eq!(
            live(&secrets, later),
            [new],
            "the old one stops at its expiry"
        );
    }

    #[test]
    fn rotating_again_drops_secrets_past_their_overlap_only() {
        let start = at("2026-11-27T00:00:00Z");
        let mut secrets = vec![StoredSecret::generate(start)];
        rotate(&mut secrets, at("2026-11-27T01:00:00Z"));
        rotate(&mut secrets, at("2026-11-27T02:00:00Z"));
        assert_eq!(
            secrets.len(),
            3,
            "both rotated-out secrets are still in their overlap"
        );
        assert_eq!(
            secrets.iter().filter(|s| s.expires_at.is_none()).count(),
            1,
            "exactly one current secret"
        );
        rotate(&mut secrets, at("2026-11-28T01:30:00Z"));
        assert_eq!(secrets.len(), 3, "the first rotated-out one is gone");
        assert!(secrets.iter().all(|s| s.created_at > start));
    }

    #[test]
    fn without_a_current_secret_nothing_is_current() {
        let now = at("2026-11-27T00:00:00Z");
        let mut expired = StoredSecret::generate(now);
        expired.expires_at = Some(now);
        assert!(current(std::slice::from_ref(&expired)).is_none());
        assert!(live(std::slice::from_ref(&expired), now).is_empty());
    }
}
