//! The matcher's cache of owner keys (SPEC §4 rule 3: key state may be cached up to 60 s).
//!
//! A cached key is used only where it lets an event through: when it holds the company of
//! every partition it is needed for. A key missing from the cache, expired, or cached without
//! a company it is now needed for is read again, so a key that gained a company (and the
//! webhook created with it) matches at once, and a cached key never refuses what the stored
//! key allows. What the cache can let through late is a key deleted, or a company removed from
//! it, within the last `ttl`: those deliveries are queued, and the delivery function, which
//! reads the owner key before every attempt, drops them.
//!
//! The cache lives as long as the execution environment and holds at most [`CAPACITY`] keys;
//! when full it starts over.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use webhooks_core::ports::StoredKey;

/// How long a read key is trusted to let events through (SPEC §4 allows 60 s).
pub const OWNER_KEY_TTL_SECONDS: i64 = 60;

/// Keys kept per execution environment: a few KiB each, bounded well within the function's
/// memory.
pub const CAPACITY: usize = 10_000;

/// Owner keys read by earlier batches, with when each stops being trusted (Unix seconds).
#[derive(Debug)]
pub struct OwnerKeyCache {
    ttl_seconds: i64,
    entries: Mutex<HashMap<String, (StoredKey, i64)>>,
}

impl Default for OwnerKeyCache {
    fn default() -> Self {
        Self::new(OWNER_KEY_TTL_SECONDS)
    }
}

impl Clone for OwnerKeyCache {
    /// A clone starts empty: each handler keeps its own cache.
    fn clone(&self) -> Self {
        Self::new(self.ttl_seconds)
    }
}

impl OwnerKeyCache {
    /// A cache trusting what it read for `ttl_seconds` (0: never used).
    pub fn new(ttl_seconds: i64) -> Self {
        Self { ttl_seconds, entries: Mutex::new(HashMap::new()) }
    }

    /// Splits the keys a batch needs (each with the companies it must hold there) into those
    /// the cache serves at `now` and the ids to read.
    pub fn serve(
        &self,
        needs: &BTreeMap<String, BTreeSet<&str>>,
        now: i64,
    ) -> (HashMap<String, StoredKey>, BTreeSet<String>) {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut served = HashMap::new();
        let mut to_read = BTreeSet::new();
        for (id, companies) in needs {
            match entries.get(id) {
                Some((key, until))
                    if *until > now && companies.iter().all(|c| key.key.companies.iter().any(|held| held == c)) =>
                {
                    served.insert(id.clone(), key.clone());
                }
                _ => {
                    to_read.insert(id.clone());
                }
            }
        }
        (served, to_read)
    }

    /// Keeps what was read at `now`: the keys found, and forgets the ids asked for that no
    /// longer exist.
    pub fn keep(&self, asked: &BTreeSet<String>, found: &HashMap<String, StoredKey>, now: i64) {
        if self.ttl_seconds <= 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for id in asked {
            entries.remove(id);
        }
        if entries.len() + found.len() > CAPACITY {
            entries.clear();
        }
        for (id, key) in found.iter().take(CAPACITY) {
            entries.insert(id.clone(), (key.clone(), now + self.ttl_seconds));
        }
    }
}
