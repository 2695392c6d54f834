//! Step planning for continuous batching, independent of any engine.
//!
//! Each engine step decodes one token for every sequence that is generating, then spends what is left
//! of the step's token budget on prompt chunks of sequences still in prefill, in order (chunked
//! prefill). So a long prompt arriving never stalls the token streams already running, and new
//! requests start as soon as a sequence slot is free.
//!
//! While some sequence decodes, a step's prompt tokens are further bounded by a [`PrefillBudget`]:
//! a wave of admitted prompts sharing one step with the decodes would otherwise make that step (the
//! gap between two tokens of every decoding stream) several times longer than a decode step. The
//! budget keeps such a step within a fixed fraction above the time the running sequences take to
//! decode alone, from a model of step time fitted to measured steps. With nothing decoding, a step
//! takes as much prompt as the batch holds.

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
    plan_step_capped(seqs, budget, usize::MAX)
}

/// As [`plan_step`], with at most `prefill_cap` prompt tokens in the step when at least one sequence
/// decodes (see [`PrefillBudget::tokens`]). With nothing decoding the cap does not apply: the
/// prompts take the whole budget.
pub fn plan_step_capped(seqs: &[SeqProgress], budget: usize, prefill_cap: usize) -> StepPlan {
    let mut plan = StepPlan::default();
    for (i, s) in seqs.iter().enumerate() {
        if s.decoding {
            plan.decode.push(i);
        }
    }
    let mut used = plan.decode.len();
    let limit = if plan.decode.is_empty() {
        budget
    } else {
        budget.min(used.saturating_add(prefill_cap))
    };
    for (i, s) in seqs.iter().enumerate() {
        if s.decoding || used >= limit || s.prefilled >= s.prompt_len {
            continue;
        }
        let take = (s.prompt_len - s.prefilled).min(limit - used);
        plan.prefill.push((i, s.prefilled..s.prefilled + take));
        used += take;
    }
    plan
}

/// How much longer than a decode-only step of the running sequences a step that also carries prompt
/// tokens may take. It bounds the gap between two tokens of a decoding stream when new prompts arrive.
///
/// An eighth: on one CPU core, where a prompt row costs about what a decode row does, a step of 8
/// running sequences may carry one row more than it decodes (7 decodes + 2 prompt tokens), one of
/// fewer sequences none more (1 decode + 1 prompt token). Such steps are frequent once arrivals
/// are spread out (a third to a half of the steps at concurrency 8–32 in the sweep), so their
/// length, not their rarity, sets the p99 of the gaps between tokens.
pub const STEP_SLACK: f64 = 0.125;

/// Prompt tokens a step carries while sequences decode, even when the time target leaves none, so
/// that an admitted prompt always makes progress.
pub const MIN_PREFILL: usize = 1;

/// Most steps a prompt's uncached tokens are spread over while sequences decode: where the time
/// target leaves a long prompt little room (few sequences running, a cost per row as high as a
/// decode step's), it still gets `1 / MAX_PREFILL_STEPS` of its tokens per step. See
/// [`spread_floor`].
pub const MAX_PREFILL_STEPS: usize = 16;

/// The prompt tokens a step must carry so that each prompt in prefill, of which `to_read` gives the
/// tokens it had to compute when admitted, is read within about [`MAX_PREFILL_STEPS`] steps.
pub fn spread_floor(to_read: impl IntoIterator<Item = usize>) -> usize {
    to_read
        .into_iter()
        .map(|n| n.div_ceil(MAX_PREFILL_STEPS))
        .sum()
}

/// Weight of the newest step in the step-time fit (its memory is about `1 / FIT_WEIGHT` steps).
const FIT_WEIGHT: f64 = 1.0 / 32.0;

/// Variance of the fitted steps' sizes (rows²) below which the slope is not re-estimated: steps all
/// of one size say nothing about the cost of one more row.
const FIT_MIN_SPREAD: f64 = 0.25;

