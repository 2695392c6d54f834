//! Engine configuration shared by every backend: which engine, threads, context, parallelism.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::workspace::EngineSpec;

/// Which engine serves a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// llama.cpp through `llama-cpp-2` (GGUF files).
    #[default]
    LlamaCpp,
}

impl BackendKind {
    /// The names accepted on the command line and in `inference.engine.backend`.
    pub const NAMES: &'static [&'static str] = &["llama-cpp"];

    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::LlamaCpp => "llama-cpp",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "llama-cpp" | "llama.cpp" | "llamacpp" => Ok(BackendKind::LlamaCpp),
            other => Err(Error::spec(
                "backend",
                format!("`{other}` is not one of {}", Self::NAMES.join(", ")),
            )),
        }
    }
}

/// Engine parameters. Build with [`EngineConfig::default`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Which engine.
    pub backend: BackendKind,
    /// Inference threads. Default 1 (two threads collapse on a busy 2-core machine).
    pub threads: u32,
    /// Context window of one sequence, in tokens; `None` = min(model's training context, 4096).
    pub ctx_size: Option<u32>,
    /// Sequences decoded together in one batch.
    pub parallel: u32,
    /// Requests allowed to wait when all sequences are busy; beyond it requests get 503.
    pub max_queue: u32,
    /// Token budget of one engine step (decode tokens plus prefill chunk).
    pub batch_size: u32,
    /// Layers offloaded to a GPU (CUDA builds only).
    pub gpu_layers: u32,
    /// Batch-invariant mode: a request's output does not depend on what else runs beside it
    /// (llama.cpp: one KV stream per sequence), at the cost of batching speed-up. Off by default.
    pub deterministic: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::LlamaCpp,
            threads: 1,
            ctx_size: None,
            parallel: 4,
            max_queue: 64,
            batch_size: 512,
            gpu_layers: 0,
            deterministic: false,
        }
    }
}

impl EngineConfig {
    /// Sets the thread count.
    pub fn with_threads(mut self, threads: u32) -> Self {
        self.threads = threads.max(1);
        self
    }
    /// Sets the per-sequence context window.
    pub fn with_ctx_size(mut self, ctx_size: u32) -> Self {
        self.ctx_size = Some(ctx_size);
        self
    }
    /// Sets the number of parallel sequences.
    pub fn with_parallel(mut self, parallel: u32) -> Self {
        self.parallel = parallel.max(1);
        self
    }
    /// Turns batch-invariant mode on or off.
    pub fn with_deterministic(mut self, on: bool) -> Self {
        self.deterministic = on;
        self
    }
    /// Sets the waiting-queue bound.
    pub fn with_max_queue(mut self, max_queue: u32) -> Self {
        self.max_queue = max_queue;
        self
    }

    /// Overlays the fields a Workspace's `inference.engine` sets.
    pub fn apply_spec(mut self, spec: &EngineSpec) -> Result<Self> {
        if let Some(b) = &spec.backend {
            self.backend = b.parse()?;
        }
        if let Some(v) = spec.threads {
            self.threads = v;
        }
        if let Some(v) = spec.ctx_size {
            self.ctx_size = Some(v);
        }
        if let Some(v) = spec.parallel {
            self.parallel = v;
        }
        if let Some(v) = spec.max_queue {
            self.max_queue = v;
        }
        if let Some(v) = spec.batch_size {
            self.batch_size = v;
        }
        if let Some(v) = spec.gpu_layers {
            self.gpu_layers = v;
        }
        Ok(self)
    }
}
