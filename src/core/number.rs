//! Phone numbers in E.164 (`+918065251305`): parsed once at the edge, trusted after.

use std::fmt;

/// A phone number in E.164 form: `+`, a country code that does not start with 0, and at most
/// 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

/// The fewest digits we accept: the shortest numbering plans in use have 7 digits with the
/// country code.
const MIN_DIGITS: usize = 7;
const MAX_DIGITS: usize = 15;

impl E164 {
    /// Parses and normalises a number. Spaces, dashes, dots and parentheses between digits are
    /// dropped (`+91 80652-51305` becomes `+918065251305`); anything else is refused with a
    /// message that says what is wrong.
    pub fn parse(input: &str) -> Result<E164, String> {
        let s = input.trim();
        let Some(rest) = s.strip_prefix('+') else {
            return Err(format!(
                "{s:?} is not in E.164 form: it must start with + and the country code, like +918065251305"
            ));
        };
        let mut digits = String::with_capacity(MAX_DIGITS + 1);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(format!("{s:?} is not a phone number: {c:?} is not a digit")),
            }
        }
        let n = digits.len() - 1;
        if n < MIN_DIGITS {
            return Err(format!(
                "{s:?} is too short for E.164 ({n} digits, at least {MIN_DIGITS})"
            ));
        }
        if n > MAX_DIGITS {
            return Err(format!(
                "{s:?} is too long for E.164 ({n} digits, at most {MAX_DIGITS})"
            ));
        }
        if digits.as_bytes()[1] == b'0' {
            return Err(format!(
                "{s:?} is not in E.164 form: country codes do not start with 0"
            ));
        }
        Ok(E164(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_common_spellings() {
        for (input, want) in [
            ("+918065251305", "+918065251305"),
            (" +91 80652 51305 ", "+918065251305"),
            ("+1 (415) 555-0100", "+14155550100"),
            ("+44.20.7946.0958", "+442079460958"),
            ("+2901234", "+2901234"),
        ] {
            assert_eq!(E164::parse(input).unwrap().as_str(), want, "{input}");
        }
    }

    #[test]
    fn refuses_what_is_not_e164() {
        for (input, why) in [
            ("918065251305", "must start with +"),
            ("", "must start with +"),
            ("+", "too short"),
            ("+123456", "too short"),
            ("+1234567890123456", "too long"),
            ("+0918065251305", "do not start with 0"),
            ("+91806525130x", "not a digit"),
            ("+91 80652 51305 ext 2", "not a digit"),
            ("++918065251305", "not a digit"),
        ] {
            let err = E164::parse(input).unwrap_err();
            assert!(err.contains(why), "{input:?}: {err}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_output_is_canonical(s in "\\PC{0,40}") {
            if let Ok(n) = E164::parse(&s) {
                let t = n.as_str();
                prop_assert!(t.starts_with('+'));
                prop_assert!(t[1..].bytes().all(|b| b.is_ascii_digit()));
                prop_assert!((MIN_DIGITS..=MAX_DIGITS).contains(&(t.len() - 1)));
                prop_assert_eq!(E164::parse(t).unwrap(), n.clone());
            }
        }

        #[test]
        fn every_valid_number_parses_to_itself(cc in 1u8..=9, rest in "[0-9]{6,14}") {
            let s = format!("+{cc}{rest}");
            let n = E164::parse(&s).unwrap();
            prop_assert_eq!(n.as_str(), s.as_str());
        }
    }
}
