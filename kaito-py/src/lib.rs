//! Python bindings for kaito-rs: `import kaito`.
//!
//! This crate is the native half (`kaito._kaito`) of the `kaito` Python package; the Python half
//! (`kaito-py/python/kaito`) adds the OpenAI-shaped response types, iterators and `async`
//! wrappers. Nothing here is Python-free: `kaito-core` stays free of pyo3.
//!
//! | module | holds |
//! |---|---|
//! | [`engine`] | `Engine` (a loaded model: chat template, generate, stream, embed, tokenize) and `Generation` |
//! | [`workspace`] | `Workspace` (parse, validate, render, estimate) |
//! | [`server`] | `Server` (the OpenAI-compatible HTTP server, in-process) |
//! | [`plan`] | model and engine settings from arguments or a Workspace |
//! | [`runtime`] | the shared tokio runtime; blocking with the GIL released; async callbacks |
//! | [`error`] | the one mapping of Rust errors to Python exceptions |
//! | [`logging`] | `tracing` → Python `logging` |

pub mod convert;
pub mod engine;
pub mod error;
pub mod logging;
pub mod plan;
pub mod runtime;
pub mod server;
pub mod workspace;

use pyo3::prelude::*;

/// Parses and validates a KAITO Workspace YAML; returns its name (kept for older callers;
/// prefer `kaito.Workspace.from_yaml`).
#[pyfunction]
fn validate_workspace(py: Python<'_>, yaml: &str) -> PyResult<String> {
    use error::IntoPyResult;
    kaito_core::Workspace::from_yaml(yaml)
        .map(|ws| ws.name().to_owned())
        .py(py)
}

/// The native `kaito._kaito` module.
#[pymodule]
fn _kaito(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "DEFAULT_MODEL",
        kaito_core::model::catalogue::default_preset().name,
    )?;
    m.add_class::<engine::Engine>()?;
    m.add_class::<engine::Generation>()?;
    m.add_class::<workspace::PyWorkspace>()?;
    m.add_class::<server::Server>()?;
    m.add_class::<runtime::Task>()?;
    m.add_function(wrap_pyfunction!(logging::enable_logging, m)?)?;
    m.add_function(wrap_pyfunction!(validate_workspace, m)?)?;
    Ok(())
}
