//! Alerts (SPEC §12): what an account's alert receiver is told about its webhooks, and when.
//!
//! Four transitions are alerted, each once: `webhook.failing` (the latest attempt failed, and
//! the run of failures is `alert_after` old), `webhook.recovered` (a webhook alerted as failing
//! succeeds again), `webhook.disabled` (410 Gone or auto-disable) and `delivery.failed` (a
//! delivery used its last attempt; at most one alert per webhook per `failed_every`, carrying
//! how many failed since the one before). What was alerted is kept per webhook ([`State`]);
//! [`after_attempts`] and [`on_sweep`] decide from it, as pure functions: the store runs them
//! in the transaction that records the attempts (or in the periodic sweep, for what only time
//! brings), and writes the new state with the alerts it asks for, so a crash or a second node
//! never sends a transition twice or loses one.
//!
//! An alert is sent like any delivery: a row of the deliveries table, claimed, retried and
//! signed by the one dispatcher. Its rows live in the account's alert scope ([`scope`]) so
//! nothing that lists an account's calls, deliveries or webhooks finds them.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::id::AccountId;
use super::render::{USER_AGENT, WebhookRequest};
use super::retry::format_duration;
use super::sign::{Secret, signature_header};
use super::webhook::Method;

/// `alert_after` when an account has not set it.
pub const AFTER_DEFAULT: Duration = Duration::from_secs(600);
/// The longest `alert_after`.
pub const AFTER_MAX: Duration = Duration::from_secs(7 * 86400);
/// At most one `delivery.failed` per webhook this often (SPEC §12: an hour).
pub const FAILED_EVERY_DEFAULT: Duration = Duration::from_secs(3600);

/// The account id alert events and deliveries are stored under: not the account's own, so
/// no account-scoped read (calls, deliveries, health) ever finds them.
pub fn scope(account: &AccountId) -> AccountId {
    AccountId::from_string(format!("alerts:{account}"))
}

/// Reads `alert_after`: whole seconds, minutes, hours or days (`0s`, `90s`, `10m`, `2h`,
/// `1d`), from `0s` to `7d`.
pub fn parse_after(s: &str) -> Result<Duration, String> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let bad = || format!("{s:?} is not a duration like 0s, 90s, 10m or 2h");
    let n: u64 = if num.is_empty() {
        return Err(bad());
    } else {
        num.parse().map_err(|_| bad())?
    };
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(unit_secs).ok_or_else(bad)?;
    let d = Duration::from_secs(secs);
    if d > AFTER_MAX {
        return Err(format!("must be at most {}", format_duration(AFTER_MAX)));
    }
    Ok(d)
}

/// How `alert_after` reads back (`10m`, `0s`).
pub fn format_after(d: Duration) -> String {
    format_duration(d)
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failing,
    Recovered,
    Disabled,
    DeliveryFailed,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Failing,
        Kind::Recovered,
        Kind::Disabled,
        Kind::DeliveryFailed,
    ];

    /// The alert's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Failing => "webhook.failing",
            Kind::Recovered => "webhook.recovered",
            Kind::Disabled => "webhook.disabled",
            Kind::DeliveryFailed => "delivery.failed",
        }
    }
}

/// What a webhook was last alerted about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The `failing_since` that `webhook.failing` was sent for; `None`: not alerted as failing.
    pub failing_alerted: Option<Timestamp>,
    /// When `delivery.failed` was last sent.
    pub failed_alert_at: Option<Timestamp>,
    /// Deliveries that used their last attempt since then and are not alerted yet.
    pub failed_count: u32,
    /// The latest of them (its id).
    pub failed_last: Option<String>,
}

/// The account's alert settings, as the decisions need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// An alert URL is set: alerts are sent.
    pub on: bool,
    pub after: Duration,
    /// At most one `delivery.failed` per webhook this often.
    pub failed_every: Duration,
}

