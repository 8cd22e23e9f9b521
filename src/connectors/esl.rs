//! The FreeSWITCH event socket on the wire (inbound mode, `event plain`): a parser for its
//! messages (a header block, then `Content-Length` bytes of body), the plain event format
//! (URL-encoded `Key: Value` lines), and the session around them (auth, subscription,
//! listing live channels after a reconnect, the `bgapi originate` of click-to-call requests).
//! No I/O here, as for AMI.

use std::collections::VecDeque;

use jiff::Timestamp;

use super::call::{Built, Rules};
use super::esl_calls::EslCalls;
use super::originate::{self, Answer, OriginateRules, Originations, Placing, StateChange};
use super::table::Follower;
use super::{Session, Step};

/// Longest header line kept; the rest is dropped.
pub const MAX_LINE: usize = 16 * 1024;
/// Largest header block kept; a larger one is dropped.
pub const MAX_HEAD: usize = 256 * 1024;
/// Largest body kept; a larger one is skipped (its bytes are read and thrown away).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The events callhook subscribes to.
pub const EVENTS: &str = "CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER \
                          CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE DTMF HEARTBEAT CUSTOM callcenter::info";

/// `Key: Value` pairs, looked up regardless of case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Headers {
        Headers(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// One message from FreeSWITCH: `auth/request`, `command/reply`, `api/response`,
/// `text/event-plain`, `text/disconnect-notice`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Message {
    pub fn content_type(&self) -> &str {
        self.headers.get("Content-Type").unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Message(Message),
    Garbage(Garbage),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Garbage {
    #[error("skipped a line that is not `Key: Value`: {0:?}")]
    NotAHeader(String),
    #[error("cut a header line of more than {MAX_LINE} bytes")]
    LongLine,
    #[error("dropped a header block of more than {MAX_HEAD} bytes")]
    LongHead,
    #[error("skipped a body of {0} bytes (more than {MAX_BODY})")]
    LongBody(usize),
    #[error("a Content-Length that is not a number: {0:?}")]
    BadLength(String),
}

#[derive(Debug)]
enum State {
    Head,
    Body(usize),
    Skip(usize),
}

/// The incremental message parser.
#[derive(Debug)]
pub struct Parser {
    state: State,
    line: Vec<u8>,
    line_cut: bool,
    headers: Vec<(String, String)>,
    head_bytes: usize,
    head_dropped: bool,
    body: Vec<u8>,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            state: State::Head,
            line: Vec::new(),
            line_cut: false,
            headers: Vec::new(),
            head_bytes: 0,
            head_dropped: false,
            body: Vec::new(),
        }
    }
}

impl Parser {
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Item>) {
        while !bytes.is_empty() {
            match self.state {
                State::Head => match bytes.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.take(&bytes[..i]);
                        bytes = &bytes[i + 1..];
                        self.end_line(out);
                    }
                    None => {
                        self.take(bytes);
                        bytes = &[];
                    }
                },
                State::Body(need) => {
                    let n = need.min(bytes.len());
                    self.body.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if n == need {
                        self.emit(out);
                    } else {
                        self.state = State::Body(need - n);
                    }
                }
                State::Skip(left) => {
                    let n = left.min(bytes.len());
                    bytes = &bytes[n..];
                    self.state = if n == left {
                        State::Head
                    } else {
                        State::Skip(left - n)
                    };
                }
            }
        }
    }

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
        if raw.is_empty() {
            self.end_head(out);
            return;
        }
        if self.head_dropped {
            return;
        }
        self.head_bytes += raw.len() + 1;
        if self.head_bytes > MAX_HEAD {
            self.headers.clear();
            self.head_dropped = true;
            return;
        }
        let text = String::from_utf8_lossy(&raw);
        match text.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() => self
                .headers
                .push((k.trim().to_owned(), v.trim_start().to_owned())),
            _ => out.push(Item::Garbage(Garbage::NotAHeader(
                text.chars().take(80).collect(),
            ))),
        }
    }

    fn end_head(&mut self, out: &mut Vec<Item>) {
        self.head_bytes = 0;
        if std::mem::take(&mut self.head_dropped) {
            out.push(Item::Garbage(Garbage::LongHead));
            return;
        }
        if self.headers.is_empty() {
            // Blank lines between messages.
            return;
        }
        let length = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, v)| v.trim().to_owned());
        let length = match length.as_deref().map(str::parse::<usize>) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                out.push(Item::Garbage(Garbage::BadLength(
                    length.unwrap_or_default(),
                )));
                0
            }
        };
        if length == 0 {
            self.emit(out);
        } else if length > MAX_BODY {
            self.headers.clear();
            out.push(Item::Garbage(Garbage::LongBody(length)));
            self.state = State::Skip(length);
        } else {
            self.state = State::Body(length);
        }
    }

    fn emit(&mut self, out: &mut Vec<Item>) {
        self.state = State::Head;
        out.push(Item::Message(Message {
            headers: Headers(std::mem::take(&mut self.headers)),
            body: std::mem::take(&mut self.body),
        }));
    }
}

