//! # kaito-core
//!
//! The engine-independent heart of kaito-rs: the KAITO-compatible [`Workspace`] spec, model
//! identification ([`model`]), the [`Backend`] trait every inference engine implements, the
//! OpenAI-compatible HTTP server ([`server`]) and its Prometheus [`metrics`].
//! No native dependencies: engines live in `kaito-backends`.
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

pub mod backend;
pub mod chat_template;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod model;
pub mod server;
pub mod stop;
pub mod testing;
pub mod workspace;

pub use backend::{
    Backend, Capabilities, Constraint, EngineStats, FinishReason, GenerateRequest, GeneratedToken,
    GenerationEvent, GenerationSender, GenerationStream, Health, SamplingParams, TokenLogprob,
};
pub use engine::{BackendKind, EngineConfig};
pub use error::{Error, Result};
pub use model::{ModelInfo, ModelSource};
pub use workspace::Workspace;
