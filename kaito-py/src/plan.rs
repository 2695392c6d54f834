//! From Python arguments (or a Workspace) to a loaded engine: which weights, which engine
//! settings, under which name. Mirrors `kaito serve`'s resolution (flags override the Workspace).

use std::path::PathBuf;
use std::sync::Arc;

use kaito_core::infer::{AdmissionLimits, ModelHandle};
use kaito_core::model::catalogue;
use kaito_core::model::fetch::{self, FetchOptions};
use kaito_core::{EngineConfig, Error, ModelSource, Result, Workspace};

/// What the caller asked for; `None` fields take the Workspace's value, then the default.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `PATH.gguf`, `hf:ORG/REPO/FILE.gguf[@REV]` or a preset name; `None` = the Workspace's
    /// model, else the bundled default preset.
    pub model: Option<String>,
    /// A Workspace whose `inference` section names the model and engine settings.
    pub workspace: Option<Workspace>,
    /// Engine name (`llama-cpp`).
    pub backend: Option<String>,
    /// Inference threads.
    pub threads: Option<u32>,
    /// Context window of one sequence.
    pub ctx_size: Option<u32>,
    /// Sequences decoded together.
    pub parallel: Option<u32>,
    /// Requests that may wait beyond `parallel`.
    pub max_queue: Option<u32>,
    /// Model cache directory.
    pub cache_dir: Option<PathBuf>,
    /// The model id reported in responses (and served by `kaito.serve`).
    pub served_name: Option<String>,
    /// Batch-invariant decoding; `None` = on (see [`Plan::resolve`]).
    pub deterministic: Option<bool>,
}

/// A resolved load plan.
#[derive(Debug, Clone)]
pub struct Plan {
    source: ModelSource,
    sha256: Option<String>,
    /// The API model id.
    pub served_name: String,
    /// Engine settings.
    pub engine: EngineConfig,
    cache_dir: PathBuf,
}

fn workspace_source(
    ws: &Workspace,
    plan_engine: &mut EngineConfig,
) -> Result<(ModelSource, Option<String>, Option<String>)> {
    let inference = ws.inference.as_ref().ok_or_else(|| {
        Error::spec(
            "inference",
            "this Workspace has no `inference` section; only inference Workspaces can be served",
        )
    })?;
    if let Some(spec) = &inference.engine {
        *plan_engine = plan_engine.clone().apply_spec(spec)?;
    }
    if let Some(model) = &inference.model {
        let source = ModelSource::parse(&model.source).map_err(|e| match e {
            Error::InvalidSpec { message, .. } => Error::spec("inference.model.source", message),
            other => other,
        })?;
        return Ok((source, model.sha256.clone(), model.served_name.clone()));
    }
    if let Some(preset) = &inference.preset {
        return match catalogue::find_preset(&preset.name) {
            Some(p) => Ok((ModelSource::Preset(p), None, None)),
            None => Err(Error::spec(
                "inference.preset.name",
                format!(
                    "`{}` is not a preset the local runtime serves (GGUF presets: {}); set `inference.model.source` to a GGUF file to run it locally",
                    preset.name,
                    catalogue::preset_names().join(", ")
                ),
            )),
        };
    }
    Err(Error::spec(
        "inference.template",
        "a custom pod template runs only in a cluster; set `inference.preset` or `inference.model` to run locally",
    ))
}

