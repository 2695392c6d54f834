//! The libtorch engine: Llama-family Hugging Face checkpoints (safetensors) on `tch`.
//!
//! [`TorchBackend::load`] reads a checkpoint directory ([`checkpoint`]): `config.json`
//! ([`config::LlamaConfig`]: Llama, Mistral, Qwen2, SmolLM2), the weights, `tokenizer.json` and
//! the chat template of `tokenizer_config.json`. The decoder ([`model::LlamaModel`]) runs on
//! the device and dtype the [`EngineConfig`] names (`cpu`/`cuda:N`, f32/bf16/f16); its state
//! lives on one engine thread (private module `engine`) that batches every running sequence into
//! each step.
//!
//! The same loader builds the quantized engine (feature `quant`): [`TorchBackend::load_with`]
//! takes a [`model::LinearBuilder`] that stores each projection quantized.

pub mod checkpoint;
pub mod config;
mod engine;
mod kv_cache;
pub mod linear;
pub mod model;
#[cfg(feature = "quant")]
pub mod quant_quality;
#[cfg(feature = "quant")]
pub mod quantized;
mod rope;
pub mod tokenizer;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kaito_core::{
    Backend, Capabilities, EngineConfig, EngineStats, Footprint, GenerateRequest, GenerationStream,
    Health, ModelInfo,
};
use tch::{Device, Kind};
use tokio::sync::{mpsc, oneshot};

use crate::engine_command::{Command, EngineThread};
use crate::error::{Error, Result};
use checkpoint::{CheckpointFiles, TensorMap};
use config::LlamaConfig;
use engine::{Engine, EngineSettings};
use model::{LinearBuilder, LlamaModel};
use tokenizer::TextTokenizer;

