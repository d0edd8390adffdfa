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
//! [`GenerationCache::invalidate`] does the same for one key: the
//! generation a loader takes for its key also counts the invalidations of
//! the key's group, and a load that one of them overtook is not served.
//!
//! ```
//! use std::time::Duration;
//! use jeton_auth::cache::GenerationCache;
//!
//! let cache = GenerationCache::new(100, Duration::from_secs(30));
//! let read_in = cache.generation("key");
//! let loaded = "from the database";
//! cache.invalidate_all(); // a write lands while the value was being loaded
//! cache.insert("key", loaded, read_in);
//! assert_eq!(cache.get("key"), None);
//! ```

use std::{
    hash::{BuildHasher, Hash, RandomState},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use quick_cache::{Equivalent, Weighter, sync::Cache};

/// The generation a key's value was read in: from
/// [`GenerationCache::generation`], taken before the value is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    /// [`GenerationCache::invalidate_all`] calls so far.
    all: u64,
    /// [`GenerationCache::invalidate`] calls so far for the key's group.
    group: u64,
}

#[derive(Clone)]
struct Entry<V> {
    value: V,
    /// The [`Generation::all`] it was read in.
    generation: u64,
    /// Its key's group, and that group's invalidations when it was read.
    group: usize,
    group_generation: u64,
    /// When the entry stops being served even if nothing invalidates it.
    until: Instant,
}

/// Weighs an entry by its value.
#[derive(Clone)]
struct ByValue<V>(fn(&V) -> u64);

impl<K, V> Weighter<K, Entry<V>> for ByValue<V> {
    fn weight(&self, _key: &K, entry: &Entry<V>) -> u64 {
        // quick_cache never evicts for a weight of 0.
        (self.0)(&entry.value).max(1)
    }
}

/// A [`quick_cache`] table (sharded, a hit takes a shard's read lock and
/// allocates nothing) whose entries are served only in the generation they
/// were read in, and for at most `ttl`.
pub struct GenerationCache<K, V> {
    entries: Option<Cache<K, Entry<V>, ByValue<V>>>,
    generation: AtomicU64,
    /// Per-key invalidations, counted per group of keys: keys that share a
    /// group are retired together (a spurious miss, never a stale answer),
    /// so there are a few groups per entry the cache expects.
    groups: Box<[AtomicU64]>,
    grouping: RandomState,
    ttl: Duration,
}

