//! A running server: bound, serving in the background on the current tokio runtime, stopped
//! gracefully. The one start-up path of `kaito serve`, Python's `kaito.serve` and embedders.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::infer::AppState;

/// A server started with [`ServerHandle::start`]. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<Result<()>>>>,
}

impl ServerHandle {
    /// Binds `address` (`HOST:PORT`; port 0 = any free port) and serves `state` in a task of the
    /// current tokio runtime. A port in use fails here, naming the address.
    pub async fn start(address: &str, state: Arc<AppState>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| Error::io(format!("cannot listen on {address}"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("no local address", e))?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(super::serve(listener, state, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Ok(Self {
            addr,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// True until [`stop`](Self::stop).
    pub fn is_running(&self) -> bool {
        !*self.stop.borrow()
    }

    /// Stops accepting connections and waits up to `grace` for the requests in flight. `Ok(true)`
    /// when they all finished in time, `Ok(false)` when the deadline came first (they are then
    /// dropped with the runtime). A second call returns at once.
    pub async fn stop(&self, grace: Duration) -> Result<bool> {
        self.stop.send_replace(true);
        let task = self.task.lock().expect("server task lock").take();
        let Some(task) = task else {
            return Ok(true);
        };
        match tokio::time::timeout(grace, task).await {
            Ok(Ok(result)) => result.map(|()| true),
            Ok(Err(join)) => Err(Error::Engine(format!("server task failed: {join}"))),
            Err(_) => Ok(false),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
