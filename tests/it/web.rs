//! The web page over real HTTP: a form without the session's CSRF token is refused with 403,
//! another account's pages are 404, pages need a signed-in admin, failed sign-ins are
//! throttled, links to a call work whatever its id holds, the Calls page shows the account's
//! PBX connectors, and its Call form names its problems and follows the request it made.

use std::sync::Arc;
use std::time::Duration;

use callhook::app::{App, open_store};
use callhook::connectors::ConnectorSettings;
use callhook::core::credentials::hash_password;
use callhook::store::{Role, Store, User};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::helpers::{TestApp, test_settings};

const EMAIL: &str = "admin@acme.example";
const PASSWORD: &str = "correct horse battery staple";

/// A running callhook with one account whose admin signs in with [`EMAIL`] / [`PASSWORD`].
struct Site {
    base: String,
    http: reqwest::Client,
    account_id: callhook::core::id::AccountId,
    account_key: String,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

/// A signed-in browser: its cookies and the CSRF token its forms carry.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn site() -> Site {
    site_with_connectors(|_| Vec::new()).await
}

/// A site whose callhook also runs the PBX connectors `connectors` makes for the account's id.
async fn site_with_connectors(connectors: impl FnOnce(&str) -> Vec<ConnectorSettings>) -> Site {
    site_with(connectors, |_| {}).await
}

/// A site behind a proxy on this host, which names the client in `X-Forwarded-For`.
async fn site_behind_proxy() -> Site {
    site_with(
        |_| Vec::new(),
        |s| s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()],
    )
    .await
}

async fn site_with(
    connectors: impl FnOnce(&str) -> Vec<ConnectorSettings>,
    tweak: impl FnOnce(&mut callhook::config::Settings),
) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    tweak(&mut settings);
    // The account is made before callhook starts, so that a connector can name it.
    let made = {
        let store = open_store(&settings).await.unwrap();
        callhook::service::accounts::create(&*store, "Acme", "test")
            .await
            .unwrap()
    };
    settings.connectors = connectors(made.account.id.as_str());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = App::build(settings).await.expect("the app starts");
    let store = app.services.store.clone();
    tokio::spawn(app.serve(listener, std::future::pending()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let site = Site {
        base,
        http,
        account_id: made.account.id,
        account_key: made.api_key.secret,
        store,
        _dir: dir,
    };
    site.add_admin(EMAIL).await;
    site
}

/// The value of the cookie `name` set by `resp`.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            assert!(
                attrs.contains("HttpOnly") && attrs.contains("SameSite=Lax"),
                "{v}"
            );
            let (k, val) = pair.split_once('=')?;
            (k == name && !val.is_empty()).then(|| val.to_owned())
        })
}

