//! What callhook knows of a request beyond its bytes: which client sent it (through the
//! operator's trusted proxies only) and whether the browser came over https.
//!
//! `X-Forwarded-For` and `X-Forwarded-Proto` are anyone's to write, so they are believed only
//! from a peer in `trusted_proxies`; from anyone else the peer's own address is the client and
//! the scheme is what `public_url` says.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::config::Settings;

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

/// `Strict-Transport-Security` on every answer when browsers reach callhook over https: a
/// year, subdomains left to the operator.
pub async fn hsts(
    axum::extract::State(settings): axum::extract::State<std::sync::Arc<Settings>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let https = over_https(peer_of(req.extensions()), req.headers(), &settings);
    let mut resp = next.run(req).await;
    if https {
        resp.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
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
}
