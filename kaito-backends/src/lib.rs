//! # kaito-backends
//!
//! Inference engines behind [`kaito_core::Backend`]. Each engine is a feature:
//!
//! - `llama-cpp` (default): GGUF models through llama.cpp, with continuous batching over one context.
//!
//! [`load`] picks the engine an [`EngineConfig`] names. When that engine was not compiled in,
//! it returns [`kaito_core::Error::NotCompiled`] instead of failing to build.

pub mod error;
#[cfg(feature = "llama-cpp")]
pub mod llama_cpp;
pub mod logprobs;
pub mod scheduler;

use std::path::Path;
use std::sync::Arc;

use kaito_core::{Backend, BackendKind, EngineConfig};

pub use error::Error;

/// Loads `model_path` with the engine `config.backend` names; `served_name` is the API model id.
pub fn load(
    model_path: &Path,
    served_name: &str,
    config: &EngineConfig,
) -> kaito_core::Result<Arc<dyn Backend>> {
    match config.backend {
        BackendKind::LlamaCpp => load_llama_cpp(model_path, served_name, config),
    }
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
