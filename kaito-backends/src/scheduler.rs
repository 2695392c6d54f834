//! Step planning for continuous batching, independent of any engine.
//!
//! Each engine step decodes one token for every sequence that is generating, then spends what is left
//! of the step's token budget on prompt chunks of sequences still in prefill, in order (chunked
//! prefill). So a long prompt arriving never stalls the token streams already running, and new
//! requests start as soon as a sequence slot is free.
//!
//! While some sequence decodes, prompts are paced ([`plan_step_paced`]): a wave of admitted prompts
//! sharing one step with the decodes would otherwise make that step (the gap between two tokens of
//! every decoding stream) several times longer than a decode step. Each prompt advances a token a
//! step, which keeps the step one micro-batch as long as a decode step of all running sequences;
//! more only where a [`PrefillBudget`] fitted to measured step times leaves room for a second
//! micro-batch, or where a long prompt would otherwise take more than [`MAX_PREFILL_STEPS`] steps.
//! With nothing decoding, a step takes as much prompt as the batch holds.

use std::ops::Range;
use std::time::Duration;

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
    plan_step_paced(seqs, budget, usize::MAX)
}

/// As [`plan_step`], paced for the streams that decode (see [`PrefillBudget`]): when at least one
/// sequence decodes, every prompt in prefill advances by one token, and `extra` more prompt tokens
/// go to the prompts in order. With nothing decoding the pace does not apply: the prompts take the
/// whole budget.
///
/// One token per prompt keeps the step a single micro-batch: llama.cpp splits a batch whose
/// sequences bring unequal numbers of tokens (with a KV stream per sequence) into several, and each
/// more costs about a decode step's fixed part again. So a prompt read a token a step beside the
/// decodes costs them no more than one more decoding sequence would, while a prompt chunk of two
/// tokens already adds a second micro-batch to the gap between two of their tokens.
pub fn plan_step_paced(seqs: &[SeqProgress], budget: usize, extra: usize) -> StepPlan {
    let mut plan = StepPlan::default();
    for (i, s) in seqs.iter().enumerate() {
        if s.decoding {
            plan.decode.push(i);
        }
    }
    let mut used = plan.decode.len();
    if plan.decode.is_empty() {
        for (i, s) in seqs.iter().enumerate() {
            if used >= budget || s.prefilled >= s.prompt_len {
                continue;
            }
            let take = (s.prompt_len - s.prefilled).min(budget - used);
            plan.prefill.push((i, s.prefilled..s.prefilled + take));
            used += take;
        }
        return plan;
    }
    // A token for each prompt first, then the extra tokens in order.
    for (i, s) in seqs.iter().enumerate() {
        if s.decoding || used >= budget || s.prefilled >= s.prompt_len {
            continue;
        }
        plan.prefill.push((i, s.prefilled..s.prefilled + 1));
        used += 1;
    }
    let mut extra = extra.min(budget - used);
    for (i, range) in &mut plan.prefill {
        if extra == 0 {
            break;
        }
        let take = (seqs[*i].prompt_len - range.end).min(extra);
        range.end += take;
        extra -= take;
    }
    plan
}

/// True when llama.cpp runs `plan` as one micro-batch (every sequence brings one token, or only one
/// sequence is in the batch): only such steps enter the step-time fit of [`PrefillBudget`].
pub fn single_micro_batch(plan: &StepPlan) -> bool {
    plan.prefill.iter().all(|(_, r)| r.len() <= 1) || plan.decode.len() + plan.prefill.len() <= 1
}

/// How much longer than a decode-only step of the running sequences a step that also carries a
/// second micro-batch of prompt tokens may take.
///
/// An eighth. A second micro-batch costs a step's fixed part again plus its rows, so on one CPU
/// core (fixed part ≈ one row) this allows none at 8 sequences and a few rows from ~16 sequences on;
/// where the fixed part dominates (a GPU reading the weights once per micro-batch) it allows none.
/// Extra micro-batches are frequent once arrivals are spread out, so their length, not their
/// rarity, sets the p99 of the gaps between tokens: prompts advance a token a step instead.
pub const STEP_SLACK: f64 = 0.125;