/// An event in FreeSWITCH's plain format: the body of a `text/event-plain` message, `Key:
/// Value` lines with URL-encoded values, and perhaps its own `Content-Length` body.
pub fn plain_event(body: &[u8]) -> Headers {
    let (head, rest) = match find(body, b"\n\n") {
        Some(i) => (&body[..i], &body[i + 2..]),
        None => (body, &[][..]),
    };
    let mut headers = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        if let Some((k, v)) = text.split_once(':')
            && !k.trim().is_empty()
        {
            headers.push((k.trim().to_owned(), url_decode(v.trim_start())));
        }
    }
    if !rest.is_empty() {
        headers.push((
            "_body".to_owned(),
            String::from_utf8_lossy(rest).into_owned(),
        ));
    }
    Headers(headers)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// FreeSWITCH's URL encoding: `%XX` escapes (a `+` is a plus). Bad escapes stay as written.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                b.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `auth/request`.
    Greeting,
    Authenticating,
    Subscribing,
    Ready,
}

/// What an `api/response` answers, in the order the commands were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    Channels,
    Ping,
}

/// An event socket session.
pub struct EslSession {
    password: String,
    /// What to subscribe to: [`EVENTS`], and `BACKGROUND_JOB` when placing calls.
    events: String,
    parser: Parser,
    calls: EslCalls,
    phase: Phase,
    asked: VecDeque<Asked>,
    /// How to place calls, for a connector with `originate`.
    originate: Option<OriginateRules>,
    originations: Originations,
    /// The `Job-UUID`s of `bgapi` commands whose reply has not come yet, in order.
    jobs: VecDeque<String>,
}

impl EslSession {
    pub fn new(password: &str, rules: Rules, originate: Option<OriginateRules>) -> EslSession {
        // An originate's outcome comes as the `BACKGROUND_JOB` of its `bgapi`.
        let events = match originate {
            Some(_) => format!("{EVENTS} BACKGROUND_JOB"),
            None => EVENTS.to_owned(),
        };
        EslSession {
            password: password.to_owned(),
            events,
            parser: Parser::default(),
            calls: EslCalls::new(rules),
            phase: Phase::Greeting,
            asked: VecDeque::new(),
            originate,
            originations: Originations::default(),
            jobs: VecDeque::new(),
        }
    }

    /// The `BACKGROUND_JOB` of a `bgapi originate` we sent: the agent answered (`+OK` and
    /// the agent leg's UUID) or the agent's leg failed (`-ERR` and the cause).
    fn background_job(
        &mut self,
        ev: &Headers,
        now: Timestamp,
        built: &mut Vec<Built>,
        changes: &mut Vec<StateChange>,
    ) {
        let Some(job) = ev.get("Job-UUID") else {
            return;
        };
        let Some(ref_id) = self.originations.ref_of(job) else {
            return;
        };
        let answer = originate::esl_job(ev.get("_body").unwrap_or_default());
        if let Answer::AgentAnswered(Some(leg)) = &answer {
            let ref_id = ref_id.to_owned();
            self.calls.reference_leg(leg, &ref_id, now, built);
        }
        self.originations.answer(job, answer, now, changes);
    }

    fn command(line: &str) -> Vec<u8> {
        let mut s: String = line.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        s.push_str("\n\n");
        s.into_bytes()
    }

