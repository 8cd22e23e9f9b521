//! The one HTTP client every delivery goes through: pooled, no proxy, no redirects, with
//! timeouts, and an SSRF guard that checks every address a URL leads to before connecting.
//!
//! Literal IPs in URLs never reach a resolver, so they are checked here before sending;
//! host names go through [`GuardedResolver`], which drops the addresses it may not connect to
//! and fails the lookup (with the reason) when none is left. The connection can only go to an
//! address that passed the check.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::core::failure::ErrorKind;
use crate::core::render::WebhookRequest;
use crate::core::target::blocked_reason;
use crate::core::webhook::Method;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Response bodies are kept up to this size, and response headers up to this size together.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024;
/// Most response headers kept.
pub const MAX_RESPONSE_HEADERS: usize = 100;

/// The SSRF verdict, carried through reqwest's error chain.
#[derive(Debug)]
struct Blocked(String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Blocked {}

#[derive(Debug)]
struct DnsFailed(String);

impl std::fmt::Display for DnsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DnsFailed {}

/// Resolves with the system resolver, then keeps only addresses we may connect to.
struct GuardedResolver {
    allow: Arc<[IpNet]>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> BoxError {
                    Box::new(DnsFailed(format!("the name {host} does not resolve ({e})")))
                })?
                .collect();
            if addrs.is_empty() {
                return Err(
                    Box::new(DnsFailed(format!("the name {host} has no addresses"))) as BoxError,
                );
            }
            let mut reasons = Vec::new();
            let ok: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match blocked_reason(a.ip(), &allow) {
                    None => true,
                    Some(why) => {
                        reasons.push(why);
                        false
                    }
                })
                .collect();
            if ok.is_empty() {
                // Which private address a name has is the operator's to know, not the
                // account's: told to an admin, it would make callhook an internal DNS oracle.
                tracing::info!(%host, reasons = %reasons.join("; "), "a webhook's host resolves only to refused addresses");
                return Err(Box::new(Blocked(refused_name(&host))) as BoxError);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// Why a host name is refused, saying nothing of the addresses it resolves to.
fn refused_name(host: &str) -> String {
    format!(
        "{host} resolves only to addresses callhook does not connect to (loopback, private and \
         other non-public networks, unless the operator allows them with allow_targets)"
    )
}

/// The outcome of one request.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub latency: Duration,
    pub error: Option<(ErrorKind, String)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn failed(started: Instant, kind: ErrorKind, msg: String) -> Response {
        Response {
            status: None,
            headers: Vec::new(),
            body: None,
            latency: started.elapsed(),
            error: Some((kind, msg)),
        }
    }
}

#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    allow: Arc<[IpNet]>,
    request_timeout: Duration,
}

impl HttpClient {
    /// A client that keeps up to `keep_idle` idle connections to each host (see below).
    pub fn new(
        allow: &[IpNet],
        connect_timeout: Duration,
        request_timeout: Duration,
        keep_idle: usize,
    ) -> anyhow::Result<HttpClient> {
        crate::init_crypto();
        let allow: Arc<[IpNet]> = allow.into();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // Every connection that was in use is kept for the next request to its host. With
            // fewer kept, many webhooks sharing one receiver (a CRM's endpoint) closed and
            // opened a connection for two deliveries in five (`one`: ten webhooks on one sink,
            // 160 requests at once, 64 kept; BENCHMARKS.md). `max_in_flight` bounds how many
            // can ever be open, so it bounds the kept ones too.
            .pool_max_idle_per_host(keep_idle)
            .tcp_nodelay(true)
            .dns_resolver(Arc::new(GuardedResolver {
                allow: allow.clone(),
            }))
            .build()?;
        Ok(HttpClient {
            client,
            allow,
            request_timeout,
        })
    }