/// The device an [`EngineConfig`] names (`cpu` when unset); CUDA must be present.
pub fn device_of(config: &EngineConfig) -> Result<Device> {
    let name = config.device.as_deref().unwrap_or("cpu");
    let device = match name {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Device::Cuda(n),
            _ => {
                return Err(Error::InvalidSetting(format!(
                    "device `{other}` is not one of cpu, cuda, cuda:N"
                )))
            }
        },
    };
    if let Device::Cuda(n) = device {
        let count = tch::Cuda::device_count().max(0) as usize;
        if n >= count {
            return Err(Error::InvalidSetting(format!(
                "device `{name}`: libtorch sees {count} CUDA device(s){}",
                if count == 0 {
                    " (no CUDA driver, or a binary linked without libtorch_cuda)"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(device)
}

/// The compute dtype an [`EngineConfig`] names; f32 on CPU and f16 on CUDA by default.
pub fn kind_of(config: &EngineConfig, device: Device) -> Result<Kind> {
    match config.dtype.as_deref() {
        None if device == Device::Cpu => Ok(Kind::Float),
        None => Ok(Kind::Half),
        Some("f32") => Ok(Kind::Float),
        Some("bf16") => Ok(Kind::BFloat16),
        Some("f16") => Ok(Kind::Half),
        Some(other) => Err(Error::InvalidSetting(format!(
            "dtype `{other}` is not one of {}",
            kaito_core::engine::DTYPE_NAMES.join(", ")
        ))),
    }
}

/// The name of a compute dtype as the API reports it.
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "F32",
        Kind::BFloat16 => "BF16",
        Kind::Half => "F16",
        _ => "other",
    }
}

/// A checkpoint loaded and ready, before its engine thread starts (also used by benchmarks and
/// evaluation, which call the model directly).
pub struct LoadedCheckpoint {
    /// The decoder.
    pub model: LlamaModel,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    /// What the API reports about it.
    pub info: ModelInfo,
    /// Ids that end generation.
    pub eos: Vec<u32>,
}

impl LoadedCheckpoint {
    /// Reads the checkpoint in `dir` and builds the decoder with `build_linear`.
    pub fn read(
        dir: &Path,
        served_name: &str,
        config: &EngineConfig,
        quantization: Option<&str>,
        build_linear: &mut LinearBuilder<'_>,
    ) -> Result<Self> {
        let files = CheckpointFiles::find(dir)?;
        let llama = LlamaConfig::from_dir(dir)?;
        let device = device_of(config)?;
        let kind = kind_of(config, device)?;
        let tokenizer_config = files.tokenizer_config()?;
        let generation_config = files.generation_config()?;
        let tokenizer = TextTokenizer::from_file(&files.tokenizer, llama.vocab_size as usize)?;
        let mut eos = llama.eos_token_ids.clone();
        eos.extend(config::token_ids(generation_config.get("eos_token_id")));
        let eos_text = checkpoint::special_token(&tokenizer_config, "eos_token");
        if let Some(id) = eos_text.as_deref().and_then(|t| tokenizer.token_id(t)) {
            eos.push(id);
        }
        eos.sort_unstable();
        eos.dedup();
        let text_of = |id: Option<u32>| id.and_then(|i| String::from_utf8(tokenizer.piece(i)).ok());
        let started = Instant::now();
        let mut tensors: TensorMap = files.read_tensors()?;
        let max_positions = llama.max_position_embeddings.max(1);
        let model = LlamaModel::load(
            llama.clone(),
            &mut tensors,
            kind,
            device,
            max_positions,
            build_linear,
        )?;
        tracing::info!(
            model = %dir.display(),
            device = ?device,
            dtype = kind_name(kind),
            weight_bytes = model.weight_bytes(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "checkpoint loaded"
        );
        let info = ModelInfo {
            id: served_name.to_owned(),
            path: dir.to_owned(),
            architecture: llama.model_type.clone(),
            display_name: dir.file_name().map(|n| n.to_string_lossy().into_owned()),
            parameters: llama.parameter_count(),
            context_length: u32::try_from(llama.max_position_embeddings).ok(),
            quantization: Some(quantization.unwrap_or(kind_name(kind)).to_owned()),
            layers: u32::try_from(llama.num_hidden_layers).ok(),
            heads: u32::try_from(llama.num_attention_heads).ok(),
            kv_heads: u32::try_from(llama.num_key_value_heads).ok(),
            embedding_length: u32::try_from(llama.hidden_size).ok(),
            vocab_size: u32::try_from(llama.vocab_size).ok(),
            chat_template: checkpoint::chat_template(&tokenizer_config),
            bos_token: checkpoint::special_token(&tokenizer_config, "bos_token")
                .or_else(|| text_of(llama.bos_token_id)),
            eos_token: eos_text.or_else(|| text_of(eos.first().copied())),
            file_size: files.weights_size(),
        };
        Ok(Self {
            model,
            tokenizer,
            info,
            eos,
        })
    }
}

/// A Hugging Face checkpoint served by libtorch.
pub struct TorchBackend {
    name: &'static str,
    info: ModelInfo,
    ctx_size: u32,
    tokenizer: Arc<TextTokenizer>,
    vocab_size: u32,
    engine: EngineThread,
    footprint: Footprint,
    stats: Arc<Mutex<EngineStats>>,
    health: Arc<Mutex<Health>>,
}

impl TorchBackend {
    /// Loads the checkpoint in `dir` with dense weights and starts the engine thread.
    pub fn load(dir: &Path, served_name: &str, config: &EngineConfig) -> Result<Self> {
        let device = device_of(config)?;
        let kind = kind_of(config, device)?;
        let mut dense = |t: &mut TensorMap, name: &str, shape: [i64; 2], bias: bool| {
            model::dense_linear(t, name, shape, bias, kind, device)
        };
        Self::load_with(dir, served_name, config, "torch", None, &mut dense)
    }

    /// Loads with a custom [`LinearBuilder`] (the quantized engine); `name` is the backend name
    /// and `quantization` what the API reports as the model's quantization.
    pub fn load_with(
        dir: &Path,
        served_name: &str,
        config: &EngineConfig,
        name: &'static str,
        quantization: Option<&str>,
        build_linear: &mut LinearBuilder<'_>,
    ) -> Result<Self> {
        tch::set_num_threads(config.threads.max(1) as i32);
        let loaded = LoadedCheckpoint::read(dir, served_name, config, quantization, build_linear)?;
        let LoadedCheckpoint {
            model,
            tokenizer,
            info,
            eos,
        } = loaded;
        let max_positions = model.config().max_position_embeddings;
        let ctx_size = i64::from(config.ctx_size.unwrap_or(4096))
            .min(max_positions)
            .max(16);
        let settings = EngineSettings {
            ctx_size,
            parallel: config.parallel.max(1) as usize,
            batch_size: config.batch_size.max(config.parallel).max(32) as usize,
            deterministic: config.deterministic,
        };
        let vocab_size = model.config().vocab_size as u32;
        let tokenizer = Arc::new(tokenizer);
        let stats = Arc::new(Mutex::new(EngineStats::default()));
        let health = Arc::new(Mutex::new(Health::Healthy));
        let (tx, rx) = mpsc::unbounded_channel();
        let weights_bytes = model.weight_bytes();
        let engine = Engine::new(model, tokenizer.clone(), eos, settings, stats.clone());
        let footprint = Footprint {
            weights_bytes,
            kv_cache_bytes: engine.cache_bytes(),
            prefix_cache_bytes: 0,
        };
        tracing::info!(
            ctx_size,
            parallel = settings.parallel,
            kv_cache_bytes = engine.cache_bytes(),
            "torch engine ready"
        );
        let threads = config.threads.max(1) as i32;
        let engine_health = health.clone();
        let engine = EngineThread::spawn(format!("{name}-engine"), tx, move || {
            tch::set_num_threads(threads);
            engine.run(rx);
            *engine_health.lock().expect("health lock") =
                Health::Unhealthy("engine thread stopped".into());
        })?;
        Ok(Self {
            name,
            info,
            ctx_size: ctx_size as u32,
            tokenizer,
            vocab_size,
            engine,
            footprint,
            stats,
            health,
        })
    }
}

#[async_trait::async_trait]
impl Backend for TorchBackend {
    fn name(&self) -> &'static str {
        self.name
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
            constrained_decoding: false,
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
        // Finished prompts stay in their sequence slot's KV cache: no cache of their own.
        self.footprint
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
        Ok(self.tokenizer.encode(text, add_special, parse_special)?)
    }

    fn detokenize(&self, tokens: &[u32]) -> kaito_core::Result<String> {
        crate::input::check_vocabulary("tokens", "tokens", tokens, self.vocab_size)?;
        Ok(self.tokenizer.decode(tokens)?)
    }

    fn generate(&self, request: GenerateRequest) -> kaito_core::Result<GenerationStream> {
        crate::input::check_request(&request, self.vocab_size, self.ctx_size)?;
        if request.constraint.is_some() {
            return Err(kaito_core::Error::request(
                "response_format",
                format!(
                    "the {} backend does not support constrained decoding (json_object, json_schema, forced tool calls); serve a GGUF model with the llama-cpp backend for that",
                    self.name
                ),
            ));
        }
        let (sender, stream) = GenerationStream::channel();
        self.engine.send(Command::Generate {
            request: Box::new(request),
            sender,
            enqueued: Instant::now(),
        })?;
        Ok(stream)
    }

    async fn embed(&self, inputs: Vec<Vec<u32>>) -> kaito_core::Result<Vec<Vec<f32>>> {
        crate::input::check_embed_inputs(&inputs, self.vocab_size, self.ctx_size)?;
        let (reply, rx) = oneshot::channel();
        self.engine.send(Command::Embed { inputs, reply })?;
        Ok(rx
            .await
            .map_err(|_| kaito_core::Error::from(Error::EngineStopped))??)
    }
}
