//! From what a caller asked for to what to load: which weights, which engine settings, under which
//! name. The one resolution behind `kaito serve`/`chat`/`generate`, Python's `kaito.LLM` and
//! `kaito.serve`: explicit options override the Workspace's `inference` section, which overrides
//! the defaults. Resolving touches neither the network nor an engine; [`LoadPlan::fetch`] (feature
//! `fetch`) brings the weights into the cache, and the caller's engine crate loads them.

use std::path::PathBuf;

use super::catalogue;
use super::ModelSource;
use crate::engine::{self, BackendKind, EngineConfig};
use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// What the caller asked for; `None` fields take the Workspace's value, then the default.
///
/// Errors name the option as a Python keyword (`` `ctx_size` must be at least 16``, param
/// `ctx_size`) or, for what came from the Workspace, its field path; front ends with other
/// spellings (the CLI's `--ctx-size`) rewrite the name.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `PATH`, `hf:ORG/REPO/FILE.gguf[@REV]` or a preset name; `None` = the Workspace's model, else
    /// the bundled default preset.
    pub model: Option<String>,
    /// A Workspace whose `inference` section names the model and engine settings.
    pub workspace: Option<Workspace>,
    /// The model id served (and reported in responses).
    pub served_name: Option<String>,
    /// Model cache directory; `None` = [`super::default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Most the model store may hold, in GiB: after a fetch, the least recently used models no
    /// process holds are evicted until it fits; a model larger than the limit is refused.
    pub cache_max_gib: Option<f64>,
    /// Read-only model stores searched before the network ([`super::fetch::FetchOptions::cache_tiers`]).
    pub cache_tiers: Vec<PathBuf>,
    /// Engine name (`auto`, `llama-cpp`, `torch`, `quant`).
    pub backend: Option<String>,
    /// Inference threads.
    pub threads: Option<u32>,
    /// Context window of one sequence.
    pub ctx_size: Option<u32>,
    /// Sequences decoded together.
    pub parallel: Option<u32>,
    /// Requests that may wait beyond `parallel`.
    pub max_queue: Option<u32>,
    /// Batch-invariant decoding.
    pub deterministic: Option<bool>,
    /// Host memory for the prefix cache, MiB.
    pub prefix_cache_mib: Option<u32>,
    /// Device of the torch engines (`cpu`, `cuda`, `cuda:N`).
    pub device: Option<String>,
    /// Compute dtype of the torch engines.
    pub dtype: Option<String>,
    /// Weight-only quantization of the quant engine.
    pub quantization: Option<String>,
}

/// A resolved load plan.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Where the weights come from.
    pub source: ModelSource,
    /// Expected sha256 of the weights (from the Workspace).
    pub sha256: Option<String>,
    /// The API model id.
    pub served_name: String,
    /// Engine settings.
    pub engine: EngineConfig,
    /// Model cache directory.
    pub cache_dir: PathBuf,
    /// The store's size limit in bytes ([`LoadOptions::cache_max_gib`]).
    pub cache_max_bytes: Option<u64>,
    /// Read-only model stores searched before the network.
    pub cache_tiers: Vec<PathBuf>,
}

