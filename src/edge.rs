//! The HTTP server's edge: its connections (a header-read timeout, an idle watchdog and a cap
//! per client address, so idle or trickling clients cannot exhaust it), and what callhook
//! knows of a request beyond its bytes: which client sent it (through the operator's trusted
//! proxies only) and whether the browser came over https.
//!
//! `X-Forwarded-For` and `X-Forwarded-Proto` are anyone's to write, so they are believed only
//! from a peer in `trusted_proxies`; from anyone else the peer's own address is the client and
//! the scheme is what `public_url` says.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Settings;

/// What every connection keeps to.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time to send a request's headers; also how long a kept-alive connection waits for its
    /// next request (hyper starts the same timer as soon as it waits for a request).
    pub header_read_timeout: Duration,
    /// A connection from which nothing arrives for this long is closed, whatever it is doing
    /// (a request body trickled to a stop, a client that no longer reads).
    pub idle_timeout: Duration,
    /// Connections one client address may hold open at once; trusted proxies, which carry
    /// every client's, are not capped.
    pub per_client: u32,
    pub trusted_proxies: Arc<[IpNet]>,
}

impl ConnectionLimits {
    pub fn of(s: &Settings) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: s.header_read_timeout.0,
            idle_timeout: s.idle_timeout.0,
            per_client: s.max_connections_per_client.max(1),
            trusted_proxies: s.trusted_proxies.as_slice().into(),
        }
    }
}

/// Open connections per client address.
#[derive(Clone, Default)]
struct Open(Arc<Mutex<HashMap<IpAddr, u32>>>);

/// One open connection's place in [`Open`], given back when dropped.
struct Slot {
    open: Open,
    ip: IpAddr,
}

impl Open {
    fn take(&self, ip: IpAddr, max: u32) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `signal`, then stops accepting, lets each connection
/// finish its request in hand (idle ones close at once) and returns once all have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    signal: impl Future<Output = ()> + Send + 'static,
) {
    let (stop, stopping) = watch::channel(false);
    let open = Open::default();
    let mut connections = JoinSet::new();
    tokio::pin!(signal);
    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut signal => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: give the open connections a moment
                    // to end rather than spinning on the error.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ip = peer.ip().to_canonical();
        let max = if trusted(ip, &limits.trusted_proxies) {
            u32::MAX
        } else {
            limits.per_client
        };
        let Some(slot) = open.take(ip, max) else {
            metrics::counter!("callhook_connections_refused_total").increment(1);
            tracing::debug!(client = %ip, "too many connections from one client; closed");
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        connections.spawn(connection(
            socket,
            peer,
            router.clone(),
            limits.clone(),
            stopping.clone(),
            slot,
        ));
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// One connection, until the client or a limit ends it.
async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    _slot: Slot,
) {
    let started = Instant::now();
    let heard = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched {
        inner: socket,
        started,
        heard: heard.clone(),
    });
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            // The peer's address, as axum's ConnectInfo (the sign-in limits and trusted proxies
            // read it).
            req.extensions_mut().insert(ConnectInfo(peer));
            tower_service::Service::call(&mut router.clone(), req)
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        // While a request is being answered, hyper would otherwise read the socket once more
        // to notice the client leaving, into a fresh 8 KiB buffer (the first is held by the
        // request's head): a waiting post's largest allocation.
        // Half-close leaves the socket unread until the answer is written: a client that left
        // is seen when that write fails, and its request runs to its end (every handler's
        // wait is bounded: the store, or a receiver's `request_timeout`), as an ingest should.
        .half_close(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = *stopping.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let last = started + Duration::from_millis(heard.load(Ordering::Relaxed));
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(client = %peer, error = %e, "connection ended");
                }
                return;
            }
            _ = stopping.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until((last + limits.idle_timeout).into()) => {
                let last = started + Duration::from_millis(heard.load(Ordering::Relaxed));
                if last.elapsed() >= limits.idle_timeout {
                    tracing::debug!(client = %peer, "nothing heard from the client; closed");
                    return;
                }
            }
        }
    }
}

