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
            other => kaito_core::Error::Engine(other.to_string()),
        }
    }
}
