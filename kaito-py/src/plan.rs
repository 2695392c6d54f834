//! From Python arguments (or a Workspace) to a loaded engine, through the resolution every front
//! end shares ([`LoadPlan::resolve`]: arguments override the Workspace, which overrides the
//! defaults); only the defaults of in-process use differ from `kaito serve`'s.

use std::sync::Arc;

use kaito_core::infer::{AdmissionLimits, ModelHandle};
use kaito_core::model::plan::{LoadOptions, LoadPlan};
use kaito_core::{Error, Result};

/// In-process use (notebooks, test suites) wants reproducible text more than batch throughput:
/// unless the caller says otherwise, the Python `LLM` runs batch-invariant, so a prompt's greedy
/// answer does not depend on what runs beside it or on cached prefixes. `deterministic=False`
/// gives the batching and prefix reuse `kaito serve` defaults to.
pub fn resolve(mut options: LoadOptions) -> Result<LoadPlan> {
    options.deterministic = Some(options.deterministic.unwrap_or(true));
    LoadPlan::resolve(&options)
}

/// Fetches the weights if needed, loads the engine and warms it up (one real token).
pub async fn load(plan: LoadPlan) -> Result<Arc<ModelHandle>> {
    tracing::info!(model = %plan.served_name, "resolving model weights");
    let fetching = plan.clone();
    let weights = tokio::task::spawn_blocking(move || fetching.fetch(false))
        .await
        .map_err(|e| Error::Engine(format!("model fetch task failed: {e}")))??;
    let path = weights.primary.clone();
    let served = plan.served_name.clone();
    let engine = plan.engine.clone();
    tracing::info!(path = %path.display(), "loading model");
    let backend =
        tokio::task::spawn_blocking(move || kaito_backends::load(&path, &served, &engine))
            .await
            .map_err(|e| Error::Engine(format!("model load task failed: {e}")))??;
    let model = Arc::new(
        ModelHandle::new(
            plan.served_name.clone(),
            backend,
            AdmissionLimits::from(&plan.engine),
        )?
        .holding(weights.hold),
    );
    kaito_core::infer::warm_up_model(&model).await?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaito_core::EngineConfig;

    #[test]
    fn python_decodes_batch_invariant_unless_told_otherwise() {
        let plan = resolve(LoadOptions::default()).unwrap();
        assert_eq!(
            plan.engine,
            EngineConfig::default().with_deterministic(true)
        );
        let plan = resolve(LoadOptions {
            deterministic: Some(false),
            ..LoadOptions::default()
        })
        .unwrap();
        assert_eq!(plan.engine, EngineConfig::default());
    }
}
