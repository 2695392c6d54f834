//! Engine configuration shared by every backend: which engine, threads, context, parallelism.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which engine serves a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// Chosen by the model's format: a GGUF file → llama.cpp; a Hugging Face checkpoint
    /// directory → torch, or quant when it holds a pre-quantized checkpoint.
    #[default]
    Auto,
    /// llama.cpp through `llama-cpp-2` (GGUF files).
    LlamaCpp,
    /// libtorch through `tch` (Hugging Face safetensors checkpoints).
    Torch,
    /// libtorch with weight-only INT8/INT4 linear layers.
    Quant,
}

impl BackendKind {
    /// The names accepted on the command line and in `inference.engine.backend`.
    pub const NAMES: &'static [&'static str] = &["auto", "llama-cpp", "torch", "quant"];

    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::LlamaCpp => "llama-cpp",
            BackendKind::Torch => "torch",
            BackendKind::Quant => "quant",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendKind::Auto),
            "llama-cpp" | "llama.cpp" | "llamacpp" => Ok(BackendKind::LlamaCpp),
            "torch" | "libtorch" => Ok(BackendKind::Torch),
            "quant" => Ok(BackendKind::Quant),
            other => Err(Error::spec(
                "backend",
                format!("`{other}` is not one of {}", Self::NAMES.join(", ")),
            )),
        }
    }
}

/// Compute dtypes the torch engines accept.
pub const DTYPE_NAMES: &[&str] = &["f32", "bf16", "f16"];

/// Weight-only quantization schemes of the quant engine.
pub const QUANTIZATION_NAMES: &[&str] = &["int8", "int4", "int4-g32", "int4-g64", "int4-g128"];

/// The largest prefix cache a Workspace may ask for, in MiB (1 TiB): a larger figure is a unit
/// mistake (`inference.engine.prefixCacheMib` is in MiB).
pub const MAX_PREFIX_CACHE_MIB: u32 = 1 << 20;

/// Whether `device` is `cpu`, `cuda` or `cuda:N`.
pub fn valid_device(device: &str) -> bool {
    match device {
        "cpu" | "cuda" => true,
        d => d
            .strip_prefix("cuda:")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
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
    /// Host memory (MiB) for the KV of finished prompts, restored when a later prompt shares a prefix
    /// (llama.cpp engine; 0 turns it off). 128 MiB hold ~5,800 tokens of SmolLM2-135M but only ~250
    /// of a 7B Llama: larger models want more.
    pub prefix_cache_mib: u32,
    /// Device of the torch engines: `cpu` (default), `cuda`, `cuda:N`.
    pub device: Option<String>,
    /// Compute dtype of the torch engines: `f32` (default on CPU), `bf16`, `f16` (default on CUDA).
    pub dtype: Option<String>,
    /// Weight-only quantization of the quant engine: `int8` or `int4` (default `int8`).
    /// Ignored when the checkpoint is already quantized.
    pub quantization: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::Auto,
            threads: 1,
            ctx_size: None,
            parallel: 4,
            max_queue: 64,
            batch_size: 512,
            gpu_layers: 0,
            deterministic: false,
            prefix_cache_mib: 128,
            device: None,
            dtype: None,
            quantization: None,
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
    /// Sets the host memory for finished prompts' KV, in MiB (0: none).
    pub fn with_prefix_cache_mib(mut self, mib: u32) -> Self {
        self.prefix_cache_mib = mib;
        self
    }
    /// Sets the waiting-queue bound.
    pub fn with_max_queue(mut self, max_queue: u32) -> Self {
        self.max_queue = max_queue;
        self
    }
}
