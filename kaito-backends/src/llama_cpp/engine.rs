//! The engine thread: continuous (iteration-level) batching over one llama.cpp context.
//!
//! Every step builds one batch holding the next token of every decoding sequence plus, within the
//! step's token budget, a chunk of prompt for sequences still in prefill (chunked prefill). New
//! requests join at the next step when a sequence slot is free; finished or cancelled ones leave
//! at once and free their KV cells.
//!
//! By default the KV cache is unified: all sequences share one pool of cells, so one forward pass
//! serves every sequence of a step (real batching), and a new sequence shares the cells of any
//! running one holding the same prefix. A finished sequence's KV is copied to host memory
//! ([`PrefixCache`]) and restored for a later prompt sharing a prefix. Concurrent sequences then interleave their
//! cells, which changes the summation order inside attention and can flip close greedy choices:
//! a request's text may depend on what runs beside it (as in vLLM or llama-server). With
//! `deterministic` each sequence gets its own KV stream and its output is identical alone or under
//! load (tested: `concurrent_requests_match_their_sequential_answers`), but llama.cpp then splits a
//! step into one micro-batch per sequence, so batching no longer speeds decoding up.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

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
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::embed::Embedder;
use super::prefix_cache::PrefixCache;
use super::sampler;
use crate::engine_command::{common_prefix, Command, Waiting};
use crate::error::{Error, Result};
use crate::scheduler::{self, SeqProgress};

/// Fixed engine parameters.
#[derive(Debug, Clone, Copy)]
pub(super) struct EngineSettings {
    pub threads: i32,
    pub ctx_size: u32,
    pub parallel: u32,
    pub batch_size: u32,
    pub deterministic: bool,
}

