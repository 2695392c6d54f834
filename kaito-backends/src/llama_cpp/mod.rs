//! The llama.cpp engine: GGUF models, continuous batching over one context.
//!
//! [`LlamaCppBackend`] is the async-facing handle. The `LlamaContext` borrows the model and is not
//! `Send`, so it lives on one dedicated thread (private module `engine`) that receives commands over
//! a channel; each request carries its own response channel and cancellation token.

mod embed;
mod engine;
mod prefix_cache;
mod sampler;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use kaito_core::{
    Backend, Capabilities, EngineConfig, EngineStats, Footprint, GenerateRequest, GenerationStream,
    Health, ModelInfo,
};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};

use crate::engine_command::{Command, EngineThread};
use crate::error::{Error, Result};
use engine::EngineSettings;

/// llama.cpp's process-wide backend, initialised once.
fn llama_backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
        LlamaBackend::init().expect("llama.cpp backend initialises once per process")
    })
}

/// A GGUF model served by llama.cpp.
pub struct LlamaCppBackend {
    model: Arc<LlamaModel>,
    info: ModelInfo,
    ctx_size: u32,
    engine: EngineThread,
    stats: Arc<Mutex<EngineStats>>,
    health: Arc<Mutex<Health>>,
    kv_cache_bytes: u64,
}

impl LlamaCppBackend {
    /// Loads the model and starts the engine thread. Blocks until the context exists.
    pub fn load(path: &Path, served_name: &str, config: &EngineConfig) -> Result<Self> {
        let load_error = |message: String| Error::ModelLoad {
            path: path.display().to_string(),
            message,
        };
        let info =
            ModelInfo::from_gguf(path, served_name).map_err(|e| load_error(e.to_string()))?;
        let backend = llama_backend();
        let params = LlamaModelParams::default().with_n_gpu_layers(config.gpu_layers);
        let started = Instant::now();
        let model = LlamaModel::load_from_file(backend, path, &params)
            .map_err(|e| load_error(e.to_string()))?;
        tracing::info!(model = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "model loaded");
        let model = Arc::new(model);
        let train_ctx = model.n_ctx_train();
        let ctx_size = config
            .ctx_size
            .unwrap_or(train_ctx.min(4096))
            .min(train_ctx.max(1));
        let settings = EngineSettings {
            threads: config.threads as i32,
            ctx_size,
            parallel: config.parallel,
            batch_size: config.batch_size.max(config.parallel).max(32),
            deterministic: config.deterministic,
            // Deterministic mode recomputes every prompt, so it keeps none.
            prefix_cache_bytes: if config.deterministic {
                0
            } else {
                config.prefix_cache_mib as usize * (1 << 20)
            },
        };
        let kv_cache_bytes = kv_cache_bytes(&model, ctx_size * config.parallel);
        let stats = Arc::new(Mutex::new(EngineStats::default()));
        let health = Arc::new(Mutex::new(Health::Healthy));
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let engine = {
            let model = model.clone();
            let stats = stats.clone();
            let health = health.clone();
            EngineThread::spawn("llama-cpp-engine".into(), tx, move || {
                engine::run(backend, model, settings, rx, ready_tx, stats, health)
            })?
        };
        ready_rx.recv().map_err(|_| Error::EngineStopped)??;
        Ok(Self {
            model,
            info,
            ctx_size,
            engine,
            stats,
            health,
            kv_cache_bytes,
        })
    }
}

/// Bytes of the KV cache of `cells` tokens: keys and values of every layer, f16 (llama.cpp's
/// default cache type).
fn kv_cache_bytes(model: &LlamaModel, cells: u32) -> u64 {
    let heads = u64::from(model.n_head().max(1));
    let head_dim = model.n_embd().max(0) as u64 / heads;
    let per_token = 2 * u64::from(model.n_layer()) * u64::from(model.n_head_kv()) * head_dim * 2;
    per_token * u64::from(cells)
}

#[async_trait::async_trait]
impl Backend for LlamaCppBackend {
    fn name(&self) -> &'static str {
        "llama-cpp"
    }

    fn model(&self) -> &ModelInfo {
        &self.info
    }

    fn context_size(&self) -> u32 {
        self.ctx_size
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            embeddings: true,
            constrained_decoding: true,
            logprobs: true,
        }
    }

    fn stats(&self) -> EngineStats {
        *self.stats.lock().expect("stats lock")
    }

    fn health(&self) -> Health {
        self.health.lock().expect("health lock").clone()
    }

    fn footprint(&self) -> Footprint {
        Footprint {
            weights_bytes: self.model.size(),
            kv_cache_bytes: self.kv_cache_bytes,
            prefix_cache_bytes: self.stats().prefix_cache_bytes,
        }
    }

    fn shutdown(&self) {
        self.engine.shutdown();
    }

    fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> kaito_core::Result<Vec<u32>> {
        let tokens = self
            .model
            .vocab()
            .tokenize(text.as_bytes(), add_special, parse_special);
        Ok(tokens.into_iter().map(|t| t.0 as u32).collect())
    }

    fn detokenize(&self, tokens: &[u32]) -> kaito_core::Result<String> {
        let n_vocab = self.model.n_vocab() as u32;
        crate::input::check_vocabulary("tokens", "tokens", tokens, n_vocab)?;
        let tokens: Vec<LlamaToken> = tokens.iter().map(|t| LlamaToken(*t as i32)).collect();
        let bytes = self.model.vocab().detokenize(&tokens, false, false);
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn generate(&self, request: GenerateRequest) -> kaito_core::Result<GenerationStream> {
        crate::input::check_request(&request, self.model.n_vocab() as u32, self.ctx_size)?;
        let (sender, stream) = GenerationStream::channel();
        self.engine.send(Command::Generate {
            request: Box::new(request),
            sender,
            enqueued: Instant::now(),
        })?;
        Ok(stream)
    }

    async fn embed(&self, inputs: Vec<Vec<u32>>) -> kaito_core::Result<Vec<Vec<f32>>> {
        crate::input::check_embed_inputs(&inputs, self.model.n_vocab() as u32, self.ctx_size)?;
        let (reply, rx) = oneshot::channel();
        self.engine.send(Command::Embed { inputs, reply })?;
        rx.await
            .map_err(|_| kaito_core::Error::from(Error::EngineStopped))?
            .map_err(Into::into)
    }
}
