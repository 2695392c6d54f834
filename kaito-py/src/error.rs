//! The one place where Rust errors become Python exceptions.
//!
//! The exception classes live in `kaito/errors.py` (so they can also derive from `ValueError`,
//! `LookupError`, ...); this module picks the class for each [`kaito_core::Error`] variant and
//! attaches the variant's stable `kind` label.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Python exception classes, by name, from `kaito.errors`.
fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = MODULE.get_or_try_init(py, || py.import("kaito.errors").map(|m| m.unbind()))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// Builds an instance of `kaito.errors.<name>` with `message` and a `kind` attribute.
fn raise(py: Python<'_>, name: &str, kind: &str, message: String) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let instance = class(py, name)?.call1((message.clone(),))?;
        instance.setattr("kind", kind)?;
        Ok(PyErr::from_value(instance))
    };
    build().unwrap_or_else(|e| PyRuntimeError::new_err(format!("{message} (and {e})")))
}

/// Maps a `kaito-core` error to its Python exception.
pub fn to_py(py: Python<'_>, error: kaito_core::Error) -> PyErr {
    use kaito_core::Error as E;
    let class = match &error {
        E::InvalidSpec { .. } => "InvalidSpecError",
        E::InvalidRequest { .. } | E::ContextOverflow { .. } | E::Template(_) => {
            "InvalidRequestError"
        }
        E::ModelNotFound { .. } => "ModelNotFoundError",
        E::ModelLoad { .. } | E::Download { .. } | E::NotCompiled(_) => "ModelLoadError",
        E::Overloaded { .. } => "OverloadedError",
        E::NotReady | E::Cancelled | E::Unsupported(_) | E::Engine(_) => "GenerationError",
        _ => "KaitoError",
    };
    raise(py, class, error.metric_label(), error.to_string())
}

/// Maps the problem lines of `kaito-k8s`'s file-level render/estimate/validate to
/// `InvalidSpecError` (one line per problem).
pub fn spec_problems(py: Python<'_>, problems: Vec<String>) -> PyErr {
    raise(py, "InvalidSpecError", "invalid_spec", problems.join("\n"))
}

/// Wraps `kaito_core::Result` conversion for `?` inside `#[pymethods]`.
pub trait IntoPyResult<T> {
    /// Converts the error with [`to_py`].
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for kaito_core::Result<T> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
