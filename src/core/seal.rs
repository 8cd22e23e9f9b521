//! Secrets at rest (SPEC §14): a value is sealed with ChaCha20-Poly1305 (an AEAD) under a
//! 32-byte master key before it is stored, and opened when it is read.
//!
//! A sealed value is text: `v1.<kid>.<nonce>.<ciphertext>`, where `kid` is the first 8 hex
//! digits of the SHA-256 of the key that sealed it (it names the key, never reveals it) and
//! nonce and ciphertext are unpadded base64url. The associated data binds a value to its
//! place (for example `webhook-secret:wh_…`), so a ciphertext copied into another row does not
//! open there. A [`Keyring`] holds the current key (which seals) and previous keys (which only
//! open), so values sealed under an old key keep opening until `callhook rekey` re-seals them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

/// What a sealed value starts with.
pub const PREFIX: &str = "v1.";

/// Why a value did not open, or a key was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the value is not a sealed value (v1.<kid>.<nonce>.<ciphertext>)")]
    Malformed,
    #[error("the value was sealed with key id {0}, which is not among the keys given")]
    UnknownKey(String),
    #[error("the value does not open with key id {0} (changed, or moved from another place)")]
    Tampered(String),
    #[error("a secret key is 32 bytes in base64 ({0})")]
    BadKey(String),
    #[error("no secret key is loaded")]
    NoKey,
}

/// One 32-byte master key.
pub struct Key {
    kid: String,
    key: LessSafeKey,
    bytes: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.kid)
    }
}

impl Clone for Key {
    fn clone(&self) -> Key {
        Key::from_bytes(self.bytes)
    }
}

impl Key {
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        let kid = crate::core::credentials::hex(&Sha256::digest(bytes)[..4]);
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).expect("a 32-byte key");
        Key {
            kid,
            key: LessSafeKey::new(unbound),
            bytes,
        }
    }

    /// A new random key.
    pub fn generate() -> Key {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes[..]);
        Key::from_bytes(bytes)
    }

    /// Reads a key written as base64 (standard or url-safe, padded or not); surrounding
    /// whitespace (a key file's newline) is ignored.
    pub fn parse(s: &str) -> Result<Key, SealError> {
        let s = s.trim();
        let bytes = STANDARD
            .decode(s)
            .or_else(|_| B64.decode(s.trim_end_matches('=')))
            .map_err(|e| SealError::BadKey(format!("not base64: {e}")))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| SealError::BadKey(format!("it has {} bytes", b.len())))?;
        Ok(Key::from_bytes(bytes))
    }

    /// The key as standard base64, as a key file or the `secret_key` setting holds it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// The key's id: the first 8 hex digits of its SHA-256.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Seals `plain` for the place `ad` names.
    pub fn seal(&self, ad: &str, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ad.as_bytes()),
                &mut buf,
            )
            .expect("ChaCha20-Poly1305 seals any length callhook stores");
        format!(
            "{PREFIX}{}.{}.{}",
            self.kid,
            B64.encode(nonce),
            B64.encode(&buf)
        )
    }

    fn open(
        &self,
        ad: &str,
        nonce: [u8; NONCE_LEN],
        mut ct: Vec<u8>,
    ) -> Result<Vec<u8>, SealError> {
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ad.as_bytes()),
                &mut ct,
            )
            .map_err(|_| SealError::Tampered(self.kid.clone()))?;
        Ok(plain.to_vec())
    }
}

/// Whether `s` is a sealed value (as opposed to one stored before sealing).
pub fn is_sealed(s: &str) -> bool {
    s.starts_with(PREFIX)
}

/// The key id a sealed value names.
pub fn kid_of(sealed: &str) -> Option<&str> {
    sealed.strip_prefix(PREFIX)?.split('.').next()
}

/// The keys a process holds: the current one seals, every one opens.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    current: Option<Key>,
    previous: Vec<Key>,
}