/// The value of the first `name="csrf"` hidden field of a page.
fn csrf_field(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("the page has a form")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

impl Site {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Another owner of the account, who signs in with `email` / [`PASSWORD`].
    async fn add_admin(&self, email: &str) {
        self.add_user(email, Role::Owner).await;
    }

    /// A user of the account with `role`, who signs in with `email` / [`PASSWORD`].
    async fn add_user(&self, email: &str, role: Role) {
        let user = User {
            id: callhook::core::id::UserId::new(),
            account_id: self.account_id.clone(),
            email: email.into(),
            password_hash: hash_password(PASSWORD).unwrap(),
            role,
            created_at: jiff::Timestamp::now(),
        };
        let entry = callhook::service::operator_entry(
            &self.account_id,
            "test",
            callhook::core::audit::Action::UserCreate,
            user.id.as_str(),
            Vec::new(),
        );
        self.store.insert_user(&user, None, &entry).await.unwrap();
    }

    /// Posts the sign-in form as a script would (its own double-submit token), from a
    /// browser that a proxy on this host names `client`; answers the status and the page.
    async fn try_sign_in(&self, email: &str, password: &str, client: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .post(self.url("/signin"))
            .header(COOKIE, "callhook_signin=chosen-by-the-script")
            .header("x-forwarded-for", format!("203.0.113.7, {client}"))
            .form(&[
                ("csrf", "chosen-by-the-script"),
                ("email", email),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    async fn sign_in(&self) -> Browser {
        let page = self.http.get(self.url("/signin")).send().await.unwrap();
        let token = set_cookie(&page, "callhook_signin").expect("a sign-in token cookie");
        let form_token = csrf_field(&page.text().await.unwrap());
        assert_eq!(token, form_token);
        let resp = self
            .http
            .post(self.url("/signin"))
            .header(COOKIE, format!("callhook_signin={token}"))
            .form(&[
                ("csrf", token.as_str()),
                ("email", EMAIL),
                ("password", PASSWORD),
                ("next", "/webhooks"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let cookie = format!(
            "callhook_session={}",
            set_cookie(&resp, "callhook_session").expect("a session cookie")
        );
        let list = self
            .http
            .get(self.url("/webhooks"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(list.status(), StatusCode::OK);
        let csrf = csrf_field(&list.text().await.unwrap());
        Browser { cookie, csrf }
    }

    async fn post_form(&self, b: &Browser, path: &str, form: &[(&str, &str)]) -> StatusCode {
        self.http
            .post(self.url(path))
            .header(COOKIE, &b.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn get_page(&self, b: &Browser, path: &str) -> StatusCode {
        self.get_html(b, path).await.0
    }

    /// A page as `b` sees it: its status and HTML.
    async fn get_html(&self, b: &Browser, path: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .get(self.url(path))
            .header(COOKIE, &b.cookie)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    async fn webhook_count(&self, key: &str) -> usize {
        let list: serde_json::Value = self
            .http
            .get(self.url("/v1/webhooks"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["data"].as_array().unwrap().len()
    }
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_is_refused() {
    let site = site().await;
    let b = site.sign_in().await;
    let fields = [
        ("name", "CRM"),
        ("trigger", "call_missed"),
        ("url", "https://crm.example.com/hook"),
        ("call_types", "inbound"),
        ("enabled", "on"),
    ];
    assert_eq!(
        site.post_form(&b, "/webhooks", &fields).await,
        StatusCode::FORBIDDEN
    );
    let mut forged = fields.to_vec();
    forged.push(("csrf", "forged"));
    assert_eq!(
        site.post_form(&b, "/webhooks", &forged).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(site.webhook_count(&site.account_key).await, 0);

    let mut real = fields.to_vec();
    real.push(("csrf", &b.csrf));
    assert_eq!(
        site.post_form(&b, "/webhooks", &real).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(site.webhook_count(&site.account_key).await, 1);

    // Signing out is a form too.
    assert_eq!(
        site.post_form(&b, "/signout", &[]).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn signing_in_needs_the_sign_in_pages_token() {
    let site = site().await;
    let resp = site
        .http
        .post(site.url("/signin"))
        .form(&[("csrf", "x"), ("email", EMAIL), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&resp, "callhook_session").is_none());
}

#[tokio::test]
async fn another_accounts_pages_are_404() {
    let site = site().await;
    let b = site.sign_in().await;
    // Another account of the same callhook, through the API.
    let other = TestApp::attach(
        site.base.clone(),
        reqwest::Client::new(),
        tempfile::tempdir().unwrap(),
        "Other Co",
    )
    .await;
    let theirs = other
        .create_webhook(json!({"name": "Theirs", "trigger": "call_missed", "url": "https://other.example.com/h"}))
        .await;
    let id = theirs["id"].as_str().unwrap();
    for path in [
        format!("/webhooks/{id}"),
        format!("/webhooks/{id}/edit"),
        format!("/webhooks/{id}/delete"),
        format!("/webhooks/{id}/secret"),
    ] {
        assert_eq!(
            site.get_page(&b, &path).await,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let csrf = b.csrf.as_str();
    for path in ["delete", "disable", "test", "secret/rotate"] {
        assert_eq!(
            site.post_form(&b, &format!("/webhooks/{id}/{path}"), &[("csrf", csrf)])
                .await,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Nothing of theirs changed.
    assert_eq!(site.webhook_count(&other.key).await, 1);
    let (s, after) = other.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert_eq!(after["enabled"], true);
}

#[tokio::test]
async fn pages_send_a_visitor_to_sign_in_and_back() {
    let site = site().await;
    let resp = site
        .http
        .get(site.url("/webhooks/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers()[LOCATION].to_str().unwrap(),
        "/signin?next=%2Fwebhooks%2Fnew"
    );
    let resp = site.http.get(site.url("/")).send().await.unwrap();
    assert_eq!(resp.headers()[LOCATION].to_str().unwrap(), "/signin");
}

#[tokio::test]
async fn call_ids_with_url_characters_link_to_their_own_page() {
    let site = site().await;
    let call_id = "pbx/17 90?x=1#frag%2F";
    let now = jiff::Timestamp::now().to_string();
    let resp = site
        .http
        .post(site.url("/v1/events"))
        .bearer_auth(&site.account_key)
        .json(&json!({"type": "call.received", "occurred_at": now,
            "call": {"call_id": call_id, "call_type": "inbound", "did_number": "+918065251305",
                     "customer_number": "+919812345678", "started_at": now}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let b = site.sign_in().await;
    let (_, list) = site.get_html(&b, "/calls").await;
    // Every character that means something in a URL is encoded, `%` and `/` included.
    let href = "/calls/pbx%2F17%2090%3Fx%3D1%23frag%252F";
    assert!(list.contains(&format!("href=\"{href}\"")), "{list}");
    let (status, html) = site.get_html(&b, href).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("17 90?x=1#frag%2F"), "{html}");
    assert!(html.contains("call.received"), "{html}");
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_email_and_client_and_never_lock_the_owner_out() {
    let site = site_behind_proxy().await;
    let other = "other@acme.example";
    site.add_admin(other).await;
    for _ in 0..10 {
        let (status, _) = site.try_sign_in(EMAIL, "wrong", "198.51.100.1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The 11th from that client is not even checked, even with the right password.
    let (status, page) = site.try_sign_in(EMAIL, PASSWORD, "198.51.100.1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("Try again in a few minutes"), "{page}");
    // The owner, from another client, gets through the flood with the right password.
    let (status, _) = site.try_sign_in(EMAIL, PASSWORD, "198.51.100.2").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Other admins still sign in, from the flooding client too (it is under its own limit).
    let (status, _) = site.try_sign_in(other, PASSWORD, "198.51.100.1").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // A flood spread over many clients: the owner's known client is never slowed; a client
    // new to the email gets one try, then waits.
    for i in 10..40 {
        let (status, _) = site
            .try_sign_in(EMAIL, "wrong", &format!("198.51.100.{i}"))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for _ in 0..3 {
        let (status, _) = site.try_sign_in(EMAIL, PASSWORD, "198.51.100.2").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    let (status, _) = site.try_sign_in(EMAIL, "wrong", "203.0.113.50").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = site.try_sign_in(EMAIL, "wrong", "203.0.113.50").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // An unknown email is counted like a known one, so a refusal tells nobody who exists.
    for _ in 0..10 {
        let (status, _) = site
            .try_sign_in("nobody@acme.example", PASSWORD, "198.51.100.3")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = site
        .try_sign_in("nobody@acme.example", PASSWORD, "198.51.100.3")
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// Without `trusted_proxies`, `X-Forwarded-For` is the client's own writing: rotating it
/// avoids no limit.
#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_avoids_no_limit() {
    let site = site().await;
    for i in 0..10 {
        let (status, _) = site
            .try_sign_in(EMAIL, "wrong", &format!("198.51.100.{i}"))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = site.try_sign_in(EMAIL, "wrong", "198.51.100.77").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_calls_page_shows_the_accounts_pbx_connectors() {
    // Nothing listens on the discard port: the connectors keep trying, and say why.
    let connector = |name: &str, account: &str| {
        serde_json::from_value(
            json!({"kind": "asterisk_ami", "name": name, "host": "127.0.0.1",
            "port": 9, "username": "callhook", "password": "s3cret", "account": account}),
        )
        .unwrap()
    };
    let site = site_with_connectors(|account| {
        vec![
            connector("pbx-acme", account),
            connector("pbx-other", "acct_someone_else"),
        ]
    })
    .await;
    let b = site.sign_in().await;
    let (status, html) = site.get_html(&b, "/calls").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("PBX connectors"), "{html}");
    assert!(html.contains("pbx-acme"), "{html}");
    assert!(html.contains("Not connected"), "{html}");
    // Another account's connector is not shown.
    assert!(!html.contains("pbx-other"), "{html}");
}

#[tokio::test]
async fn the_call_form_names_its_problems_and_the_page_follows_a_request() {
    let site = site_with_connectors(|account| {
        vec![
            serde_json::from_value(json!({
                "kind": "asterisk_ami", "name": "pbx-acme", "host": "127.0.0.1", "port": 9,
                "username": "callhook", "password": "s3cret", "account": account,
                "originate": true, "originate_channel": "PJSIP/{extension}",
                "originate_context": "callhook-click-to-call"}))
            .unwrap(),
        ]
    })
    .await;
    let r = site
        .http
        .post(site.url("/v1/numbers"))
        .bearer_auth(&site.account_key)
        .json(&json!({"number": "+918065251305", "label": "Sales line"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let b = site.sign_in().await;
    let (status, html) = site.get_html(&b, "/calls").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Place a call"), "{html}");
    assert!(
        html.contains("<option value=\"+918065251305\">+918065251305 · Sales line</option>"),
        "{html}"
    );

    let call = [
        ("agent_extension", "101"),
        ("customer_number", "+919812345678"),
        ("did_number", "+918065251305"),
    ];
    assert_eq!(
        site.post_form(&b, "/calls/click-to-call", &call).await,
        StatusCode::FORBIDDEN
    );
    let post = |fields: Vec<(&'static str, String)>| {
        let (site, cookie) = (&site, b.cookie.clone());
        async move {
            let resp = site
                .http
                .post(site.url("/calls/click-to-call"))
                .header(COOKIE, cookie)
                .form(&fields)
                .send()
                .await
                .unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let with = |over: &[(&'static str, &str)]| {
        let mut f: Vec<(&'static str, String)> = vec![("csrf", b.csrf.clone())];
        for (k, v) in call {
            let v = over.iter().find(|(o, _)| *o == k).map_or(v, |(_, v)| *v);
            f.push((k, v.to_owned()));
        }
        f
    };
    // Every bad field shown at its input, the form open again with what was typed.
    let (status, html) = post(with(&[
        ("agent_extension", "1 01"),
        ("customer_number", "98123"),
    ]))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"agent_extension-error\""), "{html}");
    assert!(html.contains("id=\"customer_number-error\""), "{html}");
    assert!(html.contains("<details class=\"call-box\" open>"), "{html}");
    assert!(html.contains("value=\"98123\""), "{html}");
    // The connector cannot reach its PBX: the form says so (SPEC §15's 409).
    let (status, html) = post(with(&[])).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("Cannot place the call now"), "{html}");
    assert!(html.contains("pbx-acme is not connected"), "{html}");

    // A request the form made (stored here as the form would): the page shows it and its
    // script reads its state as JSON.
    let at = jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond()).unwrap();
    let number = |n: &str| callhook::core::number::E164::parse(n).unwrap();
    let id = callhook::core::id::ClickToCallId::new();
    let entry = callhook::service::operator_entry(
        &site.account_id,
        "test",
        callhook::core::audit::Action::ClickToCallRequest,
        id.as_str(),
        Vec::new(),
    );
    site.store
        .insert_click_to_call(
            &callhook::store::StoredClickToCall {
                id: id.clone(),
                account_id: site.account_id.clone(),
                ref_id: id.as_str().to_owned(),
                agent_extension: "101".into(),
                customer_number: number("+919812345678"),
                did_number: number("+918065251305"),
                status: callhook::store::ClickToCallStatus::Queued,
                cause: None,
                call_id: None,
                connector: None,
                created_at: at,
                placed_at: None,
                ringing_agent_at: None,
                ringing_customer_at: None,
                ended_at: None,
                updated_at: at,
            },
            &entry,
        )
        .await
        .unwrap();
    let (status, html) = site
        .get_html(&b, &format!("/calls?click_to_call={id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"click-to-call\""), "{html}");
    assert!(
        html.contains(&format!("data-url=\"/calls/click-to-call/{id}\"")),
        "{html}"
    );
    let state: serde_json::Value = site
        .http
        .get(site.url(&format!("/calls/click-to-call/{id}")))
        .header(COOKIE, &b.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["state"], "queued");
    assert_eq!(state["label"], "Queued");
    assert_eq!(state["final"], false);
    assert_eq!(state["steps"][1]["at"], serde_json::Value::Null);
    // Another account's request, or none: nothing to show.
    let (status, html) = site.get_html(&b, "/calls?click_to_call=c2c_nothing").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("id=\"click-to-call\""));
    assert_eq!(
        site.get_page(&b, "/calls/click-to-call/c2c_01JDX0000000000000000000000")
            .await,
        StatusCode::NOT_FOUND
    );
}

/// Every `<form method="post">` of a page: its action and the names of its fields.
fn post_forms(html: &str) -> Vec<(String, Vec<String>)> {
    let attr = |tag: &str, name: &str| {
        let key = format!("{name}=\"");
        tag.find(&key).map(|at| {
            tag[at + key.len()..]
                .split('"')
                .next()
                .unwrap_or("")
                .to_owned()
        })
    };
    let mut forms = Vec::new();
    for chunk in html.split("<form").skip(1) {
        let Some((tag, rest)) = chunk.split_once('>') else {
            continue;
        };
        if attr(tag, "method").as_deref() != Some("post") {
            continue;
        }
        let action = attr(tag, "action")
            .unwrap_or_default()
            .replace("&#x2f;", "/");
        let inner = rest.split("</form>").next().unwrap_or("");
        let mut names = Vec::new();
        for field in ["<input", "<select", "<textarea"] {
            for t in inner.split(field).skip(1) {
                let t = t.split('>').next().unwrap_or("");
                if let Some(n) = attr(t, "name")
                    && n != "csrf"
                    && !names.contains(&n)
                {
                    names.push(n);
                }
            }
        }
        forms.push((action, names));
    }
    forms
}

/// NUL (which PostgreSQL cannot store) in any field of any form, or in a page's path or query,
/// is a 422 page naming the field: never a 500, on either database.
#[tokio::test]
async fn nul_in_any_form_field_or_page_address_is_a_422() {
    let site = site().await;
    let b = site.sign_in().await;
    site.http
        .post(site.url("/v1/numbers"))
        .bearer_auth(&site.account_key)
        .json(&json!({"number": "+918065251305", "label": "Sales"}))
        .send()
        .await
        .unwrap();
    let hook: serde_json::Value = site
        .http
        .post(site.url("/v1/webhooks"))
        .bearer_auth(&site.account_key)
        .json(
            &json!({"name": "CRM", "trigger": "call_missed", "url": "https://crm.example.com/h",
                      "headers": [{"key": "X-Api-Key", "value": "v"}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = hook["id"].as_str().unwrap();
    let mut forms = Vec::new();
    for page in [
        "/webhooks".to_owned(),
        "/webhooks/new".to_owned(),
        format!("/webhooks/{id}"),
        format!("/webhooks/{id}/edit"),
        "/numbers".to_owned(),
        "/api-keys".to_owned(),
    ] {
        let (status, html) = site.get_html(&b, &page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for f in post_forms(&html) {
            if !forms.contains(&f) {
                forms.push(f);
            }
        }
    }
    assert!(forms.len() >= 10, "{forms:?}");
    for (action, mut names) in forms {
        if action == "/signout" {
            continue;
        }
        // A form with no field of its own gets one: any NUL in a form body is refused.
        if names.is_empty() {
            names.push("extra".into());
        }
        let nul = "a\u{0}b".to_owned();
        let mut body: Vec<(&str, &str)> = vec![("csrf", b.csrf.as_str())];
        body.extend(names.iter().map(|n| (n.as_str(), nul.as_str())));
        let resp = site
            .http
            .post(site.url(&action))
            .header(COOKIE, &b.cookie)
            .form(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let html = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{action}: {html}");
        for n in &names {
            assert!(
                html.contains(&format!("{n}: must not contain")),
                "{action} {n}: {html}"
            );
        }
    }
    // The sign-in form, before any session.
    let (status, html) = site
        .try_sign_in("a\u{0}@acme.example", PASSWORD, "198.51.100.1")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    for (page, field) in [
        ("/calls/a%00b".to_owned(), "call_id"),
        ("/calls?number=%00".to_owned(), "number"),
        (format!("/webhooks/{id}?status=%00"), "status"),
        ("/deliveries/a%00".to_owned(), "id"),
        ("/signin?next=%00".to_owned(), "next"),
    ] {
        let (status, html) = site.get_html(&b, &page).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}: {html}");
        assert!(
            html.contains(&format!("{field}: must not contain")),
            "{page}: {html}"
        );
    }
}

/// `next` after sign-in: another host in any spelling goes to the webhook list instead, and a
/// newline in it neither breaks the answer nor lands in a header.
#[tokio::test]
async fn signing_in_never_sends_the_browser_to_another_host() {
    let site = site().await;
    let page = site
        .http
        .get(site.url("/signin?next=/%09/evil.example"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"next\" value=\"/webhooks\""), "{page}");
    for next in [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "/webhooks\r\nSet-Cookie: a=b",
        "/webhooks\n",
    ] {
        let page = site.http.get(site.url("/signin")).send().await.unwrap();
        let token = set_cookie(&page, "callhook_signin").unwrap();
        let resp = site
            .http
            .post(site.url("/signin"))
            .header(COOKIE, format!("callhook_signin={token}"))
            .form(&[
                ("csrf", token.as_str()),
                ("email", EMAIL),
                ("password", PASSWORD),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(resp.headers()[LOCATION], "/webhooks", "{next:?}");
    }
}

/// Served over https (`public_url`): the cookies are `Secure` and `__Host-`, only that name
/// signs in, and every answer carries HSTS; over plain http neither.
#[tokio::test]
async fn over_https_the_session_cookie_is_secure_and_host_only() {
    let site = site_with(
        |_| Vec::new(),
        |s| s.public_url = "https://callhook.example.com".into(),
    )
    .await;
    let page = site.http.get(site.url("/signin")).send().await.unwrap();
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let raw: Vec<String> = page
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        raw.iter()
            .any(|c| c.starts_with("__Host-callhook_signin=") && c.contains("; Secure")),
        "{raw:?}"
    );
    let token = set_cookie(&page, "__Host-callhook_signin").expect("a sign-in token");
    let resp = site
        .http
        .post(site.url("/signin"))
        .header(COOKIE, format!("__Host-callhook_signin={token}"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session_header = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-callhook_session="))
        .expect("a __Host- session cookie");
    assert!(
        session_header.contains("; Secure") && session_header.contains("; Path=/"),
        "{session_header}"
    );
    assert!(!session_header.contains("Domain"), "{session_header}");
    let secret = set_cookie(&resp, "__Host-callhook_session").unwrap();
    let get = |cookie: String| {
        site.http
            .get(site.url("/webhooks"))
            .header(COOKIE, cookie)
            .send()
    };
    let ok = get(format!("__Host-callhook_session={secret}"))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // The same token under the plain name (as a sibling host could set it) signs nobody in.
    let plain = get(format!("callhook_session={secret}")).await.unwrap();
    assert_eq!(plain.status(), StatusCode::SEE_OTHER);

    // Over plain http: no HSTS, no Secure.
    let plain_site = self::site().await;
    let page = plain_site
        .http
        .get(plain_site.url("/signin"))
        .send()
        .await
        .unwrap();
    assert!(page.headers().get("strict-transport-security").is_none());
    assert!(set_cookie(&page, "callhook_signin").is_some());
}

/// A trusted proxy's `X-Forwarded-Proto: https` counts as https; anyone else's does not.
#[tokio::test]
async fn forwarded_proto_counts_only_from_a_trusted_proxy() {
    for (trusted, secure) in [(false, false), (true, true)] {
        let site = if trusted {
            site_behind_proxy().await
        } else {
            site().await
        };
        let page = site
            .http
            .get(site.url("/signin"))
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        assert_eq!(
            page.headers().get("strict-transport-security").is_some(),
            secure
        );
        assert_eq!(
            set_cookie(&page, "__Host-callhook_signin").is_some(),
            secure
        );
    }
}

/// Every web answer keeps its security headers; a test that fails if one goes.
#[tokio::test]
async fn every_page_keeps_its_security_headers() {
    let site = site_with(
        |_| Vec::new(),
        |s| s.public_url = "https://callhook.example.com".into(),
    )
    .await;
    let expected = [
        ("content-security-policy", "default-src 'self'"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("strict-transport-security", "max-age="),
    ];
    for (path, no_store) in [
        ("/signin", true),
        ("/webhooks", true),
        ("/nothing-here", true),
        ("/calls/x%00", true),
        ("/assets/x/app.css", false),
    ] {
        let resp = site.http.get(site.url(path)).send().await.unwrap();
        for (name, starts) in expected {
            let v = resp
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            assert!(v.starts_with(starts), "{path}: {name} is {v:?}");
        }
        if no_store {
            assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
        }
    }
}

/// A session ends at its absolute lifetime however busy it is.
#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime() {
    let site = site().await;
    let b = site.sign_in().await;
    assert_eq!(site.get_page(&b, "/webhooks").await, StatusCode::OK);
    let user = site.store.user_by_email(EMAIL).await.unwrap().unwrap();
    let token = "an-old-but-busy-session-token";
    let now = jiff::Timestamp::now();
    site.store
        .insert_session(&callhook::store::Session {
            id: callhook::core::credentials::hash_token(token),
            user_id: user.id,
            csrf: "c".into(),
            created_at: now - callhook::service::users::SESSION_MAX,
            expires_at: now + jiff::SignedDuration::from_hours(1),
        })
        .await
        .unwrap();
    let old = Browser {
        cookie: format!("callhook_session={token}"),
        csrf: "c".into(),
    };
    assert_eq!(
        site.get_page(&old, "/webhooks").await,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn pending_deliveries_are_followed_as_they_stand_now() {
    let site = site().await;
    let api = |method: reqwest::Method, path: &str| {
        site.http
            .request(method, site.url(path))
            .bearer_auth(&site.account_key)
    };
    // Loopback is not allowed here: every attempt fails at once, and the delivery retries.
    let wh: serde_json::Value = api(reqwest::Method::POST, "/v1/webhooks")
        .json(&json!({"name": "CRM", "trigger": "call_received", "url": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wh = wh["id"].as_str().unwrap().to_owned();
    let now = jiff::Timestamp::now().to_string();
    let resp = api(reqwest::Method::POST, "/v1/events")
        .json(&json!({"type": "call.received", "occurred_at": now,
            "call": {"call_id": "live-1", "call_type": "inbound", "did_number": "+918065251305",
                     "customer_number": "+919812345678", "started_at": now}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let log: serde_json::Value = api(
        reqwest::Method::GET,
        &format!("/v1/webhooks/{wh}/deliveries"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = log["data"][0]["id"].as_str().unwrap().to_owned();

    let b = site.sign_in().await;
    let (_, page) = site.get_html(&b, &format!("/webhooks/{wh}")).await;
    assert!(
        page.contains(&format!("data-delivery=\"{id}\" data-pending")),
        "{page}"
    );
    let (_, call) = site.get_html(&b, "/calls/live-1").await;
    assert!(
        call.contains(&format!("data-delivery=\"{id}\" data-pending")),
        "{call}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, body) = site
            .get_html(&b, &format!("/deliveries/live?ids={id}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let live: serde_json::Value = serde_json::from_str(&body).unwrap();
        let d = &live["deliveries"][0];
        assert_eq!(d["id"], id.as_str(), "{live}");
        assert_eq!(d["pending"], true, "retried after 5 s: {live}");
        if d["attempts"] == 1 {
            assert_eq!(d["status"], "Retrying", "after a failed attempt: {live}");
            assert_eq!(d["last_response"], "No response", "{live}");
            break;
        }
        assert_eq!(d["status"], "Pending", "{live}");
        assert!(std::time::Instant::now() < deadline, "{live}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Ids of nothing (another account's, pruned) are left out; a malformed one is refused.
    let (s, body) = site
        .get_html(&b, "/deliveries/live?ids=dlv_00000000000000000000000000")
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"deliveries":[]}"#);
    let (s, body) = site
        .get_html(&b, &format!("/deliveries/live?ids={id},nope"))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("ids[1]"), "{body}");
    let many = vec![id.as_str(); 51].join(",");
    let (s, body) = site
        .get_html(&b, &format!("/deliveries/live?ids={many}"))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