impl<K: Eq + Hash, V: Clone> GenerationCache<K, V> {
    /// At most `capacity` entries (0: the cache keeps nothing), each served
    /// for at most `ttl` after it is inserted: a safety net, since freshness
    /// comes from invalidation.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self::weighted(capacity, capacity as u64, |_| 1, ttl)
    }

    /// Entries weighing at most `max_weight` together, each weighing
    /// `weight(value)` (at least 1): for values whose size varies. An entry
    /// heavier than its share of the cache is not kept. `items` is the
    /// number of entries expected, to size the table.
    pub fn weighted(items: usize, max_weight: u64, weight: fn(&V) -> u64, ttl: Duration) -> Self {
        GenerationCache {
            entries: (max_weight > 0)
                .then(|| Cache::with_weighter(items.max(1), max_weight, ByValue(weight))),
            generation: AtomicU64::new(0),
            groups: (0..(4 * items).clamp(1024, 1 << 16))
                .map(|_| AtomicU64::new(0))
                .collect(),
            grouping: RandomState::new(),
            ttl,
        }
    }

    /// The current generation for `key`. Read it before loading the key's
    /// value, and pass it to [`GenerationCache::insert`].
    pub fn generation<Q: Hash + ?Sized>(&self, key: &Q) -> Generation {
        self.generation_of(self.group(key))
    }

    fn generation_of(&self, group: usize) -> Generation {
        Generation {
            all: self.generation.load(Ordering::SeqCst),
            group: self.groups[group].load(Ordering::SeqCst),
        }
    }

    fn group<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        (self.grouping.hash_one(key) % self.groups.len() as u64) as usize
    }

    /// The value of `key`, if it was read in the current generation (and
    /// its key has not been invalidated since) and has not outlived its time
    /// to live.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let entry = self.entries.as_ref()?.get(key)?;
        (entry.generation == self.generation.load(Ordering::SeqCst)
            && entry.group_generation == self.groups[entry.group].load(Ordering::SeqCst)
            && entry.until > Instant::now())
        .then_some(entry.value)
    }

    /// Keeps `value`, read in `read_in` (the key's generation). If an
    /// invalidation of the key has happened since, the value is dropped;
    /// and if one happens during this call, the entry's generation keeps it
    /// from being served.
    pub fn insert(&self, key: K, value: V, read_in: Generation) {
        let Some(entries) = &self.entries else { return };
        let group = self.group(&key);
        if self.generation_of(group) != read_in {
            return;
        }
        entries.insert(
            key,
            Entry {
                value,
                generation: read_in.all,
                group,
                group_generation: read_in.group,
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

    /// From now on, nothing read before for `key` is served (nor, until
    /// they are read again, a few other keys that share its group).
    pub fn invalidate(&self, key: &K) {
        self.groups[self.group(key)].fetch_add(1, Ordering::SeqCst);
        if let Some(entries) = &self.entries {
            entries.remove(key);
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
        cache.insert("a".into(), 1, cache.generation("a"));
        assert_eq!(cache.get("a"), Some(1));
        cache.invalidate_all();
        assert_eq!(cache.get("a"), None);
        cache.insert("a".into(), 2, cache.generation("a"));
        assert_eq!(cache.get("a"), Some(2));
    }

    #[test]
    fn a_value_read_before_an_invalidation_is_never_served_after_it() {
        let cache = cache();
        let read_in = cache.generation("a");
        cache.invalidate_all();
        cache.insert("a".into(), 1, read_in);
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn an_insert_overtaken_by_an_invalidation_is_not_served() {
        // The insert checked the generation, then the invalidation emptied
        // the cache, then the insert went in: the entry's tag retires it.
        let cache = cache();
        let read_in = cache.generation("a");
        cache.generation.fetch_add(1, Ordering::SeqCst);
        cache.entries.as_ref().unwrap().insert(
            "a".into(),
            Entry {
                value: 1,
                generation: read_in.all,
                group: cache.group(&"a".to_owned()),
                group_generation: 0,
                until: Instant::now() + Duration::from_secs(60),
            },
        );
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn invalidating_a_key_retires_its_value_only() {
        let cache = cache();
        let read_in = cache.generation("a");
        cache.insert("a".into(), 1, read_in);
        cache.insert("b".into(), 2, cache.generation("b"));
        cache.invalidate(&"a".to_owned());
        assert_eq!(cache.get("a"), None);
        // Unless "b" shares "a"'s group: then it is only read again.
        if cache.group(&"a".to_owned()) != cache.group(&"b".to_owned()) {
            assert_eq!(cache.get("b"), Some(2));
        }
        cache.insert("a".into(), 3, cache.generation("a"));
        assert_eq!(cache.get("a"), Some(3));
    }

    #[test]
    fn a_value_read_before_its_key_was_invalidated_is_never_served_after_it() {
        let cache = cache();
        let read_in = cache.generation("a");
        cache.invalidate(&"a".to_owned());
        cache.insert("a".into(), 1, read_in);
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn a_load_is_kept_when_another_key_is_invalidated_meanwhile() {
        let cache = cache();
        let other = (0..)
            .map(|n| n.to_string())
            .find(|key| cache.group(key) != cache.group("a"))
            .expect("keys fall into more than one group");
        let read_in = cache.generation("a");
        cache.invalidate(&other);
        cache.insert("a".into(), 1, read_in);
        assert_eq!(cache.get("a"), Some(1));
    }

    #[test]
    fn an_insert_overtaken_by_a_key_invalidation_is_not_served() {
        // The insert checked its key's generation, then the invalidation
        // moved the key's group on and removed the key, then the insert
        // went in.
        let cache = cache();
        let key = "a".to_owned();
        let group = cache.group(&key);
        let group_generation = cache.groups[group].load(Ordering::SeqCst);
        cache.invalidate(&key);
        let generation = cache.generation(&key).all;
        cache.entries.as_ref().unwrap().insert(
            key,
            Entry {
                value: 1,
                generation,
                group,
                group_generation,
                until: Instant::now() + Duration::from_secs(60),
            },
        );
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn weighted_entries_stay_within_the_weight() {
        let cache: GenerationCache<u32, Vec<u8>> = GenerationCache::weighted(
            10,
            1000,
            |value| value.len() as u64,
            Duration::from_secs(60),
        );
        for key in 0..100 {
            cache.insert(key, vec![0; 100], cache.generation(&key));
        }
        let kept = (0..100).filter(|key| cache.get(key).is_some()).count();
        assert!((1..=10).contains(&kept), "{kept} entries of 100 bytes kept");
    }

    #[test]
    fn a_value_is_served_for_its_time_to_live_only() {
        let expired = GenerationCache::new(10, Duration::ZERO);
        expired.insert("a".to_owned(), 1, expired.generation("a"));
        assert_eq!(expired.get("a"), None);
    }

    #[test]
    fn no_capacity_keeps_nothing() {
        let none = GenerationCache::new(0, Duration::from_secs(60));
        none.insert("a".to_owned(), 1, none.generation("a"));
        assert_eq!(none.get("a"), None);
    }
}
