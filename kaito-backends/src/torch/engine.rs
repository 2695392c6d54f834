//! The libtorch engine thread: continuous batching over preallocated KV slots.
//!
//! Each step runs [`scheduler::plan_step`] (the same planner as the llama.cpp engine): one
//! forward pass with the next token of every decoding sequence (each in its own KV slot, at its
//! own position), then prompt chunks of sequences still in prefill within the step's token
//! budget, so a long prompt never stalls running streams. A free slot keeps the tokens it holds;
//! a new prompt takes the free slot sharing its longest prefix and skips recomputing it.
//!
//! `deterministic` decodes each sequence in a pass of its own and recomputes every prompt, so
//! a request's output does not depend on what runs beside it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use kaito_core::{
    EngineStats, FinishReason, GenerateRequest, GeneratedToken, GenerationEvent, GenerationSender,
    TokenLogprob,
};
use tch::{Kind, Tensor};
use tokio::sync::mpsc;

use super::kv_cache::KvCache;
use super::model::{token_tensor, LlamaModel, Pass};
use super::tokenizer::TextTokenizer;
use crate::engine_command::{common_prefix, Command, Waiting, SHUT_DOWN};
use crate::error::{Error, Result};
use crate::logprobs::top_logprobs;
use crate::sampling::Sampler;
use crate::scheduler::{self, SeqProgress};

/// Fixed engine parameters.
#[derive(Debug, Clone, Copy)]
pub(super) struct EngineSettings {
    pub ctx_size: i64,
    pub parallel: usize,
    pub batch_size: usize,
    pub deterministic: bool,
}

struct Sequence {
    slot: usize,
    request: Box<GenerateRequest>,
    sender: GenerationSender,
    sampler: Sampler,
    /// Prompt tokens already in the KV cache.
    prefilled: usize,
    /// Last sampled token, fed at the next step.
    last: Option<u32>,
    generated: u32,
    /// Tokens whose keys and values the slot holds, in position order.
    kv: Vec<u32>,
}

#[derive(Debug, Default)]
struct Slot {
    busy: bool,
    tokens: Vec<u32>,
    last_used: u64,
}

/// Everything the engine thread owns.
pub(super) struct Engine {
    model: LlamaModel,
    tokenizer: Arc<TextTokenizer>,
    eos: Vec<u32>,
    settings: EngineSettings,
    cache: KvCache,
    slots: Vec<Slot>,
    clock: u64,
    running: Vec<Sequence>,
    waiting: VecDeque<Waiting>,
    cached_prompt_tokens: u64,
    stats: Arc<Mutex<EngineStats>>,
    /// A shutdown was asked for.
    stopping: bool,
}

impl Engine {
    pub(super) fn new(
        model: LlamaModel,
        tokenizer: Arc<TextTokenizer>,
        eos: Vec<u32>,
        settings: EngineSettings,
        stats: Arc<Mutex<EngineStats>>,
    ) -> Self {
        let cache = model.new_cache(settings.parallel as i64, settings.ctx_size);
        Self {
            model,
            tokenizer,
            eos,
            settings,
            cache,
            slots: (0..settings.parallel).map(|_| Slot::default()).collect(),
            clock: 0,
            running: Vec::new(),
            waiting: VecDeque::new(),
            cached_prompt_tokens: 0,
            stats,
            stopping: false,
        }
    }

    /// Bytes of the KV cache.
    pub(super) fn cache_bytes(&self) -> u64 {
        self.cache.bytes()
    }