/// Most steps a prompt's uncached tokens are spread over while sequences decode: a prompt longer
/// than this reads `1 / MAX_PREFILL_STEPS` of its tokens per step (in a second micro-batch), so that
/// a long prompt is not read a token per step. See [`spread_floor`].
///
/// 32: the question after a cached system prompt (~20 tokens) is read a token a step; a 2,000-token
/// document in 32 steps.
pub const MAX_PREFILL_STEPS: usize = 32;

/// The extra prompt tokens (beyond one per prompt) a step must carry so that each prompt in prefill,
/// of which `to_read` gives the tokens it had to compute when admitted, is read within about
/// [`MAX_PREFILL_STEPS`] steps.
pub fn spread_floor(to_read: impl IntoIterator<Item = usize>) -> usize {
    to_read
        .into_iter()
        .map(|n| n.div_ceil(MAX_PREFILL_STEPS).saturating_sub(1))
        .sum()
}

/// The fixed part of a micro-batch's time, in rows, before any step is measured.
const PRIOR_FIXED_ROWS: f64 = 1.0;

/// Weight of the newest step in the step-time fit (its memory is about `1 / FIT_WEIGHT` steps).
const FIT_WEIGHT: f64 = 1.0 / 32.0;

/// Variance of the fitted steps' sizes (rows²) below which the slope is not re-estimated: steps all
/// of one size say nothing about the cost of one more row.
const FIT_MIN_SPREAD: f64 = 0.25;

/// The prompt tokens a step may carry in a second micro-batch next to the decodes, from the
/// engine's measured step times.
///
/// A micro-batch's time is modelled as `fixed + per_row × rows` (one row per token in it, prompt or
/// decode), fitted by exponentially weighted least squares to the single-micro-batch steps the
/// engine reports ([`observe`](Self::observe), see [`single_micro_batch`]). Steps larger than twice
/// the sequence capacity are left out of the fit: the budget only ever asks about steps near the
/// running count. With `n` sequences running, a step that gives each prompt one token is one
/// micro-batch of `n` rows, as long as a decode step of them all; a second micro-batch of `x` rows
/// is allowed while the step stays within `1 + STEP_SLACK` times that:
///
/// `2 × fixed + per_row × (n + x) ≤ (1 + STEP_SLACK) × (fixed + per_row × n)`
///
/// so `x = STEP_SLACK × (n + fixed / per_row) − fixed / per_row`, at least 0 (callers raise it to
/// [`spread_floor`], so that a long prompt is not read a token per step). Only the ratio
/// `fixed / per_row` enters: on a uniformly slower machine the budget stays the same; where a
/// micro-batch's time is mostly fixed cost (a GPU reading the weights once per micro-batch) a
/// second one is never worth it. Before any fit, `fixed` is taken as one row (about what one CPU
/// core measures; the budget is then `STEP_SLACK × (n + 1) − 1`, none below 8 sequences).
#[derive(Debug, Clone)]
pub struct PrefillBudget {
    max_fit_rows: usize,
    /// Exponentially weighted sums over observed steps: weight, rows, ms, rows², rows × ms.
    w: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    /// The last fit's fixed cost over its per-row cost, in rows.
    fixed_rows: f64,
}

impl PrefillBudget {
    /// A budget for an engine running at most `max_sequences` sequences at once.
    pub fn new(max_sequences: usize) -> Self {
        Self {
            max_fit_rows: 2 * max_sequences.max(1),
            w: 0.0,
            sx: 0.0,
            sy: 0.0,
            sxx: 0.0,
            sxy: 0.0,
            fixed_rows: PRIOR_FIXED_ROWS,
        }
    }

    /// Records a step of `rows` batch tokens that took `elapsed`.
    pub fn observe(&mut self, rows: usize, elapsed: Duration) {
        if rows == 0 || rows > self.max_fit_rows {
            return;
        }
        let (x, y) = (rows as f64, elapsed.as_secs_f64() * 1e3);
        let keep = 1.0 - FIT_WEIGHT;
        self.w = keep * self.w + 1.0;
        self.sx = keep * self.sx + x;
        self.sy = keep * self.sy + y;
        self.sxx = keep * self.sxx + x * x;
        self.sxy = keep * self.sxy + x * y;
        let (mx, my) = (self.sx / self.w, self.sy / self.w);
        let var = self.sxx / self.w - mx * mx;
        if var < FIT_MIN_SPREAD {
            return;
        }
        let per_row = (self.sxy / self.w - mx * my) / var;
        if per_row <= 0.0 {
            return;
        }
        // A negative intercept is noise around a cost proportional to rows.
        let fixed = (my - per_row * mx).max(0.0);
        self.fixed_rows = (fixed / per_row).min(1e4);
    }

