//! Phone numbers as a PBX writes them (`1001`, `0 80 6525 1305`, `918065251305`, `<unknown>`)
//! turned into E.164, or into nothing when they cannot be one: an internal extension is never
//! passed off as a customer's number.

use std::collections::BTreeMap;

use crate::core::number::E164;

/// Fewer digits than this is an extension or a short code, never a phone number.
const MIN_NUMBER_DIGITS: usize = 7;
/// Bare digit strings at least this long already carry their country code (`918065251305`,
/// `14155550100`); shorter ones are national numbers that need it added.
const MIN_INTERNATIONAL_DIGITS: usize = 11;

/// How one PBX writes numbers, and which numbers are the account's DIDs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NumberPlan {
    /// Digits of the country code national numbers belong to (`91`), if any.
    pub country_code: Option<String>,
    /// PBX numbers or extensions (as the PBX writes them) that stand for a DID.
    pub dids: BTreeMap<String, E164>,
    /// The DID of calls whose own DID cannot be found.
    pub default_did: Option<E164>,
}

impl NumberPlan {
    /// `raw` in E.164, or `None` when it is no phone number (an extension, `<unknown>`, a SIP
    /// user name) or is national and no country code is configured.
    ///
    /// Rules, in order: `+…` is E.164 already; `00…` is international; `0…` is national with a
    /// trunk prefix; bare digits of at least 11 digits that start with the country code carry
    /// it already; other bare digits of at least 7 digits are national; anything shorter is an
    /// extension. Spaces, dashes, dots and parentheses are ignored.
    pub fn to_e164(&self, raw: &str) -> Option<E164> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix('+') {
            return E164::parse(&format!("+{rest}")).ok();
        }
        let mut digits = String::with_capacity(raw.len());
        for c in raw.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return None,
            }
        }
        let plus = |d: &str| E164::parse(&format!("+{d}")).ok();
        if let Some(intl) = digits.strip_prefix("00") {
            return plus(intl);
        }
        let cc = self.country_code.as_deref();
        if let Some(national) = digits.strip_prefix('0') {
            return cc.and_then(|cc| plus(&format!("{cc}{national}")));
        }
        if digits.len() < MIN_NUMBER_DIGITS {
            return None;
        }
        match cc {
            Some(cc) if digits.len() >= MIN_INTERNATIONAL_DIGITS && digits.starts_with(cc) => {
                plus(&digits)
            }
            Some(cc) => plus(&format!("{cc}{digits}")),
            None => None,
        }
    }

    /// The DID for what the PBX shows as the dialed number (or, for calls the PBX placed, the
    /// caller id it presented): the `dids` table first, then the number itself, then the
    /// default. `None` means the call has no DID and cannot be reported.
    pub fn did(&self, raw: Option<&str>) -> Option<E164> {
        let from_raw = raw.and_then(|r| {
            let r = r.trim();
            self.dids.get(r).cloned().or_else(|| self.to_e164(r))
        });
        from_raw.or_else(|| self.default_did.clone())
    }

    /// Whether `raw` names a DID by itself (through the table or as a number), so that there
    /// is no need to wait for a better source or to fall back to the default.
    pub fn knows(&self, raw: &str) -> bool {
        let r = raw.trim();
        self.dids.contains_key(r) || self.to_e164(r).is_some()
    }
}

/// Whether a PBX caller-id field holds anything at all (`<unknown>` and empty do not).
pub fn present(raw: &str) -> bool {
    let r = raw.trim();
    !r.is_empty() && !r.eq_ignore_ascii_case("<unknown>") && !r.eq_ignore_ascii_case("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan(cc: Option<&str>) -> NumberPlan {
        NumberPlan {
            country_code: cc.map(str::to_owned),
            dids: BTreeMap::from([("300".to_owned(), E164::parse("+918065251300").unwrap())]),
            default_did: Some(E164::parse("+918065251305").unwrap()),
        }
    }

    #[test]
    fn pbx_spellings_become_e164_or_nothing() {
        let p = plan(Some("91"));
        for (raw, want) in [
            ("+918065251305", Some("+918065251305")),
            ("+91 80652 51305", Some("+918065251305")),
            ("00918065251305", Some("+918065251305")),
            ("08065251305", Some("+918065251305")),
            ("080-6525-1305", Some("+918065251305")),
            ("8065251305", Some("+918065251305")),
            ("918065251305", Some("+918065251305")),
            ("9123456789", Some("+919123456789")),
            ("5550001", Some("+915550001")),
            ("1001", None),
            ("300", None),
            ("", None),
            ("<unknown>", None),
            ("anonymous", None),
            ("agent1", None),
            ("+12", None),
            ("0", None),
            ("00", None),
        ] {
            assert_eq!(p.to_e164(raw).as_ref().map(E164::as_str), want, "{raw:?}");
        }
    }

    #[test]
    fn national_numbers_need_a_country_code() {
        let p = plan(None);
        assert_eq!(p.to_e164("8065251305"), None);
        assert_eq!(p.to_e164("08065251305"), None);
        assert_eq!(
            p.to_e164("00442079460958").unwrap().as_str(),
            "+442079460958"
        );
        assert_eq!(p.to_e164("+14155550100").unwrap().as_str(), "+14155550100");
    }

    #[test]
    fn north_american_numbers() {
        let p = plan(Some("1"));
        assert_eq!(p.to_e164("4155550100").unwrap().as_str(), "+14155550100");
        assert_eq!(p.to_e164("14155550100").unwrap().as_str(), "+14155550100");
    }

    #[test]
    fn dids_come_from_the_table_then_the_number_then_the_default() {
        let p = plan(Some("91"));
        assert_eq!(p.did(Some("300")).unwrap().as_str(), "+918065251300");
        assert_eq!(p.did(Some(" 300 ")).unwrap().as_str(), "+918065251300");
        assert_eq!(p.did(Some("8065251399")).unwrap().as_str(), "+918065251399");
        assert_eq!(p.did(Some("4001")).unwrap().as_str(), "+918065251305");
        assert_eq!(p.did(None).unwrap().as_str(), "+918065251305");
        assert!(p.knows("300") && p.knows("8065251399") && !p.knows("4001"));
        let strict = NumberPlan {
            default_did: None,
            ..plan(None)
        };
        assert_eq!(strict.did(Some("4001")), None);
    }

    #[test]
    fn absent_caller_ids() {
        assert!(!present("<unknown>") && !present(" ") && !present("Unknown"));
        assert!(present("1001"));
    }

    proptest! {
        #[test]
        fn never_panics_and_yields_valid_numbers(raw in "\\PC{0,30}", cc in proptest::option::of("[1-9][0-9]{0,2}")) {
            let p = NumberPlan { country_code: cc, ..NumberPlan::default() };
            if let Some(n) = p.to_e164(&raw) {
                prop_assert_eq!(E164::parse(n.as_str()).unwrap(), n);
            }
        }
    }
}
