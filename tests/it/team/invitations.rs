//! Invitations without a mail server (SPEC §13): a one-time link, valid 72 hours and usable
//! once, stored hashed; resets by a new link; password changes; removal; the sessions each of
//! them ends at once; the last owner; and `callhook user create` for an account's first owner.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::*;

#[tokio::test]
async fn an_invited_user_signs_up_once_through_the_link() {
    let team = Team::new().await;
    let email = fresh_email("asha");
    let before = jiff::Timestamp::now();
    let (user, url) = team.invite(&email, "viewer").await;
    assert_eq!(
        (&user["role"], &user["status"]),
        (&json!("viewer"), &json!("pending"))
    );
    let expires: jiff::Timestamp = user["link_expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = expires.duration_since(before);
    // Times are kept to the millisecond.
    let hours = jiff::SignedDuration::from_hours(72);
    assert!(
        ttl > hours - jiff::SignedDuration::from_millis(1)
            && ttl < hours + jiff::SignedDuration::from_mins(1),
        "valid 72 hours: {ttl:?}"
    );
    assert!(url.starts_with(&team.app.url("/invite/")), "{url}");
    // Before signing up, the invitee cannot sign in with any password.
    assert!(team.sign_in(&email, PASSWORD).await.is_none());
    // Too short, or two different passwords: the form says so and the link still works.
    let page = team.web.get(&url).send().await.unwrap();
    let cookie = page
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .find_map(|v| {
            v.to_str()
                .ok()?
                .split(';')
                .next()?
                .strip_prefix("callhook_signin=")
                .map(str::to_owned)
        })
        .unwrap();
    for (password, confirm, field) in [
        ("short", "short", "password"),
        (PASSWORD, "another one!", "confirm"),
    ] {
        let resp = team
            .web
            .post(&url)
            .header(reqwest::header::COOKIE, format!("callhook_signin={cookie}"))
            .form(&[
                ("csrf", cookie.as_str()),
                ("password", password),
                ("confirm", confirm),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = resp.text().await.unwrap();
        assert!(html.contains(&format!("id=\"{field}-error\"")), "{html}");
    }
    // Signing up signs in.
    let (s, b) = team.follow(&url, PASSWORD).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let b = b.unwrap();
    let (_, html) = team.page(&b, "/webhooks?notice=signed-up").await;
    assert!(html.contains(&email) && html.contains("Viewer"), "{html}");
    // Once only.
    let (s, again) = team.follow(&url, "someone else's password").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(again.is_none());
    let resp = team.web.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("expired or was already used")
    );
    assert!(team.sign_in(&email, PASSWORD).await.is_some());
    let (_, users) = team.app.get("/v1/users").await;
    let listed = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (&listed["status"], &listed["link_expires_at"]),
        (&json!("active"), &json!(null))
    );
    // The same email again is a conflict.
    let (s, b) = team
        .app
        .post(
            "/v1/users",
            json!({"email": email.to_uppercase(), "role": "admin"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
}

#[tokio::test]
async fn an_expired_link_does_not_work_and_a_new_one_does() {
    let team = Team::new().await;
    let email = fresh_email("late");
    let (user, url) = team.invite(&email, "admin").await;
    // 72 hours later, as far as the stored link knows.
    team.sql("UPDATE user_links SET expires_at = 1").await;
    let (s, b) = team.follow(&url, PASSWORD).await;
    assert_eq!((s, b.is_none()), (StatusCode::NOT_FOUND, true));
    // A post without the page is refused too.
    let token = url.rsplit('/').next().unwrap();
    let resp = team
        .web
        .post(&url)
        .header(reqwest::header::COOKIE, "callhook_signin=t")
        .form(&[("csrf", "t"), ("password", PASSWORD), ("confirm", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{token}");
    assert!(team.sign_in(&email, PASSWORD).await.is_none());
    // A new link from an owner (or an admin key) works, and the old one still does not.
    let (s, reset) = team
        .app
        .post(&format!("/v1/users/{}/reset", id_of(&user)), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{reset}");
    let fresh = reset["reset_url"].as_str().unwrap();
    assert_ne!(fresh, url);
    let (s, b) = team.follow(fresh, PASSWORD).await;
    assert_eq!((s, b.is_some()), (StatusCode::SEE_OTHER, true));
    assert_eq!(team.follow(&url, PASSWORD).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn removing_a_user_ends_their_sessions_at_once() {
    let team = Team::new().await;
    let (id, first) = team.member("leaver", "admin").await;
    let (_, users) = team.app.get("/v1/users").await;
    let email = users["data"][0]["email"].as_str().unwrap().to_owned();
    let second = team.sign_in(&email, PASSWORD).await.unwrap();
    assert!(team.signed_in(&first).await && team.signed_in(&second).await);
    let (s, b) = team
        .app
        .call(Method::DELETE, &format!("/v1/users/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert!(!team.signed_in(&first).await, "signed out at once");
    assert!(!team.signed_in(&second).await);
    // A form of the old session is not taken either.
    let (s, location, _) = team
        .form(&first, "/numbers", &[("number", "+918065251399")])
        .await;
    assert_eq!(
        (s, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/signin"))
    );
    assert!(team.sign_in(&email, PASSWORD).await.is_none());
    let (s, _) = team
        .app
        .call(Method::DELETE, &format!("/v1/users/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let team = Team::new().await;
    let (id, here) = team.member("changer", "viewer").await;
    let (_, u) = team.app.get("/v1/users").await;
    let email = u["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id.as_str())
        .unwrap()["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let elsewhere = team.sign_in(&email, PASSWORD).await.unwrap();
    let (s, html) = team.page(&here, "/password").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Change password"));
    let new = "an even longer password";
    for (current, password, confirm, field) in [
        ("not it at all", new, new, "current"),
        (PASSWORD, "short", "short", "password"),
        (PASSWORD, new, "a typo in it", "confirm"),
    ] {
        let (s, _, html) = team
            .form(
                &here,
                "/password",
                &[
                    ("current", current),
                    ("password", password),
                    ("confirm", confirm),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            html.contains(&format!("id=\"{field}-error\"")),
            "{field}: {html}"
        );
    }
    assert!(
        team.signed_in(&elsewhere).await,
        "a refused change ends nothing"
    );
    let (s, location, _) = team
        .form(
            &here,
            "/password",
            &[("current", PASSWORD), ("password", new), ("confirm", new)],
        )
        .await;
    assert_eq!(
        (s, location.as_deref()),
        (
            StatusCode::SEE_OTHER,
            Some("/password?notice=password-changed")
        )
    );
    assert!(
        team.signed_in(&here).await,
        "the session it was changed in stays"
    );
    assert!(
        !team.signed_in(&elsewhere).await,
        "every other one ends at once"
    );
    assert!(team.sign_in(&email, PASSWORD).await.is_none());
    assert!(team.sign_in(&email, new).await.is_some());
}

#[tokio::test]
async fn a_reset_ends_the_sessions_and_the_old_password() {
    let team = Team::new().await;
    let (_, owner) = team.member("owner", "owner").await;
    let (id, user) = team.member("forgetful", "admin").await;
    let (_, page) = team.page(&owner, "/users").await;
    assert!(page.contains(&format!("/users/{id}/reset")), "{page}");
    let (s, _, page) = team.form(&owner, &format!("/users/{id}/reset"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!team.signed_in(&user).await, "signed out at once");
    // The page shows the new link to hand over.
    let at = page.find("id=\"made-link\">").expect("the link is shown") + "id=\"made-link\">".len();
    let link = page[at..].split('<').next().unwrap().to_owned();
    assert!(link.starts_with(&team.app.url("/invite/")), "{link}");
    let (s, b) = team.follow(&link, "a brand new password").await;
    assert_eq!((s, b.is_some()), (StatusCode::SEE_OTHER, true));
}

#[tokio::test]
async fn the_last_owner_is_neither_removed_nor_demoted() {
    let team = Team::new().await;
    let (first, owner) = team.member("owner", "owner").await;
    for (method, body) in [
        (Method::PATCH, Some(json!({"role": "admin"}))),
        (Method::DELETE, None),
    ] {
        let (s, b) = team
            .app
            .call(method, &format!("/v1/users/{first}"), body)
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert!(b["detail"].as_str().unwrap().contains("last owner"), "{b}");
    }
    // In the web page too, the owner cannot remove themselves or step down alone.
    let (s, _, page) = team
        .form(&owner, &format!("/users/{first}/remove"), &[])
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(page.contains("last owner"), "{page}");
    let (s, _, _) = team
        .form(
            &owner,
            &format!("/users/{first}/role"),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(team.signed_in(&owner).await);
    // With a second owner, the first may step down.
    let second = team.user("owner").await;
    let (s, b) = team
        .app
        .call(
            Method::PATCH,
            &format!("/v1/users/{first}"),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!((s, &b["role"]), (StatusCode::OK, &json!("admin")), "{b}");
    // Now an admin: the Users page is no longer theirs.
    let (s, _) = team.page(&owner, "/users").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = team
        .app
        .call(Method::DELETE, &format!("/v1/users/{second}"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
}

#[tokio::test]
async fn callhook_user_create_makes_the_first_owner_of_an_account() {
    let team = Team::new().await;
    let email = fresh_email("first-owner");
    let run = |role: Option<&str>, email: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhook"));
        cmd.args([
            "user",
            "create",
            "--account",
            &team.app.account_id,
            "--email",
            email,
        ])
        .arg("--database")
        .arg(&team.app.database_url)
        .env("CALLHOOK_LOG", "warn");
        if let Some(r) = role {
            cmd.args(["--role", r]);
        }
        cmd.output().expect("callhook runs")
    };
    let out = run(None, &email);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("role      owner"), "{text}");
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password  "))
        .expect("the password is printed")
        .trim()
        .to_owned();
    let b = team.sign_in(&email, &password).await.expect("signs in");
    let (s, _) = team.page(&b, "/users").await;
    assert_eq!(s, StatusCode::OK, "an owner manages users");
    let viewer = fresh_email("ops-viewer");
    let out = run(Some("viewer"), &viewer);
    assert!(out.status.success());
    let out = run(Some("boss"), &fresh_email("x"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("owner, admin or viewer"));
    let made = team.audit("?action=user.create").await;
    assert_eq!(made.len(), 2, "{made:?}");
    assert_eq!(
        made[1]["actor"],
        json!({"type": "operator", "id": null, "name": "callhook user create"})
    );
    assert_eq!(
        made[1]["changes"][0],
        json!({"field": "email", "before": null, "after": email})
    );
}
