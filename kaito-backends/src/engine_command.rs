//! What the async side of every engine sends to its engine thread, and the queue entry a
//! generation waits in until a sequence slot is free. Shared by the llama.cpp and torch engines.

use std::time::Instant;

use kaito_core::{GenerateRequest, GenerationSender};
use tokio::sync::oneshot;

use crate::error::Result;

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