    /// The fitted step time's fixed part, in rows of per-row cost.
    pub fn fixed_rows(&self) -> f64 {
        self.fixed_rows
    }

    /// Prompt tokens the next step may carry beyond one per prompt, with `running` sequences.
    pub fn extra_tokens(&self, running: usize) -> usize {
        let f = self.fixed_rows;
        let rows = STEP_SLACK * (running as f64 + f) - f;
        // Rounded down, but not past an exact integer by float noise.
        (rows + 1e-9).floor().max(0.0) as usize
    }
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

    #[test]
    fn while_sequences_decode_each_prompt_advances_a_token_plus_the_extra_in_order() {
        let seqs = [DECODING, prefill(100, 0), DECODING, prefill(100, 0)];
        let plan = plan_step_paced(&seqs, 512, 0);
        assert_eq!(plan.decode, vec![0, 2]);
        assert_eq!(plan.prefill, vec![(1, 0..1), (3, 0..1)]);
        assert!(single_micro_batch(&plan));
        // The extra goes to the first prompt; what it leaves to the next.
        let plan = plan_step_paced(&seqs, 512, 3);
        assert_eq!(plan.prefill, vec![(1, 0..4), (3, 0..1)]);
        assert!(!single_micro_batch(&plan));
        let seqs = [DECODING, prefill(2, 0), prefill(100, 10)];
        let plan = plan_step_paced(&seqs, 512, 5);
        assert_eq!(plan.prefill, vec![(1, 0..2), (2, 10..15)]);
        // The batch budget still bounds the step.
        let plan = plan_step_paced(&[DECODING, prefill(100, 0)], 8, 50);
        assert_eq!(plan.prefill, vec![(1, 0..7)]);
        let plan = plan_step_paced(&[DECODING, DECODING, prefill(9, 0)], 2, 50);
        assert_eq!(plan.prefill, vec![]);
    }

    #[test]
    fn with_nothing_decoding_prompts_take_the_whole_batch() {
        let plan = plan_step_paced(&[prefill(100, 0), prefill(300, 0)], 512, 0);
        assert_eq!(plan.prefill, vec![(0, 0..100), (1, 0..300)]);
        assert!(!single_micro_batch(&plan));
        let plan = plan_step_paced(&[prefill(100, 0)], 512, 0);
        assert!(single_micro_batch(&plan));
    }

    /// Feeds `steps` observations of a machine whose step takes `fixed + per_row × rows` ms, for
    /// steps of 1 to 16 rows in turn.
    fn observe_linear(budget: &mut PrefillBudget, fixed: f64, per_row: f64, steps: usize) {
        for k in 0..steps {
            let rows = 1 + k % 16;
            let ms = fixed + per_row * rows as f64;
            budget.observe(rows, Duration::from_secs_f64(ms / 1e3));
        }
    }

    #[test]
    fn a_second_micro_batch_keeps_the_step_within_the_slack_of_a_decode_step() {
        let (fixed, per_row) = (6.0, 10.0);
        let mut budget = PrefillBudget::new(32);
        observe_linear(&mut budget, fixed, per_row, 200);
        assert!(
            (budget.fixed_rows() - 0.6).abs() < 1e-6,
            "{}",
            budget.fixed_rows()
        );
        let single = |rows: usize| fixed + per_row * rows as f64;
        for running in 1..=32 {
            let x = budget.extra_tokens(running);
            let target = (1.0 + STEP_SLACK) * single(running);
            if x > 0 {
                assert!(
                    2.0 * fixed + per_row * (running + x) as f64 <= target + 1e-9,
                    "{running}"
                );
            }
            // …and it is the largest such budget.
            assert!(
                2.0 * fixed + per_row * (running + x + 1) as f64 > target,
                "{running} {x}"
            );
        }
        // At 8 sequences no second micro-batch fits an eighth; at 32 a few rows do.
        assert_eq!(budget.extra_tokens(8), 0);
        assert_eq!(budget.extra_tokens(32), 3);
    }

