//! Incremental detokenization with stop strings: bytes in, text out, cut before any stop string.

/// Turns a stream of token bytes into text, holding back just enough to never emit part of a stop string.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Bytes of an incomplete UTF-8 sequence.
    partial: Vec<u8>,
    /// Decoded text not yet emitted.
    pending: String,
    stopped: bool,
}

/// Result of feeding bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StopOutput {
    /// Text safe to emit now.
    pub text: String,
    /// A stop string matched: generation must end; `text` is everything before it.
    pub stopped: bool,
}

impl StopMatcher {
    /// A matcher for these stop strings (empty strings are ignored).
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            ..Self::default()
        }
    }

    /// True once a stop string matched.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Feeds one token's bytes.
    pub fn push(&mut self, bytes: &[u8]) -> StopOutput {
        if self.stopped {
            return StopOutput {
                text: String::new(),
                stopped: true,
            };
        }
        self.partial.extend_from_slice(bytes);
        let valid_up_to = match std::str::from_utf8(&self.partial) {
            Ok(s) => {
                self.pending.push_str(s);
                self.partial.len()
            }
            Err(e) => {
                let good = e.valid_up_to();
                self.pending
                    .push_str(std::str::from_utf8(&self.partial[..good]).expect("valid prefix"));
                match e.error_len() {
                    // Invalid bytes: replace them, keep going.
                    Some(bad) => {
                        self.pending.push(char::REPLACEMENT_CHARACTER);
                        good + bad
                    }
                    // Incomplete sequence at the end: wait for more bytes.
                    None => good,
                }
            }
        };
        self.partial.drain(..valid_up_to);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            self.pending.truncate(at);
            self.stopped = true;
            return StopOutput {
                text: std::mem::take(&mut self.pending),
                stopped: true,
            };
        }
        let hold = self.holdback();
        let emit_len = self.pending.len() - hold;
        let rest = self.pending.split_off(emit_len);
        StopOutput {
            text: std::mem::replace(&mut self.pending, rest),
            stopped: false,
        }
    }

    /// Emits whatever is held back (at the end of generation).
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        let mut out = std::mem::take(&mut self.pending);
        if !self.partial.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
        out
    }

    /// Length in bytes of the longest suffix of `pending` that is a proper prefix of a stop string.
    fn holdback(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.pending.len());
            for len in (1..=max).rev() {
                let start = self.pending.len() - len;
                if self.pending.is_char_boundary(start) && stop.starts_with(&self.pending[start..])
                {
                    best = best.max(len);
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let o = m.push(p);
            out.push_str(&o.text);
            if o.stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn cuts_before_a_stop_split_across_tokens() {
        assert_eq!(
            run(&["\n\n"], &[b"Paris", b".\n", b"\nMore"]),
            ("Paris.".into(), true)
        );
        assert_eq!(
            run(&["END"], &[b"abc E", b"N", b"D tail"]),
            ("abc ".into(), true)
        );
    }

    #[test]
    fn releases_held_text_when_no_stop_follows() {
        assert_eq!(
            run(&["END"], &[b"abc E", b"N", b"x"]),
            ("abc ENx".into(), false)
        );
    }

    #[test]
    fn joins_utf8_split_across_tokens() {
        let e = "é".as_bytes();
        assert_eq!(
            run(&[], &[b"caf", &e[..1], &e[1..]]),
            ("café".into(), false)
        );
    }

    #[test]
    fn earliest_stop_wins() {
        assert_eq!(run(&["b", "a"], &[b"xxab"]), ("xx".into(), true));
    }
}
