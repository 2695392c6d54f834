//! The engine thread: continuous (iteration-level) batching over one llama.cpp context.
//!
//! Every step builds one batch holding the next token of every decoding sequence plus, within the
//! step's token budget, a chunk of prompt for sequences still in prefill (chunked prefill). New
//! requests join at the next step when a sequence slot is free; finished or cancelled ones leave
//! at once and free their KV cells. While sequences decode, prompts are paced
//! ([`scheduler::plan_step_paced`]: a token each per step, so that the step stays one micro-batch,
//! more only where the [`PrefillBudget`] fitted to measured step times leaves room or a long prompt
//! would take too many steps), so that prompts arriving together do not stretch one gap between
//! tokens of every running stream to several decode steps.
//!
//! Each sequence id has its own KV stream (ctx-size cells), as in llama-server: attention at a
//! step reads only a sequence's own cells. (A unified pool shared by all sequences was the first
//! design; llama.cpp's attention then walks every cell of the pool up to the highest one used for
//! every sequence, which cost ~10% of each step at 8 sequences — see docs/performance.md.)
//! Running sequences take the lowest free ids and enter the batch in id order, so llama.cpp decodes
//! all of them in one micro-batch. A new sequence starts from the longest prefix of its prompt that
//! a running sequence or the host-memory [`PrefixCache`] of finished prompts holds, copied into its
//! stream, and computes only the rest.
//!
//! Reused prefixes and shared micro-batches change a request's arithmetic slightly (other kernels
//! for other batch shapes), which can flip close greedy choices: a request's text may depend on
//! what ran before or beside it, as in vLLM or llama-server. With `deterministic` every prompt is
//! computed from scratch and every sequence decoded in its own micro-batch, so its output is
//! identical alone or under load (tested: `concurrent_requests_match_their_sequential_answers`),
//! at the price of batching.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::num::NonZeroU32;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kaito_core::{
    EngineStats, FinishReason, GenerateRequest, GeneratedToken, GenerationEvent, GenerationSender,
    Health,
};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::session::{LlamaStateSeqFlags, SeqState};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::embed::Embedder;
use super::prefix_cache::PrefixCache;
use super::sampler;
use crate::engine_command::{common_prefix, Command, Waiting, SHUT_DOWN};
use crate::error::{Error, Result};
use crate::scheduler::{self, PrefillBudget, SeqProgress};

/// Fixed engine parameters.
#[derive(Debug, Clone, Copy)]
pub(super) struct EngineSettings {
    pub threads: i32,
    pub ctx_size: u32,
    pub parallel: u32,
    pub batch_size: u32,
    pub deterministic: bool,
    /// Host memory for finished prompts' KV ([`PrefixCache`]); 0 in deterministic mode.
    pub prefix_cache_bytes: usize,
}

/// A sequence occupying one KV-cache sequence id.
struct Sequence {
    seq_id: i32,
    request: Box<GenerateRequest>,
    sender: GenerationSender,
    sampler: sampler::TokenPicker,
    /// Prompt tokens already in the KV cache.
    prefilled: usize,
    /// Prompt tokens it had to compute when admitted (those not reused from a cached prefix).
    to_read: usize,
    /// Next position to write.
    n_past: i32,
    /// Last sampled token, fed at the next step.
    last: Option<LlamaToken>,
    generated: u32,
    /// Index in the current batch whose logits belong to this sequence.
    logits_at: Option<i32>,
    /// Tokens whose keys and values are in this sequence's KV cells, in position order.
    kv: Vec<u32>,
}