    /// Serves commands until the handle is dropped or shuts the engine down.
    pub(super) fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                self.publish();
                match commands.blocking_recv() {
                    Some(cmd) => self.accept(cmd),
                    None => break,
                }
            }
            while let Ok(cmd) = commands.try_recv() {
                self.accept(cmd);
            }
            if self.stopping {
                self.fail_all(SHUT_DOWN);
                break;
            }
            self.drop_cancelled();
            self.admit();
            self.publish();
            if self.running.is_empty() {
                continue;
            }
            let step = tch::no_grad(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step()))
            });
            let failure = match step {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(panic) => Some(
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "torch operation failed".into()),
                ),
            };
            if let Some(message) = failure {
                tracing::error!(error = %message, "torch engine step failed");
                self.fail_all(&message);
            }
        }
        tracing::debug!("torch engine thread exits");
    }

    fn accept(&mut self, cmd: Command) {
        match cmd {
            Command::Generate {
                request,
                sender,
                enqueued,
            } => self.waiting.push_back(Waiting {
                request,
                sender,
                enqueued,
            }),
            Command::Embed { inputs, reply } => {
                let result = tch::no_grad(|| self.embed(&inputs));
                let _ = reply.send(result);
            }
            Command::Shutdown => self.stopping = true,
        }
    }

    /// Mean-pooled, L2-normalised final hidden states of each input.
    fn embed(&self, inputs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        inputs
            .iter()
            .map(|input| {
                let ids = token_tensor(input).view([1, -1]);
                let hidden = self.model.forward(&ids, Pass::Full, None);
                let pooled =
                    hidden
                        .squeeze_dim(0)
                        .to_kind(Kind::Float)
                        .mean_dim(0, false, Kind::Float);
                let norm = pooled.norm().clamp_min(1e-12);
                to_vec(&(pooled / norm))
            })
            .collect()
    }

    fn publish(&self) {
        let used: usize = self.running.iter().map(|s| s.kv.len()).sum();
        let capacity = (self.cache.slots() * self.cache.ctx()).max(1) as f64;
        let mut s = self.stats.lock().expect("stats lock");
        s.running = self.running.len();
        s.waiting = self.waiting.len();
        s.kv_cache_usage = used as f64 / capacity;
        s.cached_prompt_tokens = self.cached_prompt_tokens;
    }

    fn drop_cancelled(&mut self) {
        self.waiting.retain(|w| !w.sender.is_cancelled());
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].sender.is_cancelled() {
                let seq = self.running.swap_remove(i);
                tracing::debug!(id = %seq.request.id, "sequence cancelled");
                self.release(seq.slot, seq.kv);
            } else {
                i += 1;
            }
        }
    }

    fn release(&mut self, slot: usize, kv: Vec<u32>) {
        let s = &mut self.slots[slot];
        s.busy = false;
        s.tokens = kv;
    }

    /// The free slot whose tokens share the longest prefix with `prompt` (least recently used
    /// among equals), and that prefix's length.
    fn pick_slot(&self, prompt: &[u32]) -> Option<(usize, usize)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.busy)
            .map(|(i, s)| (i, common_prefix(&s.tokens, prompt), s.last_used))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
            .map(|(i, common, _)| (i, common))
    }

    fn admit(&mut self) {
        while let Some((slot, common)) = self
            .waiting
            .front()
            .and_then(|w| self.pick_slot(&w.request.prompt))
        {
            let w = self.waiting.pop_front().expect("checked non-empty");
            if w.request.prompt.len() as i64 >= self.settings.ctx_size {
                w.sender.send(Err(kaito_core::Error::request(
                    "prompt",
                    format!(
                        "the prompt has {} tokens; the context holds {}",
                        w.request.prompt.len(),
                        self.settings.ctx_size
                    ),
                )));
                continue;
            }
            // Always recompute the last prompt token: its logits give the first new token.
            let reuse = if self.settings.deterministic {
                0
            } else {
                common.min(w.request.prompt.len() - 1)
            };
            self.clock += 1;
            let s = &mut self.slots[slot];
            s.busy = true;
            s.last_used = self.clock;
            s.tokens.clear();
            self.cached_prompt_tokens += reuse as u64;
            w.sender.send(Ok(GenerationEvent::Started {
                queue_time: w.enqueued.elapsed(),
                cached_prompt_tokens: reuse as u32,
            }));
            self.running.push(Sequence {
                slot,
                sampler: Sampler::new(&w.request.sampling),
                kv: w.request.prompt[..reuse].to_vec(),
                request: w.request,
                sender: w.sender,
                prefilled: reuse,
                last: None,
                generated: 0,
            });
        }
    }

    fn step(&mut self) -> Result<()> {
        let progress: Vec<SeqProgress> = self
            .running
            .iter()
            .map(|s| SeqProgress {
                decoding: s.last.is_some(),
                prompt_len: s.request.prompt.len(),
                prefilled: s.prefilled,
            })
            .collect();
        let plan = scheduler::plan_step(&progress, self.settings.batch_size);
        // (sequence index, its next-token logits)
        let mut sampled: Vec<(usize, Vec<f32>)> = Vec::new();
        let groups: Vec<Vec<usize>> = if self.settings.deterministic {
            plan.decode.iter().map(|i| vec![*i]).collect()
        } else if plan.decode.is_empty() {
            Vec::new()
        } else {
            vec![plan.decode.clone()]
        };
        for group in groups {
            let tokens: Vec<u32> = group
                .iter()
                .map(|i| self.running[*i].last.expect("planned for decoding"))
                .collect();
            let slots: Vec<i64> = group.iter().map(|i| self.running[*i].slot as i64).collect();
            let positions: Vec<i64> = group
                .iter()
                .map(|i| self.running[*i].kv.len() as i64)
                .collect();
            let ids = token_tensor(&tokens).view([-1, 1]);
            let pass = Pass::Decode {
                slots: &slots,
                positions: &positions,
            };
            let hidden = self.model.forward(&ids, pass, Some(&mut self.cache));
            let logits = self.model.logits(&hidden.squeeze_dim(1));
            for (row, (i, token)) in group.iter().zip(tokens).enumerate() {
                self.running[*i].kv.push(token);
                sampled.push((*i, to_vec(&logits.get(row as i64))?));
            }
        }
        for (i, range) in &plan.prefill {
            let seq = &mut self.running[*i];
            let chunk = &seq.request.prompt[range.clone()];
            let ids = token_tensor(chunk).view([1, -1]);
            let pass = Pass::Prefill {
                slot: seq.slot as i64,
                start: range.start as i64,
            };
            let hidden = self.model.forward(&ids, pass, Some(&mut self.cache));
            seq.kv.extend_from_slice(chunk);
            seq.prefilled = range.end;
            if seq.prefilled == seq.request.prompt.len() {
                let last = hidden.get(0).get(-1);
                sampled.push((*i, to_vec(&self.model.logits(&last))?));
            }
        }
        self.emit(sampled);
        Ok(())
    }

    /// Samples each sequence's next token from its logits, streams it, and retires the
    /// sequences that are done.
    fn emit(&mut self, sampled: Vec<(usize, Vec<f32>)>) {
        let mut finished = Vec::new();
        for (i, mut logits) in sampled {
            let seq = &mut self.running[i];
            let logprob = seq.request.logprobs.map(|k| {
                let top = top_logprobs(&logits, k as usize);
                (top, logits.clone())
            });
            // `ignore_eos` never samples an end-of-generation token (as the llama.cpp engine and
            // llama-server): past its end a chat model writes control tokens, invisible in the text.
            if seq.request.sampling.ignore_eos {
                for &t in &self.eos {
                    if let Some(l) = logits.get_mut(t as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            let token = seq.sampler.sample(&mut logits);
            if self.eos.contains(&token) && !seq.request.sampling.ignore_eos {
                finished.push((i, FinishReason::Stop));
                continue;
            }
            seq.sampler.accept(token);
            let logprob = logprob.map(|(top, raw)| TokenLogprob {
                logprob: top.of(&raw, token),
                top: top
                    .top
                    .iter()
                    .map(|(id, lp)| (*id, self.tokenizer.piece(*id), *lp))
                    .collect(),
            });
            seq.generated += 1;
            seq.last = Some(token);
            let alive = seq.sender.send(Ok(GenerationEvent::Token(GeneratedToken {
                id: token,
                bytes: self.tokenizer.piece(token),
                logprob,
            })));
            if !alive {
                finished.push((i, FinishReason::Stop));
            } else if seq.generated >= seq.request.max_tokens
                || seq.kv.len() as i64 + 1 >= self.settings.ctx_size
            {
                finished.push((i, FinishReason::Length));
            }
        }
        finished.sort_by_key(|(i, _)| *i);
        let mut done = Vec::with_capacity(finished.len());
        for (i, reason) in finished.into_iter().rev() {
            let seq = self.running.swap_remove(i);
            self.release(seq.slot, seq.kv);
            done.push((seq.sender, reason));
        }
        if !done.is_empty() {
            self.publish();
        }
        for (sender, reason) in done {
            sender.send(Ok(GenerationEvent::Finished { reason }));
        }
    }

    fn fail_all(&mut self, message: &str) {
        for seq in std::mem::take(&mut self.running) {
            seq.sender
                .send(Err(kaito_core::Error::Engine(message.to_owned())));
            self.release(seq.slot, Vec::new());
        }
        for w in std::mem::take(&mut self.waiting) {
            w.sender
                .send(Err(kaito_core::Error::Engine(message.to_owned())));
        }
    }
}

/// A float tensor's values on the CPU.
fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t
        .to_kind(Kind::Float)
        .to_device(tch::Device::Cpu)
        .contiguous()
        .view([-1]);
    Vec::<f32>::try_from(&flat).map_err(|e| Error::Decode(e.to_string()))
}
