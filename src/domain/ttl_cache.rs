//! A small map whose entries expire, bounded in size: for answers an isolate may reuse for a
//! few seconds (the revocation list) without growing with the traffic it sees.

use std::collections::HashMap;
use std::hash::Hash;

/// Entries live `ttl_ms` from their insertion; at most `capacity` are kept.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    entries: HashMap<K, (V, u64)>,
    capacity: usize,
    ttl_ms: u64,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize, ttl_ms: u64) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            ttl_ms,
        }
    }

    /// The live value for `key` at `now_ms`; an expired entry is dropped.
    pub fn get(&mut self, key: &K, now_ms: u64) -> Option<V> {
        match self.entries.get(key) {
            Some((value, expires_at)) if *expires_at > now_ms => Some(value.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keep `value` for `key` until `now_ms + ttl`. When full, expired entries go first; if
    /// none has expired, everything goes: a cache miss costs one lookup, unbounded growth
    /// costs the isolate.
    pub fn insert(&mut self, key: K, value: V, now_ms: u64) {
        if self.ttl_ms == 0 || self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries
                .retain(|_, (_, expires_at)| *expires_at > now_ms);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries
            .insert(key, (value, now_ms.saturating_add(self.ttl_ms)));
    }

    /// Change how long new entries live (settings are read per isolate, after creation).
    pub fn set_ttl_ms(&mut self, ttl_ms: u64) {
        self.ttl_ms = ttl_ms;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl() {
        let mut cache = TtlCache::new(10, 1_000);
        cache.insert("a", true, 5_000);
        assert_eq!(cache.get(&"a", 5_999), Some(true));
        assert_eq!(cache.get(&"a", 6_000), None);
        assert!(cache.is_empty(), "the expired entry is dropped on read");
    }

    #[test]
    fn a_newer_value_replaces_the_old_and_restarts_its_ttl() {
        let mut cache = TtlCache::new(10, 1_000);
        cache.insert("a", false, 0);
        cache.insert("a", true, 900);
        assert_eq!(cache.get(&"a", 1_500), Some(true));
    }

    #[test]
    fn size_stays_within_capacity() {
        let mut cache = TtlCache::new(3, 1_000);
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(key, i, 0);
        }
        // Nothing expired yet: the cache starts over rather than grow.
        cache.insert("d", 3, 10);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&"d", 10), Some(3));
        // Expired entries make room first.
        cache.insert("e", 4, 20);
        cache.insert("f", 5, 2_000);
        cache.insert("g", 6, 2_000);
        assert_eq!(cache.get(&"f", 2_000), Some(5));
        assert!(cache.len() <= 3);
        for i in 0..1_000 {
            cache.insert(format!("{i}").leak() as &str, i, 3_000);
            assert!(cache.len() <= 3);
        }
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let mut cache = TtlCache::new(10, 0);
        cache.insert("a", true, 0);
        assert_eq!(cache.get(&"a", 0), None);
    }
}