pub(super) fn run(
    backend: &'static LlamaBackend,
    model: Arc<LlamaModel>,
    settings: EngineSettings,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ready: std::sync::mpsc::SyncSender<Result<()>>,
    stats: Arc<Mutex<EngineStats>>,
    health: Arc<Mutex<Health>>,
) {
    let n_ctx_total = settings.ctx_size * settings.parallel;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx_total))
        .with_n_batch(settings.batch_size)
        .with_n_ubatch(settings.batch_size)
        .with_n_seq_max(settings.parallel)
        .with_kv_unified(false)
        .with_n_threads(settings.threads)
        .with_n_threads_batch(settings.threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(Error::Context(e.to_string())));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut engine = Engine {
        model: &model,
        settings,
        n_ctx_total,
        batch: LlamaBatch::new(settings.batch_size as usize, 1),
        free_ids: (0..settings.parallel as i32).map(Reverse).collect(),
        prefix_cache: PrefixCache::new(settings.prefix_cache_bytes),
        running: Vec::new(),
        waiting: VecDeque::new(),
        embedder: None,
        backend,
        cached_prompt_tokens: 0,
        stats,
        prefill_budget: PrefillBudget::new(settings.parallel as usize),
        eog: sampler::eog_tokens(&model),
        peak_running: 0,
        stopping: false,
    };
    loop {
        if engine.running.is_empty() && engine.waiting.is_empty() {
            engine.publish();
            match commands.blocking_recv() {
                Some(cmd) => engine.accept(cmd),
                None => break,
            }
            if !engine.settings.deterministic && !engine.stopping {
                coalesce_arrivals(&mut engine, &mut commands);
            }
            engine.peak_running = 0;
        }
        while let Ok(cmd) = commands.try_recv() {
            engine.accept(cmd);
        }
        if engine.stopping {
            engine.fail_all(&mut ctx, SHUT_DOWN);
            break;
        }
        engine.drop_cancelled(&mut ctx);
        engine.admit(&mut ctx);
        engine.publish();
        engine.peak_running = engine.peak_running.max(engine.running.len());
        if engine.running.is_empty() {
            continue;
        }
        if let Err(e) = engine.step(&mut ctx) {
            tracing::error!(error = %e, "engine step failed");
            engine.fail_all(&mut ctx, &e.to_string());
            if matches!(e, Error::EngineStopped) {
                *health.lock().expect("health lock") = Health::Unhealthy(e.to_string());
                break;
            }
        }
    }
    tracing::debug!("engine thread exits");
}

struct Engine<'m> {
    model: &'m LlamaModel,
    backend: &'static LlamaBackend,
    settings: EngineSettings,
    n_ctx_total: u32,
    batch: LlamaBatch<'static>,
    /// Sequence ids no running request uses (their cells are empty), lowest first: running
    /// sequences then keep consecutive ids, and llama.cpp puts only consecutive KV streams into one
    /// micro-batch.
    free_ids: BinaryHeap<Reverse<i32>>,
    prefix_cache: PrefixCache<SeqState>,
    running: Vec<Sequence>,
    waiting: VecDeque<Waiting>,
    embedder: Option<Embedder<'m>>,
    cached_prompt_tokens: u64,
    stats: Arc<Mutex<EngineStats>>,
    /// Prompt tokens a step may carry beside decodes, from measured step times. Not used in
    /// deterministic mode, where a prompt's chunks must not depend on what else runs.
    prefill_budget: PrefillBudget,
    /// End-of-generation tokens, banned from `ignore_eos` requests.
    eog: Vec<LlamaToken>,
    /// Most sequences running at once since the engine was last idle (see [`coalesce_arrivals`]).
    peak_running: usize,
    /// A shutdown was asked for.
    stopping: bool,
}

/// Longest pause between two arrivals that [`coalesce_arrivals`] still waits through.
const ARRIVAL_GAP: Duration = Duration::from_millis(10);
/// Longest pause [`coalesce_arrivals`] waits through once the wave is as large as the last one
/// (and all a request that finds the engine idle after a lone client waits).
const WAVE_TAIL_GAP: Duration = Duration::from_millis(3);
/// Longest [`coalesce_arrivals`] delays the first request of a wave.
const COALESCE_MAX: Duration = Duration::from_millis(40);

/// Requests that reach an idle engine often come in waves a few milliseconds apart: clients starting
/// together, or coming back together after their previous requests finished in one step. Starting
/// the first at once would read its prompt alone and leave the others to be read beside its
/// decoding, a token a step; their streams would then stay out of step for the rest of their lives,
/// so that every later arrival overlaps decodes (measured at concurrency 2: each prompt read over
/// ~13 steps beside the other stream, time to first token +45%). So the request that wakes an idle
/// engine waits while more arrive, and the wave's prompts are read together, with nothing decoding.
/// While fewer have come than ran at once since the engine was last idle, it waits through pauses
/// of up to [`ARRIVAL_GAP`]; once as many have come (for a lone client, at once) only
/// [`WAVE_TAIL_GAP`] for one more, since a wave's arrivals are 1–5 ms apart; [`COALESCE_MAX`] in
/// all, and for no more than there are free sequences. A lone client pays [`WAVE_TAIL_GAP`] on its
/// time to first token.
fn coalesce_arrivals(engine: &mut Engine<'_>, commands: &mut mpsc::UnboundedReceiver<Command>) {
    let started = Instant::now();
    let mut last_arrival = started;
    let mut arrived = 1;
    let last_wave = engine.peak_running;
    let gap = |arrived: usize| {
        if arrived >= last_wave {
            WAVE_TAIL_GAP
        } else {
            ARRIVAL_GAP
        }
    };
    while arrived < engine.free_ids.len() && !engine.stopping && started.elapsed() < COALESCE_MAX {
        match commands.try_recv() {
            Ok(cmd) => {
                engine.accept(cmd);
                arrived += 1;
                last_arrival = Instant::now();
            }
            Err(mpsc::error::TryRecvError::Empty) if last_arrival.elapsed() < gap(arrived) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => break,
        }
    }
    tracing::trace!(
        arrived,
        last_wave,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "coalesced arrivals"
    );
}

