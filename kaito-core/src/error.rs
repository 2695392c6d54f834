//! The one error type of `kaito-core`.

use std::path::PathBuf;

/// Result alias used across `kaito-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside `kaito-core` and the engines behind its [`crate::Backend`] trait.
/// New kinds will come (registries, model stores): match with a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Workspace (or other spec) failed to parse or validate; `path` names the field (`inference.preset.name`).
    #[error("invalid spec at `{path}`: {message}")]
    InvalidSpec {
        /// Dotted path of the offending field; `.` for the document itself.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A request parameter is out of range or malformed.
    #[error("{message}")]
    InvalidRequest {
        /// The request field at fault (OpenAI's `param`).
        param: Option<String>,
        /// What is wrong with it.
        message: String,
    },
    /// The prompt plus the requested completion do not fit the context window.
    #[error("This model's maximum context length is {context} tokens. However, you requested {requested} tokens ({prompt} in the prompt, {completion} for the completion). Please reduce the length of the prompt or max_tokens.")]
    ContextOverflow {
        /// Context window of one sequence.
        context: u32,
        /// Prompt plus completion tokens.
        requested: u32,
        /// Prompt tokens.
        prompt: u32,
        /// Requested completion tokens.
        completion: u32,
    },
    /// No model with that name is known (not a file, not an `hf:` reference, not a catalogue preset).
    #[error("model `{name}` not found: give a GGUF file path, `hf:ORG/REPO/FILE.gguf`, or a preset name ({})", .presets.join(", "))]
    ModelNotFound {
        /// The name given.
        name: String,
        /// The preset names this build knows.
        presets: Vec<String>,
    },
    /// A request named a model this process does not serve.
    #[error("The model `{requested}` does not exist. {}", served_list(.served))]
    UnknownModel {
        /// The name the request gave.
        requested: String,
        /// The names served, in order.
        served: Vec<String>,
    },
    /// A model file could not be read or is not a valid model.
    #[error("cannot load model `{path}`: {message}")]
    ModelLoad {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Downloading a model failed.
    #[error("download of {url} failed: {message}")]
    Download {
        /// What was fetched.
        url: String,
        /// Why it failed.
        message: String,
    },
    /// The engine has more requests than its queue holds.
    #[error("server overloaded: {running} requests running and {waiting} waiting; retry later")]
    Overloaded {
        /// Requests being generated.
        running: usize,
        /// Requests waiting for a slot.
        waiting: usize,
    },
    /// The model is still loading.
    #[error("the model is still loading; retry shortly")]
    NotReady,
    /// The request was cancelled (client went away or the server is shutting down).
    #[error("request cancelled")]
    Cancelled,
    /// The engine does not support this operation (e.g. embeddings on a backend without them).
    #[error("{0} is not supported by this backend")]
    Unsupported(String),
    /// The backend was built without the feature this needs.
    #[error("kaito was built without the `{0}` feature")]
    NotCompiled(&'static str),
    /// The chat template could not be rendered.
    #[error("chat template error: {0}")]
    Template(String),
    /// The engine failed while generating.
    #[error("engine error: {0}")]
    Engine(String),
    /// File system or socket error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn served_list(served: &[String]) -> String {
    if served.is_empty() {
        return "This server serves no model yet.".to_owned();
    }
    let names: Vec<String> = served.iter().map(|n| format!("`{n}`")).collect();
    format!("This server serves {}.", names.join(", "))
}

impl Error {
    /// Shorthand for [`Error::InvalidSpec`].
    pub fn spec(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidSpec {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::InvalidRequest`].
    pub fn request(param: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidRequest {
            param: Some(param.into()),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A stable, low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec { .. } => "invalid_spec",
            Error::InvalidRequest { .. } => "invalid_request",
            Error::ContextOverflow { .. } => "context_overflow",
            Error::ModelNotFound { .. } | Error::UnknownModel { .. } => "model_not_found",
            Error::ModelLoad { .. } => "model_load",
            Error::Download { .. } => "download",
            Error::Overloaded { .. } => "overloaded",
            Error::NotReady => "not_ready",
            Error::Cancelled => "cancelled",
            Error::Unsupported(_) => "unsupported",
            Error::NotCompiled(_) => "not_compiled",
            Error::Template(_) => "template",
            Error::Engine(_) => "engine",
            Error::Io { .. } => "io",
        }
    }
}
