//! Log-probabilities from raw logits, engine-independent: log-sum-exp and the k most likely tokens.

/// The normaliser and the `k` best (token, logprob) pairs of one position's logits, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprobs {
    /// log Σ exp(logit).
    pub log_sum_exp: f32,
    /// (token id, logprob), best first.
    pub top: Vec<(u32, f32)>,
}

impl TopLogprobs {
    /// The logprob of `token` under these logits.
    pub fn of(&self, logits: &[f32], token: u32) -> f32 {
        let logit = logits
            .get(token as usize)
            .copied()
            .unwrap_or(f32::NEG_INFINITY);
        (logit - self.log_sum_exp).min(0.0)
    }
}

/// Computes [`TopLogprobs`] in one pass for the normaliser plus a partial selection for the top `k`.
pub fn top_logprobs(logits: &[f32], k: usize) -> TopLogprobs {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    let log_sum_exp = max + sum.ln();
    let k = k.min(logits.len());
    if k == 0 {
        return TopLogprobs {
            log_sum_exp,
            top: Vec::new(),
        };
    }
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let by_logit_desc = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
    order.select_nth_unstable_by(k - 1, by_logit_desc);
    order.truncate(k);
    order.sort_by(by_logit_desc);
    let top = order
        .into_iter()
        .map(|t| (t, (logits[t as usize] - log_sum_exp).min(0.0)))
        .collect();
    TopLogprobs { log_sum_exp, top }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_top_is_sorted() {
        let logits = [1.0f32, 3.0, 2.0, -1.0];
        let t = top_logprobs(&logits, 3);
        let total: f32 = (0..4).map(|i| t.of(&logits, i).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert_eq!(
            t.top.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![1, 2, 0]
        );
        assert!((t.top[0].1 - t.of(&logits, 1)).abs() < 1e-6);
    }
}