    #[test]
    fn an_admitted_prompt_advances_every_step() {
        let budget = PrefillBudget::new(8);
        // A prompt beside seven decoding sequences that never finish.
        let mut seqs = vec![DECODING; 7];
        seqs.push(prefill(20, 0));
        let mut steps = 0;
        while !seqs[7].decoding {
            let to_read = (!seqs[7].decoding).then_some(20);
            let extra = budget.extra_tokens(8).max(spread_floor(to_read));
            let plan = plan_step_paced(&seqs, 512, extra);
            assert_eq!(plan.decode.len(), 7);
            // One micro-batch: the decodes' gap is that of a decode step of eight sequences.
            assert!(single_micro_batch(&plan));
            let (i, r) = plan.prefill[0].clone();
            seqs[i].prefilled = r.end;
            seqs[i].decoding = r.end == seqs[i].prompt_len;
            steps += 1;
        }
        assert_eq!(steps, 20);
    }

    #[test]
    fn a_long_prompt_is_read_within_max_prefill_steps() {
        let budget = PrefillBudget::new(2);
        assert_eq!(budget.extra_tokens(2), 0);
        let mut seqs = [DECODING, prefill(800, 0)];
        let floor = spread_floor([800]);
        assert_eq!(floor, 24);
        let mut steps = 0;
        while !seqs[1].decoding {
            let extra = budget.extra_tokens(2).max(floor);
            let (_, r) = plan_step_paced(&seqs, 512, extra).prefill[0].clone();
            seqs[1].prefilled = r.end;
            seqs[1].decoding = r.end == 800;
            steps += 1;
        }
        assert_eq!(steps, MAX_PREFILL_STEPS);
        // Short prompts (the question after a cached system prompt) get no more than a token.
        assert_eq!(spread_floor([30, 13, 9]), 0);
        assert_eq!(spread_floor([33, 13]), 1);
        assert_eq!(spread_floor(std::iter::empty()), 0);
    }

    #[test]
    fn the_budget_follows_the_measured_step_times() {
        let mut budget = PrefillBudget::new(32);
        observe_linear(&mut budget, 6.0, 10.0, 200);
        let cpu = budget.extra_tokens(32);
        assert!(cpu > 0);
        // The same machine twice as slow: the same budget (it is relative to a decode step).
        observe_linear(&mut budget, 12.0, 20.0, 400);
        assert_eq!(budget.extra_tokens(32), cpu);
        // Micro-batches whose time is mostly a fixed cost (weights read once per micro-batch, as on
        // a GPU): a second one costs nearly a whole decode step, so none is allowed.
        observe_linear(&mut budget, 40.0, 0.5, 400);
        assert!(
            (budget.fixed_rows() - 80.0).abs() < 0.1,
            "{}",
            budget.fixed_rows()
        );
        assert_eq!(budget.extra_tokens(32), 0);
        // Back on the CPU-like machine, the budget comes back.
        observe_linear(&mut budget, 6.0, 10.0, 400);
        assert_eq!(budget.extra_tokens(32), cpu);
    }

    #[test]
    fn steps_all_of_one_size_or_too_large_leave_the_fit_alone() {
        // Decode-only steps of one size say nothing about the cost of a row: no fit.
        let mut budget = PrefillBudget::new(8);
        for _ in 0..100 {
            budget.observe(8, Duration::from_millis(90));
        }
        assert_eq!(budget.fixed_rows(), PRIOR_FIXED_ROWS);
        assert_eq!(budget.extra_tokens(8), 0);
        assert_eq!(budget.extra_tokens(32), 3);
        // Steps far above the running count (a burst of prompts with nothing decoding) are left
        // out: the fit is about steps the size the budget asks about.
        observe_linear(&mut budget, 6.0, 10.0, 200);
        let fixed_rows = budget.fixed_rows();
        for rows in [100, 300, 500] {
            budget.observe(rows, Duration::from_millis(1));
        }
        assert_eq!(budget.fixed_rows(), fixed_rows);
    }
}
