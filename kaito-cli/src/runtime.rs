//! From arguments (or a Workspace) to a loaded engine: resolve the model, fetch it, load it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use kaito_core::infer::{AdmissionLimits, LoadedModel, ModelLoader};
use kaito_core::model::plan::{LoadOptions, LoadPlan};
use kaito_core::Backend;

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

/// Downloads the weights if needed (with a progress bar) and returns their path.
pub async fn fetch(plan: &LoadPlan) -> Result<PathBuf> {
    let plan = plan.clone();
    let path = tokio::task::spawn_blocking(move || plan.fetch(true)).await??;
    Ok(path)
}

/// Loads the engine on a blocking thread.
pub async fn load(plan: &LoadPlan, path: PathBuf) -> Result<Arc<dyn Backend>> {
    let served = plan.served_name.clone();
    let engine = plan.engine.clone();
    let backend =
        tokio::task::spawn_blocking(move || kaito_backends::load(&path, &served, &engine))
            .await??;
    Ok(backend)
}

/// Fetches and loads the model; the error keeps its kind where it has one (a download, a model
/// file the engine refuses).
async fn fetch_and_load(plan: &LoadPlan) -> kaito_core::Result<LoadedModel> {
    let loaded = async {
        let path = fetch(plan).await?;
        load(plan, path).await
    };
    match loaded.await {
        Ok(backend) => Ok(LoadedModel {
            backend,
            limits: AdmissionLimits::from(&plan.engine),
        }),
        Err(e) => Err(match e.downcast::<kaito_core::Error>() {
            Ok(e) => e,
            Err(e) => match e.downcast::<kaito_backends::Error>() {
                Ok(e) => e.into(),
                Err(e) => kaito_core::Error::Engine(format!("{e:#}")),
            },
        }),
    }
}

/// Loads the plan's one model, whatever name the registry asks for.
pub struct PlanLoader<'a>(pub &'a LoadPlan);

#[async_trait::async_trait]
impl ModelLoader for PlanLoader<'_> {
    async fn load(&self, _name: &str) -> kaito_core::Result<LoadedModel> {
        fetch_and_load(self.0).await
    }
}

/// `kaito pull`: fetches the model into the cache and prints its path.
pub async fn pull(options: LoadOptions) -> Result<()> {
    let plan = plan(&options)?;
    let path = fetch(&plan).await?;
    println!("{}", path.display());
    Ok(())
}
