//! The Asterisk Manager Interface on the wire: a parser that cuts the byte stream into frames
//! (`Key: Value` lines, a blank line ends a frame), and the session around it (banner, login,
//! keep-alive, listing live channels after a reconnect, the originates of click-to-call
//! requests). No I/O here: the runner moves the bytes, so every byte split and every garbled
//! stream can be tested as plain data.

use jiff::Timestamp;

use super::ami_calls::AmiCalls;
use super::call::Rules;
use super::originate::{self, Answer, OriginateRules, Originations, Placing};
use super::table::Follower;
use super::{Session, Step};

/// Longest line kept; the rest of a longer line is dropped (its value arrives cut short).
pub const MAX_LINE: usize = 16 * 1024;
/// Largest frame kept; a larger one is dropped whole and the stream resumes after it.
pub const MAX_FRAME: usize = 256 * 1024;

/// One AMI message: an event, a response, or a listing entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    headers: Vec<(String, String)>,
}

impl Frame {
    /// The first value of `key` (keys are matched regardless of case, as Asterisk does).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order (some events repeat keys, like `ChanVariable`).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// A frame from `(key, value)` pairs (tests and fixtures).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Frame {
        Frame {
            headers: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// What the parser found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The first line of a connection: `Asterisk Call Manager/11.0.0`.
    Banner(String),
    Frame(Frame),
    /// Something that is not AMI; skipped, and said so.
    Garbage(Garbage),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Garbage {
    #[error("skipped a line that is not `Key: Value`: {0:?}")]
    NotAHeader(String),
    #[error("cut a line of more than {MAX_LINE} bytes")]
    LongLine,
    #[error("dropped a frame of more than {MAX_FRAME} bytes")]
    LongFrame,
}

/// The incremental parser: feed it whatever the socket gave, in pieces of any size.
#[derive(Debug)]
pub struct Parser {
    line: Vec<u8>,
    line_cut: bool,
    frame: Frame,
    frame_bytes: usize,
    frame_dropped: bool,
    expect_banner: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// A parser for a new connection: its first line may be the banner.
    pub fn new() -> Parser {
        Parser {
            line: Vec::new(),
            line_cut: false,
            frame: Frame::default(),
            frame_bytes: 0,
            frame_dropped: false,
            expect_banner: true,
        }
    }

    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Item>) {
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    self.end_line(out);
                }
                None => {
                    self.take(bytes);
                    bytes = &[];
                }
            }
        }
    }

    /// Appends to the current line, keeping at most [`MAX_LINE`] bytes of it.
    fn take(&mut self, part: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.line.len());
        if part.len() > room {
            self.line.extend_from_slice(&part[..room]);
            self.line_cut = true;
        } else {
            self.line.extend_from_slice(part);
        }
    }

    fn end_line(&mut self, out: &mut Vec<Item>) {
        let mut raw = std::mem::take(&mut self.line);
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        if std::mem::take(&mut self.line_cut) {
            out.push(Item::Garbage(Garbage::LongLine));
        }
        let text = String::from_utf8_lossy(&raw);
        if text.is_empty() {
            self.end_frame(out);
            return;
        }
        if std::mem::take(&mut self.expect_banner)
            && (text.starts_with("Asterisk Call Manager") || !text.contains(':'))
        {
            out.push(Item::Banner(text.into_owned()));
            return;
        }
        if self.frame_dropped {
            return;
        }
        self.frame_bytes += raw.len() + 2;
        if self.frame_bytes > MAX_FRAME {
            self.frame = Frame::default();
            self.frame_dropped = true;
            return;
        }
        match text.split_once(':') {
            Some((key, value)) if !key.trim().is_empty() => self
                .frame
                .headers
                .push((key.trim().to_owned(), value.trim_start().to_owned())),
            _ => {
                let mut shown: String = text.chars().take(80).collect();
                if shown.len() < text.len() {
                    shown.push('…');
                }
                out.push(Item::Garbage(Garbage::NotAHeader(shown)));
            }
        }
    }

    fn end_frame(&mut self, out: &mut Vec<Item>) {
        self.frame_bytes = 0;
        if std::mem::take(&mut self.frame_dropped) {
            out.push(Item::Garbage(Garbage::LongFrame));
            return;
        }
        let frame = std::mem::take(&mut self.frame);
        if !frame.is_empty() {
            out.push(Item::Frame(frame));
        }
    }
}