impl<'m> Engine<'m> {
    fn accept(&mut self, cmd: Command) {
        match cmd {
            Command::Generate {
                request,
                sender,
                enqueued,
            } => {
                self.waiting.push_back(Waiting {
                    request,
                    sender,
                    enqueued,
                });
            }
            Command::Embed { inputs, reply } => {
                let result = self.embed(inputs);
                let _ = reply.send(result);
            }
            Command::Shutdown => self.stopping = true,
        }
    }

    fn embed(&mut self, inputs: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>> {
        if self.embedder.is_none() {
            self.embedder = Some(Embedder::new(
                self.model,
                self.backend,
                self.settings.ctx_size,
                self.settings.threads,
            )?);
        }
        self.embedder
            .as_mut()
            .expect("embedder created")
            .embed(&inputs)
    }

    fn publish(&self) {
        let used: i64 = self.running.iter().map(|s| i64::from(s.n_past)).sum();
        let mut s = self.stats.lock().expect("stats lock");
        s.running = self.running.len();
        s.waiting = self.waiting.len();
        s.kv_cache_usage = used as f64 / f64::from(self.n_ctx_total.max(1));
        s.cached_prompt_tokens = self.cached_prompt_tokens;
        s.prefix_cache_bytes = self.prefix_cache.bytes() as u64;
    }

    fn drop_cancelled(&mut self, ctx: &mut LlamaContext<'_>) {
        self.waiting.retain(|w| !w.sender.is_cancelled());
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].sender.is_cancelled() {
                let seq = self.running.swap_remove(i);
                tracing::debug!(id = %seq.request.id, "sequence cancelled");
                self.release(ctx, seq.seq_id, seq.kv, true);
            } else {
                i += 1;
            }
        }
    }

    /// Frees a sequence id and its cells. With `keep`, the KV of the tokens it holds is first
    /// copied to the prefix cache, for a later prompt sharing a prefix.
    fn release(&mut self, ctx: &mut LlamaContext<'_>, seq_id: i32, kv: Vec<u32>, keep: bool) {
        if keep && self.prefix_cache.enabled() && !kv.is_empty() && !self.prefix_cache.covers(&kv) {
            let started = std::time::Instant::now();
            match ctx.state_seq_get(seq_id, LlamaStateSeqFlags::empty()) {
                Ok(saved) => {
                    let bytes = saved.byte_len();
                    tracing::trace!(
                        seq_id,
                        tokens = kv.len(),
                        bytes,
                        ms = started.elapsed().as_secs_f64() * 1e3,
                        "kept"
                    );
                    self.prefix_cache.insert(kv, saved, bytes);
                }
                Err(e) => tracing::warn!(error = %e, "could not save a finished prompt's KV"),
            }
        }
        clear_seq(ctx, seq_id);
        self.free_ids.push(Reverse(seq_id));
    }

    /// Gives the new sequence `seq_id` the longest cached prefix of `prompt` it can (at most
    /// `limit` tokens), copied into its KV stream from a running sequence or from the prefix
    /// cache. Returns how many tokens it got.
    fn reuse_prefix(
        &mut self,
        ctx: &mut LlamaContext<'_>,
        seq_id: i32,
        prompt: &[u32],
        limit: usize,
    ) -> usize {
        let (donor, shared) = self
            .running
            .iter()
            .map(|s| (s.seq_id, common_prefix(&s.kv, prompt).min(limit)))
            .max_by_key(|(_, n)| *n)
            .unwrap_or((-1, 0));
        let kept = self
            .prefix_cache
            .longest_prefix(prompt)
            .map(|(saved, n)| (saved, n.min(limit)))
            .filter(|(_, n)| *n > shared);
        let restored = match kept {
            Some((saved, n)) => ctx.state_seq_set(saved, seq_id).is_ok().then_some(n),
            None if shared > 0 => ctx
                .state_seq_get(donor, LlamaStateSeqFlags::empty())
                .and_then(|saved| ctx.state_seq_set(&saved, seq_id))
                .is_ok()
                .then_some(shared),
            None => None,
        };
        match restored {
            Some(n)
                if ctx.clear_kv_cache_seq(Some(seq_id as u32), Some(n as u32), None)
                    == Ok(true) =>
            {
                n
            }
            _ => {
                clear_seq(ctx, seq_id);
                0
            }
        }
    }

    fn admit(&mut self, ctx: &mut LlamaContext<'_>) {
        while !self.waiting.is_empty() {
            let Some(Reverse(seq_id)) = self.free_ids.pop() else {
                break;
            };
            let w = self.waiting.pop_front().expect("checked non-empty");
            let sampler =
                match sampler::build(self.model, &w.request, self.settings.ctx_size, &self.eog) {
                    Ok(s) => s,
                    Err(e) => {
                        self.free_ids.push(Reverse(seq_id));
                        w.sender.send(Err(e.into()));
                        continue;
                    }
                };
            // Reuse the longest cached prefix, but always recompute at least the last prompt token:
            // its logits are what the first new token is sampled from. Deterministic mode recomputes
            // every prompt: reused cells were computed in other batch shapes (a different matmul
            // kernel for 30 tokens than for 1), which can flip close calls.
            let last = w.request.prompt.len() - 1;
            let started = std::time::Instant::now();
            let reuse = if self.settings.deterministic {
                0
            } else {
                self.reuse_prefix(ctx, seq_id, &w.request.prompt, last)
            };
            self.cached_prompt_tokens += reuse as u64;
            tracing::trace!(
                id = %w.request.id,
                seq_id,
                prompt = w.request.prompt.len(),
                reuse,
                reuse_ms = started.elapsed().as_secs_f64() * 1e3,
                queued_ms = w.enqueued.elapsed().as_secs_f64() * 1e3,
                kept_prompts = self.prefix_cache.len(),
                kept_bytes = self.prefix_cache.bytes(),
                "admitted"
            );
            w.sender.send(Ok(GenerationEvent::Started {
                queue_time: w.enqueued.elapsed(),
                cached_prompt_tokens: reuse as u32,
            }));
            let kv = w.request.prompt[..reuse].to_vec();
            let to_read = w.request.prompt.len() - reuse;
            self.running.push(Sequence {
                seq_id,
                request: w.request,
                sender: w.sender,
                sampler,
                prefilled: reuse,
                to_read,
                n_past: reuse as i32,
                last: None,
                generated: 0,
                logits_at: None,
                kv,
            });
        }
    }

    /// One decode step over every running sequence, as [`scheduler::plan_step`] plans it.
    fn step(&mut self, ctx: &mut LlamaContext<'_>) -> Result<()> {
        self.running.sort_unstable_by_key(|s| s.seq_id);
        let progress: Vec<SeqProgress> = self
            .running
            .iter()
            .map(|s| SeqProgress {
                decoding: s.last.is_some(),
                prompt_len: s.request.prompt.len(),
                prefilled: s.prefilled,
            })
            .collect();
        let decoding = progress.iter().filter(|p| p.decoding).count();
        let budget = self.settings.batch_size as usize;
        // Deterministic mode cuts prompts the same way whatever runs beside them.
        let (plan, extra) = if self.settings.deterministic {
            (scheduler::plan_step(&progress, budget), usize::MAX)
        } else {
            let reading = self
                .running
                .iter()
                .filter(|s| s.last.is_none() && s.prefilled < s.request.prompt.len())
                .map(|s| s.to_read);
            let extra = self
                .prefill_budget
                .extra_tokens(progress.len())
                .max(scheduler::spread_floor(reading));
            (scheduler::plan_step_paced(&progress, budget, extra), extra)
        };
        let single_micro_batch = scheduler::single_micro_batch(&plan);
        let mut chunks = vec![None; self.running.len()];
        for (i, range) in &plan.prefill {
            chunks[*i] = Some(range.clone());
        }
        // One micro-batch for all sequences; in deterministic mode one per sequence, so that a
        // sequence's arithmetic never depends on what runs beside it.
        let all: Vec<usize> = (0..self.running.len()).collect();
        let groups: Vec<&[usize]> = if self.settings.deterministic {
            all.chunks(1).collect()
        } else {
            vec![&all[..]]
        };
        let mut finished = Vec::new();
        for group in groups {
            let used = self.fill_batch(group, &chunks)?;
            if used == 0 {
                continue;
            }
            let started = std::time::Instant::now();
            ctx.decode(&mut self.batch)
                .map_err(|e| Error::Decode(e.to_string()))?;
            let elapsed = started.elapsed();
            if !self.settings.deterministic && single_micro_batch {
                self.prefill_budget.observe(used, elapsed);
            }
            tracing::trace!(
                sequences = group.len(),
                tokens = used,
                decoding,
                extra = extra.min(u32::MAX as usize),
                ms = elapsed.as_secs_f64() * 1e3,
                "decoded"
            );
            self.sample(ctx, group, &mut finished);
        }
        // Free the sequences and publish the figures before telling clients, so that anyone who
        // sees a response finish also sees it gone from the running count.
        let mut done = Vec::with_capacity(finished.len());
        for (i, reason) in finished.into_iter().rev() {
            let seq = self.running.swap_remove(i);
            self.release(ctx, seq.seq_id, seq.kv, true);
            done.push((seq.sender, reason));
        }
        if !done.is_empty() {
            self.publish();
        }
        for (sender, reason) in done {
            sender.send(Ok(GenerationEvent::Finished { reason }));
        }
        Ok(())
    }

    /// Puts the next tokens of the sequences `group` (indices into `running`, in sequence-id order)
    /// into the batch: a decoding sequence's last token, or its planned prompt chunk. Returns the
    /// number of tokens. Consecutive KV streams in id order make one micro-batch in llama.cpp.
    fn fill_batch(&mut self, group: &[usize], chunks: &[Option<Range<usize>>]) -> Result<usize> {
        self.batch.clear();
        let mut used = 0usize;
        for &i in group {
            let seq = &mut self.running[i];
            seq.logits_at = None;
            let Some(range) = chunks[i].clone() else {
                let Some(token) = seq.last else { continue };
                self.batch
                    .add(token, seq.n_past, &[seq.seq_id], true)
                    .map_err(|e| Error::Decode(e.to_string()))?;
                seq.logits_at = Some(used as i32);
                seq.kv.push(token.0 as u32);
                seq.n_past += 1;
                used += 1;
                continue;
            };
            let prompt_len = seq.request.prompt.len();
            for k in range.clone() {
                let token = seq.request.prompt[k];
                let is_last = k + 1 == prompt_len;
                self.batch
                    .add(LlamaToken(token as i32), seq.n_past, &[seq.seq_id], is_last)
                    .map_err(|e| Error::Decode(e.to_string()))?;
                if is_last {
                    seq.logits_at = Some(used as i32);
                }
                seq.kv.push(token);
                seq.n_past += 1;
                used += 1;
            }
            seq.prefilled = range.end;
        }
        Ok(used)
    }

    /// Samples the next token of every sequence of `group` whose logits the last decode produced,
    /// sends it, and notes in `finished` the sequences that end here.
    fn sample(
        &mut self,
        ctx: &LlamaContext<'_>,
        group: &[usize],
        finished: &mut Vec<(usize, FinishReason)>,
    ) {
        for &i in group {
            let seq = &mut self.running[i];
            let Some(at) = seq.logits_at else { continue };
            let step_logprobs = seq
                .request
                .logprobs
                .map(|k| sampler::logprobs_at(self.model, ctx, at, k as usize));
            let token = seq.sampler.pick(ctx, at);
            let vocab = self.model.vocab();
            if vocab.is_eog(token) && !seq.request.sampling.ignore_eos {
                finished.push((i, FinishReason::Stop));
                continue;
            }
            let logprob = step_logprobs.map(|s| s.for_token(token));
            let bytes = vocab.token_to_piece(token, false, None);
            seq.generated += 1;
            seq.last = Some(token);
            let alive = seq.sender.send(Ok(GenerationEvent::Token(GeneratedToken {
                id: token.0 as u32,
                bytes,
                logprob,
            })));
            if !alive {
                finished.push((i, FinishReason::Stop));
            } else if seq.generated >= seq.request.max_tokens
                || seq.n_past as u32 >= self.settings.ctx_size
            {
                finished.push((i, FinishReason::Length));
            }
        }
    }

    /// Fails every running request (and, when the engine stops, every waiting one) with `message`.
    fn fail_all(&mut self, ctx: &mut LlamaContext<'_>, message: &str) {
        for seq in std::mem::take(&mut self.running) {
            seq.sender
                .send(Err(kaito_core::Error::Engine(message.to_owned())));
            self.release(ctx, seq.seq_id, Vec::new(), false);
        }
        if self.stopping {
            for w in std::mem::take(&mut self.waiting) {
                w.sender
                    .send(Err(kaito_core::Error::Engine(message.to_owned())));
            }
        }
    }
}

/// Releases every cell of one sequence id.
fn clear_seq(ctx: &mut LlamaContext<'_>, seq_id: i32) {
    let _ = ctx.clear_kv_cache_seq(Some(seq_id as u32), None, None);
}