    fn message(&mut self, m: Message, now: Timestamp, step: &mut Step) {
        let reply = m.headers.get("Reply-Text").unwrap_or_default();
        match m.content_type() {
            "auth/request" if self.phase == Phase::Greeting => {
                self.phase = Phase::Authenticating;
                step.send
                    .extend(Self::command(&format!("auth {}", self.password)));
            }
            "command/reply" if self.phase == Phase::Authenticating => {
                if reply.starts_with("+OK") {
                    self.phase = Phase::Subscribing;
                    step.logged_in = true;
                    step.send
                        .extend(Self::command(&format!("event plain {}", self.events)));
                } else {
                    step.refused = Some(format!("FreeSWITCH refused the password: {reply}"));
                }
            }
            "command/reply" if self.phase == Phase::Subscribing => {
                self.phase = Phase::Ready;
                if !reply.starts_with("+OK") {
                    step.problems
                        .push(format!("FreeSWITCH refused the subscription: {reply}"));
                }
                self.asked.push_back(Asked::Channels);
                step.send.extend(Self::command("api show channels as json"));
            }
            "command/reply" if self.phase == Phase::Ready => {
                // The reply to a `bgapi`: it names its job; else replies come in order.
                let job = match m.headers.get("Job-UUID") {
                    Some(j) => Some(j.to_owned()),
                    None => self.jobs.front().cloned(),
                };
                if let Some(job) = job {
                    self.jobs.retain(|j| *j != job);
                    let answer = originate::esl_reply(reply);
                    self.originations
                        .answer(&job, answer, now, &mut step.changes);
                }
            }
            "api/response" => {
                // Replies come in the order the commands went out.
                let asked = self.asked.pop_front();
                if asked == Some(Asked::Channels) {
                    let mut built = Vec::new();
                    self.calls.channel_list(&m.body, now, &mut built);
                    step.take(built);
                }
            }
            "text/event-plain" => {
                step.frames += 1;
                let ev = plain_event(&m.body);
                let mut built = Vec::new();
                if ev.get("Event-Name") == Some("BACKGROUND_JOB") {
                    self.background_job(&ev, now, &mut built, &mut step.changes);
                } else {
                    self.calls.on_event(&ev, now, &mut built);
                }
                step.take(built);
                let progress = self.calls.take_progress();
                self.originations.calls(progress, now, &mut step.changes);
            }
            _ => {}
        }
    }
}

impl Session for EslSession {
    fn connected(&mut self, _now: Timestamp) -> Step {
        self.parser = Parser::default();
        self.phase = Phase::Greeting;
        self.asked.clear();
        self.jobs.clear();
        self.calls.begin_resync();
        Step::default()
    }

    fn received(&mut self, bytes: &[u8], now: Timestamp) -> Step {
        let mut step = Step::default();
        let mut items = Vec::new();
        self.parser.feed(bytes, &mut items);
        for item in items {
            match item {
                Item::Message(m) => self.message(m, now, &mut step),
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
            self.asked.push_back(Asked::Channels);
            return Some(Self::command("api show channels as json"));
        }
        self.asked.push_back(Asked::Ping);
        Some(Self::command("api uptime"))
    }

    fn logoff(&mut self) -> Option<Vec<u8>> {
        (self.phase != Phase::Greeting).then(|| Self::command("exit"))
    }

    fn calls(&self) -> &dyn Follower {
        &self.calls
    }

    fn calls_mut(&mut self) -> &mut dyn Follower {
        &mut self.calls
    }

    fn originate(&mut self, placing: Placing, now: Timestamp) -> Step {
        let job = placing.request_id.clone();
        let step = originate::place(
            self.originate.as_ref(),
            self.phase == Phase::Ready,
            placing,
            job.clone(),
            OriginateRules::esl_originate,
            &mut self.originations,
            &mut self.calls,
            now,
        );
        if !step.send.is_empty() {
            self.jobs.push_back(job);
        }
        step
    }

    fn originations(&mut self) -> &mut Originations {
        &mut self.originations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SESSION: &[u8] =
        include_bytes!("../../tests/fixtures/freeswitch-esl/ivr-dtmf-extension.esl");

    fn parse_in(chunks: impl IntoIterator<Item = Vec<u8>>) -> Vec<Item> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(&c, &mut out);
        }
        out
    }

