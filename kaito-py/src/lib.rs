//! Python bindings for kaito-rs: `import kaito`.
//!
//! For now: the version and Workspace validation; the full API (LLM, serve, render) comes with the
//! Python-bindings issue.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Parses and validates a KAITO Workspace YAML; returns its name. Raises `ValueError` naming the field.
#[pyfunction]
fn validate_workspace(yaml: &str) -> PyResult<String> {
    kaito_core::Workspace::from_yaml(yaml)
        .map(|ws| ws.name().to_owned())
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The `kaito` Python module.
#[pymodule]
fn kaito(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(validate_workspace, m)?)?;
    Ok(())
}
