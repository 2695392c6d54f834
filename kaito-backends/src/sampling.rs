//! Token sampling over a logits vector, for engines that hand back raw logits (libtorch).
//!
//! The chain and its order follow the llama.cpp engine's sampler so that a request means the same
//! on every backend: presence/frequency penalties over the generated tokens, then greedy when
//! `temperature <= 0`, else top-k → top-p → min-p → temperature → a draw from a generator seeded
//! with `seed` (random when absent). The same seed and the same logits give the same token.

use std::collections::HashMap;

use kaito_core::SamplingParams;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One request's sampler: its parameters, random generator and generated-token counts.
#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    counts: HashMap<u32, u32>,
}

impl Sampler {
    /// A sampler for `params`; a missing seed draws one at random.
    pub fn new(params: &SamplingParams) -> Self {
        let seed = params.seed.unwrap_or_else(rand::random::<u64>);
        Self {
            params: params.clone(),
            rng: StdRng::seed_from_u64(seed),
            counts: HashMap::new(),
        }
    }

    /// Records a generated token (for the penalties).
    pub fn accept(&mut self, token: u32) {
        *self.counts.entry(token).or_default() += 1;
    }

    /// Picks the next token. `logits` is modified in place by the penalties.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        self.apply_penalties(logits);
        if self.params.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u32, *l))
            .collect();
        let by_logit_desc = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        let k = self.params.top_k as usize;
        if k > 0 && k < candidates.len() {
            candidates.select_nth_unstable_by(k - 1, by_logit_desc);
            candidates.truncate(k);
        }
        candidates.sort_by(by_logit_desc);
        if self.params.top_p < 1.0 {
            let probs = softmax(&candidates, 1.0);
            let mut cumulative = 0.0;
            let mut keep = candidates.len();
            for (i, p) in probs.iter().enumerate() {
                cumulative += p;
                if cumulative >= self.params.top_p {
                    keep = i + 1;
                    break;
                }
            }
            candidates.truncate(keep.max(1));
        }
        if self.params.min_p > 0.0 {
            let max = candidates[0].1;
            // p_i >= min_p * p_max  ⇔  logit_i >= logit_max + ln(min_p)
            let floor = max + self.params.min_p.ln();
            let kept = candidates.iter().take_while(|(_, l)| *l >= floor).count();
            candidates.truncate(kept.max(1));
        }
        let probs = softmax(&candidates, self.params.temperature);
        let draw: f32 = self.rng.random();
        let mut cumulative = 0.0;
        for ((token, _), p) in candidates.iter().zip(&probs) {
            cumulative += p;
            if draw < cumulative {
                return *token;
            }
        }
        candidates[candidates.len() - 1].0
    }

    fn apply_penalties(&self, logits: &mut [f32]) {
        let (presence, frequency) = (self.params.presence_penalty, self.params.frequency_penalty);
        if presence == 0.0 && frequency == 0.0 {
            return;
        }
        for (token, count) in &self.counts {
            if let Some(l) = logits.get_mut(*token as usize) {
                *l -= presence + frequency * *count as f32;
            }
        }
    }
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, l) in logits.iter().enumerate() {
        if *l > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn softmax(candidates: &[(u32, f32)], temperature: f32) -> Vec<f32> {
    let max = candidates
        .iter()
        .map(|(_, l)| *l)
        .fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = candidates
        .iter()
        .map(|(_, l)| ((l - max) / temperature).exp())
        .collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            seed: Some(seed),
            ..SamplingParams::default()
        }
    }

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut s = Sampler::new(&SamplingParams::greedy());
        assert_eq!(s.sample(&mut [0.1, 2.0, 1.9, -3.0]), 1);
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let draw = |seed| {
            let mut s = Sampler::new(&params(1.0, seed));
            (0..20)
                .map(|_| s.sample(&mut logits.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_k_one_is_greedy_whatever_the_temperature() {
        let mut p = params(5.0, 1);
        p.top_k = 1;
        let mut s = Sampler::new(&p);
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [0.0, 1.0, 0.5]), 1);
        }
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        // probabilities ≈ 0.88, 0.12, ~0: top_p 0.5 keeps only the first.
        let mut p = params(1.0, 3);
        p.top_p = 0.5;
        let mut s = Sampler::new(&p);
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [4.0, 2.0, -10.0]), 0);
        }
        let mut p = params(1.0, 3);
        p.min_p = 0.5;
        let mut s = Sampler::new(&p);
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [4.0, 2.0, -10.0]), 0);
        }
    }

    #[test]
    fn penalties_push_repeated_tokens_down() {
        let mut p = SamplingParams::greedy();
        p.frequency_penalty = 1.0;
        let mut s = Sampler::new(&p);
        s.accept(0);
        assert_eq!(s.sample(&mut [1.0, 0.5]), 1);
        let mut p = SamplingParams::greedy();
        p.presence_penalty = 0.4;
        let mut s = Sampler::new(&p);
        s.accept(0);
        s.accept(0);
        assert_eq!(s.sample(&mut [1.0, 0.5]), 0, "presence counts once");
    }
}
