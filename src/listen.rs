//! `callhook listen`: a local receiver for developers integrating with callhook. It prints
//! each request readably — trigger, call, parameters, whether the signature is valid — and
//! answers 200.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;

use crate::core::sign::Secret;

/// What the signature headers say about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// No `--secret` was given.
    NotChecked,
    /// The signature headers are missing.
    Unsigned,
    Valid,
    Invalid,
}

/// Checks a request's Standard Webhooks signature. For GET the signed content is the part of
/// the query callhook appended, after the URL's own parameters; the receiver cannot tell
/// where that starts, so every suffix of whole parameters is tried.
pub fn check(
    secret: Option<&Secret>,
    method: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Signature {
    let Some(secret) = secret else {
        return Signature::NotChecked;
    };
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let (Some(id), Some(ts), Some(sig)) = (
        get("webhook-id"),
        get("webhook-timestamp"),
        get("webhook-signature"),
    ) else {
        return Signature::Unsigned;
    };
    let Ok(ts) = ts.parse::<i64>() else {
        return Signature::Invalid;
    };
    let ok = if method == "GET" {
        let q = query.unwrap_or("");
        std::iter::once(q)
            .chain(q.match_indices('&').map(|(i, _)| &q[i + 1..]))
            .any(|content| secret.verify(id, ts, content.as_bytes(), sig))
    } else {
        secret.verify(id, ts, body, sig)
    };
    if ok {
        Signature::Valid
    } else {
        Signature::Invalid
    }
}

/// The request's parameters, in order: the JSON object, or the form / query pairs.
pub fn parameters(
    method: &str,
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Vec<(String, String)> {
    let form = |s: &[u8]| {
        url::form_urlencoded::parse(s)
            .into_owned()
            .collect::<Vec<_>>()
    };
    if method == "GET" {
        return form(query.unwrap_or("").as_bytes());
    }
    if content_type.is_some_and(|c| c.starts_with("application/json"))
        && let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body)
    {
        return m
            .into_iter()
            .map(|(k, v)| {
                let shown = match v {
                    Value::String(s) => s,
                    Value::Null => "null".to_owned(),
                    other => other.to_string(),
                };
                (k, shown)
            })
            .collect();
    }
    form(body)
}

/// Writes one request as the developer sees it.
pub fn describe(method: &str, uri: &Uri, sig: &Signature, params: &[(String, String)]) -> String {
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map_or("-", |(_, v)| v.as_str())
    };
    let verdict = match sig {
        Signature::NotChecked => "signature not checked (pass --secret whsec_…)",
        Signature::Unsigned => "UNSIGNED: no webhook-signature headers",
        Signature::Valid => "signature valid",
        Signature::Invalid => "SIGNATURE INVALID",
    };
    let mut out = format!(
        "{}  {method} {}\n  {} · call {} · {verdict}\n",
        jiff::Timestamp::now().strftime("%H:%M:%S"),
        uri.path(),
        get("trigger"),
        get("call_id"),
    );
    let width = params.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in params {
        out.push_str(&format!("    {k:<width$}  {v}\n"));
    }
    out
}

async fn receive(
    State(secret): State<Arc<Option<Secret>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let sig = check(
        secret.as_ref().as_ref(),
        method.as_str(),
        uri.query(),
        &headers,
        &body,
    );
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
    let params = parameters(method.as_str(), uri.query(), ct, &body);
    println!("{}", describe(method.as_str(), &uri, &sig, &params));
    StatusCode::OK
}

/// Listens on 127.0.0.1:`port` until interrupted.
pub async fn run(port: u16, secret: Option<String>) -> anyhow::Result<()> {
    let secret = secret
        .map(|s| Secret::parse(&s))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--secret: {e}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "listening on http://{addr}/ — point a webhook here (the operator must allow 127.0.0.0/8 in allow_targets)"
    );
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(Arc::new(secret));
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::shutdown::signal())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_signatures_verify_over_the_appended_part() {
        let secret = Secret::generate();
        let appended = "event_id=e1&trigger=call_received";
        let sig = secret.sign("dlv_1", 5, appended.as_bytes());
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "dlv_1".parse().unwrap());
        h.insert("webhook-timestamp", "5".parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        let full = format!("src=pbx&x=1&{appended}");
        assert_eq!(
            check(Some(&secret), "GET", Some(&full), &h, b""),
            Signature::Valid
        );
        assert_eq!(
            check(Some(&secret), "GET", Some("src=pbx&event_id=e2"), &h, b""),
            Signature::Invalid
        );
        assert_eq!(
            check(Some(&secret), "POST", None, &h, appended.as_bytes()),
            Signature::Valid
        );
        assert_eq!(check(None, "POST", None, &h, b""), Signature::NotChecked);
        assert_eq!(
            check(Some(&secret), "POST", None, &HeaderMap::new(), b""),
            Signature::Unsigned
        );
    }

    #[test]
    fn parameters_come_in_order_from_every_encoding() {
        let json = br#"{"event_id":"e1","trigger":"call_missed","duration":5,"leg_id":null}"#;
        let p = parameters("POST", None, Some("application/json"), json);
        assert_eq!(p[0], ("event_id".into(), "e1".into()));
        assert_eq!(p[2], ("duration".into(), "5".into()));
        assert_eq!(p[3], ("leg_id".into(), "null".into()));
        let p = parameters(
            "POST",
            None,
            Some("application/x-www-form-urlencoded"),
            b"a=1&b=x+y",
        );
        assert_eq!(p, [("a".into(), "1".into()), ("b".into(), "x y".into())]);
        let text = describe("POST", &"/hook".parse().unwrap(), &Signature::Valid, &p);
        assert!(
            text.contains("signature valid") && text.contains("b  x y"),
            "{text}"
        );
    }
}
