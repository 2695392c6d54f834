//! What the async side of every engine sends to its engine thread, and the queue entry a
//! generation waits in until a sequence slot is free. Shared by the llama.cpp and torch engines.

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Instant;

use kaito_core::{GenerateRequest, GenerationSender};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// A request to an engine thread.
pub(crate) enum Command {
    /// Generate for `request`, streaming events to `sender`.
    Generate {
        request: Box<GenerateRequest>,
        sender: GenerationSender,
        enqueued: Instant,
    },
    /// Embed each token list; the answer goes back on `reply`.
    Embed {
        inputs: Vec<Vec<u32>>,
        reply: oneshot::Sender<Result<Vec<Vec<f32>>>>,
    },
    /// Fail every request still running or waiting, free the engine's state and end the thread.
    Shutdown,
}

/// What a request still in an engine gets when the engine shuts down.
pub(crate) const SHUT_DOWN: &str = "the engine was shut down";

/// A backend's hold on its engine thread: the command channel, and the thread to join on
/// [`shutdown`](Self::shutdown) (also on drop), so that the engine's memory is freed when it
/// returns, not at some later moment.
pub(crate) struct EngineThread {
    commands: mpsc::UnboundedSender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl EngineThread {
    /// Starts `run` on a thread named `name`; `run` serves the commands sent here.
    pub(crate) fn spawn(
        name: String,
        commands: mpsc::UnboundedSender<Command>,
        run: impl FnOnce() + Send + 'static,
    ) -> Result<Self> {
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(run)
            .map_err(|e| Error::Context(e.to_string()))?;
        Ok(Self {
            commands,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Sends a command; [`Error::EngineStopped`] once the thread is gone.
    pub(crate) fn send(&self, command: Command) -> Result<()> {
        self.commands
            .send(command)
            .map_err(|_| Error::EngineStopped)
    }

    /// Ends the engine: requests still in it fail, its thread is joined. Idempotent.
    pub(crate) fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
        let thread = self.thread.lock().expect("engine thread lock").take();
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() && thread.join().is_err() {
                tracing::warn!("the engine thread panicked");
            }
        }
    }
}

impl Drop for EngineThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A generation admitted to the queue but not yet to a sequence slot (FCFS).
pub(crate) struct Waiting {
    pub(crate) request: Box<GenerateRequest>,
    pub(crate) sender: GenerationSender,
    pub(crate) enqueued: Instant,
}

/// Length of the common prefix of two token lists (what a cached slot can reuse).
pub(crate) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
