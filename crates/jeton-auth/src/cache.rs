//! A bounded cache that an invalidation empties for good, even of answers
//! that were being loaded while it happened.
//!
//! The usual "check the cache, load, insert" has a race: an invalidation
//! that lands between the load and the insert is overtaken by the insert,
//! and the stale value is served until it expires. Here every entry carries
//! the generation it was read in, and is served only in that generation;
//! [`GenerationCache::invalidate_all`] moves the generation on. A loader
//! reads [`GenerationCache::generation`] *before* it loads and hands it to
//! [`GenerationCache::insert`], so whatever it read before an invalidation
//! is never served after it, however late it is inserted.
//!
//! ```
//! use std::time::Duration;
//! use jeton_auth::cache::GenerationCache;
//!
//! let cache = GenerationCache::new(100, Duration::from_secs(30));
//! let read_in = cache.generation();
//! let loaded = "from the database";
//! cache.invalidate_all(); // a write lands while the value was being loaded
//! cache.insert("key", loaded, read_in);
//! assert_eq!(cache.get("key"), None);
//! ```

use std::{
    hash::Hash,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use quick_cache::{Equivalent, sync::Cache};

/// The generation a value was read in: from [`GenerationCache::generation`],
/// taken before the value is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

#[derive(Clone)]
struct Entry<V> {
    value: V,
    generation: u64,
    /// When the entry stops being served even if nothing invalidates it.
    until: Instant,
}

/// A [`quick_cache`] table (sharded, a hit takes a shard's read lock and
/// allocates nothing) whose entries are served only in the generation they
/// were read in, and for at most `ttl`.
pub struct GenerationCache<K, V> {
    entries: Option<Cache<K, Entry<V>>>,
    generation: AtomicU64,
    ttl: Duration,
}

impl<K: Eq + Hash, V: Clone> GenerationCache<K, V> {
    /// At most `capacity` entries (0: the cache keeps nothing), each served
    /// for at most `ttl` after it is inserted: a safety net, since freshness
    /// comes from [`GenerationCache::invalidate_all`].
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        GenerationCache {
            entries: (capacity > 0).then(|| Cache::new(capacity)),
            generation: AtomicU64::new(0),
            ttl,
        }
    }

    /// The current generation. Read it before loading a value, and pass it
    /// to [`GenerationCache::insert`].
    pub fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::SeqCst))
    }

    /// The value of `key`, if it was read in the current generation and has
    /// not outlived its time to live.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let entry = self.entries.as_ref()?.get(key)?;
        (entry.generation == self.generation.load(Ordering::SeqCst) && entry.until > Instant::now())
            .then_some(entry.value)
    }

    /// Keeps `value`, read in `read_in`. If an invalidation has happened
    /// since, the value is dropped; and if one happens during this call, the
    /// entry's generation keeps it from being served.
    pub fn insert(&self, key: K, value: V, read_in: Generation) {
        let Some(entries) = &self.entries else { return };
        if self.generation() != read_in {
            return;
        }
        entries.insert(
            key,
            Entry {
                value,
                generation: read_in.0,
                until: Instant::now() + self.ttl,
            },
        );
    }

    /// From now on, nothing read before is served. Also frees the memory.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> GenerationCache<String, u32> {
        GenerationCache::new(10, Duration::from_secs(60))
    }

    #[test]
    fn a_value_is_served_in_its_generation_only() {
        let cache = cache();
        cache.insert("a".into(), 1, cache.generation());
        assert_eq!(cache.get("a"), Some(1));
        cache.invalidate_all();
        assert_eq!(cache.get("a"), None);
        cache.insert("a".into(), 2, cache.generation());
        assert_eq!(cache.get("a"), Some(2));
    }

    #[test]
    fn a_value_read_before_an_invalidation_is_never_served_after_it() {
        let cache = cache();
        let read_in = cache.generation();
        cache.invalidate_all();
        cache.insert("a".into(), 1, read_in);
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn an_insert_overtaken_by_an_invalidation_is_not_served() {
        // The insert checked the generation, then the invalidation emptied
        // the cache, then the insert went in: the entry's tag retires it.
        let cache = cache();
        let read_in = cache.generation();
        cache.generation.fetch_add(1, Ordering::SeqCst);
        cache.entries.as_ref().unwrap().insert(
            "a".into(),
            Entry {
                value: 1,
                generation: read_in.0,
                until: Instant::now() + Duration::from_secs(60),
            },
        );
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn a_value_is_served_for_its_time_to_live_only() {
        let expired = GenerationCache::new(10, Duration::ZERO);
        expired.insert("a".to_owned(), 1, expired.generation());
        assert_eq!(expired.get("a"), None);
    }

    #[test]
    fn no_capacity_keeps_nothing() {
        let none = GenerationCache::new(0, Duration::from_secs(60));
        none.insert("a".to_owned(), 1, none.generation());
        assert_eq!(none.get("a"), None);
    }
}
