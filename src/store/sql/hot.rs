//! The two reads every posted event makes — its API key, and its account's webhooks for the
//! event's triggers — answered from memory where that is safe.
//!
//! It is safe on SQLite: one process serves the file, and every write that can change an API
//! key or what matching reads of a webhook goes through this process's writer (the `callhook`
//! commands that run beside a server only add accounts, keys and users, which a cache of what
//! exists cannot hold stale). Each entry carries the generation it was read at; every such
//! write bumps the generation once it is committed and before its caller hears of it, so an
//! entry read before the write (or during it) is never used after. Writes that cannot change
//! these rows (claims, records that disable nothing, releases, heartbeats) leave it alone, so
//! the cache keeps its hits while deliveries flow. PostgreSQL has other nodes writing and
//! keeps no cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::core::id::AccountId;
use crate::core::trigger::Trigger;
use crate::store::{ApiKey, Webhook};

/// Most entries of each map; a full map is emptied (the cache only saves reads).
const MAX_ENTRIES: usize = 10_000;

/// Hot reads kept in memory, valid while nothing they read from has changed.
#[derive(Default)]
pub struct HotReads {
    generation: AtomicU64,
    keys: Mutex<Entries<String, ApiKey>>,
    webhooks: Mutex<Entries<Matching, Arc<[Webhook]>>>,
}

/// What a matching read asks for: an account's webhooks with one of these triggers.
type Matching = (AccountId, Vec<Trigger>);

/// Values by key, each with the generation it was read at.
type Entries<K, V> = HashMap<K, (u64, V)>;

/// Where a cached read stands: the entry, or the generation to store the fresh read under.
pub enum Cached<T> {
    Hit(T),
    Miss(u64),
}

impl HotReads {
    /// Something an entry may have read from changed (and is committed): every entry read
    /// before now is stale.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn now(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn key(&self, hash: &str) -> Cached<ApiKey> {
        let generation = self.now();
        match lock(&self.keys).get(hash) {
            Some((g, key)) if *g == generation => Cached::Hit(key.clone()),
            _ => Cached::Miss(generation),
        }
    }

    /// Keeps a key read at `generation` (unknown keys are not kept: anyone can make those up).
    pub fn keep_key(&self, generation: u64, hash: &str, key: &ApiKey) {
        keep(&self.keys, generation, hash.to_owned(), key.clone());
    }

    pub fn webhooks(&self, account: &AccountId, triggers: &[Trigger]) -> Cached<Arc<[Webhook]>> {
        let generation = self.now();
        // Looked up by a borrowed key would need a second map shape; the clone is two small
        // allocations against a database round trip.
        match lock(&self.webhooks).get(&(account.clone(), triggers.to_vec())) {
            Some((g, hooks)) if *g == generation => Cached::Hit(hooks.clone()),
            _ => Cached::Miss(generation),
        }
    }

    pub fn keep_webhooks(
        &self,
        generation: u64,
        account: &AccountId,
        triggers: &[Trigger],
        hooks: &Arc<[Webhook]>,
    ) {
        keep(
            &self.webhooks,
            generation,
            (account.clone(), triggers.to_vec()),
            hooks.clone(),
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn keep<K: std::hash::Hash + Eq, V>(map: &Mutex<Entries<K, V>>, generation: u64, key: K, value: V) {
    let mut map = lock(map);
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, (generation, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKey {
        ApiKey {
            id: crate::core::id::ApiKeyId::new(),
            account_id: AccountId::new(),
            name: "k".into(),
            prefix: "chk_x".into(),
            role: crate::core::role::Role::Admin,
            created_at: jiff::Timestamp::now(),
            last_used_at: None,
        }
    }

    #[test]
    fn an_entry_read_before_a_change_is_not_used_after_it() {
        let hot = HotReads::default();
        let Cached::Miss(g) = hot.key("h") else {
            panic!("an empty cache hit")
        };
        hot.keep_key(g, "h", &key());
        assert!(matches!(hot.key("h"), Cached::Hit(_)));
        hot.changed();
        assert!(matches!(hot.key("h"), Cached::Miss(_)));
    }

    #[test]
    fn a_read_that_straddles_a_change_is_kept_but_never_used() {
        let hot = HotReads::default();
        let Cached::Miss(g) = hot.key("h") else {
            panic!("an empty cache hit")
        };
        // The write commits and bumps while the read is on its way.
        hot.changed();
        hot.keep_key(g, "h", &key());
        assert!(matches!(hot.key("h"), Cached::Miss(_)));
    }
}
