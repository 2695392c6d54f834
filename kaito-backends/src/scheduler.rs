//! Step planning for continuous batching, independent of any engine.
//!
//! Each engine step decodes one token for every sequence that is generating, then spends what is left
//! of the step's token budget on prompt chunks of sequences still in prefill, oldest first (chunked
//! prefill). So a long prompt arriving never stalls the token streams already running, and new
//! requests start as soon as a sequence slot is free.

use std::ops::Range;

/// What the planner needs to know of one running sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqProgress {
    /// True once the prompt is fully in the KV cache and the sequence generates one token per step.
    pub decoding: bool,
    /// Prompt length in tokens.
    pub prompt_len: usize,
    /// Prompt tokens already in the KV cache.
    pub prefilled: usize,
}

/// The work of one step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepPlan {
    /// Indices of sequences that decode their next token.
    pub decode: Vec<usize>,
    /// (sequence index, prompt token range) to prefill; the range ends at `prompt_len` when the
    /// chunk completes the prompt (then that sequence's last token needs logits).
    pub prefill: Vec<(usize, Range<usize>)>,
}

impl StepPlan {
    /// Tokens in the batch.
    pub fn tokens(&self) -> usize {
        self.decode.len() + self.prefill.iter().map(|(_, r)| r.len()).sum::<usize>()
    }
}

/// Plans one step within `budget` tokens: every decoding sequence first, then prompt chunks in order.
/// Decode tokens are always scheduled, even beyond the budget (callers size the budget ≥ sequences).
pub fn plan_step(seqs: &[SeqProgress], budget: usize) -> StepPlan {
    let mut plan = StepPlan::default();
    for (i, s) in seqs.iter().enumerate() {
        if s.decoding {
            plan.decode.push(i);
        }
    }
    let mut used = plan.decode.len();
    for (i, s) in seqs.iter().enumerate() {
        if s.decoding || used >= budget || s.prefilled >= s.prompt_len {
            continue;
        }
        let take = (s.prompt_len - s.prefilled).min(budget - used);
        plan.prefill.push((i, s.prefilled..s.prefilled + take));
        used += take;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefill(prompt_len: usize, prefilled: usize) -> SeqProgress {
        SeqProgress {
            decoding: false,
            prompt_len,
            prefilled,
        }
    }
    const DECODING: SeqProgress = SeqProgress {
        decoding: true,
        prompt_len: 10,
        prefilled: 10,
    };

    #[test]
    fn decoding_sequences_always_get_their_token_before_prefill() {
        let plan = plan_step(&[prefill(1000, 0), DECODING, DECODING], 64);
        assert_eq!(plan.decode, vec![1, 2]);
        assert_eq!(plan.prefill, vec![(0, 0..62)]);
        assert_eq!(plan.tokens(), 64);
    }

    #[test]
    fn a_long_prompt_is_chunked_across_steps() {
        let mut s = prefill(150, 0);
        let mut chunks = Vec::new();
        while s.prefilled < s.prompt_len {
            let plan = plan_step(&[s], 64);
            let (_, r) = plan.prefill[0].clone();
            chunks.push(r.len());
            s.prefilled = r.end;
        }
        assert_eq!(chunks, vec![64, 64, 22]);
    }

    #[test]
    fn leftover_budget_goes_to_the_next_prompt_in_order() {
        let plan = plan_step(&[prefill(10, 0), prefill(100, 0), prefill(100, 0)], 64);
        assert_eq!(plan.prefill, vec![(0, 0..10), (1, 0..54)]);
    }

    #[test]
    fn resumes_from_a_cached_prefix() {
        let plan = plan_step(&[prefill(40, 32)], 64);
        assert_eq!(plan.prefill, vec![(0, 32..40)]);
    }
}
