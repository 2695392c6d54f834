//! The one error type of `kaito-backends`; it converts into [`kaito_core::Error`] at the trait edge.

/// Errors raised while loading or running an engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be loaded by the engine.
    #[error("cannot load model {path}: {message}")]
    ModelLoad {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The engine context could not be created (usually: not enough memory for the KV cache).
    #[error("cannot create engine context: {0}")]
    Context(String),
    /// A grammar or JSON schema could not be compiled.
    #[error("invalid constraint: {0}")]
    Constraint(String),
    /// The engine thread is gone.
    #[error("engine thread stopped")]
    EngineStopped,
    /// Decoding failed.
    #[error("decode failed: {0}")]
    Decode(String),
    /// An engine setting (device, dtype, quantization, backend for this model) cannot be used.
    #[error("{0}")]
    InvalidSetting(String),
    /// A weight could not be quantized, or quantized weights are malformed or inconsistent.
    #[error("quantization: {0}")]
    Quantization(String),
    /// A checkpoint file or directory could not be read or written.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file or directory.
        path: String,
        /// Why.
        message: String,
    },
    /// The backend was not compiled into this build.
    #[error("kaito-backends was built without the `{0}` feature")]
    NotCompiled(&'static str),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for kaito_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::ModelLoad { path, message } => kaito_core::Error::ModelLoad {
                path: path.into(),
                message,
            },
            Error::Constraint(m) => kaito_core::Error::InvalidRequest {
                param: Some("response_format".into()),
                message: m,
            },
            Error::NotCompiled(f) => kaito_core::Error::NotCompiled(f),
            Error::InvalidSetting(m) => kaito_core::Error::spec("engine", m),
            other => kaito_core::Error::Engine(other.to_string()),
        }
    }
}