    /// Sends one request and reads up to [`MAX_RESPONSE_BODY`] of the answer. Never fails:
    /// every problem becomes the response's `error`.
    pub async fn send(&self, req: &WebhookRequest) -> Response {
        let started = Instant::now();
        let url = match reqwest::Url::parse(&req.url) {
            Ok(u) => u,
            // The URL was checked when the webhook was saved: only its templates' values can
            // have broken it.
            Err(e) => {
                return Response::failed(
                    started,
                    ErrorKind::Template,
                    format!("the URL made from the webhook's templates is not valid: {e}"),
                );
            }
        };
        if let Some(host) = url.host() {
            let literal: Option<IpAddr> = match host {
                url::Host::Ipv4(ip) => Some(ip.into()),
                url::Host::Ipv6(ip) => Some(ip.into()),
                url::Host::Domain(_) => None,
            };
            if let Some(ip) = literal
                && let Some(why) = blocked_reason(ip, &self.allow)
            {
                return Response::failed(started, ErrorKind::BlockedTarget, why);
            }
        }
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let place = match (url.host_str(), url.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => url.to_string(),
        };
        let mut builder = self.client.request(method, url);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let mut resp = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                return Response::failed(
                    started,
                    classify(&e),
                    describe(&e, &place, self.request_timeout),
                );
            }
        };
        let status = resp.status().as_u16();
        // Kept like the body: up to 16 KiB, so a receiver cannot fill the log.
        let mut room = MAX_RESPONSE_BODY;
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .take(MAX_RESPONSE_HEADERS)
            .take_while(|(k, v)| {
                let size = k.as_str().len() + v.len();
                room = room.saturating_sub(size);
                room > 0
            })
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body: Vec<u8> = Vec::new();
        let mut error = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_BODY - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_RESPONSE_BODY {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // The status arrived, and it is what the receiver decided: a 2xx is a
                    // success even when its body then stalls or breaks off. That the body was
                    // cut is recorded on the attempt, so the log shows it.
                    error = Some((
                        classify(&e),
                        format!(
                            "the response body was cut off after {} bytes: {}",
                            body.len(),
                            describe(&e, &place, self.request_timeout)
                        ),
                    ));
                    break;
                }
            }
        }
        Response {
            status: Some(status),
            headers,
            body: Some(String::from_utf8_lossy(&body).into_owned()),
            latency: started.elapsed(),
            error,
        }
    }
}

fn find<E: std::error::Error + 'static>(e: &reqwest::Error) -> Option<&E> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(found) = s.downcast_ref::<E>() {
            return Some(found);
        }
        source = s.source();
    }
    None
}

fn classify(e: &reqwest::Error) -> ErrorKind {
    if find::<Blocked>(e).is_some() {
        ErrorKind::BlockedTarget
    } else if find::<DnsFailed>(e).is_some() {
        ErrorKind::Dns
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if find::<rustls::Error>(e).is_some() {
        ErrorKind::Tls
    } else {
        // Refused, reset, unreachable, or the connection broke mid-request.
        ErrorKind::Connect
    }
}

/// A readable account of a failed request to `place` (`host:port`): the innermost causes,
/// without reqwest's noise.
fn describe(e: &reqwest::Error, place: &str, timeout: Duration) -> String {
    if let Some(b) = find::<Blocked>(e) {
        return b.0.clone();
    }
    if let Some(d) = find::<DnsFailed>(e) {
        return d.0.clone();
    }
    if let Some(io) = find::<std::io::Error>(e) {
        use std::io::ErrorKind as Io;
        match io.kind() {
            Io::ConnectionRefused => return format!("connection refused by {place}"),
            Io::ConnectionReset => return format!("connection reset by {place}"),
            _ => {}
        }
    }
    if e.is_timeout() {
        return format!(
            "no complete answer from {place} within {}",
            crate::core::retry::format_duration(timeout)
        );
    }
    let mut parts = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_name_does_not_tell_where_it_resolves() {
        let resolver = GuardedResolver {
            allow: Vec::new().into(),
        };
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e.to_string(),
        };
        assert_eq!(err, refused_name("localhost"));
        assert!(
            err.contains("resolves only to addresses callhook does not connect to"),
            "{err}"
        );
        for leak in ["127.0.0.1", "::1", "loopback address"] {
            assert!(!err.contains(leak), "{err}");
        }
        // Allowed, the same name resolves.
        let allowed = GuardedResolver {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()].into(),
        };
        assert!(allowed.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
