//! Finished prompts kept in host memory for later requests (prefix caching beyond the running
//! sequences).
//!
//! A finished sequence's KV stream is freed for the next request, but first its KV is copied out
//! to host memory with the tokens it holds (as llama-server does); a later prompt sharing a prefix
//! restores it into its own stream instead of recomputing it. This module is the bookkeeping: which
//! entry shares the longest prefix, and which to drop, least recently used first, when the byte
//! budget is reached. The payload (the saved KV) is opaque here.

use crate::engine_command::common_prefix;

/// One kept prompt.
#[derive(Debug)]
struct Entry<S> {
    tokens: Vec<u32>,
    saved: S,
    bytes: usize,
    last_used: u64,
}

/// Kept prompts under a byte budget, least recently used dropped first.
#[derive(Debug)]
pub(super) struct PrefixCache<S> {
    entries: Vec<Entry<S>>,
    byte_budget: usize,
    bytes: usize,
    clock: u64,
}

impl<S> PrefixCache<S> {
    /// An empty cache holding at most `byte_budget` bytes of saved state (0: keeps nothing).
    pub(super) fn new(byte_budget: usize) -> Self {
        Self {
            entries: Vec::new(),
            byte_budget,
            bytes: 0,
            clock: 0,
        }
    }

    /// Whether anything would be kept at all.
    pub(super) fn enabled(&self) -> bool {
        self.byte_budget > 0
    }

    /// Bytes of saved state held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of kept prompts.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry sharing the longest prefix with `prompt` (its saved state and that length); it
    /// counts as used now.
    pub(super) fn longest_prefix(&mut self, prompt: &[u32]) -> Option<(&S, usize)> {
        let (at, len) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt)))
            .filter(|(_, n)| *n > 0)
            .max_by_key(|(_, n)| *n)?;
        self.clock += 1;
        let entry = &mut self.entries[at];
        entry.last_used = self.clock;
        Some((&entry.saved, len))
    }

    /// Whether some entry already holds all of `tokens` (keeping them again would add nothing).
    pub(super) fn covers(&self, tokens: &[u32]) -> bool {
        self.entries.iter().any(|e| e.tokens.starts_with(tokens))
    }

    /// Keeps `tokens` with their saved state of `bytes` bytes, dropping entries they make
    /// redundant (whose tokens are a prefix of these), then the least recently used ones until
    /// the budget allows. Returns false (keeping nothing) when the state alone exceeds the budget.
    pub(super) fn insert(&mut self, tokens: Vec<u32>, saved: S, bytes: usize) -> bool {
        if tokens.is_empty() || bytes > self.byte_budget {
            return false;
        }
        let mut i = 0;
        while i < self.entries.len() {
            if tokens.starts_with(&self.entries[i].tokens) {
                self.remove(i);
            } else {
                i += 1;
            }
        }
        while self.bytes + bytes > self.byte_budget {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
                .expect("over budget means some entry is held");
            self.remove(oldest);
        }
        self.clock += 1;
        self.bytes += bytes;
        self.entries.push(Entry {
            tokens,
            saved,
            bytes,
            last_used: self.clock,
        });
        true
    }

    fn remove(&mut self, at: usize) {
        let entry = self.entries.swap_remove(at);
        self.bytes -= entry.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_shared_prefix_wins() {
        let mut cache = PrefixCache::new(100);
        assert!(cache.insert(vec![1, 2, 3, 4], 'a', 10));
        assert!(cache.insert(vec![1, 2, 9], 'b', 10));
        assert_eq!(cache.longest_prefix(&[1, 2, 3, 7]), Some((&'a', 3)));
        assert_eq!(cache.longest_prefix(&[1, 2, 9, 9]), Some((&'b', 3)));
        assert_eq!(cache.longest_prefix(&[5]), None);
        assert!(cache.covers(&[1, 2, 3]));
        assert!(!cache.covers(&[1, 2, 3, 4, 5]));
    }

    #[test]
    fn an_entry_that_is_a_prefix_of_a_new_one_is_replaced() {
        let mut cache = PrefixCache::new(100);
        cache.insert(vec![1, 2, 3], "turn 1", 30);
        cache.insert(vec![1, 2, 3, 4, 5], "turn 2", 50);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), 50);
        assert_eq!(cache.longest_prefix(&[1, 2]), Some((&"turn 2", 2)));
    }

    #[test]
    fn the_budget_drops_least_recently_used_first() {
        let mut cache = PrefixCache::new(100);
        cache.insert(vec![1; 4], 'a', 40);
        cache.insert(vec![2; 4], 'b', 40);
        // Using `a` makes `b` the oldest.
        assert_eq!(cache.longest_prefix(&[1, 1]), Some((&'a', 2)));
        assert!(cache.insert(vec![3; 4], 'c', 40));
        assert_eq!(cache.longest_prefix(&[2]), None, "b was dropped");
        assert_eq!(cache.longest_prefix(&[1]), Some((&'a', 1)));
        assert_eq!(cache.bytes(), 80);
        assert!(
            !cache.insert(vec![4; 4], 'd', 101),
            "larger than the budget"
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let mut cache = PrefixCache::new(0);
        assert!(!cache.enabled());
        assert!(!cache.insert(vec![1], (), 1));
        assert_eq!(cache.len(), 0);
    }
}
