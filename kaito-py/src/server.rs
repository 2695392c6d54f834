//! `kaito._kaito.Server`: the OpenAI-compatible HTTP server, running in-process on the shared
//! runtime and serving an already-loaded [`Engine`].

use std::time::Duration;

use kaito_core::infer::{AppState, ServerConfig};
use kaito_core::server::ServerHandle;
use pyo3::prelude::*;

use crate::engine::Engine;
use crate::error::IntoPyResult;
use crate::runtime::wait;

/// A running server. `stop()` (or dropping it: the handle stops accepting connections) shuts it down.
#[pyclass(frozen, module = "kaito._kaito", name = "Server")]
pub struct Server {
    /// Base URL of the OpenAI API, e.g. `http://127.0.0.1:41234/v1`.
    #[pyo3(get)]
    url: String,
    /// The model id clients must name.
    #[pyo3(get)]
    model: String,
    handle: ServerHandle,
}

#[pymethods]
impl Server {
    /// Binds `host:port` (0 = any free port) and serves `engine`'s model until `stop()`.
    #[new]
    #[pyo3(signature = (engine, *, host="127.0.0.1".to_owned(), port=0, api_key=None))]
    fn new(
        py: Python<'_>,
        engine: PyRef<'_, Engine>,
        host: String,
        port: u16,
        api_key: Option<String>,
    ) -> PyResult<Self> {
        let config = ServerConfig {
            api_keys: api_key.into_iter().filter(|k| !k.is_empty()).collect(),
        };
        let model = engine.model.name().to_owned();
        let state = AppState::new(config);
        state.models.insert_shared(engine.model.clone());
        state.set_ready();
        let address = format!("{host}:{port}");
        let handle = wait(py, ServerHandle::start(&address, state))?.py(py)?;
        let local = handle.local_addr();
        let url = format!("http://{local}/v1");
        tracing::info!(%url, model = %model, "serving");
        Ok(Server { url, model, handle })
    }

    /// Stops accepting connections and waits up to `timeout` seconds for in-flight requests.
    #[pyo3(signature = (timeout=10.0))]
    fn stop(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let limit = Duration::from_secs_f64(timeout.max(0.0));
        let finished = wait(py, self.handle.stop(limit))?.py(py)?;
        if !finished {
            tracing::warn!("in-flight requests did not finish before the deadline");
        }
        Ok(())
    }

    /// True until `stop()`.
    #[getter]
    fn running(&self) -> bool {
        self.handle.is_running()
    }

    fn __repr__(&self) -> String {
        format!("Server(url={:?}, model={:?})", self.url, self.model)
    }
}
