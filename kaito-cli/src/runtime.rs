//! From arguments (or a Workspace) to a loaded engine: resolve the model, fetch it, load it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use kaito_core::infer::{AdmissionLimits, LoadedModel, ModelLoader};
use kaito_core::model::catalogue;
use kaito_core::model::fetch::{self, FetchOptions};
use kaito_core::{Backend, BackendKind, EngineConfig, ModelSource, Workspace};

use crate::args::{ModelArgs, PullArgs};

/// What to load.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the weights come from.
    pub source: ModelSource,
    /// Expected sha256 of the weights.
    pub sha256: Option<String>,
    /// API model id.
    pub served_name: String,
    /// Engine settings.
    pub engine: EngineConfig,
    /// Cache directory.
    pub cache_dir: PathBuf,
}

/// Resolves `--model`/`-f` and engine flags (flags override the Workspace).
pub fn plan(args: &ModelArgs, served_name: Option<&str>) -> Result<Plan> {
    let mut engine = EngineConfig::default();
    let mut sha256 = None;
    let mut ws_served_name = None;
    let source = match (&args.model, &args.workspace) {
        (Some(_), Some(_)) => bail!("give either --model or -f WORKSPACE_YAML, not both"),
        (Some(m), None) => ModelSource::parse(m)?,
        (None, Some(path)) => {
            if !path.is_file() {
                bail!("workspace file {} does not exist", path.display());
            }
            let ws = Workspace::from_file(path).with_context(|| format!("{}", path.display()))?;
            let inference = ws
                .inference
                .as_ref()
                .context("this Workspace has no `inference` section; `kaito serve` only serves inference Workspaces")?;
            if let Some(spec) = &inference.engine {
                engine = engine.apply_spec(spec)?;
            }
            if let Some(model) = &inference.model {
                sha256 = model.sha256.clone();
                ws_served_name = model.served_name.clone();
                ModelSource::parse(&model.source)
                    .map_err(|e| anyhow::anyhow!("inference.model.source: {e}"))?
            } else if let Some(preset) = &inference.preset {
                match catalogue::find_preset(&preset.name) {
                    Some(p) => ModelSource::Preset(p),
                    None => bail!(
                        "inference.preset.name: `{}` is not a preset the local runtime serves (GGUF presets: {}); it is a GPU preset for a cluster runtime such as vLLM — set `inference.model.source` to a GGUF file to run locally",
                        preset.name,
                        catalogue::preset_names().join(", ")
                    ),
                }
            } else {
                bail!("inference.template: a custom pod template runs only in a cluster; set `inference.preset` or `inference.model` to serve locally");
            }
        }
        (None, None) => ModelSource::Preset(catalogue::default_preset()),
    };
    if let Some(t) = args.threads {
        engine = engine.with_threads(t);
    }
    if let Some(c) = args.ctx_size {
        if c < 16 {
            bail!("--ctx-size must be at least 16, got {c}");
        }
        engine = engine.with_ctx_size(c);
    }
    if let Some(p) = args.parallel {
        if p == 0 {
            bail!("--parallel must be at least 1");
        }
        engine = engine.with_parallel(p);
    }
    if let Some(q) = args.max_queue {
        engine = engine.with_max_queue(q);
    }
    if args.deterministic {
        engine = engine.with_deterministic(true);
    }
    if let Some(mib) = args.prefix_cache_mib {
        engine = engine.with_prefix_cache_mib(mib);
    }
    if let Some(b) = &args.backend {
        engine.backend = b.parse().map_err(|_| {
            anyhow::anyhow!(
                "--backend: `{b}` is not one of {}",
                BackendKind::NAMES.join(", ")
            )
        })?;
    }
    if let Some(d) = &args.device {
        if !kaito_core::engine::valid_device(d) {
            bail!("--device: `{d}` is not one of cpu, cuda, cuda:N");
        }
        engine.device = Some(d.clone());
    }
    if let Some(d) = &args.dtype {
        if !kaito_core::engine::DTYPE_NAMES.contains(&d.as_str()) {
            bail!(
                "--dtype: `{d}` is not one of {}",
                kaito_core::engine::DTYPE_NAMES.join(", ")
            );
        }
        engine.dtype = Some(d.clone());
    }
    if let Some(q) = &args.quantization {
        if !kaito_core::engine::QUANTIZATION_NAMES.contains(&q.as_str()) {
            bail!(
                "--quantization: `{q}` is not one of {}",
                kaito_core::engine::QUANTIZATION_NAMES.join(", ")
            );
        }
        engine.quantization = Some(q.clone());
    }
    let served_name = served_name
        .map(str::to_owned)
        .or(ws_served_name)
        .unwrap_or_else(|| source.default_served_name());
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(kaito_core::model::default_cache_dir);
    Ok(Plan {
        source,
        sha256,
        served_name,
        engine,
        cache_dir,
    })
}

/// Downloads the weights if needed (with a progress bar) and returns their path.
pub async fn fetch(plan: &Plan) -> Result<PathBuf> {
    let options = FetchOptions {
        cache_dir: plan.cache_dir.clone(),
        progress: true,
        expected_sha256: plan.sha256.clone(),
        ..FetchOptions::default()
    };
    let source = plan.source.clone();
    let path = tokio::task::spawn_blocking(move || fetch::resolve(&source, &options)).await??;
    Ok(path)
}

/// Loads the engine on a blocking thread.
pub async fn load(plan: &Plan, path: PathBuf) -> Result<Arc<dyn Backend>> {
    let served = plan.served_name.clone();
    let engine = plan.engine.clone();
    let backend =
        tokio::task::spawn_blocking(move || kaito_backends::load(&path, &served, &engine))
            .await??;
    Ok(backend)
}

/// Fetches and loads the model; the error keeps its kind where it has one (a download, a model
/// file the engine refuses).
async fn fetch_and_load(plan: &Plan) -> kaito_core::Result<LoadedModel> {
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

/// The plan loads its one model, whatever name the registry asks for.
#[async_trait::async_trait]
impl ModelLoader for Plan {
    async fn load(&self, _name: &str) -> kaito_core::Result<LoadedModel> {
        fetch_and_load(self).await
    }
}

/// `kaito pull`.
pub async fn pull(args: PullArgs) -> Result<()> {
    let model_args = ModelArgs {
        model: args.model,
        workspace: None,
        backend: None,
        device: None,
        dtype: None,
        quantization: None,
        threads: None,
        ctx_size: None,
        parallel: None,
        max_queue: None,
        deterministic: false,
        prefix_cache_mib: None,
        cache_dir: args.cache_dir,
    };
    let plan = plan(&model_args, None)?;
    let path = fetch(&plan).await?;
    println!("{}", path.display());
    Ok(())
}
