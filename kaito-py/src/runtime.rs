//! The one tokio runtime every binding shares, and blocking on it from Python.
//!
//! Blocking calls release the GIL (so other Python threads run) and wake every 100 ms to let
//! Python handle signals: Ctrl-C raises `KeyboardInterrupt` in the main thread and drops the
//! future, which cancels the generation behind it.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use tokio::runtime::Runtime;

/// How often a blocked call checks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// The process-wide runtime (two worker threads; engines run on their own threads).
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kaito-py")
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    })
}

/// Runs `future` to completion on the shared runtime with the GIL released.
///
/// Returns `Err(KeyboardInterrupt)` (or whatever a signal handler raised) if a signal arrives
/// first; the future is then dropped, cancelling its work.
pub fn wait<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    py.detach(|| {
        // Timers need the runtime's context even while created outside `block_on`.
        let _context = runtime().enter();
        let mut future = std::pin::pin!(future);
        loop {
            let step = runtime().block_on(tokio::time::timeout(SIGNAL_POLL, &mut future));
            match step {
                Ok(output) => return Ok(output),
                Err(_elapsed) => Python::attach(|py| py.check_signals())?,
            }
        }
    })
}

/// Runs `future` on the runtime and calls `callback(ok, value)` with its outcome, holding the
/// GIL only for the call. The Python side turns this into an `asyncio` future with
/// `loop.call_soon_threadsafe`.
///
/// The returned [`Task`] cancels the work (the Python side calls it when the awaiting
/// coroutine is cancelled); the callback is then never called.
pub fn spawn_with_callback<F, T>(future: F, callback: Py<PyAny>) -> Task
where
    F: Future<Output = Result<T, kaito_core::Error>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let handle = runtime().spawn(async move {
        let outcome = future.await;
        Python::attach(|py| {
            let result = match outcome {
                Ok(value) => value
                    .into_py_any(py)
                    .and_then(|v| callback.call1(py, (true, v))),
                Err(e) => {
                    let exception = crate::error::to_py(py, e).into_value(py);
                    callback.call1(py, (false, exception))
                }
            };
            if let Err(e) = result {
                e.write_unraisable(py, None);
            }
        });
    });
    Task {
        handle: handle.abort_handle(),
    }
}

/// Work running on the shared runtime for an `await`.
#[pyclass(frozen, module = "kaito._kaito", name = "Task")]
pub struct Task {
    handle: tokio::task::AbortHandle,
}

#[pymethods]
impl Task {
    /// Cancels the work; dropping it cancels the generation behind it and frees its slot.
    fn cancel(&self) {
        self.handle.abort();
    }
}
