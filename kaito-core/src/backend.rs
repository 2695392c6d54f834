//! The engine interface: what every inference backend (llama.cpp, libtorch, ...) provides.
//!
//! Backends keep native state on their own thread; this trait is the channel-facing handle.
//! It is object-safe: servers hold an `Arc<dyn Backend>`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::model::ModelInfo;

/// Sampling parameters, with OpenAI/llama.cpp semantics. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 = greedy (argmax).
    pub temperature: f32,
    /// Nucleus sampling mass; 1 disables.
    pub top_p: f32,
    /// Keep the k most likely tokens; 0 disables.
    pub top_k: u32,
    /// Drop tokens below `min_p` × the top probability; 0 disables.
    pub min_p: f32,
    /// OpenAI presence penalty (−2..2).
    pub presence_penalty: f32,
    /// OpenAI frequency penalty (−2..2).
    pub frequency_penalty: f32,
    /// Seed for the sampler's RNG; `None` picks one at random.
    pub seed: Option<u64>,
    /// Keep generating past end-of-generation tokens until `max_tokens` (for benchmarks; as vLLM's).
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
            ignore_eos: false,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }
}

/// Constrained decoding: the output must match this.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// Any JSON object.
    JsonObject,
    /// JSON matching this JSON Schema.
    JsonSchema(Value),
    /// A GBNF grammar (llama.cpp syntax) with root rule `root`.
    Grammar(String),
}

/// One generation request as the engine sees it: token ids in, token ids out. Built with
/// [`GenerateRequest::new`] and the `with_` methods; more fields will come.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GenerateRequest {
    /// Request id, for logs.
    pub id: String,
    /// Prompt token ids (already templated and tokenized).
    pub prompt: Vec<u32>,
    /// Maximum new tokens.
    pub max_tokens: u32,
    /// Sampling parameters.
    pub sampling: SamplingParams,
    /// Optional output constraint.
    pub constraint: Option<Constraint>,
    /// `Some(k)`: report each sampled token's log-probability and the `k` most likely alternatives.
    pub logprobs: Option<u32>,
    /// The LoRA adapter to apply, by name; `None` is the base model. An engine that serves no
    /// adapter of that name refuses the request ([`Error::InvalidRequest`](crate::Error::InvalidRequest), param `model`).
    pub adapter: Option<String>,
}

impl GenerateRequest {
    /// Up to `max_tokens` tokens after `prompt`, greedy, unconstrained, on the base model.
    pub fn new(id: impl Into<String>, prompt: Vec<u32>, max_tokens: u32) -> Self {
        Self {
            id: id.into(),
            prompt,
            max_tokens,
            sampling: SamplingParams::greedy(),
            constraint: None,
            logprobs: None,
            adapter: None,
        }
    }

    /// With these sampling parameters.
    pub fn with_sampling(mut self, sampling: SamplingParams) -> Self {
        self.sampling = sampling;
        self
    }

    /// With an output constraint.
    pub fn with_constraint(mut self, constraint: Option<Constraint>) -> Self {
        self.constraint = constraint;
        self
    }

    /// Reporting log-probabilities with `top` alternatives.
    pub fn with_logprobs(mut self, top: Option<u32>) -> Self {
        self.logprobs = top;
        self
    }

    /// On the LoRA adapter `name`.
    pub fn with_adapter(mut self, name: Option<String>) -> Self {
        self.adapter = name;
        self
    }
}

/// Why a sequence stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token (or a stop string matched).
    Stop,
    /// `max_tokens` was reached.
    Length,
}

impl FinishReason {
    /// OpenAI's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Log-probability of a sampled token and its most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// Natural-log probability of the sampled token under the model's distribution.
    pub logprob: f32,
    /// The most likely tokens at this step: (token id, its bytes, logprob), best first.
    pub top: Vec<(u32, Vec<u8>, f32)>,
}

/// One generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedToken {
    /// Token id.
    pub id: u32,
    /// The token's bytes (may be a partial UTF-8 sequence).
    pub bytes: Vec<u8>,
    /// Present when the request asked for logprobs.
    pub logprob: Option<TokenLogprob>,
}