impl Keyring {
    pub fn new(current: Key, previous: Vec<Key>) -> Keyring {
        let previous = previous
            .into_iter()
            .filter(|k| k.kid != current.kid)
            .collect();
        Keyring {
            current: Some(current),
            previous,
        }
    }

    /// A keyring with no key: it seals and opens nothing (a store opened only to migrate).
    pub fn empty() -> Keyring {
        Keyring::default()
    }

    pub fn current(&self) -> Option<&Key> {
        self.current.as_ref()
    }

    /// The key that seals's id.
    pub fn current_kid(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.kid())
    }

    /// Every key id held, current first.
    pub fn kids(&self) -> Vec<&str> {
        self.current
            .iter()
            .chain(&self.previous)
            .map(|k| k.kid())
            .collect()
    }

    /// Seals under the current key.
    pub fn seal(&self, ad: &str, plain: &[u8]) -> Result<String, SealError> {
        Ok(self
            .current
            .as_ref()
            .ok_or(SealError::NoKey)?
            .seal(ad, plain))
    }

    /// Seals a text value.
    pub fn seal_str(&self, ad: &str, plain: &str) -> Result<String, SealError> {
        self.seal(ad, plain.as_bytes())
    }

    /// Opens a value sealed under any key held.
    pub fn open(&self, ad: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let rest = sealed.strip_prefix(PREFIX).ok_or(SealError::Malformed)?;
        let mut parts = rest.split('.');
        let (Some(kid), Some(nonce), Some(ct), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Malformed);
        };
        let nonce: [u8; NONCE_LEN] = B64
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(SealError::Malformed)?;
        let ct = B64.decode(ct).map_err(|_| SealError::Malformed)?;
        let key = self
            .current
            .iter()
            .chain(&self.previous)
            .find(|k| k.kid == kid)
            .ok_or_else(|| SealError::UnknownKey(kid.to_owned()))?;
        key.open(ad, nonce, ct)
    }

    /// Opens a sealed text value.
    pub fn open_str(&self, ad: &str, sealed: &str) -> Result<String, SealError> {
        String::from_utf8(self.open(ad, sealed)?).map_err(|_| SealError::Malformed)
    }

    /// A value as stored, opened: sealed values are opened, a value stored before sealing
    /// (not starting with `v1.`) is taken as it is.
    pub fn open_or_plain(&self, ad: &str, stored: &str) -> Result<String, SealError> {
        if is_sealed(stored) {
            self.open_str(ad, stored)
        } else {
            Ok(stored.to_owned())
        }
    }

    /// Whether a stored value needs sealing again: stored plain, or under another key than
    /// the current one.
    pub fn needs_reseal(&self, stored: &str) -> bool {
        !is_sealed(stored) || kid_of(stored) != self.current_kid()
    }
}

/// Associated data of a webhook's signing secrets.
pub fn webhook_secret_ad(webhook_id: &str) -> String {
    format!("webhook-secret:{webhook_id}")
}

/// Associated data of a webhook's custom header value.
pub fn webhook_header_ad(webhook_id: &str, name: &str) -> String {
    format!("webhook-header:{webhook_id}:{}", name.to_ascii_lowercase())
}

