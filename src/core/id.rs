//! Prefixed, time-ordered ids (`wh_01JDX…`): a UUIDv7 written in Crockford base32, so ids sort
//! by creation time as plain strings and read like the ULIDs people know.

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new id with `prefix` (`acct`, `wh`, `key`, `evt`, `dlv`, `usr`, …).
pub fn new_id(prefix: &str) -> String {
    let value = uuid::Uuid::now_v7().as_u128();
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    // 128 bits in 26 base32 digits: the first digit carries the top 3 bits.
    for i in (0..26).rev() {
        let digit = ((value >> (i * 5)) & 0x1f) as usize;
        out.push(ALPHABET[digit] as char);
    }
    out
}

/// Whether `s` looks like an id made by [`new_id`] with `prefix`; used to answer 404 early.
pub fn is_id(prefix: &str, s: &str) -> bool {
    s.len() == prefix.len() + 27
        && s.starts_with(prefix)
        && s.as_bytes()[prefix.len()] == b'_'
        && s[prefix.len() + 1..].bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_sort_by_time() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("wh")).collect();
        assert!(ids.iter().all(|id| is_id("wh", id)), "{ids:?}");
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(!is_id("acct", &ids[0]));
        assert!(!is_id("wh", "wh_short"));
    }
}
