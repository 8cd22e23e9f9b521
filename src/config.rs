//! Settings: built-in defaults, then an optional TOML file (`--config`), then `CALLHOOK_*`
//! environment variables, then command-line flags; each layer overrides the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::core::retry::Dur;
use crate::core::retry::{RetrySchedule, format_duration};

/// The items of a TOML list or of one comma-separated string (as an environment variable gives
/// it), trimmed, empty ones left out.
fn text_items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let items: Vec<String> = match Raw::deserialize(d)? {
        Raw::List(l) => l,
        Raw::Text(t) => t.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Networks written as a TOML list or one comma-separated string (`"10.0.0.0/8,::1/128"`).
fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    text_items(d)?
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("{s:?} is not a network like 10.0.0.0/8"))
                })
        })
        .collect()
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; empty means `callhook.db` in `data_dir`.
    pub database_url: String,
    /// Empty means: generate one on first start and print it once.
    pub operator_token: String,
    #[serde(deserialize_with = "networks")]
    pub allow_targets: Vec<IpNet>,
    pub connect_timeout: Dur,
    pub request_timeout: Dur,
    /// Parsed once, here: a bad schedule stops the start, naming this setting.
    pub retry_schedule: RetrySchedule,
    pub max_in_flight_per_webhook: u32,
    pub max_in_flight: u32,
    pub disable_after: Dur,
    /// At most one `delivery.failed` alert per webhook this often (SPEC §12: an hour).
    pub alert_failed_every: Dur,
    pub retention: Dur,
    pub lease: Dur,
    pub poll_interval: Dur,
    pub shutdown_grace: Dur,
    pub log: String,
    /// How long a click-to-call request waits for a node to place it, and how long the node
    /// placing one may stay silent, before it fails (`connector_lost`).
    pub click_to_call_timeout: Dur,
    /// Proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// The address browsers use (`https://callhook.example.com`); empty means unknown.
    pub public_url: String,
    /// Time a client has to send a request's headers (also the keep-alive wait), and how long
    /// a connection may go with nothing heard from the client.
    pub header_read_timeout: Dur,
    pub idle_timeout: Dur,
    /// Connections one client address may hold open at once.
    pub max_connections_per_client: u32,
    /// Per-account limits (0: none).
    pub max_webhooks_per_account: u32,
    pub max_numbers_per_account: u32,
    pub max_api_keys_per_account: u32,
    pub max_deliveries_per_post: u32,
    /// PBXs to follow (`[[connectors]]` tables); see docs/connectors.md.
    pub connectors: Vec<crate::connectors::ConnectorSettings>,
    /// The master key secrets are sealed with (32 bytes, base64); empty: `<data_dir>/secret.key`.
    pub secret_key: String,
    /// Keys that only open (values sealed before a rekey).
    #[serde(deserialize_with = "text_items")]
    pub previous_secret_keys: Vec<String>,
}

/// Settings as logs and errors may show them: the secrets left out.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = shown.as_object_mut() {
            for k in ["operator_token", "secret_key", "previous_secret_keys"] {
                o.insert(k.into(), "…".into());
            }
        }
        write!(f, "Settings {shown}")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            data_dir: PathBuf::from("callhook-data"),
            database_url: String::new(),
            operator_token: String::new(),
            allow_targets: Vec::new(),
            connect_timeout: Dur(Duration::from_secs(5)),
            request_timeout: Dur(Duration::from_secs(15)),
            retry_schedule: RetrySchedule::default(),
            max_in_flight_per_webhook: 16,
            max_in_flight: 1024,
            disable_after: Dur(Duration::from_secs(5 * 86400)),
            alert_failed_every: Dur(Duration::from_secs(3600)),
            retention: Dur(Duration::from_secs(30 * 86400)),
            lease: Dur(Duration::from_secs(60)),
            poll_interval: Dur(Duration::from_secs(1)),
            shutdown_grace: Dur(Duration::from_secs(10)),
            log: "info".into(),
            click_to_call_timeout: Dur(Duration::from_secs(30)),
            trusted_proxies: Vec::new(),
            public_url: String::new(),
            header_read_timeout: Dur(Duration::from_secs(10)),
            idle_timeout: Dur(Duration::from_secs(60)),
            max_connections_per_client: 64,
            max_webhooks_per_account: 1000,
            max_numbers_per_account: 10_000,
            max_api_keys_per_account: 100,
            max_deliveries_per_post: 20_000,
            connectors: Vec::new(),
            secret_key: String::new(),
            previous_secret_keys: Vec::new(),
        }
    }
}

