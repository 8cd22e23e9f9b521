//! Templates (SPEC §11): literal text with references to a trigger's parameters, `$name` or
//! `${name}`, and `$$` for a literal `$`. A template is parsed once, when the webhook is
//! saved, into literal parts and [`Param`]s, so rendering a delivery only copies text and
//! values; nothing is scanned again.

use std::fmt;

use serde_json::Value;

use super::render::ParamValue;
use super::trigger::{Param, Trigger};

/// One parsed template (the default is the empty one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Box<str>),
    Ref(Param),
}

/// What is wrong with a template's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `$name` where the trigger has no parameter `name`.
    Unknown { name: String, trigger: Trigger },
    /// A `$` that starts no reference (`$` at the end, `$ `, `$1`).
    LoneDollar,
    /// `${` without its `}`.
    Unclosed,
    /// `${}` or `${ name }`: the braces hold no parameter name.
    BadName(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unknown { name, trigger } => {
                let names: Vec<&str> = trigger.params().map(Param::name).collect();
                write!(
                    f,
                    "${name} is not a parameter of {}; it has {}",
                    trigger.id(),
                    names.join(", ")
                )
            }
            TemplateError::LoneDollar => f.write_str(
                "a $ must start a parameter ($name or ${name}); write $$ for a literal $",
            ),
            TemplateError::Unclosed => f.write_str("${ is not closed with }"),
            TemplateError::BadName(s) => {
                write!(f, "${{{s}}} does not name a parameter; write ${{name}}")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Template {
    /// Parses `src`, resolving every reference against `trigger`'s parameters. A `$name`
    /// reference takes the longest name it can (`$call_idx` names `call_idx`); `${call_id}x`
    /// puts text right after one.
    pub fn parse(src: &str, trigger: Trigger) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = src;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, next) = if let Some(after) = after.strip_prefix('$') {
                literal.push('$');
                rest = after;
                continue;
            } else if let Some(inner) = after.strip_prefix('{') {
                let end = inner.find('}').ok_or(TemplateError::Unclosed)?;
                let name = &inner[..end];
                if name.is_empty()
                    || !name.starts_with(is_name_start)
                    || !name.chars().all(is_name_char)
                {
                    return Err(TemplateError::BadName(name.to_owned()));
                }
                (name, &inner[end + 1..])
            } else if after.starts_with(is_name_start) {
                let end = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
                (&after[..end], &after[end..])
            } else {
                return Err(TemplateError::LoneDollar);
            };
            let param = trigger.params().find(|p| p.name() == name).ok_or_else(|| {
                TemplateError::Unknown {
                    name: name.to_owned(),
                    trigger,
                }
            })?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal).into()));
            }
            parts.push(Part::Ref(param));
            rest = next;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.into()));
        }
        Ok(Template { parts })
    }

    /// A template of plain text, with no references (`$` is just a `$`).
    pub fn literal(text: &str) -> Template {
        Template {
            parts: if text.is_empty() {
                Vec::new()
            } else {
                vec![Part::Literal(text.into())]
            },
        }
    }

    /// The template's text again, with `$` written `$$` and references as `${name}`: parsing
    /// it gives this template back.
    pub fn source(&self) -> String {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(l) => s.push_str(&l.replace('$', "$$")),
                Part::Ref(r) => {
                    s.push_str("${");
                    s.push_str(r.name());
                    s.push('}');
                }
            }
        }
        s
    }

    /// The parameter this template is exactly, when it is one reference and nothing else:
    /// such a value keeps the parameter's JSON type.
    pub fn single(&self) -> Option<Param> {
        match self.parts.as_slice() {
            [Part::Ref(p)] => Some(*p),
            _ => None,
        }
    }

    /// Every parameter it refers to, in order.
    pub fn references(&self) -> impl Iterator<Item = Param> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(*r),
            Part::Literal(_) => None,
        })
    }

    /// Whether it holds any reference at all.
    pub fn has_references(&self) -> bool {
        self.references().next().is_some()
    }

    /// The literal text before the first reference (all of it when there is none).
    pub fn leading_literal(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(l)) => l,
            _ => "",
        }
    }

    /// Renders into `out`: literal parts as they are, each reference's value in its form
    /// spelling (lists comma-joined, null empty) passed through `escape`.
    pub fn render_into<'v>(
        &self,
        out: &mut String,
        value: &impl Fn(Param) -> ParamValue<'v>,
        escape: Escape,
    ) {
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Ref(r) => escape.push(out, &value(*r).to_form()),
            }
        }
    }

    /// The rendered text (see [`Template::render_into`]).
    pub fn render<'v>(&self, value: &impl Fn(Param) -> ParamValue<'v>, escape: Escape) -> String {
        let mut s = String::new();
        self.render_into(&mut s, value, escape);
        s
    }

    /// The value a JSON body gets: the parameter itself (number, array, null) for a single
    /// reference, else the rendered string.
    pub fn render_json<'v>(&self, value: &impl Fn(Param) -> ParamValue<'v>) -> Value {
        match self.single() {
            Some(p) => value(p).to_json(),
            None => Value::String(self.render(value, Escape::None)),
        }
    }
}

/// How a substituted value is written where it lands. Literal text is never changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As it is (body values; form encoding escapes the whole value later).
    None,
    /// Percent-encoded except RFC 3986's unreserved characters (in a URL's path or query).
    Url,
    /// Control characters (CR, LF, NUL and the rest) replaced by a space (in a header value).
    Header,
}