/// One AMI action, written as Asterisk reads it. Values lose CR and LF so that nothing in a
/// setting can end the action early or smuggle in another.
pub(super) fn action(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = String::new();
    for (k, v) in pairs {
        s.push_str(k);
        s.push_str(": ");
        s.extend(v.chars().filter(|c| *c != '\r' && *c != '\n'));
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connected, waiting for the banner.
    Banner,
    /// Login sent.
    LoggingIn,
    Ready,
}

/// An AMI session: logs in, follows calls, and lists live channels after every (re)connect so
/// calls whose hangup happened while we were away are closed.
pub struct AmiSession {
    username: String,
    secret: String,
    events: &'static str,
    parser: Parser,
    calls: AmiCalls,
    phase: Phase,
    actions: u64,
    login_id: String,
    listing_id: String,
    /// How to place calls, for a connector with `originate`.
    originate: Option<OriginateRules>,
    originations: Originations,
}

impl AmiSession {
    pub fn new(
        username: &str,
        secret: &str,
        rules: Rules,
        originate: Option<OriginateRules>,
    ) -> AmiSession {
        // `dialplan` brings VarSet, which we need only to read the DID or a reference from a
        // channel variable; it is most of the traffic on a busy PBX, so ask for it only then.
        let needs_vars = matches!(rules.did_from, super::call::DidFrom::Variable(_))
            || rules.ref_id_variable.is_some();
        AmiSession {
            username: username.to_owned(),
            secret: secret.to_owned(),
            events: if needs_vars {
                "call,agent,dtmf,dialplan"
            } else {
                "call,agent,dtmf"
            },
            parser: Parser::new(),
            calls: AmiCalls::new(rules),
            phase: Phase::Banner,
            actions: 0,
            login_id: String::new(),
            listing_id: String::new(),
            originate,
            originations: Originations::default(),
        }
    }

    fn next_id(&mut self, what: &str) -> String {
        self.actions += 1;
        format!("callhook-{what}-{}", self.actions)
    }

    fn login(&mut self) -> Vec<u8> {
        self.login_id = self.next_id("login");
        self.phase = Phase::LoggingIn;
        action(&[
            ("Action", "Login"),
            ("ActionID", &self.login_id),
            ("Username", &self.username),
            ("Secret", &self.secret),
            ("Events", self.events),
        ])
    }

    fn frame(&mut self, f: Frame, now: Timestamp, step: &mut Step) {
        let ours = |id: &str| f.get("ActionID") == Some(id);
        if f.event().is_none() {
            // A response to an action.
            if ours(&self.login_id) && self.phase == Phase::LoggingIn {
                if f.get("Response")
                    .is_some_and(|r| r.eq_ignore_ascii_case("Success"))
                {
                    self.phase = Phase::Ready;
                    step.logged_in = true;
                    self.listing_id = self.next_id("channels");
                    step.send.extend(action(&[
                        ("Action", "CoreShowChannels"),
                        ("ActionID", &self.listing_id),
                    ]));
                } else {
                    let why = f.get("Message").unwrap_or("no reason given");
                    step.refused = Some(format!("the PBX refused the login: {why}"));
                }
            } else if let Some(id) = f.get("ActionID")
                && self.originations.knows(id)
            {
                let answer = originate::ami_response(&f);
                self.originations.answer(id, answer, now, &mut step.changes);
            }
            return;
        }
        step.frames += 1;
        let mut built = Vec::new();
        if f.event() == Some("OriginateResponse")
            && let Some(id) = f.get("ActionID")
            && let Some(ref_id) = self.originations.ref_of(id)
        {
            let answer = originate::ami_originate_response(&f);
            if let Answer::AgentAnswered(Some(leg)) = &answer {
                let ref_id = ref_id.to_owned();
                self.calls.reference_leg(leg, &ref_id, now, &mut built);
            }
            self.originations.answer(id, answer, now, &mut step.changes);
        }
        match f.event() {
            Some(e) if e.eq_ignore_ascii_case("CoreShowChannel") && ours(&self.listing_id) => {
                if let Some(u) = f.get("Uniqueid") {
                    self.calls.confirm(u);
                }
            }
            Some(e)
                if e.eq_ignore_ascii_case("CoreShowChannelsComplete") && ours(&self.listing_id) =>
            {
                self.calls.finish_resync(now, &mut built);
            }
            _ => self.calls.on_frame(&f, now, &mut built),
        }
        step.take(built);
        let progress = self.calls.take_progress();
        self.originations.calls(progress, now, &mut step.changes);
    }
}

impl Session for AmiSession {
    fn connected(&mut self, _now: Timestamp) -> Step {
        self.parser = Parser::new();
        self.phase = Phase::Banner;
        self.calls.begin_resync();
        Step::default()
    }

    fn received(&mut self, bytes: &[u8], now: Timestamp) -> Step {
        let mut step = Step::default();
        let mut items = Vec::new();
        self.parser.feed(bytes, &mut items);
        for item in items {
            match item {
                Item::Banner(_) if self.phase == Phase::Banner => {
                    let login = self.login();
                    step.send.extend(login);
                }
                Item::Banner(b) => step.problems.push(format!("unexpected banner {b:?}")),
                Item::Frame(f) => self.frame(f, now, &mut step),
                Item::Garbage(g) => step.problems.push(g.to_string()),
            }
        }
        self.originations.expire(now, &mut step.changes);
        step
    }

    fn keepalive(&mut self) -> Option<Vec<u8>> {
        if self.phase != Phase::Ready {
            return None;
        }
        if self.calls.listing_due() {
            self.listing_id = self.next_id("channels");
            return Some(action(&[
                ("Action", "CoreShowChannels"),
                ("ActionID", &self.listing_id),
            ]));
        }
        let id = self.next_id("ping");
        Some(action(&[("Action", "Ping"), ("ActionID", &id)]))
    }

    fn logoff(&mut self) -> Option<Vec<u8>> {
        (self.phase == Phase::Ready).then(|| action(&[("Action", "Logoff")]))
    }

    fn calls(&self) -> &dyn Follower {
        &self.calls
    }

    fn calls_mut(&mut self) -> &mut dyn Follower {
        &mut self.calls
    }

    fn originate(&mut self, placing: Placing, now: Timestamp) -> Step {
        let key = format!("callhook-originate-{}", placing.request_id);
        originate::place(
            self.originate.as_ref(),
            self.phase == Phase::Ready,
            placing,
            key,
            OriginateRules::ami_originate,
            &mut self.originations,
            &mut self.calls,
            now,
        )
    }

    fn originations(&mut self) -> &mut Originations {
        &mut self.originations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CALL_SHAPES: &[u8] =
        include_bytes!("../../tests/fixtures/asterisk-ami/call-shapes-asterisk-22.9.0.raw");
    const QUEUE_SHAPES: &[u8] =
        include_bytes!("../../tests/fixtures/asterisk-ami/queue-shapes-asterisk-22.9.0.raw");

    fn parse_in(chunks: impl IntoIterator<Item = Vec<u8>>) -> Vec<Item> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(&c, &mut out);
        }
        out
    }

    fn parse(bytes: &[u8]) -> Vec<Item> {
        parse_in([bytes.to_vec()])
    }

    fn frames(items: &[Item]) -> Vec<&Frame> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Frame(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_captures_parse_completely() {
        let items = parse(CALL_SHAPES);
        assert_eq!(
            items[0],
            Item::Banner("Asterisk Call Manager/11.0.0".into())
        );
        let f = frames(&items);
        assert_eq!(
            f.len(),
            516,
            "the README counts 516 frames after the banner"
        );
        assert!(items.iter().all(|i| !matches!(i, Item::Garbage(_))));
        assert_eq!(f[0].event(), Some("FullyBooted"));
        assert_eq!(f[515].get("Response"), Some("Goodbye"));
        let q = parse(QUEUE_SHAPES);
        assert_eq!(frames(&q).len(), 711, "the README counts 711 frames");
    }

    #[test]
    fn keys_values_and_repeats() {
        let items = parse(
            b"Asterisk Call Manager/11.0.0\r\nEvent: VarSet\r\nAccountCode: \r\nvalue: a: b\r\nChanVariable: x=1\r\nChanVariable: y=2\r\n\r\n",
        );
        let f = frames(&items)[0];
        assert_eq!(f.get("event"), Some("VarSet"));
        assert_eq!(f.get("AccountCode"), Some(""));
        assert_eq!(f.get("Value"), Some("a: b"));
        assert_eq!(f.all("ChanVariable").collect::<Vec<_>>(), ["x=1", "y=2"]);
        assert_eq!(f.get("Missing"), None);
    }

    #[test]
    fn lf_only_blank_line_runs_and_a_missing_banner() {
        let items = parse(b"Event: A\nX: 1\n\n\n\n\r\nEvent: B\n\n");
        let f = frames(&items);
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].event(), Some("B"));
        assert!(!items.iter().any(|i| matches!(i, Item::Banner(_))));
    }

    #[test]
    fn garbage_is_skipped_and_reported() {
        let items = parse(b"Asterisk Call Manager/11.0.0\r\nEvent: A\r\nnonsense\r\n: novalue\r\nY: 2\r\n\r\n\xff\xfe: \x00\r\n\r\n");
        let f = frames(&items);
        assert_eq!(f[0].get("Y"), Some("2"));
        assert_eq!(
            items
                .iter()
                .filter(|i| matches!(i, Item::Garbage(Garbage::NotAHeader(_))))
                .count(),
            2
        );
        assert_eq!(f.len(), 2, "non-UTF-8 keys are kept, lossily");
    }

    #[test]
    fn very_long_lines_are_cut_and_huge_frames_dropped() {
        let mut long = b"Event: VarSet\r\nValue: ".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE * 2));
        long.extend_from_slice(b"\r\nAfter: yes\r\n\r\nEvent: Next\r\n\r\n");
        let items = parse_in(long.chunks(1000).map(<[u8]>::to_vec));
        let f = frames(&items);
        assert_eq!(f[0].get("After"), Some("yes"));
        assert!(f[0].get("Value").unwrap().len() < MAX_LINE);
        assert!(items.contains(&Item::Garbage(Garbage::LongLine)));
        let mut huge = b"Event: Huge\r\n".to_vec();
        for i in 0..(MAX_FRAME / 1000 + 10) {
            huge.extend(format!("K{i}: {}\r\n", "v".repeat(1000)).bytes());
        }
        huge.extend_from_slice(b"\r\nEvent: Next\r\n\r\n");
        let items = parse(&huge);
        assert_eq!(frames(&items).len(), 1);
        assert_eq!(frames(&items)[0].event(), Some("Next"));
        assert!(items.contains(&Item::Garbage(Garbage::LongFrame)));
    }

    #[test]
    fn actions_cannot_be_split_by_their_values() {
        let a = action(&[
            ("Action", "Login"),
            ("Secret", "x\r\n\r\nAction: Originate"),
        ]);
        assert_eq!(
            a,
            b"Action: Login\r\nSecret: xAction: Originate\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn the_session_logs_in_lists_channels_and_reports_refusal() {
        let mut s = AmiSession::new("hook", "pw", super::super::call::tests::rules(), None);
        let now = Timestamp::UNIX_EPOCH;
        s.connected(now);
        assert!(s.keepalive().is_none());
        let step = s.received(b"Asterisk Call Manager/11.0.0\r\n", now);
        let sent = String::from_utf8(step.send).unwrap();
        assert!(sent.starts_with("Action: Login\r\nActionID: callhook-login-1\r\nUsername: hook\r\nSecret: pw\r\nEvents: call,agent,dtmf\r\n"), "{sent}");
        let step = s.received(
            b"Response: Success\r\nActionID: someone-else\r\n\r\nResponse: Success\r\nActionID: callhook-login-1\r\nMessage: Authentication accepted\r\n\r\n",
            now,
        );
        assert!(step.logged_in);
        assert!(
            String::from_utf8(step.send)
                .unwrap()
                .contains("Action: CoreShowChannels")
        );
        let pings: Vec<String> = (0..super::super::LISTING_EVERY)
            .map(|_| String::from_utf8(s.keepalive().unwrap()).unwrap())
            .collect();
        assert!(
            pings[..pings.len() - 1]
                .iter()
                .all(|p| p.starts_with("Action: Ping\r\n"))
        );
        assert!(pings[pings.len() - 1].starts_with("Action: CoreShowChannels\r\n"));
        assert!(s.logoff().is_some());

        let mut s = AmiSession::new("hook", "bad", super::super::call::tests::rules(), None);
        s.connected(now);
        s.received(b"Asterisk Call Manager/11.0.0\r\n", now);
        let step = s.received(
            b"Response: Error\r\nActionID: callhook-login-1\r\nMessage: Authentication failed\r\n\r\n",
            now,
        );
        assert_eq!(
            step.refused.as_deref(),
            Some("the PBX refused the login: Authentication failed")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// However the socket splits the stream, the frames are the same.
        #[test]
        fn any_split_gives_the_same_frames(cuts in proptest::collection::vec(0usize..QUEUE_SHAPES.len(), 0..40)) {
            let whole = parse(QUEUE_SHAPES);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for c in cuts {
                chunks.push(QUEUE_SHAPES[from..c].to_vec());
                from = c;
            }
            chunks.push(QUEUE_SHAPES[from..].to_vec());
            prop_assert_eq!(parse_in(chunks), whole);
        }

        /// Corrupted bytes never panic, and the frames after the damage still parse.
        #[test]
        fn corruption_never_panics_and_the_stream_recovers(
            at in 0usize..CALL_SHAPES.len() / 2,
            noise in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut bytes = CALL_SHAPES[..at].to_vec();
            bytes.extend_from_slice(&noise);
            bytes.extend_from_slice(b"\r\n\r\n");
            bytes.extend_from_slice(&CALL_SHAPES[at..]);
            let items = parse(&bytes);
            let tail: Vec<Frame> = frames(&items).into_iter().rev().take(100).cloned().collect();
            let want: Vec<Frame> = frames(&parse(CALL_SHAPES)).into_iter().rev().take(100).cloned().collect();
            prop_assert_eq!(tail, want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let _ = parse(&bytes);
        }
    }
}
