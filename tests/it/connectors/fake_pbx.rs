//! A fake PBX on loopback: it plays a script of acts (bytes in uneven pieces, an AMI login, a
//! channel listing, answers to commands under the ids callhook chose, a close) one connection
//! after another, and keeps what the client sent.

use super::*;

/// What an [`Act::Answer`] sends, made from the id of the command it answers.
pub(crate) type Reply = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

/// What the fake PBX does on one connection.
#[derive(Clone)]
pub(crate) enum Act {
    /// Writes these bytes, in uneven pieces (as a PBX's writes reach a socket).
    Send(Vec<u8>),
    /// Waits for an AMI `Action: Login` and answers it with success (the captures had their
    /// login response removed; a real Asterisk sends this).
    AmiLogin,
    /// Waits until the client has sent this text.
    Expect(String),
    /// Answers the client's `CoreShowChannels` with these live channels (uniqueid, linkedid).
    AmiListing(Vec<(&'static str, &'static str)>),
    /// Waits for a command holding `find` (an originate with a reference, say), reads the
    /// value of its `key` line (`ActionID`, `Job-UUID`) and sends what `reply` makes of it:
    /// answers to commands whose ids callhook chose.
    Answer {
        find: String,
        key: &'static str,
        reply: Reply,
    },
    /// Ends the connection.
    Close,
}

/// A PBX on 127.0.0.1 that plays a script, one list of acts per connection, once `go` is
/// given. Connections beyond the script are held open and silent.
pub(crate) struct FakePbx {
    pub(crate) addr: std::net::SocketAddr,
    go: watch::Sender<bool>,
    /// What each connection received from callhook.
    heard: Arc<Mutex<Vec<String>>>,
}

impl FakePbx {
    pub(crate) async fn start(script: Vec<Vec<Act>>) -> FakePbx {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (go, go_rx) = watch::channel(false);
        let heard: Arc<Mutex<Vec<String>>> = Arc::default();
        let h = heard.clone();
        tokio::spawn(async move {
            let mut script = script.into_iter();
            while let Ok((sock, _)) = listener.accept().await {
                let acts = script.next().unwrap_or_default();
                let index = {
                    let mut h = h.lock().unwrap();
                    h.push(String::new());
                    h.len() - 1
                };
                tokio::spawn(play(sock, acts, go_rx.clone(), h.clone(), index));
            }
        });
        FakePbx { addr, go, heard }
    }

    pub(crate) fn go(&self) {
        let _ = self.go.send(true);
    }

    pub(crate) fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }
}

async fn play(
    mut sock: TcpStream,
    acts: Vec<Act>,
    mut go: watch::Receiver<bool>,
    heard: Arc<Mutex<Vec<String>>>,
    index: usize,
) {
    let _ = go.wait_for(|g| *g).await;
    let mut buf = vec![0u8; 8192];
    let mut got = String::new();
    // Reads until `pred` holds for what was heard so far.
    macro_rules! hear_until {
        ($pred:expr) => {{
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(found) = $pred(&got) {
                    break Some(found);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, sock.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {
                        got.push_str(&String::from_utf8_lossy(&buf[..n]));
                        heard.lock().unwrap()[index] = got.clone();
                    }
                    _ => break None,
                }
            }
        }};
    }
    for act in acts {
        match act {
            Act::Send(bytes) => {
                // Uneven pieces: a frame is often split across reads, sometimes mid-line.
                let sizes = [1usize, 700, 13, 4096, 1500, 97, 8192];
                let mut rest = &bytes[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = sizes[i % sizes.len()].min(rest.len());
                    if sock.write_all(&rest[..n]).await.is_err() {
                        return;
                    }
                    rest = &rest[n..];
                    i += 1;
                }
            }
            Act::AmiLogin => {
                let id = hear_until!(|g: &String| {
                    let login = g.find("Action: Login")?;
                    let end = g[login..].find("\r\n\r\n")?;
                    let action = &g[login..login + end];
                    Some(
                        action
                            .lines()
                            .find_map(|l| l.strip_prefix("ActionID: "))
                            .unwrap_or_default()
                            .to_owned(),
                    )
                });
                let Some(id) = id else { return };
                let ok = format!(
                    "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"
                );
                if sock.write_all(ok.as_bytes()).await.is_err() {
                    return;
                }
            }
            Act::AmiListing(channels) => {
                let id = hear_until!(|g: &String| {
                    let at = g.find("Action: CoreShowChannels")?;
                    let end = g[at..].find("\r\n\r\n")?;
                    g[at..at + end]
                        .lines()
                        .find_map(|l| l.strip_prefix("ActionID: "))
                        .map(str::to_owned)
                });
                let Some(id) = id else { return };
                let mut reply = format!(
                    "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
                );
                for (u, l) in &channels {
                    reply.push_str(&format!(
                        "Event: CoreShowChannel\r\nActionID: {id}\r\nChannel: PJSIP/x-00000001\r\nUniqueid: {u}\r\nLinkedid: {l}\r\n\r\n"
                    ));
                }
                reply.push_str(&format!(
                    "Event: CoreShowChannelsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n\r\n",
                    channels.len()
                ));
                if sock.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            Act::Answer { find, key, reply } => {
                let id = hear_until!(|g: &String| command_value(g, &find, key));
                let Some(id) = id else { return };
                if sock.write_all(&reply(&id)).await.is_err() {
                    return;
                }
            }
            Act::Expect(text) => {
                if hear_until!(|g: &String| g.contains(text.as_str()).then_some(())).is_none() {
                    return;
                }
            }
            Act::Close => {
                // A clean close: the client reads everything sent before the end of the
                // stream (closing with its bytes unread would reset the connection and could
                // drop data still in flight, which is not what this act is for).
                let _ = sock.shutdown().await;
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
                return;
            }
        }
    }
    // Stay connected, and keep listening (keep-alives, the channel listing).
    while let Ok(n) = sock.read(&mut buf).await {
        if n == 0 {
            break;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        heard.lock().unwrap()[index] = got.clone();
    }
}

/// The banner line of an AMI capture, and everything after it.
pub(crate) fn banner_and_frames(capture: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let end = capture.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    (capture[..end].to_vec(), capture[end..].to_vec())
}

/// The value of `key` in the first complete command (AMI action or event-socket command)
/// that holds `find`.
fn command_value(heard: &str, find: &str, key: &str) -> Option<String> {
    let at = heard.find(find)?;
    let start = heard[..at].rfind("\n\n").map_or(0, |i| i + 2);
    let end = at
        + heard[at..]
            .find("\n\n")
            .or_else(|| heard[at..].find("\r\n\r\n"))?;
    let start = start.max(heard[..at].rfind("\r\n\r\n").map_or(0, |i| i + 4));
    heard[start..end].lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(": "))
            .map(|v| v.trim().to_owned())
    })
}
