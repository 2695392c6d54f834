//! # kaito-backends
//!
//! Inference engines behind [`kaito_core::Backend`]. Each engine is a feature:
//!
//! - `llama-cpp` (default): GGUF models through llama.cpp, with continuous batching over one context.
//! - `torch`: Llama-family Hugging Face checkpoints (safetensors) on libtorch through `tch`.
//! - `quant`: the torch engine with weight-only INT8 / INT4 linear layers.
//!
//! [`load`] picks the engine an [`EngineConfig`] names. When that engine was not compiled in,
//! it returns [`kaito_core::Error::NotCompiled`] instead of failing to build.

#[cfg(any(feature = "llama-cpp", feature = "torch"))]
mod engine_command;
pub mod error;
pub mod input;
#[cfg(feature = "llama-cpp")]
pub mod llama_cpp;
pub mod logprobs;
#[cfg(feature = "quant")]
pub mod quant;
pub mod sampling;
pub mod scheduler;
#[cfg(feature = "torch")]
pub mod torch;

use std::path::Path;
use std::sync::Arc;

use kaito_core::{Backend, BackendKind, EngineConfig};

pub use error::Error;

/// The engine `config.backend` resolves to for `model_path`: `auto` picks llama.cpp for a file
/// (GGUF) and torch for a Hugging Face checkpoint directory (quant when the directory holds a
/// pre-quantized checkpoint, i.e. has `quantization_config.json`).
pub fn resolve_backend(model_path: &Path, config: &EngineConfig) -> BackendKind {
    match config.backend {
        BackendKind::Auto if model_path.is_dir() => {
            if model_path.join("quantization_config.json").is_file() {
                BackendKind::Quant
            } else {
                BackendKind::Torch
            }
        }
        BackendKind::Auto => BackendKind::LlamaCpp,
        other => other,
    }
}

/// Loads `model_path` with the engine `config.backend` names; `served_name` is the API model id.
pub fn load(
    model_path: &Path,
    served_name: &str,
    config: &EngineConfig,
) -> kaito_core::Result<Arc<dyn Backend>> {
    let backend = resolve_backend(model_path, config);
    let is_dir = model_path.is_dir();
    match (backend, is_dir) {
        (BackendKind::LlamaCpp, true) => Err(Error::InvalidSetting(format!(
            "the llama-cpp backend serves GGUF files; {} is a directory (use --backend torch or quant for a Hugging Face checkpoint)",
            model_path.display()
        ))
        .into()),
        (BackendKind::Torch | BackendKind::Quant, false) => Err(Error::InvalidSetting(format!(
            "the {backend} backend serves Hugging Face checkpoint directories (config.json + safetensors); {} is a file — convert a GGUF with `kaito convert` or use --backend llama-cpp",
            model_path.display()
        ))
        .into()),
        (BackendKind::LlamaCpp | BackendKind::Auto, _) => {
            load_llama_cpp(model_path, served_name, config)
        }
        (BackendKind::Torch, _) => load_torch(model_path, served_name, config),
        (BackendKind::Quant, _) => load_quant(model_path, served_name, config),
    }
}

#[cfg(feature = "torch")]
fn load_torch(
    model_path: &Path,
    served_name: &str,
    config: &EngineConfig,
) -> kaito_core::Result<Arc<dyn Backend>> {
    Ok(Arc::new(torch::TorchBackend::load(
        model_path,
        served_name,
        config,
    )?))
}

#[cfg(not(feature = "torch"))]
fn load_torch(_: &Path, _: &str, _: &EngineConfig) -> kaito_core::Result<Arc<dyn Backend>> {
    Err(kaito_core::Error::NotCompiled("torch"))
}

#[cfg(feature = "quant")]
fn load_quant(
    model_path: &Path,
    served_name: &str,
    config: &EngineConfig,
) -> kaito_core::Result<Arc<dyn Backend>> {
    Ok(Arc::new(torch::quantized::load(
        model_path,
        served_name,
        config,
    )?))
}

#[cfg(not(feature = "quant"))]
fn load_quant(_: &Path, _: &str, _: &EngineConfig) -> kaito_core::Result<Arc<dyn Backend>> {
    Err(kaito_core::Error::NotCompiled("quant"))
}

#[cfg(feature = "llama-cpp")]
fn load_llama_cpp(
    model_path: &Path,
    served_name: &str,
    config: &EngineConfig,
) -> kaito_core::Result<Arc<dyn Backend>> {
    Ok(Arc::new(llama_cpp::LlamaCppBackend::load(
        model_path,
        served_name,
        config,
    )?))
}

#[cfg(not(feature = "llama-cpp"))]
fn load_llama_cpp(_: &Path, _: &str, _: &EngineConfig) -> kaito_core::Result<Arc<dyn Backend>> {
    Err(kaito_core::Error::NotCompiled("llama-cpp"))
}