/// The prompt tokens a step may carry next to the decodes, from the engine's measured step times.
///
/// A step's time is modelled as `fixed + per_row × rows` (one row per token in the batch, prompt or
/// decode), fitted by exponentially weighted least squares to the steps the engine reports
/// ([`observe`](Self::observe)). Steps larger than twice the sequence capacity are left out of the
/// fit: the budget only ever asks about steps near the running count. With `n` sequences running,
/// `d` of them decoding, the budget is the number of prompt tokens that keeps the predicted step time
/// within `1 + STEP_SLACK` times that of a step decoding all `n`:
///
/// `fixed + per_row × (d + p) ≤ (1 + STEP_SLACK) × (fixed + per_row × n)`
///
/// so `p = (1 + STEP_SLACK) × (n + fixed / per_row) − fixed / per_row − d`, at least
/// [`MIN_PREFILL`] (callers also raise it to [`spread_floor`], so that a long prompt is not read
/// a token per step). Only the ratio `fixed / per_row` enters: on a uniformly slower machine the budget
/// stays the same, and where a step's time is mostly fixed cost (a GPU reading the weights once per
/// step) prompt rows are nearly free and the budget grows accordingly. Before any fit, `fixed` is
/// taken as 0 (the budget is then `(1 + STEP_SLACK) × n − d`).
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
            fixed_rows: 0.0,
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

    /// Prompt tokens the next step may carry with `running` sequences of which `decoding` decode;
    /// `usize::MAX` when none decodes.
    pub fn tokens(&self, running: usize, decoding: usize) -> usize {
        if decoding == 0 {
            return usize::MAX;
        }
        let f = self.fixed_rows;
        let rows = (1.0 + STEP_SLACK) * (running.max(decoding) as f64 + f) - f;
        // Rounded down, but not past an exact integer by float noise.
        let rows = (rows + 1e-9).floor() as usize;
        rows.saturating_sub(decoding).max(MIN_PREFILL)
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
    fn while_sequences_decode_prompts_get_at_most_the_prefill_cap() {
        let seqs = [DECODING, prefill(100, 0), DECODING, prefill(100, 0)];
        let plan = plan_step_capped(&seqs, 512, 3);
        assert_eq!(plan.decode, vec![0, 2]);
        assert_eq!(plan.prefill, vec![(1, 0..3)]);
        // The cap spans prompts: what the first leaves goes to the next.
        let seqs = [DECODING, prefill(2, 0), prefill(100, 0)];
        let plan = plan_step_capped(&seqs, 512, 5);
        assert_eq!(plan.prefill, vec![(1, 0..2), (2, 0..3)]);
        // The batch budget still bounds the step.
        let plan = plan_step_capped(&[DECODING, prefill(100, 0)], 8, 50);
        assert_eq!(plan.prefill, vec![(1, 0..7)]);
    }

    #[test]
    fn with_nothing_decoding_prompts_take_the_whole_batch() {
        let plan = plan_step_capped(&[prefill(100, 0), prefill(300, 0)], 512, 3);
        assert_eq!(plan.prefill, vec![(0, 0..100), (1, 0..300)]);
        let budget = PrefillBudget::new(8);
        assert_eq!(budget.tokens(8, 0), usize::MAX);
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
    fn a_step_with_prompt_stays_within_the_slack_of_a_decode_step() {
        let (fixed, per_row) = (6.0, 10.0);
        let mut budget = PrefillBudget::new(8);
        observe_linear(&mut budget, fixed, per_row, 200);
        assert!(
            (budget.fixed_rows() - 0.6).abs() < 1e-6,
            "{}",
            budget.fixed_rows()
        );
        let time = |rows: usize| fixed + per_row * rows as f64;
        for running in 1..=8 {
            for decoding in 1..=running {
                let p = budget.tokens(running, decoding);
                assert!(p >= MIN_PREFILL);
                if p > MIN_PREFILL {
                    let target = (1.0 + STEP_SLACK) * time(running);
                    assert!(
                        time(decoding + p) <= target + 1e-9,
                        "{running} {decoding} {p}"
                    );
                    // …and it is the largest such budget.
                    assert!(time(decoding + p + 1) > target, "{running} {decoding} {p}");
                }
            }
        }
        // One decoding sequence beside seven new prompts: they get a step's worth of rows.
        assert_eq!(budget.tokens(8, 1), 8);
        // Seven decoding beside one new prompt: one row more than it will take when it decodes.
        assert_eq!(budget.tokens(8, 7), 2);
        // Fewer sequences: a step carries no more rows than a decode step of them all.
        assert_eq!(budget.tokens(4, 3), 1);
    }

    #[test]
    fn an_admitted_prompt_always_progresses() {
        let budget = PrefillBudget::new(8);
        // A long prompt beside seven decoding sequences that never finish.
        let mut seqs = vec![DECODING; 7];
        seqs.push(prefill(500, 0));
        let mut steps = 0;
        while !seqs[7].decoding {
            let cap = budget.tokens(seqs.len(), 7);
            let plan = plan_step_capped(&seqs, 512, cap);
            assert_eq!(plan.decode.len(), 7);
            let (i, r) = plan.prefill[0].clone();
            assert!(!r.is_empty());
            seqs[i].prefilled = r.end;
            seqs[i].decoding = r.end == seqs[i].prompt_len;
            steps += 1;
        }
        assert_eq!(steps, 500usize.div_ceil(budget.tokens(8, 7)));
        // Even where the time target leaves nothing, a step carries MIN_PREFILL prompt tokens.
        assert_eq!(budget.tokens(2, 2), MIN_PREFILL);
    }

    #[test]
    fn a_long_prompt_is_read_within_max_prefill_steps() {
        let budget = PrefillBudget::new(2);
        // One sequence decoding beside a 400-token prompt: the time target alone allows 1 token.
        assert_eq!(budget.tokens(2, 1), 1);
        let mut seqs = [DECODING, prefill(400, 0)];
        let floor = spread_floor([400]);
        assert_eq!(floor, 25);
        let mut steps = 0;
        while !seqs[1].decoding {
            let cap = budget.tokens(2, 1).max(floor);
            let (_, r) = plan_step_capped(&seqs, 512, cap).prefill[0].clone();
            seqs[1].prefilled = r.end;
            seqs[1].decoding = r.end == 400;
            steps += 1;
        }
        assert_eq!(steps, MAX_PREFILL_STEPS);
        // Short prompts (the question after a cached system prompt) get no more than a token.
        assert_eq!(spread_floor([16, 13, 9]), 3);
        assert_eq!(spread_floor(std::iter::empty()), 0);
    }

    #[test]
    fn the_budget_follows_the_measured_step_times() {
        let mut budget = PrefillBudget::new(8);
        observe_linear(&mut budget, 6.0, 10.0, 200);
        let cpu = budget.tokens(8, 7);
        // The same machine twice as slow: the same budget (it is relative to a decode step).
        observe_linear(&mut budget, 12.0, 20.0, 400);
        assert_eq!(budget.tokens(8, 7), cpu);
        // Steps whose time is mostly a fixed cost (weights read once per step, as on a GPU): a
        // prompt row costs little next to a decode step, so many more fit.
        observe_linear(&mut budget, 40.0, 0.5, 400);
        assert!(
            (budget.fixed_rows() - 80.0).abs() < 0.1,
            "{}",
            budget.fixed_rows()
        );
        // (1.125 × (8 + 80) − 80 = 19 rows, 7 of them decodes; a hair less with the fit's rounding.)
        assert!(
            (11..=12).contains(&budget.tokens(8, 7)),
            "{}",
            budget.tokens(8, 7)
        );
        // Back on the CPU-like machine, the budget comes back down.
        observe_linear(&mut budget, 6.0, 10.0, 400);
        assert_eq!(budget.tokens(8, 7), cpu);
    }

    #[test]
    fn steps_all_of_one_size_or_too_large_leave_the_fit_alone() {
        // Decode-only steps of one size say nothing about the cost of a row: no fit.
        let mut budget = PrefillBudget::new(8);
        for _ in 0..100 {
            budget.observe(8, Duration::from_millis(90));
        }
        assert_eq!(budget.fixed_rows(), 0.0);
        assert_eq!(budget.tokens(8, 7), 2);
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