/// A sequence occupying one KV-cache sequence id.
struct Sequence {
    seq_id: i32,
    request: Box<GenerateRequest>,
    sender: GenerationSender,
    sampler: LlamaSampler,
    /// Prompt tokens already in the KV cache.
    prefilled: usize,
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

/// Host memory for finished prompts' KV (llama-server keeps 8 GiB by default; 1 GiB holds ~45,000
/// tokens of SmolLM2-135M or ~2,000 of a 7B Llama).
const PREFIX_CACHE_BYTES: usize = 1 << 30;

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
        .with_kv_unified(!settings.deterministic)
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
        free_ids: (0..settings.parallel as i32).rev().collect(),
        prefix_cache: PrefixCache::new(if settings.deterministic {
            0
        } else {
            PREFIX_CACHE_BYTES
        }),
        running: Vec::new(),
        waiting: VecDeque::new(),
        embedder: None,
        backend,
        cached_prompt_tokens: 0,
        stats,
    };
    loop {
        if engine.running.is_empty() && engine.waiting.is_empty() {
            engine.publish();
            match commands.blocking_recv() {
                Some(cmd) => engine.accept(cmd),
                None => break,
            }
        }
        while let Ok(cmd) = commands.try_recv() {
            engine.accept(cmd);
        }
        engine.drop_cancelled(&mut ctx);
        engine.admit(&mut ctx);
        engine.publish();
        if engine.running.is_empty() {
            continue;
        }
        if let Err(e) = engine.step(&mut ctx) {
            tracing::error!(error = %e, "engine step failed");
            engine.fail_all(&mut ctx, &e);
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
    /// Sequence ids no running request uses (their cells are empty).
    free_ids: Vec<i32>,
    prefix_cache: PrefixCache<SeqState>,
    running: Vec<Sequence>,
    waiting: VecDeque<Waiting>,
    embedder: Option<Embedder<'m>>,
    cached_prompt_tokens: u64,
    stats: Arc<Mutex<EngineStats>>,
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
            match ctx.state_seq_get(seq_id, LlamaStateSeqFlags::empty()) {
                Ok(saved) => {
                    let bytes = saved.byte_len();
                    self.prefix_cache.insert(kv, saved, bytes);
                }
                Err(e) => tracing::warn!(error = %e, "could not save a finished prompt's KV"),
            }
        }
        clear_seq(ctx, seq_id);
        self.free_ids.push(seq_id);
    }

    /// Gives the new sequence `seq_id` the longest cached prefix of `prompt` it can (at most
    /// `limit` tokens): shared by id from a running sequence, or restored from the prefix cache when
    /// that holds more. Returns how many tokens it got.
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
        if let Some((saved, kept)) = self.prefix_cache.longest_prefix(prompt) {
            let kept = kept.min(limit);
            if kept > shared {
                let restored = ctx.state_seq_set(saved, seq_id).is_ok()
                    && ctx.clear_kv_cache_seq(Some(seq_id as u32), Some(kept as u32), None)
                        == Ok(true);
                if restored {
                    return kept;
                }
                clear_seq(ctx, seq_id);
            }
        }
        if shared > 0
            && ctx
                .copy_kv_cache_seq(donor, seq_id, Some(0), Some(shared as u32))
                .is_ok()
        {
            return shared;
        }
        0
    }

    fn admit(&mut self, ctx: &mut LlamaContext<'_>) {
        while !self.waiting.is_empty() {
            let Some(seq_id) = self.free_ids.pop() else {
                break;
            };
            let w = self.waiting.pop_front().expect("checked non-empty");
            let sampler = match sampler::build(self.model, &w.request, self.settings.ctx_size) {
                Ok(s) => s,
                Err(e) => {
                    self.free_ids.push(seq_id);
                    w.sender.send(Err(e.into()));
                    continue;
                }
            };
            // Reuse the longest cached prefix, but always recompute at least the last prompt token:
            // its logits are what the first new token is sampled from. Deterministic mode recomputes
            // every prompt: reused cells were computed in other batch shapes (a different matmul
            // kernel for 30 tokens than for 1), which can flip close calls.
            let last = w.request.prompt.len() - 1;
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
            self.running.push(Sequence {
                seq_id,
                request: w.request,
                sender: w.sender,
                sampler,
                prefilled: reuse,
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
        let progress: Vec<SeqProgress> = self
            .running
            .iter()
            .map(|s| SeqProgress {
                decoding: s.last.is_some(),
                prompt_len: s.request.prompt.len(),
                prefilled: s.prefilled,
            })
            .collect();
        let plan = scheduler::plan_step(&progress, self.settings.batch_size as usize);
        self.batch.clear();
        let mut used = 0usize;
        for seq in self.running.iter_mut() {
            seq.logits_at = None;
        }
        for &i in &plan.decode {
            let seq = &mut self.running[i];
            let token = seq.last.expect("planned for decoding");
            self.batch
                .add(token, seq.n_past, &[seq.seq_id], true)
                .map_err(|e| Error::Decode(e.to_string()))?;
            seq.logits_at = Some(used as i32);
            seq.kv.push(token.0 as u32);
            seq.n_past += 1;
            used += 1;
        }
        for (i, range) in &plan.prefill {
            let seq = &mut self.running[*i];
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
        if used == 0 {
            return Ok(());
        }
        let started = std::time::Instant::now();
        ctx.decode(&mut self.batch)
            .map_err(|e| Error::Decode(e.to_string()))?;
        tracing::trace!(
            decode = plan.decode.len(),
            prefill = used - plan.decode.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "step"
        );

        let mut finished = Vec::new();
        for (i, seq) in self.running.iter_mut().enumerate() {
            let Some(at) = seq.logits_at else { continue };
            let step_logprobs = seq
                .request
                .logprobs
                .map(|k| sampler::logprobs_at(self.model, ctx, at, k as usize));
            let token = seq.sampler.sample(ctx, at);
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

    fn fail_all(&mut self, ctx: &mut LlamaContext<'_>, e: &Error) {
        for seq in std::mem::take(&mut self.running) {
            seq.sender
                .send(Err(kaito_core::Error::Engine(e.to_string())));
            self.release(ctx, seq.seq_id, Vec::new(), false);
        }
    }
}

/// Releases every cell of one sequence id.
fn clear_seq(ctx: &mut LlamaContext<'_>, seq_id: i32) {
    let _ = ctx.clear_kv_cache_seq(Some(seq_id as u32), None, None);
}
