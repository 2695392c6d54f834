//! `kaito._kaito.Server`: the OpenAI-compatible HTTP server, running in-process on the shared
//! runtime and serving an already-loaded [`Engine`].

use std::sync::Mutex;
use std::time::Duration;

use kaito_core::infer::{AppState, ServerConfig};
use kaito_core::server;
use kaito_core::Error;
use pyo3::prelude::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::error::IntoPyResult;
use crate::runtime::{runtime, wait};

/// A running server. `stop()` (or dropping it) shuts it down.
#[pyclass(frozen, module = "kaito._kaito", name = "Server")]
pub struct Server {
    /// Base URL of the OpenAI API, e.g. `http://127.0.0.1:41234/v1`.
    #[pyo3(get)]
    url: String,
    /// The model id clients must name.
    #[pyo3(get)]
    model: String,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<kaito_core::Result<()>>>>,
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
        let listener = wait(py, async {
            tokio::net::TcpListener::bind(&address)
                .await
                .map_err(|e| Error::io(format!("cannot listen on {address}"), e))
        })?
        .py(py)?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io("no local address", e))
            .py(py)?;
        let (stop, mut stopped) = watch::channel(false);
        let task = runtime().spawn(server::serve(listener, state, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        let url = format!("http://{local}/v1");
        tracing::info!(%url, model = %model, "serving");
        Ok(Server {
            url,
            model,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops accepting connections and waits up to `timeout` seconds for in-flight requests.
    #[pyo3(signature = (timeout=10.0))]
    fn stop(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        self.stop.send_replace(true);
        let task = self.task.lock().map(|mut t| t.take()).unwrap_or(None);
        let Some(task) = task else {
            return Ok(());
        };
        let limit = Duration::from_secs_f64(timeout.max(0.0));
        let outcome = wait(py, async move { tokio::time::timeout(limit, task).await })?;
        match outcome {
            Ok(Ok(result)) => result.py(py),
            Ok(Err(join)) => Err(Error::Engine(format!("server task failed: {join}"))).py(py),
            Err(_) => {
                tracing::warn!("in-flight requests did not finish before the deadline");
                Ok(())
            }
        }
    }

    /// True until `stop()`.
    #[getter]
    fn running(&self) -> bool {
        !*self.stop.borrow()
    }

    fn __repr__(&self) -> String {
        format!("Server(url={:?}, model={:?})", self.url, self.model)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