/// Every setting with its environment variable and meaning: the source of `serve --help` and
/// of the README's reference table.
pub const SETTINGS_HELP: &[(&str, &str, &str)] = &[
    (
        "listen",
        "127.0.0.1:8080",
        "address the HTTP server (API, web page, metrics) listens on",
    ),
    (
        "data_dir",
        "./callhook-data",
        "folder for the embedded SQLite database; created if missing",
    ),
    (
        "database_url",
        "sqlite://<data_dir>/callhook.db",
        "sqlite://PATH, or postgres://USER@HOST/DB to share the work between nodes",
    ),
    (
        "operator_token",
        "generated on first start",
        "bearer token that manages accounts and may post events for any account",
    ),
    (
        "allow_targets",
        "none",
        "networks webhooks may reach despite the SSRF guard, comma-separated CIDRs (\"10.0.0.0/8,::1/128\")",
    ),
    ("connect_timeout", "5s", "time to connect to a receiver"),
    (
        "request_timeout",
        "15s",
        "time for a whole request, from connecting to the last byte of the answer",
    ),
    (
        "retry_schedule",
        "5s,5m,30m,2h,5h,10h,10h",
        "waits between attempts (each ±20% jitter); attempts = waits + 1",
    ),
    (
        "max_in_flight_per_webhook",
        "16",
        "most requests in flight to one webhook at once",
    ),
    ("max_in_flight", "1024", "most requests in flight in all"),
    (
        "disable_after",
        "5d",
        "a webhook failing this long with no success is disabled",
    ),
    (
        "alert_failed_every",
        "1h",
        "at most one delivery.failed alert per webhook this often; it counts the deliveries failed since the last",
    ),
    (
        "retention",
        "30d",
        "finished deliveries, attempts, events and audit entries older than this are pruned",
    ),
    (
        "lease",
        "60s",
        "how long a claimed delivery stays with its node before another may take it",
    ),
    (
        "poll_interval",
        "1s",
        "how often to look for due deliveries when nothing wakes the dispatcher",
    ),
    (
        "shutdown_grace",
        "10s",
        "on SIGTERM/SIGINT, time in-flight requests get to finish",
    ),
    (
        "log",
        "info",
        "log filter (error, warn, info, debug, or tracing's directives)",
    ),
    (
        "click_to_call_timeout",
        "30s",
        "a click-to-call request no node with its connector connected takes within this fails (connector_lost); so does one whose placing node stays silent this long",
    ),
    (
        "trusted_proxies",
        "none",
        "proxies in front of callhook, comma-separated CIDRs: only from these are X-Forwarded-For (the client's address) and X-Forwarded-Proto believed",
    ),
    (
        "public_url",
        "none",
        "the address browsers reach callhook at (https://callhook.example.com); https makes the session cookie Secure and __Host-, and adds HSTS",
    ),
    (
        "header_read_timeout",
        "10s",
        "time a client has to send a request's headers (and a kept-alive connection its next request); a slower or half-sent request is closed",
    ),
    (
        "idle_timeout",
        "60s",
        "a connection from which nothing arrives for this long is closed (a stalled body, a client that stopped reading); header_read_timeout closes idle kept-alive ones sooner",
    ),
    (
        "max_connections_per_client",
        "64",
        "connections one client address may hold open at once; more are closed at once",
    ),
    (
        "max_webhooks_per_account",
        "1000",
        "webhooks one account may have (0: no limit)",
    ),
    (
        "max_numbers_per_account",
        "10000",
        "numbers in one account's My Numbers (0: no limit)",
    ),
    (
        "max_api_keys_per_account",
        "100",
        "API keys one account may have (0: no limit)",
    ),
    (
        "max_deliveries_per_post",
        "20000",
        "deliveries one POST /v1/events may create; a batch that would make more is refused with a 422 (0: no limit)",
    ),
    (
        "connectors",
        "none",
        "Asterisk (AMI) or FreeSWITCH (event socket) PBXs to follow: [[connectors]] tables in the TOML file, see docs/connectors.md",
    ),
    (
        "secret_key",
        "<data_dir>/secret.key",
        "master key (32 bytes, base64) that signing secrets and header values are encrypted with; unset: a key file made at the database's first start (mode 0600); nodes sharing a PostgreSQL database need the same key (docs/security.md)",
    ),
    (
        "previous_secret_keys",
        "none",
        "old master keys, comma-separated, that only decrypt: keep the old key here while `callhook rekey` re-encrypts under the new secret_key",
    ),
];

fn setting_keys() -> Vec<&'static str> {
    SETTINGS_HELP.iter().map(|(k, _, _)| *k).collect()
}