/// Associated data of the check value that tells whether a key opens a database's secrets.
pub const CHECK_AD: &str = "callhook-key-check";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ring() -> Keyring {
        Keyring::new(Key::generate(), vec![])
    }

    #[test]
    fn round_trip_and_format() {
        let k = ring();
        let s = k.seal_str("here", "whsec_abc").unwrap();
        assert!(s.starts_with(&format!("v1.{}.", k.current_kid().unwrap())));
        assert_eq!(s.split('.').count(), 4);
        assert!(!s.contains("whsec_abc"));
        assert_eq!(k.open_str("here", &s).unwrap(), "whsec_abc");
        assert_ne!(
            k.seal_str("here", "x").unwrap(),
            k.seal_str("here", "x").unwrap(),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn kid_is_the_first_8_hex_of_the_keys_sha256() {
        let k = Key::from_bytes([0u8; 32]);
        // sha256 of 32 zero bytes: 66687aad…
        assert_eq!(k.kid(), "66687aad");
        assert_eq!(Key::parse(&k.to_base64()).unwrap().kid(), "66687aad");
    }

    #[test]
    fn wrong_key_wrong_place_and_tampering_do_not_open() {
        let k = ring();
        let s = k.seal_str("webhook-secret:wh_1", "secret").unwrap();
        assert!(matches!(
            ring().open_str("webhook-secret:wh_1", &s),
            Err(SealError::UnknownKey(_))
        ));
        // Another key that claims the same id still does not open it.
        let other = Keyring::new(Key::generate(), vec![]);
        let forged = s.replacen(k.current_kid().unwrap(), other.current_kid().unwrap(), 1);
        assert!(matches!(
            other.open_str("webhook-secret:wh_1", &forged),
            Err(SealError::Tampered(_))
        ));
        assert!(matches!(
            k.open_str("webhook-secret:wh_2", &s),
            Err(SealError::Tampered(_))
        ));
        let mut bytes = s.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(
            k.open_str("webhook-secret:wh_1", &String::from_utf8(bytes).unwrap())
                .is_err()
        );
        for bad in ["", "v1.", "v1.a.b", "v1.a.b.c.d", "whsec_x", "v1.k.!!.!!"] {
            assert!(k.open("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn previous_keys_open_the_current_one_seals() {
        let old = Key::generate();
        let before = Keyring::new(old.clone(), vec![]);
        let s = before.seal_str("p", "v").unwrap();
        let new = Key::generate();
        let after = Keyring::new(new.clone(), vec![old.clone()]);
        assert_eq!(after.open_str("p", &s).unwrap(), "v");
        assert!(after.needs_reseal(&s));
        let resealed = after.seal_str("p", "v").unwrap();
        assert!(!after.needs_reseal(&resealed));
        assert_eq!(kid_of(&resealed), Some(new.kid()));
        assert!(Keyring::new(new, vec![]).open("p", &s).is_err());
        assert_eq!(after.kids(), [after.current_kid().unwrap(), old.kid()]);
    }

    #[test]
    fn plain_values_are_read_as_they_are_and_need_sealing() {
        let k = ring();
        assert_eq!(k.open_or_plain("p", "whsec_abc").unwrap(), "whsec_abc");
        assert!(k.needs_reseal("whsec_abc"));
        assert_eq!(Keyring::empty().seal("p", b"x"), Err(SealError::NoKey));
    }

    #[test]
    fn keys_parse_from_base64_only_at_32_bytes() {
        let k = Key::generate();
        assert_eq!(
            Key::parse(&format!(" {}\n", k.to_base64())).unwrap().kid(),
            k.kid()
        );
        assert!(matches!(Key::parse("c2hvcnQ="), Err(SealError::BadKey(_))));
        assert!(matches!(
            Key::parse("not base64!"),
            Err(SealError::BadKey(_))
        ));
    }

    proptest! {
        #[test]
        fn any_value_round_trips_and_any_change_is_refused(
            plain in proptest::collection::vec(any::<u8>(), 0..300),
            ad in ".{0,40}",
            flip in any::<prop::sample::Index>(),
        ) {
            let k = ring();
            let s = k.seal(&ad, &plain).unwrap();
            prop_assert_eq!(k.open(&ad, &s).unwrap(), plain.clone());
            let other_ad = format!("{ad}x");
            prop_assert!(k.open(&other_ad, &s).is_err());
            // Change one character of the nonce or ciphertext.
            let head = s.len() - s.split('.').skip(2).map(|p| p.len() + 1).sum::<usize>();
            let i = head + 1 + flip.index(s.len() - head - 1);
            let mut b = s.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(b).unwrap();
            prop_assert_ne!(&changed, &s);
            prop_assert!(k.open(&ad, &changed).is_err());
        }
    }
}
