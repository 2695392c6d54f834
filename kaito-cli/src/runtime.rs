//! From arguments (or a Workspace) to a loaded engine: resolve the model, fetch it, load it.

use anyhow::Result;
use kaito_core::infer::{AdmissionLimits, LoadedModel, ModelLoader};
use kaito_core::model::plan::{LoadOptions, LoadPlan};
use kaito_core::model::store::StoredModel;

/// Resolves the flags' load options (flags override the Workspace) with the one resolution every
/// front end uses ([`LoadPlan::resolve`]); errors name the flag.
pub fn plan(options: &LoadOptions) -> Result<LoadPlan> {
    LoadPlan::resolve(options).map_err(|e| anyhow::anyhow!(flag_error(e)))
}

/// The plan's errors name options as Python keywords (`` `ctx_size` ``); here they are flags
/// (`--ctx-size`).
fn flag_error(e: kaito_core::Error) -> String {
    let flag = |name: &str| format!("--{}", name.replace('_', "-"));
    match &e {
        kaito_core::Error::InvalidRequest {
            param: Some(param),
            message,
        } => message.replace(&format!("`{param}`"), &flag(param)),
        kaito_core::Error::InvalidSpec { path, message } if path == "backend" => {
            format!("{}: {message}", flag(path))
        }
        _ => e.to_string(),
    }
}

/// Downloads the weights if needed (with a progress bar) on a blocking thread and returns them,
/// held in the model store.
pub async fn fetch(plan: &LoadPlan) -> kaito_core::Result<StoredModel> {
    let plan = plan.clone();
    tokio::task::spawn_blocking(move || plan.fetch(true))
        .await
        .map_err(|e| kaito_core::Error::Engine(format!("model fetch task failed: {e}")))?
}

/// Fetches the model, then loads its engine on a blocking thread.
async fn fetch_and_load(plan: &LoadPlan) -> kaito_core::Result<LoadedModel> {
    let weights = fetch(plan).await?;
    let path = weights.primary.clone();
    let served = plan.served_name.clone();
    let engine = plan.engine.clone();
    let backend =
        tokio::task::spawn_blocking(move || kaito_backends::load(&path, &served, &engine))
            .await
            .map_err(|e| kaito_core::Error::Engine(format!("model load task failed: {e}")))??;
    Ok(LoadedModel {
        backend,
        limits: AdmissionLimits::from(&plan.engine),
        weights: weights.hold,
    })
}

/// Loads the plan's one model, whatever name the registry asks for.
pub struct PlanLoader<'a>(pub &'a LoadPlan);

#[async_trait::async_trait]
impl ModelLoader for PlanLoader<'_> {
    async fn load(&self, _name: &str) -> kaito_core::Result<LoadedModel> {
        fetch_and_load(self.0).await
    }
}

/// `kaito pull`: fetches the model into the cache and prints its path; with `hold`, keeps the
/// model held (safe from eviction) until SIGTERM or Ctrl-C.
pub async fn pull(options: LoadOptions, hold: bool) -> Result<()> {
    let plan = plan(&options)?;
    let weights = fetch(&plan).await?;
    println!("{}", weights.primary.display());
    if hold {
        tracing::info!(model = %plan.served_name, "holding the model until SIGTERM or Ctrl-C");
        crate::signal::shutdown().await;
        drop(weights);
    }
    Ok(())
}
