//! Which finished prompts stay in the unified KV cache for later requests (prefix caching).
//!
//! In llama.cpp's unified KV cache a cell can belong to several sequence ids at once, so keeping a
//! finished sequence's cells costs no copy: they are re-tagged with a *cache* sequence id, distinct
//! from the ids running requests use. A new request then shares the longest matching prefix of any
//! kept entry (or running sequence) by id, again without copying. This module is the bookkeeping
//! only: which cache id holds which tokens, and which entries to drop, least recently used first,
//! when the token budget or the ids run out (or the engine needs the cells back).

use std::ops::Range;

use crate::engine_command::common_prefix;

/// One kept prompt.
#[derive(Debug)]
struct Entry {
    seq_id: i32,
    tokens: Vec<u32>,
    last_used: u64,
}

/// Where [`PrefixCache::insert`] put the tokens and which entries it dropped to make room.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Inserted {
    /// The cache sequence id to tag the cells with.
    pub seq_id: i32,
    /// Cache sequence ids whose cells must be released.
    pub evicted: Vec<i32>,
}

/// The kept prompts, their sequence ids and a token budget.
#[derive(Debug)]
pub(super) struct PrefixCache {
    entries: Vec<Entry>,
    free_ids: Vec<i32>,
    token_budget: usize,
    tokens: usize,
    clock: u64,
}

impl PrefixCache {
    /// A cache using sequence ids `ids` and holding at most `token_budget` tokens in all.
    pub(super) fn new(ids: Range<i32>, token_budget: usize) -> Self {
        Self {
            entries: Vec::new(),
            free_ids: ids.rev().collect(),
            token_budget,
            tokens: 0,
            clock: 0,
        }
    }

    /// Tokens held by all entries (shared prefixes counted once per entry).
    pub(super) fn tokens(&self) -> usize {
        self.tokens
    }

    /// Number of kept prompts.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry sharing the longest prefix with `prompt` (its sequence id and that length); it
    /// counts as used now.
    pub(super) fn longest_prefix(&mut self, prompt: &[u32]) -> Option<(i32, usize)> {
        let (at, len) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt)))
            .filter(|(_, n)| *n > 0)
            .max_by_key(|(_, n)| *n)?;
        self.clock += 1;
        self.entries[at].last_used = self.clock;
        Some((self.entries[at].seq_id, len))
    }

    /// Keeps `tokens`, dropping entries they make redundant (their tokens are a prefix of these)
    /// and then the least recently used ones until the budget and an id allow it. `None` when the
    /// tokens alone exceed the budget or there are no ids at all.
    pub(super) fn insert(&mut self, tokens: Vec<u32>) -> Option<Inserted> {
        if tokens.is_empty() || tokens.len() > self.token_budget {
            return None;
        }
        let mut evicted = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if tokens.starts_with(&self.entries[i].tokens) {
                evicted.push(self.remove(i));
            } else {
                i += 1;
            }
        }
        while self.tokens + tokens.len() > self.token_budget || self.free_ids.is_empty() {
            evicted.push(self.evict_lru()?);
        }
        let seq_id = self.free_ids.pop()?;
        self.clock += 1;
        self.tokens += tokens.len();
        self.entries.push(Entry {
            seq_id,
            tokens,
            last_used: self.clock,
        });
        Some(Inserted { seq_id, evicted })
    }

    /// Drops the least recently used entry; its sequence id, whose cells must be released.
    pub(super) fn evict_lru(&mut self) -> Option<i32> {
        let at = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(i, _)| i)?;
        Some(self.remove(at))
    }

    fn remove(&mut self, at: usize) -> i32 {
        let entry = self.entries.swap_remove(at);
        self.tokens -= entry.tokens.len();
        self.free_ids.push(entry.seq_id);
        entry.seq_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_shared_prefix_wins() {
        let mut cache = PrefixCache::new(8..16, 100);
        let a = cache.insert(vec![1, 2, 3, 4]).unwrap().seq_id;
        let b = cache.insert(vec![1, 2, 9]).unwrap().seq_id;
        assert_ne!(a, b);
        assert_eq!(cache.longest_prefix(&[1, 2, 3, 7]), Some((a, 3)));
        assert_eq!(cache.longest_prefix(&[1, 2, 9, 9]), Some((b, 3)));
        assert_eq!(cache.longest_prefix(&[5]), None);
    }

    #[test]
    fn an_entry_that_is_a_prefix_of_a_new_one_is_replaced() {
        let mut cache = PrefixCache::new(8..16, 100);
        let turn1 = cache.insert(vec![1, 2, 3]).unwrap().seq_id;
        let turn2 = cache.insert(vec![1, 2, 3, 4, 5]).unwrap();
        assert_eq!(turn2.evicted, vec![turn1]);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.tokens(), 5);
    }

    #[test]
    fn the_budget_evicts_least_recently_used_first() {
        let mut cache = PrefixCache::new(8..16, 10);
        let a = cache.insert(vec![1; 4]).unwrap().seq_id;
        let b = cache.insert(vec![2; 4]).unwrap().seq_id;
        // Using `a` makes `b` the oldest.
        assert_eq!(cache.longest_prefix(&[1, 1]), Some((a, 2)));
        let c = cache.insert(vec![3; 4]).unwrap();
        assert_eq!(c.evicted, vec![b]);
        assert_eq!(cache.tokens(), 8);
        assert_eq!(cache.insert(vec![4; 11]), None, "larger than the budget");
    }

    #[test]
    fn ids_are_recycled_when_they_run_out() {
        let mut cache = PrefixCache::new(8..10, 100);
        let a = cache.insert(vec![1]).unwrap().seq_id;
        let _b = cache.insert(vec![2]).unwrap();
        let c = cache.insert(vec![3]).unwrap();
        assert_eq!(c.evicted, vec![a]);
        assert_eq!(c.seq_id, a);
        assert_eq!(cache.evict_lru(), Some(9));
        assert_eq!(cache.evict_lru(), Some(a));
        assert_eq!(cache.evict_lru(), None);
        assert_eq!(PrefixCache::new(0..0, 100).insert(vec![1]), None);
    }
}