impl Plan {
    /// Resolves `options` without touching the network or loading anything.
    pub fn resolve(options: &LoadOptions) -> Result<Plan> {
        let mut engine = EngineConfig::default();
        let (mut source, mut sha256, mut ws_name) = (None, None, None);
        if let Some(ws) = &options.workspace {
            let (s, sha, name) = workspace_source(ws, &mut engine)?;
            source = Some(s);
            sha256 = sha;
            ws_name = name;
        }
        if let Some(model) = &options.model {
            source = Some(ModelSource::parse(model)?);
            sha256 = None;
        }
        let source = source.unwrap_or_else(|| ModelSource::Preset(catalogue::default_preset()));
        if let Some(b) = &options.backend {
            engine.backend = b.parse()?;
        }
        if let Some(t) = options.threads {
            if t == 0 {
                return Err(Error::request("threads", "`threads` must be at least 1"));
            }
            engine = engine.with_threads(t);
        }
        if let Some(c) = options.ctx_size {
            if c < 16 {
                return Err(Error::request(
                    "ctx_size",
                    format!("`ctx_size` must be at least 16, got {c}"),
                ));
            }
            engine = engine.with_ctx_size(c);
        }
        if let Some(p) = options.parallel {
            if p == 0 {
                return Err(Error::request("parallel", "`parallel` must be at least 1"));
            }
            engine = engine.with_parallel(p);
        }
        if let Some(q) = options.max_queue {
            engine = engine.with_max_queue(q);
        }
        // In-process use (notebooks, test suites) wants reproducible text more than batch throughput:
        // by default the Python `LLM` runs batch-invariant, so a prompt's greedy answer does not
        // depend on what runs beside it or on cached prefixes. `deterministic=False` gives the
        // batching and prefix reuse `kaito serve` defaults to.
        engine = engine.with_deterministic(options.deterministic.unwrap_or(true));
        let served_name = options
            .served_name
            .clone()
            .or(ws_name)
            .unwrap_or_else(|| source.default_served_name());
        let cache_dir = options
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

    /// Fetches the weights if needed, loads the engine and warms it up (one real token).
    pub async fn load(self) -> Result<Arc<ModelHandle>> {
        let options = FetchOptions {
            cache_dir: self.cache_dir.clone(),
            progress: false,
            expected_sha256: self.sha256.clone(),
            ..FetchOptions::default()
        };
        let source = self.source.clone();
        tracing::info!(model = %self.served_name, "resolving model weights");
        let path = tokio::task::spawn_blocking(move || fetch::resolve(&source, &options))
            .await
            .map_err(|e| Error::Engine(format!("model fetch task failed: {e}")))??;
        let served = self.served_name.clone();
        let engine = self.engine.clone();
        tracing::info!(path = %path.display(), "loading model");
        let backend =
            tokio::task::spawn_blocking(move || kaito_backends::load(&path, &served, &engine))
                .await
                .map_err(|e| Error::Engine(format!("model load task failed: {e}")))??;
        let model = Arc::new(ModelHandle::new(
            self.served_name.clone(),
            backend,
            AdmissionLimits::from(&self.engine),
        )?);
        kaito_core::infer::warm_up_model(&model).await?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(inference: &str) -> Workspace {
        Workspace::from_yaml(&format!(
            "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {{name: w}}\ninference:\n{inference}"
        ))
        .unwrap()
    }

    #[test]
    fn no_arguments_mean_the_bundled_default_preset() {
        let plan = Plan::resolve(&LoadOptions::default()).unwrap();
        assert_eq!(plan.served_name, catalogue::default_preset().name);
        assert_eq!(
            plan.engine,
            EngineConfig::default().with_deterministic(true)
        );
    }

    #[test]
    fn deterministic_false_gives_serve_s_batching_back() {
        let options = LoadOptions {
            deterministic: Some(false),
            ..LoadOptions::default()
        };
        let plan = Plan::resolve(&options).unwrap();
        assert_eq!(plan.engine, EngineConfig::default());
        assert!(!plan.engine.deterministic);
    }

    #[test]
    fn arguments_override_the_workspace_engine() {
        let ws = workspace(
            "  preset: {name: smollm2-135m-instruct}\n  engine: {threads: 3, parallel: 2, ctxSize: 128, prefixCacheMib: 0}\n",
        );
        let plan = Plan::resolve(&LoadOptions {
            workspace: Some(ws),
            threads: Some(1),
            ..LoadOptions::default()
        })
        .unwrap();
        assert_eq!(plan.engine.threads, 1);
        assert_eq!(plan.engine.parallel, 2);
        assert_eq!(plan.engine.ctx_size, Some(128));
        assert_eq!(plan.engine.prefix_cache_mib, 0);
    }

    #[test]
    fn gpu_presets_cannot_run_locally() {
        let gpu = workspace("  preset: {name: phi-4-mini-instruct}\n");
        let err = Plan::resolve(&LoadOptions {
            workspace: Some(gpu),
            ..LoadOptions::default()
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidSpec { path, .. } if path == "inference.preset.name"),
            "{err}"
        );
    }

    #[test]
    fn bad_engine_arguments_name_the_argument() {
        for (options, field) in [
            (
                LoadOptions {
                    ctx_size: Some(8),
                    ..LoadOptions::default()
                },
                "ctx_size",
            ),
            (
                LoadOptions {
                    threads: Some(0),
                    ..LoadOptions::default()
                },
                "threads",
            ),
            (
                LoadOptions {
                    parallel: Some(0),
                    ..LoadOptions::default()
                },
                "parallel",
            ),
        ] {
            let err = Plan::resolve(&options).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
        let err = Plan::resolve(&LoadOptions {
            backend: Some("vllm".into()),
            ..LoadOptions::default()
        })
        .unwrap_err();
        assert_eq!(err.metric_label(), "invalid_spec");
    }
}