/// What a generation stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// The sequence got a slot; prompt processing starts.
    Started {
        /// Time spent waiting for a slot.
        queue_time: Duration,
        /// Prompt tokens reused from the prefix cache.
        cached_prompt_tokens: u32,
    },
    /// A new token.
    Token(GeneratedToken),
    /// The sequence ended; nothing follows.
    Finished {
        /// Why.
        reason: FinishReason,
    },
}

/// The token stream of one request. Dropping it cancels the generation and frees its KV cache.
pub struct GenerationStream {
    rx: mpsc::UnboundedReceiver<Result<GenerationEvent>>,
    cancel: CancellationToken,
}

impl GenerationStream {
    /// Makes a connected pair: the engine side sends events and watches the token.
    pub fn channel() -> (GenerationSender, GenerationStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        (
            GenerationSender {
                tx,
                cancel: cancel.clone(),
            },
            GenerationStream { rx, cancel },
        )
    }

    /// Cancels the generation explicitly (also done on drop).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Drop for GenerationStream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Stream for GenerationStream {
    type Item = Result<GenerationEvent>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// The engine's end of a [`GenerationStream`].
#[derive(Debug, Clone)]
pub struct GenerationSender {
    tx: mpsc::UnboundedSender<Result<GenerationEvent>>,
    cancel: CancellationToken,
}

impl GenerationSender {
    /// Sends an event; returns false when the receiver is gone.
    pub fn send(&self, event: Result<GenerationEvent>) -> bool {
        self.tx.send(event).is_ok()
    }
    /// True once the client dropped the stream or cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || self.tx.is_closed()
    }
    /// The cancellation token, for engines that wait on it.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// What a backend can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `embed` works.
    pub embeddings: bool,
    /// Grammar / JSON-schema constraints work.
    pub constrained_decoding: bool,
    /// Log-probabilities work.
    pub logprobs: bool,
}

/// Live engine figures for metrics and admission control.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EngineStats {
    /// Sequences being decoded.
    pub running: usize,
    /// Requests waiting for a sequence slot inside the engine.
    pub waiting: usize,
    /// Fraction of KV-cache cells in use, 0..1.
    pub kv_cache_usage: f64,
    /// Prompt tokens served from the prefix cache since start.
    pub cached_prompt_tokens: u64,
    /// Bytes the prefix cache holds now (KV of finished prompts kept for reuse).
    pub prefix_cache_bytes: u64,
}

/// Memory an engine holds, by what for: what a registry weighs when it decides what fits and what
/// to unload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    /// Model weights as loaded (on the engine's device).
    pub weights_bytes: u64,
    /// The KV cache allocated for all sequences.
    pub kv_cache_bytes: u64,
    /// The prefix cache's current contents.
    pub prefix_cache_bytes: u64,
}

impl Footprint {
    /// All of it.
    pub fn total_bytes(&self) -> u64 {
        self.weights_bytes + self.kv_cache_bytes + self.prefix_cache_bytes
    }
}

/// Whether the engine can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Serving.
    Healthy,
    /// Broken (engine thread died, ...).
    Unhealthy(String),
}

/// An inference engine. Object-safe; async at the edge, native state on its own thread.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Engine name, e.g. `llama-cpp`.
    fn name(&self) -> &'static str;
    /// Metadata of the loaded model.
    fn model(&self) -> &ModelInfo;
    /// Context window of one sequence, in tokens.
    fn context_size(&self) -> u32;
    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;
    /// Live figures.
    fn stats(&self) -> EngineStats;
    /// Engine health.
    fn health(&self) -> Health;
    /// Memory the engine holds now.
    fn footprint(&self) -> Footprint;
    /// Text to token ids. `parse_special` turns `<|im_start|>`-style markers into their tokens.
    fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>>;
    /// Token ids to text.
    fn detokenize(&self, tokens: &[u32]) -> Result<String>;
    /// Starts generating; tokens arrive on the returned stream. Dropping it cancels.
    fn generate(&self, request: GenerateRequest) -> Result<GenerationStream>;
    /// Mean-pooled, L2-normalised embeddings of each input.
    async fn embed(&self, inputs: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>>;
    /// Stops the engine and frees what it holds beside the weights (its thread, KV cache, prefix
    /// cache): requests still running or waiting fail, later ones are refused. Returns once that
    /// memory is freed; the weights go when the backend is dropped. Idempotent. Engines with no
    /// state of their own need not override it.
    fn shutdown(&self) {}
}