    fn messages(items: &[Item]) -> Vec<&Message> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Message(m) => Some(m),
                Item::Garbage(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_session_file_parses_into_messages_and_events() {
        let items = parse_in([SESSION.to_vec()]);
        assert!(
            items.iter().all(|i| matches!(i, Item::Message(_))),
            "{items:?}"
        );
        let m = messages(&items);
        assert_eq!(m[0].content_type(), "auth/request");
        assert_eq!(m[1].headers.get("Reply-Text"), Some("+OK accepted"));
        let events: Vec<Headers> = m
            .iter()
            .filter(|m| m.content_type() == "text/event-plain")
            .map(|m| plain_event(&m.body))
            .collect();
        assert!(events.len() > 5);
        assert_eq!(events[0].get("Event-Name"), Some("CHANNEL_CREATE"));
        assert!(
            events[0].get("Event-Date-Local").unwrap().contains(' '),
            "values are URL-decoded"
        );
    }

    #[test]
    fn plain_events_decode_values_and_keep_their_body() {
        let e = plain_event(b"Event-Name: CUSTOM\nCaller-Caller-ID-Name: Ann%20Lee%2B1\nBad: 100%zz%4\nContent-Length: 5\n\nhello");
        assert_eq!(e.get("caller-caller-id-name"), Some("Ann Lee+1"));
        assert_eq!(e.get("Bad"), Some("100%zz%4"));
        assert_eq!(e.get("_body"), Some("hello"));
        assert_eq!(url_decode("%E2%82%AC%"), "€%");
    }

    #[test]
    fn lengths_that_lie_or_are_huge_do_not_break_the_stream() {
        let mut bytes = b"Content-Type: text/event-plain\nContent-Length: nine\n\n".to_vec();
        bytes.extend(format!("Content-Type: x\nContent-Length: {}\n\n", MAX_BODY + 1).bytes());
        bytes.extend(std::iter::repeat_n(b'z', MAX_BODY + 1));
        bytes.extend(b"Content-Type: command/reply\nReply-Text: +OK\n\n");
        let items = parse_in(bytes.chunks(7777).map(<[u8]>::to_vec));
        let m = messages(&items);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].headers.get("Reply-Text"), Some("+OK"));
        assert!(items.contains(&Item::Garbage(Garbage::LongBody(MAX_BODY + 1))));
        assert!(items.contains(&Item::Garbage(Garbage::BadLength("nine".into()))));
    }

    #[test]
    fn the_session_authenticates_subscribes_and_reports_refusal() {
        let rules = super::super::call::tests::rules();
        let now = Timestamp::UNIX_EPOCH;
        let mut s = EslSession::new("ClueCon", rules.clone(), None);
        s.connected(now);
        let step = s.received(b"Content-Type: auth/request\n\n", now);
        assert_eq!(step.send, b"auth ClueCon\n\n");
        let step = s.received(
            b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n",
            now,
        );
        assert!(step.logged_in);
        assert!(
            String::from_utf8(step.send)
                .unwrap()
                .starts_with("event plain CHANNEL_CREATE ")
        );
        let step = s.received(
            b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n",
            now,
        );
        assert_eq!(step.send, b"api show channels as json\n\n");
        let sent: Vec<Vec<u8>> = (0..super::super::LISTING_EVERY)
            .map(|_| s.keepalive().unwrap())
            .collect();
        assert_eq!(sent[0], b"api uptime\n\n");
        assert_eq!(sent[sent.len() - 1], b"api show channels as json\n\n");
        // Replies are matched to commands by their order; the first answers the listing sent
        // after the subscription (an empty one: nothing was being followed).
        let step = s.received(b"Content-Type: api/response\nContent-Length: 2\n\n{}", now);
        assert!(step.events.is_empty() && step.problems.is_empty());

        let mut s = EslSession::new("wrong", rules, None);
        s.connected(now);
        s.received(b"Content-Type: auth/request\n\n", now);
        let step = s.received(
            b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n",
            now,
        );
        assert_eq!(
            step.refused.as_deref(),
            Some("FreeSWITCH refused the password: -ERR invalid")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_split_gives_the_same_messages(cuts in proptest::collection::vec(0usize..SESSION.len(), 0..40)) {
            let whole = parse_in([SESSION.to_vec()]);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for c in cuts {
                chunks.push(SESSION[from..c].to_vec());
                from = c;
            }
            chunks.push(SESSION[from..].to_vec());
            prop_assert_eq!(parse_in(chunks), whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let items = parse_in([bytes.clone()]);
            for m in messages(&items) {
                let _ = plain_event(&m.body);
            }
        }

        #[test]
        fn corrupted_sessions_never_panic(at in 0usize..SESSION.len(), noise in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = SESSION[..at].to_vec();
            bytes.extend_from_slice(&noise);
            bytes.extend_from_slice(&SESSION[at..]);
            let mut s = EslSession::new("ClueCon", super::super::call::tests::rules(), None);
            s.connected(Timestamp::UNIX_EPOCH);
            let _ = s.received(&bytes, Timestamp::UNIX_EPOCH);
        }
    }
}