/// What one batch of recorded attempts (test sends left out) says of one webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// An attempt succeeded.
    pub succeeded: bool,
    /// The webhook's `failing_since` after the batch (`None`: its latest attempt succeeded).
    pub failing_since: Option<Timestamp>,
    /// Enabled after the batch.
    pub enabled: bool,
    /// The batch disabled it, for this reason.
    pub disabled: Option<String>,
    /// Deliveries that used their last attempt (ids), in order.
    pub failed: Vec<String>,
}

/// One alert to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// Failing since then, for at least `after`.
    Failing {
        since: Timestamp,
        after: Duration,
    },
    /// It had been failing since then.
    Recovered {
        since: Timestamp,
    },
    Disabled {
        reason: String,
    },
    /// `count` deliveries used their last attempt since `since` (the previous alert; `None`:
    /// the first); `last` is the latest.
    DeliveryFailed {
        count: u32,
        since: Option<Timestamp>,
        last: String,
    },
}

impl Alert {
    pub fn kind(&self) -> Kind {
        match self {
            Alert::Failing { .. } => Kind::Failing,
            Alert::Recovered { .. } => Kind::Recovered,
            Alert::Disabled { .. } => Kind::Disabled,
            Alert::DeliveryFailed { .. } => Kind::DeliveryFailed,
        }
    }
}

/// `since + d <= now`.
fn elapsed(since: Timestamp, d: Duration, now: Timestamp) -> bool {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    now.duration_since(since) >= d
}

/// `webhook.failing` when it is due: failing, enabled, not alerted for this run, for `after`.
fn failing(
    state: &mut State,
    failing_since: Option<Timestamp>,
    enabled: bool,
    cfg: &Config,
    now: Timestamp,
    out: &mut Vec<Alert>,
) {
    if let Some(since) = failing_since
        && cfg.on
        && enabled
        && state.failing_alerted.is_none()
        && elapsed(since, cfg.after, now)
    {
        state.failing_alerted = Some(since);
        out.push(Alert::Failing {
            since,
            after: cfg.after,
        });
    }
}

/// `delivery.failed` when some are counted and the last one is `failed_every` old.
fn failed(state: &mut State, cfg: &Config, now: Timestamp, out: &mut Vec<Alert>) {
    let due = state
        .failed_alert_at
        .is_none_or(|at| elapsed(at, cfg.failed_every, now));
    if cfg.on
        && due
        && state.failed_count > 0
        && let Some(last) = state.failed_last.take()
    {
        out.push(Alert::DeliveryFailed {
            count: state.failed_count,
            since: state.failed_alert_at,
            last,
        });
        state.failed_alert_at = Some(now);
        state.failed_count = 0;
    }
}

/// The new state and the alerts to send after a batch of attempts of one webhook: recovered,
/// failing (when `after` has passed already, as with `0s`), disabled; failed deliveries are
/// counted for [`on_sweep`].
pub fn after_attempts(
    state: &State,
    seen: &Seen,
    cfg: &Config,
    now: Timestamp,
) -> (State, Vec<Alert>) {
    let mut s = state.clone();
    let mut out = Vec::new();
    // Recovered: a success ended the run it was alerted for (a failure later in the same
    // batch starts a new run, alerted on its own).
    if let Some(since) = s.failing_alerted
        && (seen.succeeded || seen.failing_since != Some(since))
    {
        s.failing_alerted = None;
        if cfg.on {
            out.push(Alert::Recovered { since });
        }
    }
    failing(&mut s, seen.failing_since, seen.enabled, cfg, now, &mut out);
    if let Some(reason) = &seen.disabled
        && cfg.on
    {
        out.push(Alert::Disabled {
            reason: reason.clone(),
        });
    }
    // Failed deliveries are counted here and alerted by the sweep (at most a poll later),
    // the one place that knows `failed_every`.
    if cfg.on && !seen.failed.is_empty() {
        s.failed_count = s.failed_count.saturating_add(seen.failed.len() as u32);
        s.failed_last = seen.failed.last().cloned();
    }
    (s, out)
}