/// The settings reference as text, for `--help`.
pub fn help_text() -> String {
    let mut s = String::from(
        "Settings (defaults < --config FILE (TOML) < CALLHOOK_* environment < flags):\n",
    );
    for (key, default, what) in SETTINGS_HELP {
        s.push_str(&format!(
            "  {key:<26} {:<34} {what} [default: {default}]\n",
            format!("CALLHOOK_{}", key.to_uppercase())
        ));
    }
    s
}

/// Values given as flags, which override everything else.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Settings {
    /// Loads the layers in order. Errors name the setting and the layer that set it.
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
        let mut fig = Figment::new().merge(Serialized::defaults(Settings::default()));
        if let Some(path) = config_file {
            if !path.exists() {
                anyhow::bail!("the config file {} does not exist", path.display());
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig
            // Only the settings' own variables: other CALLHOOK_* variables (the simulator's
            // CALLHOOK_API_KEY, a test's helper) are not settings and must not stop a start.
            .merge(Env::prefixed("CALLHOOK_").only(&setting_keys()))
            .merge(Serialized::defaults(overrides));
        let settings: Settings = fig
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
        settings.check()?;
        Ok(settings)
    }

    /// Rules between settings that no single one can break.
    pub fn check(&self) -> anyhow::Result<()> {
        // A claimed delivery is sent only while a whole request fits in what is left of its
        // lease; with less than two request times of lease, little would ever be sent.
        if self.lease.0 < self.request_timeout.0 * 2 {
            anyhow::bail!(
                "invalid settings: lease ({}) must be at least twice request_timeout ({})",
                format_duration(self.lease.0),
                format_duration(self.request_timeout.0)
            );
        }
        // The node placing a request renews its lease on it between looks (every
        // poll_interval); with less than four looks per lease it could lapse while the node
        // is alive, and the request would fail for nothing.
        if self.click_to_call_timeout.0 < Duration::from_secs(1)
            || self.click_to_call_timeout.0 < self.poll_interval.0 * 4
        {
            anyhow::bail!(
                "invalid settings: click_to_call_timeout ({}) must be at least 1s and at least four times poll_interval ({})",
                format_duration(self.click_to_call_timeout.0),
                format_duration(self.poll_interval.0)
            );
        }
        if self.poll_interval.0.is_zero() {
            anyhow::bail!("invalid settings: poll_interval must be above 0");
        }
        if !self.public_url.is_empty() {
            let ok = url::Url::parse(&self.public_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                anyhow::bail!(
                    "invalid settings: public_url ({:?}) must be an http(s) address like https://callhook.example.com",
                    self.public_url
                );
            }
        }
        if self.header_read_timeout.0.is_zero() || self.idle_timeout.0.is_zero() {
            anyhow::bail!("invalid settings: header_read_timeout and idle_timeout must be above 0");
        }
        if self.max_connections_per_client == 0 {
            anyhow::bail!("invalid settings: max_connections_per_client must be at least 1");
        }
        for (name, key) in std::iter::once(("secret_key", &self.secret_key))
            .filter(|(_, k)| !k.is_empty())
            .chain(
                self.previous_secret_keys
                    .iter()
                    .map(|k| ("previous_secret_keys", k)),
            )
        {
            crate::core::seal::Key::parse(key)
                .map_err(|e| anyhow::anyhow!("invalid settings: {name}: {e}"))?;
        }
        if self.max_in_flight_per_webhook == 0 || self.max_in_flight == 0 {
            anyhow::bail!(
                "invalid settings: max_in_flight and max_in_flight_per_webhook must be at least 1"
            );
        }
        Ok(())
    }

    /// Whether browsers reach callhook over https, as `public_url` says.
    pub fn public_https(&self) -> bool {
        self.public_url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }

    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("callhook.db").display())
        } else {
            self.database_url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_documented_and_only_those() {
        let json = serde_json::to_value(Settings::default()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let documented: Vec<&str> = SETTINGS_HELP.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(keys, documented);
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../README.md");
        for (key, _, _) in SETTINGS_HELP {
            let env = format!("CALLHOOK_{}", key.to_uppercase());
            assert!(
                readme.contains(&format!("| `{key}` | `{env}` |")),
                "README.md lacks {key}"
            );
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the error type
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "listen = \"127.0.0.1:9000\"\nlog = \"debug\"\nallow_targets = [\"10.0.0.0/8\"]\nretry_schedule = \"1s,2s\"")?;
            jail.set_env("CALLHOOK_LOG", "warn");
            jail.set_env("CALLHOOK_MAX_IN_FLIGHT_PER_WEBHOOK", "4");
            jail.set_env("CALLHOOK_REQUEST_TIMEOUT", "2s");
            let o = Overrides {
                data_dir: Some("/tmp/x".into()),
                ..Default::default()
            };
            let s = Settings::load(Some(Path::new("c.toml")), &o).map_err(|e| e.to_string())?;
            assert_eq!(s.listen.port(), 9000);
            assert_eq!(s.log, "warn");
            assert_eq!(s.max_in_flight_per_webhook, 4);
            assert_eq!(s.request_timeout.0, Duration::from_secs(2));
            assert_eq!(
                s.allow_targets,
                vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
            );
            assert_eq!(s.retry_schedule.max_attempts(), 3);
            assert_eq!(s.database_url(), "sqlite:///tmp/x/callhook.db");
            jail.set_env("CALLHOOK_ALLOW_TARGETS", "127.0.0.0/8, ::1/128");
            let s = Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(s.allow_targets.len(), 2);
            jail.set_env("CALLHOOK_API_KEY", "not a setting");
            assert!(Settings::load(None, &Overrides::default()).is_ok());
            // A bad schedule stops the start, naming the setting and the layer it came from.
            jail.set_env("CALLHOOK_RETRY_SCHEDULE", "5q");
            let e = Settings::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("\"5q\" has no unit")
                    && e.contains("RETRY_SCHEDULE")
                    && e.contains("CALLHOOK_"),
                "{e}"
            );
            jail.clear_env();
            jail.create_file("bad.toml", "retry_schedule = \"5s,,5m\"")?;
            let e = Settings::load(Some(Path::new("bad.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("retry_schedule") && e.contains("bad.toml"),
                "{e}"
            );
            jail.set_env("CALLHOOK_RETRY_SCHEDULE", "");
            let s = Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                s.retry_schedule.max_attempts(),
                1,
                "an empty schedule: no retries"
            );
            Ok(())
        });
    }

    #[test]
    fn a_click_to_call_timeout_leaves_room_for_renewals() {
        let mut s = Settings::default();
        s.check().unwrap();
        s.click_to_call_timeout = Dur(Duration::from_secs(3));
        s.poll_interval = Dur(Duration::from_secs(1));
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("click_to_call_timeout (3s)"), "{e}");
        s.poll_interval = Dur(Duration::from_millis(500));
        s.check().unwrap();
        s.click_to_call_timeout = Dur(Duration::from_millis(900));
        s.poll_interval = Dur(Duration::from_millis(100));
        assert!(s.check().is_err());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the error type
    fn proxies_and_the_public_url_are_checked_at_start() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CALLHOOK_TRUSTED_PROXIES", "10.0.0.5, 127.0.0.0/8");
            jail.set_env("CALLHOOK_PUBLIC_URL", "https://callhook.example.com");
            let s = Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(s.trusted_proxies.len(), 2);
            assert!(s.public_https());
            jail.set_env("CALLHOOK_PUBLIC_URL", "http://callhook.example.com");
            let s = Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert!(!s.public_https());
            jail.set_env("CALLHOOK_PUBLIC_URL", "callhook.example.com");
            let e = Settings::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("public_url"), "{e}");
            jail.set_env("CALLHOOK_PUBLIC_URL", "");
            jail.set_env("CALLHOOK_TRUSTED_PROXIES", "not-a-network");
            let e = Settings::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("TRUSTED_PROXIES"), "{e}");
            jail.set_env("CALLHOOK_TRUSTED_PROXIES", "");
            jail.set_env("CALLHOOK_MAX_CONNECTIONS_PER_CLIENT", "0");
            assert!(Settings::load(None, &Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the error type
    fn connectors_come_from_the_settings_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[[connectors]]\nkind = \"asterisk_ami\"\nhost = \"10.0.0.5\"\nusername = \"callhook\"\npassword = \"pw\"\naccount = \"acct_1\"\n[[connectors.ivrs]]\ncontext = \"ivr\"\n",
            )?;
            let s = Settings::load(Some(Path::new("c.toml")), &Overrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(s.connectors.len(), 1);
            assert_eq!(s.connectors[0].port(), 5038);
            assert_eq!(s.connectors[0].ivrs[0].context, "ivr");
            let none = Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert!(none.connectors.is_empty());
            jail.create_file(
                "bad.toml",
                "[[connectors]]\nkind = \"asterisk_ami\"\nhots = \"x\"\n",
            )?;
            assert!(Settings::load(Some(Path::new("bad.toml")), &Overrides::default()).is_err());
            Ok(())
        });
    }
}
