//! The one error type of `kaito-k8s`.

/// Result alias used across `kaito-k8s`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while rendering, estimating or reconciling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object is invalid; `path` names the field (`resource.labelSelector`).
    #[error("{path}: {message}")]
    Invalid {
        /// Dotted field path, prefixed by the object (`Workspace/name: resource.instanceType`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A Kubernetes API call failed.
    #[error("kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    /// A referenced object (ConfigMap, Secret) is missing.
    #[error("{kind} `{name}` not found in namespace `{namespace}`")]
    MissingObject {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// (De)serialization of an object failed.
    #[error("serialization error: {0}")]
    Serialization(#[source] serde_json::Error),
    /// YAML output failed.
    #[error("YAML error: {0}")]
    Yaml(#[source] serde_yaml::Error),
    /// Reading a file or binding a socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Controller configuration is wrong (kubeconfig, TLS files, ports).
    #[error("configuration error: {0}")]
    Config(String),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A stable, low-cardinality label for metrics and Event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "InvalidSpec",
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "Conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 404 => "NotFound",
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "Forbidden",
            Error::Kube(_) => "KubeError",
            Error::MissingObject { kind: "Secret", .. } => "SecretNotFound",
            Error::MissingObject { .. } => "ConfigMapNotFound",
            Error::Serialization(_) | Error::Yaml(_) => "SerializationError",
            Error::Io { .. } => "IoError",
            Error::Config(_) => "ConfigError",
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Serialization(e)
    }
}

impl From<kaito_core::Error> for Error {
    fn from(e: kaito_core::Error) -> Self {
        match e {
            kaito_core::Error::InvalidSpec { path, message } => Error::Invalid { path, message },
            other => Error::Config(other.to_string()),
        }
    }
}