/// The new state and the alerts that time alone brings: a run of failures reaching `after`,
/// and failed deliveries counted since the last `delivery.failed` once `failed_every` passed.
pub fn on_sweep(
    state: &State,
    failing_since: Option<Timestamp>,
    enabled: bool,
    cfg: &Config,
    now: Timestamp,
) -> (State, Vec<Alert>) {
    let mut s = state.clone();
    let mut out = Vec::new();
    failing(&mut s, failing_since, enabled, cfg, now, &mut out);
    failed(&mut s, cfg, now, &mut out);
    (s, out)
}

/// The webhook an alert is about, as its body names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct About {
    pub id: String,
    pub name: String,
    pub url: String,
}

/// What the body tells of a failed delivery or of the latest error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail {
    /// The latest failed delivery: id, call id, attempts made.
    pub delivery: Option<(String, String, u32)>,
    /// Its (or the webhook's latest) HTTP status and error message.
    pub status: Option<u16>,
    pub error: Option<String>,
}

fn stamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The JSON body of an alert: `{type, account_id, webhook: {id, name, url}, at, ...}` and the
/// fields of its kind.
pub fn body(
    alert: &Alert,
    account: &AccountId,
    about: &About,
    detail: &Detail,
    at: Timestamp,
) -> String {
    let mut v = json!({
        "type": alert.kind().as_str(),
        "account_id": account.as_str(),
        "webhook": {"id": about.id, "name": about.name, "url": about.url},
        "at": stamp(at),
    });
    let last_error = json!({"status": detail.status, "message": detail.error});
    let extra = match alert {
        Alert::Failing { since, after } => json!({
            "failing_since": stamp(*since),
            "alert_after": format_after(*after),
            "last_error": last_error,
        }),
        Alert::Recovered { since } => json!({"failing_since": stamp(*since)}),
        Alert::Disabled { reason } => json!({"reason": reason}),
        Alert::DeliveryFailed { count, since, last } => {
            let (call_id, attempts) = match &detail.delivery {
                Some((id, call, n)) if id == last => (Some(call.clone()), Some(*n)),
                _ => (None, None),
            };
            json!({
                "failed_count": count,
                "counted_since": since.map(stamp),
                "delivery": {"id": last, "call_id": call_id, "attempts": attempts,
                             "last_status": detail.status, "last_error": detail.error},
            })
        }
    };
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v.to_string()
}

