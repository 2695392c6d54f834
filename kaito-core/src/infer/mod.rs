//! Running requests on loaded engines, without an HTTP server: the state every front end shares
//! (the [`ModelRegistry`] of served models, each with its chat template, admission control and
//! metrics; readiness) and the generation of a request's choices into text deltas. The OpenAI
//! server (feature `server`), the Python bindings and the CLI's chat all go through it.

pub mod generation;
pub mod registry;
mod state;

use std::time::Duration;

use futures::StreamExt;

pub use registry::{
    Admission, AdmissionLimits, LoadedModel, ModelHandle, ModelLease, ModelLoader, ModelRegistry,
    ModelSlot,
};
pub use state::{unix_now, AppState, ServerConfig};

use crate::backend::{GenerateRequest, GenerationEvent};
use crate::error::{Error, Result};

/// Generates one real token with every ready model, then marks the server ready.
pub async fn warm_up(state: &AppState) -> Result<()> {
    for model in state.models.ready() {
        warm_up_model(&model).await?;
    }
    state.set_ready();
    Ok(())
}

/// Generates one real token with `model`'s engine.
pub async fn warm_up_model(model: &ModelHandle) -> Result<()> {
    let backend = model.backend();
    let prompt = backend.tokenize("Hello", true, false)?;
    let mut stream = backend.generate(GenerateRequest::new("warm-up", prompt, 1))?;
    let deadline = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(event) = stream.next().await {
            match event? {
                GenerationEvent::Token(_) | GenerationEvent::Finished { .. } => return Ok(()),
                GenerationEvent::Started { .. } => {}
            }
        }
        Err(Error::Engine("warm-up produced no token".into()))
    });
    deadline
        .await
        .map_err(|_| Error::Engine("warm-up timed out".into()))??;
    Ok(())
}