/// The model source, sha256 and served name a Workspace's `inference` section names; applies its
/// engine settings to `engine`.
fn workspace_model(
    ws: &Workspace,
    engine: &mut EngineConfig,
) -> Result<(ModelSource, Option<String>, Option<String>)> {
    let inference = ws.inference.as_ref().ok_or_else(|| {
        Error::spec(
            "inference",
            "this Workspace has no `inference` section; only inference Workspaces can be served",
        )
    })?;
    if let Some(spec) = &inference.engine {
        *engine = spec.apply_to(engine.clone())?;
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
                    "`{}` is not a preset the local runtime serves (GGUF presets: {}); it is a GPU preset for a cluster runtime such as vLLM — set `inference.model.source` to a GGUF file to run it locally",
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

/// `value` when it is one of `names`, else an error naming the option.
fn one_of(param: &str, value: &str, names: &[&str]) -> Result<String> {
    if names.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(Error::request(
            param,
            format!("`{param}`: `{value}` is not one of {}", names.join(", ")),
        ))
    }
}

fn at_least(param: &str, value: u32, min: u32) -> Result<u32> {
    if value >= min {
        Ok(value)
    } else {
        Err(Error::request(
            param,
            format!("`{param}` must be at least {min}, got {value}"),
        ))
    }
}

impl LoadPlan {
    /// Resolves `options` without touching the network or loading anything.
    pub fn resolve(options: &LoadOptions) -> Result<LoadPlan> {
        let mut engine = EngineConfig::default();
        let (mut source, mut sha256, mut ws_name) = (None, None, None);
        if let Some(ws) = &options.workspace {
            let (s, sha, name) = workspace_model(ws, &mut engine)?;
            source = Some(s);
            sha256 = sha;
            ws_name = name;
        }
        if let Some(model) = &options.model {
            source = Some(ModelSource::parse(model)?);
            sha256 = None;
        }
        let source = source.unwrap_or_else(|| ModelSource::Preset(catalogue::default_preset()));
        source.check_local()?;
        if let Some(b) = &options.backend {
            engine.backend = b.parse::<BackendKind>()?;
        }
        if let Some(t) = options.threads {
            engine = engine.with_threads(at_least("threads", t, 1)?);
        }
        if let Some(c) = options.ctx_size {
            engine = engine.with_ctx_size(at_least("ctx_size", c, 16)?);
        }
        if let Some(p) = options.parallel {
            engine = engine.with_parallel(at_least("parallel", p, 1)?);
        }
        if let Some(q) = options.max_queue {
            engine = engine.with_max_queue(q);
        }
        if let Some(on) = options.deterministic {
            engine = engine.with_deterministic(on);
        }
        if let Some(mib) = options.prefix_cache_mib {
            if mib > engine::MAX_PREFIX_CACHE_MIB {
                return Err(Error::request(
                    "prefix_cache_mib",
                    format!(
                        "`prefix_cache_mib` must be at most {}, got {mib}",
                        engine::MAX_PREFIX_CACHE_MIB
                    ),
                ));
            }
            engine = engine.with_prefix_cache_mib(mib);
        }
        if let Some(d) = &options.device {
            if !engine::valid_device(d) {
                return Err(Error::request(
                    "device",
                    format!("`device`: `{d}` is not one of cpu, cuda, cuda:N"),
                ));
            }
            engine.device = Some(d.clone());
        }
        if let Some(d) = &options.dtype {
            engine.dtype = Some(one_of("dtype", d, engine::DTYPE_NAMES)?);
        }
        if let Some(q) = &options.quantization {
            engine.quantization = Some(one_of("quantization", q, engine::QUANTIZATION_NAMES)?);
        }
        let served_name = options
            .served_name
            .clone()
            .or(ws_name)
            .unwrap_or_else(|| source.default_served_name());
        let cache_dir = options
            .cache_dir
            .clone()
            .unwrap_or_else(super::default_cache_dir);
        // The Workspace's `inference.model.cacheMaxGiB` unless the caller set a limit.
        let cache_max_gib = options.cache_max_gib.or_else(|| {
            let inference = options.workspace.as_ref()?.inference.as_ref()?;
            inference.model.as_ref()?.cache_max_gib
        });
        let cache_max_bytes = match cache_max_gib {
            None => None,
            Some(gib) if gib.is_finite() && gib > 0.0 => Some((gib * GIB) as u64),
            Some(gib) => {
                return Err(Error::request(
                    "cache_max_gib",
                    format!("`cache_max_gib` must be a positive number of GiB, got {gib}"),
                ))
            }
        };
        Ok(LoadPlan {
            source,
            sha256,
            served_name,
            engine,
            cache_dir,
            cache_max_bytes,
            cache_tiers: options.cache_tiers.clone(),
        })
    }

    /// Brings the weights into the model store if they are not there (checking the Workspace's
    /// sha256) and returns them, held against eviction while the result (or its
    /// [`hold`](super::store::StoredModel::hold)) lives. Blocking: call it from a blocking thread.
    #[cfg(feature = "fetch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fetch")))]
    pub fn fetch(&self, progress: bool) -> Result<super::store::StoredModel> {
        let options = super::fetch::FetchOptions {
            cache_dir: self.cache_dir.clone(),
            progress,
            expected_sha256: self.sha256.clone(),
            cache_tiers: self.cache_tiers.clone(),
            ..super::fetch::FetchOptions::default()
        };
        let stored = super::fetch::fetch(&self.source, &options)?;
        match self.cache_max_bytes {
            Some(max) => self.keep_under(stored, max),
            None => Ok(stored),
        }
    }

    /// Evicts what the store may lose until it holds at most `max` bytes, keeping `stored`
    /// (held); refuses a stored model that alone is larger than `max`, and evicts it unless
    /// another process serves it. A local path outside the store only triggers the eviction.
    #[cfg(feature = "fetch")]
    fn keep_under(
        &self,
        stored: super::store::StoredModel,
        max: u64,
    ) -> Result<super::store::StoredModel> {
        let store = super::store::ModelStore::new(self.cache_dir.clone());
        let gib = |bytes: u64| format!("{:.2} GiB", bytes as f64 / GIB);
        // A local path is not in the store: it does not count against the limit.
        let in_store = stored.hold.is_some();
        if in_store && stored.size > max {
            let size = stored.size;
            drop(stored);
            store.prune(max)?;
            return Err(Error::request(
                "cache_max_gib",
                format!(
                    "the model is {}, more than the model cache may hold ({}); raise the cache limit or free the cache",
                    gib(size),
                    gib(max)
                ),
            ));
        }
        for evicted in store.prune(max)? {
            tracing::info!(
                digest = %evicted.digest,
                size = %gib(evicted.size),
                "evicted from the model store to stay under the cache limit"
            );
        }
        let left: u64 = store.entries()?.iter().map(|e| e.size).sum();
        if left > max {
            tracing::warn!(
                held = %gib(left),
                limit = %gib(max),
                "the model store stays above its limit: the rest is held by running servers"
            );
        }
        Ok(stored)
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

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
    fn no_options_mean_the_bundled_default_preset_and_default_engine() {
        let plan = LoadPlan::resolve(&LoadOptions::default()).unwrap();
        assert_eq!(plan.served_name, catalogue::default_preset().name);
        assert_eq!(plan.engine, EngineConfig::default());
        assert_eq!(plan.cache_dir, super::super::default_cache_dir());
    }

    #[test]
    fn the_workspace_cache_limit_applies_unless_an_option_sets_one() {
        let ws = workspace("  model: {source: smollm2-135m-instruct, cacheMaxGiB: 2}\n");
        let plan = LoadPlan::resolve(&LoadOptions {
            workspace: Some(ws.clone()),
            ..LoadOptions::default()
        })
        .unwrap();
        assert_eq!(plan.cache_max_bytes, Some(2 << 30));
        let plan = LoadPlan::resolve(&LoadOptions {
            workspace: Some(ws),
            cache_max_gib: Some(0.5),
            ..LoadOptions::default()
        })
        .unwrap();
        assert_eq!(plan.cache_max_bytes, Some(1 << 29));
    }

    #[test]
    fn options_override_the_workspace_which_overrides_the_defaults() {
        let ws = workspace(
            "  preset: {name: smollm2-135m-instruct}\n  engine: {threads: 3, parallel: 2, ctxSize: 128, prefixCacheMib: 0}\n",
        );
        let plan = LoadPlan::resolve(&LoadOptions {
            workspace: Some(ws),
            threads: Some(1),
            deterministic: Some(true),
            ..LoadOptions::default()
        })
        .unwrap();
        assert_eq!(plan.engine.threads, 1);
        assert_eq!(plan.engine.parallel, 2);
        assert_eq!(plan.engine.ctx_size, Some(128));
        assert_eq!(plan.engine.prefix_cache_mib, 0);
        assert!(plan.engine.deterministic);
    }

    #[test]
    fn the_workspace_names_the_model_its_checksum_and_served_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.gguf");
        std::fs::write(&file, b"GGUF").unwrap();
        let ws = workspace(&format!(
            "  model: {{source: {}, sha256: {}, servedName: mine}}\n",
            file.display(),
            "a".repeat(64)
        ));
        let options = LoadOptions {
            workspace: Some(ws),
            ..LoadOptions::default()
        };
        let plan = LoadPlan::resolve(&options).unwrap();
        assert_eq!(plan.source, ModelSource::Path(file.clone()));
        assert_eq!(plan.sha256.as_deref(), Some(&*"a".repeat(64)));
        assert_eq!(plan.served_name, "mine");
        // A model given explicitly replaces the Workspace's, and its checksum with it.
        let plan = LoadPlan::resolve(&LoadOptions {
            model: Some("smollm2-135m-instruct".into()),
            served_name: Some("other".into()),
            ..options
        })
        .unwrap();
        assert_eq!(plan.sha256, None);
        assert_eq!(plan.served_name, "other");
    }

    #[test]
    fn gpu_presets_and_templates_cannot_run_locally() {
        for (inference, path) in [
            (
                "  preset: {name: phi-4-mini-instruct}\n",
                "inference.preset.name",
            ),
            (
                "  template: {spec: {containers: [{name: c, image: i}]}}\n",
                "inference.template",
            ),
        ] {
            let err = LoadPlan::resolve(&LoadOptions {
                workspace: Some(workspace(inference)),
                ..LoadOptions::default()
            })
            .unwrap_err();
            assert!(
                matches!(&err, Error::InvalidSpec { path: p, .. } if p == path),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_options_name_the_option() {
        let cases: Vec<(LoadOptions, &str)> = vec![
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
            (
                LoadOptions {
                    device: Some("tpu".into()),
                    ..LoadOptions::default()
                },
                "device",
            ),
            (
                LoadOptions {
                    dtype: Some("int8".into()),
                    ..LoadOptions::default()
                },
                "dtype",
            ),
            (
                LoadOptions {
                    quantization: Some("int3".into()),
                    ..LoadOptions::default()
                },
                "quantization",
            ),
            (
                LoadOptions {
                    prefix_cache_mib: Some(u32::MAX),
                    ..LoadOptions::default()
                },
                "prefix_cache_mib",
            ),
            (
                LoadOptions {
                    cache_max_gib: Some(0.0),
                    ..LoadOptions::default()
                },
                "cache_max_gib",
            ),
            (
                LoadOptions {
                    cache_max_gib: Some(f64::NAN),
                    ..LoadOptions::default()
                },
                "cache_max_gib",
            ),
        ];
        for (options, field) in cases {
            match LoadPlan::resolve(&options).unwrap_err() {
                Error::InvalidRequest {
                    param: Some(param),
                    message,
                } => {
                    assert_eq!(param, field);
                    assert!(message.contains(&format!("`{field}`")), "{message}");
                }
                other => panic!("{field}: {other}"),
            }
        }
        let err = LoadPlan::resolve(&LoadOptions {
            backend: Some("vllm".into()),
            ..LoadOptions::default()
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidSpec { path, .. } if path == "backend"),
            "{err}"
        );
    }
}