/// A socket that notes when it last received bytes.
struct Watched {
    inner: TcpStream,
    started: Instant,
    /// Milliseconds from `started` to the last read that brought bytes.
    heard: Arc<AtomicU64>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.heard.store(ms, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The TCP peer of a request, if the server recorded it.
pub fn peer(parts: &Parts) -> Option<IpAddr> {
    peer_of(&parts.extensions)
}

/// The TCP peer recorded in a request's extensions.
pub fn peer_of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}

/// `Strict-Transport-Security` on every answer to a request that reached callhook over https
/// (`over_https`): a year, subdomains left to the operator.
pub fn hsts(resp: &mut axum::response::Response) {
    resp.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static("max-age=31536000"),
    );
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(&ip))
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not itself a trusted proxy (the one the outermost
/// trusted proxy saw; those before it are the client's to write).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted(peer, proxies) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().parse::<IpAddr>().map(|a| a.to_canonical()))
        .collect::<Result<_, _>>()
        // A list that does not parse was not written by a proxy we trust: the proxy is the
        // client then, which at least limits it as a whole.
        .unwrap_or_default();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !trusted(hop, proxies) {
            break;
        }
    }
    Some(client)
}

/// Whether the browser reached callhook over https: `public_url` is https, or a trusted proxy
/// says so with `X-Forwarded-Proto: https`.
pub fn over_https(peer: Option<IpAddr>, headers: &HeaderMap, settings: &Settings) -> bool {
    if settings.public_https() {
        return true;
    }
    let from_proxy = peer.is_some_and(|p| trusted(p, &settings.trusted_proxies));
    from_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// callhook's own address as people reach it, for links it hands out (an invitation):
/// `public_url` when set; else the request's `Host`, over https when [`over_https`] says so.
pub fn base_url(peer: Option<IpAddr>, headers: &HeaderMap, settings: &Settings) -> String {
    if !settings.public_url.is_empty() {
        return settings.public_url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if over_https(peer, headers, settings) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        let h = xff("203.0.113.9, 198.51.100.7");
        // A private peer that is not a trusted proxy is the client itself.
        assert_eq!(
            client_ip(Some(ip("10.0.1.5")), &h, &proxies),
            Some(ip("10.0.1.5"))
        );
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &proxies),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &[]),
            Some(ip("127.0.0.1"))
        );
        // From a trusted proxy: the address it added (the last), not what the client wrote.
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), &h, &proxies),
            Some(ip("198.51.100.7"))
        );
        // Through two trusted proxies: the first address neither of them is.
        let h = xff("203.0.113.9, 198.51.100.7, 10.0.0.3");
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), &h, &proxies),
            Some(ip("198.51.100.7"))
        );
        // Garbage in the list: the proxy is the client.
        let h = xff("198.51.100.7, not-an-address");
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), &h, &proxies),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), &HeaderMap::new(), &proxies),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn https_is_what_public_url_or_a_trusted_proxy_says() {
        let mut s = Settings::default();
        let h = xff("198.51.100.7");
        assert!(!over_https(Some(ip("127.0.0.1")), &h, &s));
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(over_https(Some(ip("127.0.0.1")), &h, &s));
        assert!(!over_https(Some(ip("127.0.0.1")), &HeaderMap::new(), &s));
        assert!(!over_https(Some(ip("127.0.0.2")), &h, &s));
        s.trusted_proxies.clear();
        s.public_url = "https://callhook.example.com".into();
        assert!(over_https(Some(ip("127.0.0.2")), &HeaderMap::new(), &s));
    }

    #[test]
    fn links_go_to_the_public_url_else_the_host_asked_for() {
        let mut s = Settings::default();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("10.0.0.5:8080"));
        assert_eq!(
            base_url(Some(ip("10.0.0.9")), &h, &s),
            "http://10.0.0.5:8080"
        );
        h.insert("host", HeaderValue::from_static("evil.example/path?"));
        assert_eq!(base_url(Some(ip("10.0.0.9")), &h, &s), "http://localhost");
        s.public_url = "https://callhook.example.com/".into();
        assert_eq!(base_url(None, &h, &s), "https://callhook.example.com");
    }
}
