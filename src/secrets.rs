//! The master key at start-up (SPEC §14): from the `secret_key` setting, or the key file
//! `<data_dir>/secret.key` made at the database's first start with mode 0600. A check value
//! sealed in the database tells at once whether the key given opens this database's secrets;
//! a wrong or missing key stops the start with a message naming the setting, so nothing is
//! ever sent signed with garbage. `callhook rekey` seals everything again under a new key.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::Settings;
use crate::core::seal::{CHECK_AD, Key, Keyring, SealError, kid_of};
use crate::store::Store;

/// The key file's name in the data folder.
pub const KEY_FILE: &str = "secret.key";
/// The settings row holding the check value.
const CHECK: &str = "secret_key_check";
const CHECK_PLAIN: &[u8] = b"callhook secrets";

pub fn key_file(settings: &Settings) -> PathBuf {
    settings.data_dir.join(KEY_FILE)
}

/// Loads the keys, makes sure they open this database's secrets (making the key file and the
/// check value on a first start), gives them to the store, and seals whatever is still stored
/// plain (a database from before sealing).
pub async fn unlock(settings: &Settings, store: &dyn Store) -> anyhow::Result<Arc<Keyring>> {
    let check = store.get_setting(CHECK).await?;
    let keys = Arc::new(load(settings, check.as_deref())?);
    let check = match check {
        Some(c) => c,
        None => {
            let sealed = keys.seal(CHECK_AD, CHECK_PLAIN)?;
            // Several nodes may start a new database at once: the first check value stays.
            store.set_setting_if_absent(CHECK, &sealed).await?;
            store
                .get_setting(CHECK)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the key check value vanished while starting"))?
        }
    };
    verify(settings, &keys, &check)?;
    store.set_keyring(keys.clone());
    let sealed = store.reseal(false).await?;
    if sealed > 0 {
        tracing::info!(
            sealed,
            "secrets stored before encryption at rest are now encrypted"
        );
    }
    Ok(keys)
}

/// The keyring the settings name. Without `secret_key`, the key file: made now only if the
/// database holds no secrets sealed under another key (`check` is its check value).
fn load(settings: &Settings, check: Option<&str>) -> anyhow::Result<Keyring> {
    let previous = settings
        .previous_secret_keys
        .iter()
        .map(|k| Key::parse(k).context("invalid settings: previous_secret_keys"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let current = if !settings.secret_key.is_empty() {
        Key::parse(&settings.secret_key).context("invalid settings: secret_key")?
    } else {
        let path = key_file(settings);
        match read_key_file(&path)? {
            Some(k) => k,
            None => {
                if let Some(kid) = check.and_then(kid_of) {
                    anyhow::bail!(
                        "this database's secrets are encrypted with key id {kid}, but secret_key is not set and the key file {} does not exist; set secret_key to that key (or put the key file back)",
                        path.display()
                    );
                }
                make_key_file(&path)?
            }
        }
    };
    Ok(Keyring::new(current, previous))
}

/// Whether the check value opens with `keys`; the error says which key is needed.
fn verify(settings: &Settings, keys: &Keyring, check: &str) -> anyhow::Result<()> {
    match keys.open(CHECK_AD, check) {
        Ok(v) if v == CHECK_PLAIN => Ok(()),
        Ok(_) | Err(SealError::Tampered(_) | SealError::Malformed) => anyhow::bail!(
            "the database's key check value does not open (changed outside callhook?); set secret_key to the key this database was set up with"
        ),
        Err(e) => {
            let kid = kid_of(check).unwrap_or("?");
            let source = if settings.secret_key.is_empty() {
                format!("the key file {}", key_file(settings).display())
            } else {
                "secret_key".to_owned()
            };
            anyhow::bail!(
                "secret_key does not open this database's secrets (key id {kid}); set secret_key to the key with id {kid}, or keep it in previous_secret_keys until `callhook rekey` has run (the keys given, from {source}, have ids {}; {e})",
                keys.kids().join(", ")
            )
        }
    }
}

/// The key in `path`, if the file exists; refused if others may read it.
fn read_key_file(path: &Path) -> anyhow::Result<Option<Key>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "the key file {} may be read by others (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Key::parse(&text)
        .map(Some)
        .with_context(|| format!("the key file {} holds no key", path.display()))
}

/// A new key in a new file of mode 0600; if another process made the file first, its key.
fn make_key_file(path: &Path) -> anyhow::Result<Key> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    }
    let key = Key::generate();
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        open.mode(0o600);
    }
    match open.open(path) {
        Ok(mut f) => {
            writeln!(f, "{}", key.to_base64())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("cannot write the key file {}", path.display()))?;
            tracing::info!(file = %path.display(), kid = key.kid(), "made the master key file; back it up with the database");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path)?
            .ok_or_else(|| anyhow::anyhow!("the key file {} vanished", path.display())),
        Err(e) => Err(e).with_context(|| format!("cannot create the key file {}", path.display())),
    }
}

/// `callhook rekey`: seals every secret again under the current `secret_key` (the old key
/// must be among `previous_secret_keys`), and the check value last. Nodes that hold both keys
/// keep running. Answers how many values were sealed again.
pub async fn rekey(settings: &Settings, store: &dyn Store) -> anyhow::Result<u64> {
    let keys = unlock(settings, store).await?;
    let n = store.reseal(true).await?;
    let check = keys.seal(CHECK_AD, CHECK_PLAIN)?;
    store.set_setting(CHECK, &check).await?;
    Ok(n)
}