impl Escape {
    fn push(self, out: &mut String, s: &str) {
        match self {
            Escape::None => out.push_str(s),
            Escape::Url => {
                for b in s.bytes() {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                        out.push(b as char);
                    } else {
                        out.push('%');
                        out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                        out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
                    }
                }
            }
            Escape::Header => out.extend(s.chars().map(|c| if c.is_control() { ' ' } else { c })),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use proptest::prelude::*;

    fn value(p: Param) -> ParamValue<'static> {
        match p {
            Param::CustomerNumber => ParamValue::Str(Cow::Borrowed("+919812345678")),
            Param::CallId => ParamValue::Str(Cow::Borrowed("1732680000.1042")),
            Param::Duration => ParamValue::Int(42),
            Param::LegId => ParamValue::Null,
            Param::HangupCause => ParamValue::Str(Cow::Borrowed("a\r\nX-Evil: 1\u{0}")),
            _ => ParamValue::Str(Cow::Borrowed("v")),
        }
    }

    fn render(src: &str) -> String {
        Template::parse(src, Trigger::CallMissed)
            .unwrap()
            .render(&value, Escape::None)
    }

    #[test]
    fn references_dollars_and_braces() {
        assert_eq!(render("$customer_number"), "+919812345678");
        assert_eq!(render("lead-${call_id}"), "lead-1732680000.1042");
        assert_eq!(render("${call_id}x"), "1732680000.1042x");
        assert_eq!(render("$call_id.x"), "1732680000.1042.x");
        assert_eq!(render("cost: $$5"), "cost: $5");
        assert_eq!(render("$$$call_id"), "$1732680000.1042");
        assert_eq!(render("[$leg_id]"), "[]");
        assert_eq!(render("$duration s"), "42 s");
        assert_eq!(render("plain"), "plain");
        assert_eq!(render(""), "");
    }

    #[test]
    fn mistakes_are_named() {
        let parse = |s| Template::parse(s, Trigger::CallMissed);
        match parse("$call_idx") {
            Err(TemplateError::Unknown { name, .. }) => assert_eq!(name, "call_idx"),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse("5$"), Err(TemplateError::LoneDollar));
        assert_eq!(parse("$ 5"), Err(TemplateError::LoneDollar));
        assert_eq!(parse("$5"), Err(TemplateError::LoneDollar));
        assert_eq!(parse("${call_id"), Err(TemplateError::Unclosed));
        assert_eq!(parse("${}"), Err(TemplateError::BadName(String::new())));
        assert_eq!(
            parse("${ call_id }"),
            Err(TemplateError::BadName(" call_id ".into()))
        );
        // A parameter of another trigger is unknown here, and the message lists ours.
        let e = parse("$digit").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("$digit is not a parameter of call_missed; it has event_id, trigger,"),
            "{msg}"
        );
        assert!(msg.contains("missed_extensions"), "{msg}");
    }

    #[test]
    fn a_single_reference_keeps_its_json_type() {
        let t = |s| Template::parse(s, Trigger::CallMissed).unwrap();
        assert_eq!(t("$duration").render_json(&value), Value::from(42));
        assert_eq!(t("${leg_id}").render_json(&value), Value::Null);
        assert_eq!(t("$duration ").render_json(&value), Value::from("42 "));
        assert_eq!(t("x").render_json(&value), Value::from("x"));
        assert_eq!(
            Template::parse("$extensions", Trigger::DialedOnExtension)
                .unwrap()
                .single(),
            Some(Param::Extensions)
        );
    }

    #[test]
    fn urls_get_values_percent_encoded_and_headers_no_control_characters() {
        let t = Template::parse(
            "/calls/$call_id?from=$customer_number&c=$hangup_cause",
            Trigger::CallMissed,
        )
        .unwrap();
        assert_eq!(
            t.render(&value, Escape::Url),
            "/calls/1732680000.1042?from=%2B919812345678&c=a%0D%0AX-Evil%3A%201%00"
        );
        let h = Template::parse("cause $hangup_cause", Trigger::CallMissed).unwrap();
        assert_eq!(h.render(&value, Escape::Header), "cause a  X-Evil: 1 ");
        // Literal text is the admin's and is never changed.
        let lit = Template::parse("a b/$$", Trigger::CallMissed).unwrap();
        assert_eq!(lit.render(&value, Escape::Url), "a b/$");
    }

    #[test]
    fn the_source_parses_back_to_the_same_template() {
        for src in [
            "lead-${call_id}",
            "$$x$customer_number",
            "",
            "a$$",
            "${duration}s",
        ] {
            let t = Template::parse(src, Trigger::CallMissed).unwrap();
            assert_eq!(
                Template::parse(&t.source(), Trigger::CallMissed).unwrap(),
                t
            );
        }
        assert_eq!(Template::literal("a$b").source(), "a$$b");
    }

    proptest! {
        #[test]
        fn parsing_and_rendering_never_panic(src in "[a-z$_{} .0-9]{0,40}") {
            for trigger in Trigger::ALL {
                if let Ok(t) = Template::parse(&src, trigger) {
                    let _ = t.render(&value, Escape::Url);
                    let _ = t.render(&value, Escape::Header);
                    let _ = t.render_json(&value);
                    prop_assert_eq!(Template::parse(&t.source(), trigger).unwrap(), t);
                }
            }
        }
    }
}