/// The signed request of one attempt of alert delivery `delivery_id`: POST, JSON, signed as
/// SPEC §6 says with the account's alert secrets.
pub fn request(
    url: &str,
    body: &str,
    delivery_id: &str,
    now: Timestamp,
    secrets: &[&Secret],
) -> WebhookRequest {
    let ts = now.as_second();
    WebhookRequest {
        method: Method::Post,
        url: url.to_owned(),
        headers: vec![
            ("User-Agent".to_owned(), USER_AGENT.to_owned()),
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("webhook-id".to_owned(), delivery_id.to_owned()),
            ("webhook-timestamp".to_owned(), ts.to_string()),
            (
                "webhook-signature".to_owned(),
                signature_header(secrets, delivery_id, ts, body.as_bytes()),
            ),
        ],
        body: Some(body.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    const ON: Config = Config {
        on: true,
        after: Duration::from_secs(600),
        failed_every: Duration::from_secs(3600),
    };
    const NOW: Config = Config {
        after: Duration::ZERO,
        ..ON
    };
    const OFF: Config = Config { on: false, ..ON };

    fn failing_from(since: i64) -> Seen {
        Seen {
            failing_since: Some(t(since)),
            enabled: true,
            ..Seen::default()
        }
    }

    fn kinds(alerts: &[Alert]) -> Vec<&'static str> {
        alerts.iter().map(|a| a.kind().as_str()).collect()
    }

    #[test]
    fn after_attempts_alerts_each_transition_once() {
        let alerted = State {
            failing_alerted: Some(t(0)),
            ..State::default()
        };
        let ok = Seen {
            succeeded: true,
            enabled: true,
            ..Seen::default()
        };
        // (case, state before, seen, config, now, alerts, failing_alerted after)
        type Case = (
            &'static str,
            State,
            Seen,
            Config,
            i64,
            Vec<&'static str>,
            Option<i64>,
        );
        let cases: Vec<Case> = vec![
            (
                "first failure, 0s",
                State::default(),
                failing_from(5),
                NOW,
                5,
                vec!["webhook.failing"],
                Some(5),
            ),
            (
                "first failure, 10m",
                State::default(),
                failing_from(5),
                ON,
                5,
                vec![],
                None,
            ),
            (
                "failing long enough",
                State::default(),
                failing_from(0),
                ON,
                600,
                vec!["webhook.failing"],
                Some(0),
            ),
            (
                "failing again, alerted",
                alerted.clone(),
                failing_from(0),
                NOW,
                900,
                vec![],
                Some(0),
            ),
            (
                "alerts off",
                State::default(),
                failing_from(0),
                OFF,
                900,
                vec![],
                None,
            ),
            (
                "success after alert",
                alerted.clone(),
                ok.clone(),
                ON,
                900,
                vec!["webhook.recovered"],
                None,
            ),
            (
                "success, alerts off: quietly",
                alerted.clone(),
                ok.clone(),
                OFF,
                900,
                vec![],
                None,
            ),
            (
                "success, never alerted",
                State::default(),
                ok.clone(),
                ON,
                900,
                vec![],
                None,
            ),
            (
                "success then a new run in one batch, 0s",
                alerted.clone(),
                Seen {
                    succeeded: true,
                    ..failing_from(800)
                },
                NOW,
                800,
                vec!["webhook.recovered", "webhook.failing"],
                Some(800),
            ),
            (
                "disabled by 410, not failing long",
                State::default(),
                Seen {
                    disabled: Some("410 Gone".into()),
                    enabled: false,
                    ..failing_from(5)
                },
                ON,
                5,
                vec!["webhook.disabled"],
                None,
            ),
            (
                "disabled: no failing alert for a disabled webhook",
                State::default(),
                Seen {
                    disabled: Some("410 Gone".into()),
                    enabled: false,
                    ..failing_from(5)
                },
                NOW,
                5,
                vec!["webhook.disabled"],
                None,
            ),
        ];
        for (case, state, seen, cfg, now, want, after) in cases {
            let (s, alerts) = after_attempts(&state, &seen, &cfg, t(now));
            assert_eq!(kinds(&alerts), want, "{case}");
            assert_eq!(s.failing_alerted, after.map(t), "{case}");
            // Deciding again from the new state alerts nothing more: once per transition.
            let (_, again) = after_attempts(
                &s,
                &Seen {
                    succeeded: false,
                    disabled: None,
                    ..seen
                },
                &cfg,
                t(now),
            );
            assert!(again.is_empty(), "{case}: {again:?}");
        }
    }

    #[test]
    fn delivery_failed_is_rate_limited_and_carries_the_count() {
        let failed = |ids: &[&str]| Seen {
            failed: ids.iter().map(|s| s.to_string()).collect(),
            ..failing_from(0)
        };
        // Counted as the attempts are recorded, sent by the next sweep.
        let (s, a) = after_attempts(&State::default(), &failed(&["d1"]), &ON, t(10));
        assert!(a.is_empty(), "{a:?}");
        let (s, a) = on_sweep(&s, Some(t(0)), true, &ON, t(11));
        assert_eq!(
            a,
            vec![Alert::DeliveryFailed {
                count: 1,
                since: None,
                last: "d1".into()
            }]
        );
        // Within the hour: counted, not sent.
        let (s, _) = after_attempts(&s, &failed(&["d2", "d3"]), &ON, t(20));
        let (s, a) = on_sweep(&s, Some(t(0)), true, &ON, t(21));
        assert!(a.is_empty(), "{a:?}");
        let (s, _) = after_attempts(&s, &failed(&["d4"]), &ON, t(3000));
        let (s, a) = on_sweep(&s, Some(t(0)), true, &ON, t(3600));
        assert!(a.is_empty(), "{a:?}");
        assert_eq!((s.failed_count, s.failed_last.as_deref()), (3, Some("d4")));
        // The hour has passed: the next one carries the count since the last.
        let (s2, a) = on_sweep(&s, Some(t(0)), true, &ON, t(3611));
        assert_eq!(
            a,
            vec![Alert::DeliveryFailed {
                count: 3,
                since: Some(t(11)),
                last: "d4".into()
            }]
        );
        assert_eq!(s2.failed_count, 0);
        // And not again.
        assert!(on_sweep(&s2, Some(t(0)), true, &ON, t(9000)).1.is_empty());
        // With alerts off nothing is counted.
        let (s, a) = after_attempts(&State::default(), &failed(&["d1"]), &OFF, t(10));
        assert!(a.is_empty());
        assert_eq!(s.failed_count, 0);
    }

    #[test]
    fn the_sweep_alerts_a_run_once_it_is_old_enough() {
        let s = State::default();
        assert!(on_sweep(&s, Some(t(0)), true, &ON, t(599)).1.is_empty());
        let (s1, a) = on_sweep(&s, Some(t(0)), true, &ON, t(600));
        assert_eq!(
            a,
            vec![Alert::Failing {
                since: t(0),
                after: ON.after
            }]
        );
        assert!(on_sweep(&s1, Some(t(0)), true, &ON, t(1200)).1.is_empty());
        // Not while it is disabled, nor with alerts off, nor once it is not failing.
        assert!(on_sweep(&s, Some(t(0)), false, &ON, t(900)).1.is_empty());
        assert!(on_sweep(&s, Some(t(0)), true, &OFF, t(900)).1.is_empty());
        assert!(on_sweep(&s, None, true, &ON, t(900)).1.is_empty());
    }

    #[test]
    fn alert_after_reads_whole_units_within_bounds() {
        assert_eq!(parse_after("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_after("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_after("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_after("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_after("7d"), Ok(AFTER_MAX));
        for bad in [
            "",
            "10",
            "m",
            "1.5m",
            "-1s",
            "8d",
            "10 m",
            "250ms",
            "99999999999999999999s",
        ] {
            assert!(parse_after(bad).is_err(), "{bad:?}");
        }
        for d in ["0s", "90s", "10m", "2h", "1d"] {
            assert_eq!(format_after(parse_after(d).unwrap()), d);
        }
    }

    #[test]
    fn bodies_carry_their_kind_fields_and_the_request_is_signed() {
        let about = About {
            id: "wh_1".into(),
            name: "CRM".into(),
            url: "https://crm.example/h".into(),
        };
        let acct = AccountId::from_string("acct_1".into());
        let detail = Detail {
            delivery: Some(("dlv_1".into(), "c1".into(), 8)),
            status: Some(500),
            error: None,
        };
        let b: Value = serde_json::from_str(&body(
            &Alert::DeliveryFailed {
                count: 3,
                since: None,
                last: "dlv_1".into(),
            },
            &acct,
            &about,
            &detail,
            t(0),
        ))
        .unwrap();
        assert_eq!(b["type"], "delivery.failed");
        assert_eq!(b["account_id"], "acct_1");
        assert_eq!(b["webhook"]["url"], "https://crm.example/h");
        assert_eq!(b["failed_count"], 3);
        assert_eq!(b["delivery"]["call_id"], "c1");
        assert_eq!(b["delivery"]["last_status"], 500);
        let b: Value = serde_json::from_str(&body(
            &Alert::Failing {
                since: t(0),
                after: Duration::from_secs(600),
            },
            &acct,
            &about,
            &detail,
            t(600),
        ))
        .unwrap();
        assert_eq!(b["alert_after"], "10m");
        assert_eq!(b["last_error"]["status"], 500);
        assert!(b["failing_since"].as_str().unwrap().ends_with('Z'));
        let secret = Secret::generate();
        let req = request("https://a.example/", "{}", "dlv_9", t(5), &[&secret]);
        let sig = &req
            .headers
            .iter()
            .find(|(k, _)| k == "webhook-signature")
            .unwrap()
            .1;
        assert!(secret.verify("dlv_9", t(5).as_second(), b"{}", sig));
        assert_eq!(scope(&acct).as_str(), "alerts:acct_1");
    }
}
