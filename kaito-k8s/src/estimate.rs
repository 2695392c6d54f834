//! The GPU and CPU estimator: how many nodes and GPUs, how much memory, which parallelism.
//!
//! GPU sizing follows KAITO's formula: each GPU offers 84% of its memory; each keeps 2.3 GiB
//! plus its share of the KV cache in reserve; the weights count at 1.02 × their size. KV bytes per
//! token are `2 × layers × kv_heads × head_dim × 2` (f16/bf16), times the context length (default
//! 2048). Beyond KAITO: weights count at their real size (FP8, MXFP4, GGUF, or on-the-fly `fp8`/
//! `int8`/`int4` quantization via `kaito.sh/quantization`), instance types map to GPUs per node,
//! and GGUF presets on our runtime are sized in memory and CPU cores instead of GPUs.

use std::fmt::Write as _;

use crate::catalogue::{self, Dtype, ModelFacts, Runtime};
use crate::crd::{keys, Workspace};
use crate::error::{Error, Result};
use crate::instance_types::{self, InstanceType};

/// 1 GiB.
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Share of GPU memory the runtime may use.
pub const GPU_USABLE_FRACTION: f64 = 0.84;
/// Fixed reserve per GPU, GiB.
pub const GPU_RESERVE_GIB: f64 = 2.3;
/// Weights overhead factor.
pub const WEIGHTS_OVERHEAD: f64 = 1.02;
/// Context length the GPU formula assumes when none is configured.
pub const DEFAULT_GPU_CONTEXT: u64 = 2048;
/// Context length of the kaito runtime when `engine.ctxSize` is unset (capped by the model).
pub const DEFAULT_CPU_CONTEXT: u64 = 4096;
/// Memory the kaito runtime needs beyond weights and KV cache, MiB.
pub const CPU_RUNTIME_OVERHEAD_MIB: u64 = 256;

/// On-the-fly weight quantization (`kaito.sh/quantization`, vLLM runtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    /// 8-bit float weights (`--quantization=fp8`).
    Fp8,
    /// 8-bit weights; served as FP8 by vLLM.
    Int8,
    /// 4-bit weights (`--quantization=bitsandbytes`).
    Int4,
}

impl Quantization {
    fn parse(v: &str) -> Option<Self> {
        match v {
            "fp8" => Some(Self::Fp8),
            "int8" => Some(Self::Int8),
            "int4" => Some(Self::Int4),
            _ => None,
        }
    }

    /// Bytes per parameter.
    pub fn bytes_per_param(self) -> f64 {
        match self {
            Self::Fp8 | Self::Int8 => 1.0,
            Self::Int4 => 0.5,
        }
    }

    /// The vLLM `--quantization` value.
    pub fn vllm_arg(self) -> &'static str {
        match self {
            Self::Fp8 | Self::Int8 => "fp8",
            Self::Int4 => "bitsandbytes",
        }
    }
}

/// Where and how a GPU model runs.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuPlan {
    /// The instance type, when known.
    pub instance: Option<&'static InstanceType>,
    /// Memory of one GPU (or MIG slice), GiB; `None` when unknown (bring-your-own nodes).
    pub gpu_memory_gib: Option<f64>,
    /// GPUs each pod requests.
    pub gpus_per_node: u32,
    /// GPUs the model needs.
    pub required_gpus: u32,
    /// Nodes (StatefulSet replicas).
    pub node_count: u32,
    /// vLLM tensor-parallel degree (GPUs per node).
    pub tensor_parallel: u32,
    /// vLLM pipeline-parallel degree (nodes).
    pub pipeline_parallel: u32,
    /// MIG profile, when partitioned.
    pub mig_profile: Option<String>,
}

/// How a GGUF model runs on CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuPlan {
    /// Memory request and limit, MiB.
    pub memory_mib: u64,
    /// CPU request, cores (= engine threads).
    pub cpu_cores: u32,
    /// Sequences generated at once.
    pub parallel: u64,
}

/// Where the model runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// GPU nodes.
    Gpu(GpuPlan),
    /// CPU only.
    Cpu(CpuPlan),
}

/// The estimator's answer for one Workspace, with the arithmetic that led to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The model.
    pub model: ModelFacts,
    /// The runtime that serves it.
    pub runtime: Runtime,
    /// Context length used for the KV cache.
    pub context_length: u64,
    /// On-the-fly quantization, if any.
    pub quantization: Option<Quantization>,
    /// Weights in memory, bytes (after quantization, before overhead).
    pub weights_bytes: u64,
    /// KV cache for one full sequence, bytes.
    pub kv_cache_bytes: u64,
    /// Placement.
    pub placement: Placement,
    /// One line per step of the arithmetic.
    pub steps: Vec<String>,
}

impl Estimate {
    /// Nodes the Workspace needs (1 for CPU).
    pub fn node_count(&self) -> u32 {
        match &self.placement {
            Placement::Gpu(g) => g.node_count,
            Placement::Cpu(_) => 1,
        }
    }

    /// A human-readable report: result first, then the arithmetic.
    pub fn report(&self, workspace: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Workspace {workspace}: model {} ({}, {}B parameters, {})",
            self.model.name,
            self.model.architecture,
            self.model.params_billion,
            self.model.dtype.name()
        );
        let _ = writeln!(out, "  runtime: {}", self.runtime.name());
        match &self.placement {
            Placement::Gpu(g) => {
                let _ = writeln!(
                    out,
                    "  result: {} node(s) × {} GPU(s){}; tensor-parallel {}, pipeline-parallel {}",
                    g.node_count,
                    g.gpus_per_node,
                    g.instance
                        .map(|i| format!(" of {} ({})", i.name, i.gpu_model))
                        .unwrap_or_default(),
                    g.tensor_parallel,
                    g.pipeline_parallel
                );
            }
            Placement::Cpu(c) => {
                let _ = writeln!(
                    out,
                    "  result: CPU only, {} MiB memory, {} core(s)",
                    c.memory_mib, c.cpu_cores
                );
            }
        }
        let _ = writeln!(out, "  arithmetic:");
        for s in &self.steps {
            let _ = writeln!(out, "    {s}");
        }
        out
    }
}

/// Facts the estimator cannot read from the Workspace itself.
#[derive(Debug, Clone, Default)]
pub struct EstimateInputs {
    /// `max-model-len` from the `inference.config` ConfigMap, if known.
    pub configured_context: Option<u64>,
}

fn gib(bytes: f64) -> String {
    format!("{:.2} GiB", bytes / GIB)
}

/// The model a Workspace serves, if it names one the catalogue knows. `Ok(None)` for templates.
pub fn model_of(ws: &Workspace) -> Result<Option<(ModelFacts, &'static str)>> {
    let Some(inf) = &ws.inference else {
        return Ok(None);
    };
    if let Some(p) = &inf.preset {
        return match catalogue::find(&p.name) {
            Some(m) => Ok(Some((m, "inference.preset.name"))),
            None => Err(Error::invalid(
                "inference.preset.name",
                format!(
                    "unknown preset `{}`; known presets: {}",
                    p.name,
                    catalogue::names().join(", ")
                ),
            )),
        };
    }
    if let Some(m) = &inf.model {
        // `preset` names what the weights are when the source itself cannot be read offline.
        if let Some(preset) = &m.preset {
            return match catalogue::find(preset) {
                Some(f) => Ok(Some((f, "inference.model.preset"))),
                None => Err(Error::invalid(
                    "inference.model.preset",
                    format!(
                        "unknown preset `{preset}`; known presets: {}",
                        catalogue::names().join(", ")
                    ),
                )),
            };
        }
        if m.source.starts_with("oci://") {
            return Err(Error::invalid(
                "inference.model.preset",
                format!(
                    "required for an `oci://` source: the catalogue model the artifact holds, which sizes the pods ({})",
                    catalogue::names().join(", ")
                ),
            ));
        }
        return match catalogue::find(&m.source) {
            Some(f) => Ok(Some((f, "inference.model.source"))),
            None => Err(Error::invalid(
                "inference.model.source",
                format!(
                    "`{}` is not a catalogue preset; the cluster runtime can only size catalogue models ({})",
                    m.source,
                    catalogue::names().join(", ")
                ),
            )),
        };
    }
    Ok(None)
}

/// The runtime for a Workspace: the `kaito.sh/runtime` annotation, else the preset's default.
pub fn runtime_of(ws: &Workspace, model: &ModelFacts) -> Result<Runtime> {
    let runtime = match ws.annotation(keys::RUNTIME) {
        None => model.runtime,
        Some("vllm") => Runtime::Vllm,
        Some("kaito") => Runtime::Kaito,
        Some(other) => {
            return Err(Error::invalid(
                format!("metadata.annotations[{}]", keys::RUNTIME),
                format!("`{other}` is not a supported runtime; use `vllm` or `kaito`"),
            ))
        }
    };
    let gguf = matches!(model.dtype, Dtype::Gguf(_));
    if runtime == Runtime::Kaito && !gguf {
        return Err(Error::invalid(
            format!("metadata.annotations[{}]", keys::RUNTIME),
            format!(
                "the kaito runtime serves GGUF presets only; `{}` needs the vllm runtime",
                model.name
            ),
        ));
    }
    if runtime == Runtime::Vllm && gguf {
        return Err(Error::invalid(
            format!("metadata.annotations[{}]", keys::RUNTIME),
            format!(
                "`{}` is a GGUF preset served by the kaito runtime, not vllm",
                model.name
            ),
        ));
    }
    Ok(runtime)
}

/// Estimates one Workspace. `Ok(None)` when it uses a pod `template` (nothing to size).
pub fn estimate(ws: &Workspace, inputs: &EstimateInputs) -> Result<Option<Estimate>> {
    let Some((model, _)) = model_of(ws)? else {
        return Ok(None);
    };
    let runtime = runtime_of(ws, &model)?;
    let bypass = ws
        .annotation(keys::BYPASS_RESOURCE_CHECKS)
        .is_some_and(|v| v != "false");
    let engine = ws
        .inference
        .as_ref()
        .and_then(|i| i.engine.clone())
        .unwrap_or_default();
    let mut steps = Vec::new();

    let quantization = match ws.annotation(keys::QUANTIZATION) {
        None => None,
        Some(v) => {
            let path = format!("metadata.annotations[{}]", keys::QUANTIZATION);
            let q = Quantization::parse(v).ok_or_else(|| {
                Error::invalid(&path, format!("`{v}` is not one of fp8, int8, int4"))
            })?;
            if runtime == Runtime::Kaito {
                return Err(Error::invalid(
                    path,
                    "GGUF presets are already quantized; pick another GGUF preset instead",
                ));
            }
            Some(q)
        }
    };

    let (context_length, context_path) = match runtime {
        Runtime::Kaito => match engine.ctx_size {
            Some(c) => (u64::from(c), "inference.engine.ctxSize"),
            None => (DEFAULT_CPU_CONTEXT.min(model.max_context), "default"),
        },
        Runtime::Vllm => match inputs.configured_context {
            Some(c) => (c, "inference.config (max-model-len)"),
            None => (DEFAULT_GPU_CONTEXT, "default"),
        },
    };
    if context_length > model.max_context {
        let path = if context_path == "default" {
            "inference".to_owned()
        } else {
            context_path.to_owned()
        };
        return Err(Error::invalid(
            path,
            format!(
                "context length {context_length} exceeds the limit of {} ({})",
                model.name, model.max_context
            ),
        ));
    }

    let mut weights_bytes = model.weights_bytes;
    steps.push(format!(
        "weights: {} ({} as published)",
        gib(weights_bytes as f64),
        model.dtype.name()
    ));
    if let Some(q) = quantization {
        let quantized = (model.params_billion * 1e9 * q.bytes_per_param()) as u64;
        if quantized < weights_bytes {
            weights_bytes = quantized;
        }
        steps.push(format!(
            "quantized {q:?}: {}B params × {} bytes = {}",
            model.params_billion,
            q.bytes_per_param(),
            gib(weights_bytes as f64)
        ));
    }
    let kv_per_token = 2 * model.layers * model.kv_heads * model.head_dim * model.dtype.kv_bytes();
    let kv_cache_bytes = kv_per_token * context_length;
    steps.push(format!(
        "KV cache per token: 2 × {} layers × {} kv heads × {} head dim × {} bytes = {} bytes",
        model.layers,
        model.kv_heads,
        model.head_dim,
        model.dtype.kv_bytes(),
        kv_per_token
    ));
    steps.push(format!(
        "KV cache: {kv_per_token} × {context_length} tokens ({context_path}) = {}",
        gib(kv_cache_bytes as f64)
    ));
    let weights_need = weights_bytes as f64 * WEIGHTS_OVERHEAD;
    steps.push(format!(
        "weights with overhead: {} × {WEIGHTS_OVERHEAD} = {}",
        gib(weights_bytes as f64),
        gib(weights_need)
    ));

    let resource = ws.resource.clone().unwrap_or_default();
    let instance = match &resource.instance_type {
        Some(name) => match instance_types::find(name) {
            Some(t) => Some(t),
            None if !resource.preferred_nodes.is_empty() => {
                steps.push(format!("instance type `{name}` is not in the table; bring-your-own nodes (preferredNodes), GPU memory not checked"));
                None
            }
            None => {
                return Err(Error::invalid(
                    "resource.instanceType",
                    format!("unknown instance type `{name}`; use a known GPU instance type (`kaito estimate` lists them in docs/kubernetes.md) or bring your own nodes with resource.preferredNodes"),
                ))
            }
        },
        None => None,
    };

    let placement = match runtime {
        Runtime::Kaito => {
            let parallel = u64::from(engine.parallel.unwrap_or(1));
            let threads = engine.threads.unwrap_or(2);
            // The host prefix cache (finished prompts' KV) lives in the pod's memory too.
            let prefix_cache_mib = u64::from(
                engine
                    .prefix_cache_mib
                    .unwrap_or(kaito_core::EngineConfig::default().prefix_cache_mib),
            );
            let total = weights_need
                + (kv_cache_bytes * parallel) as f64
                + ((prefix_cache_mib + CPU_RUNTIME_OVERHEAD_MIB) as f64) * 1024.0 * 1024.0;
            let mib = (total / (1024.0 * 1024.0)).ceil() as u64;
            let memory_mib = mib.div_ceil(64) * 64;
            steps.push(format!(
                "CPU memory: weights {} + KV {} × {parallel} sequence(s) + {prefix_cache_mib} MiB prefix cache + {CPU_RUNTIME_OVERHEAD_MIB} MiB runtime = {memory_mib} MiB (rounded up to 64 MiB)",
                gib(weights_need),
                gib(kv_cache_bytes as f64)
            ));
            steps.push(format!("CPU cores: {threads} (engine threads)"));
            if let Some(t) = instance {
                if memory_mib > u64::from(t.memory_gib) * 1024 && !bypass {
                    return Err(Error::invalid(
                        "resource.instanceType",
                        format!(
                            "{} has {} GiB of memory; {} needs {memory_mib} MiB",
                            t.name, t.memory_gib, model.name
                        ),
                    ));
                }
            }
            Placement::Cpu(CpuPlan {
                memory_mib,
                cpu_cores: threads,
                parallel,
            })
        }
        Runtime::Vllm => Placement::Gpu(gpu_plan(
            &model,
            &resource,
            instance,
            weights_need,
            kv_cache_bytes as f64,
            bypass,
            &mut steps,
        )?),
    };
    Ok(Some(Estimate {
        model,
        runtime,
        context_length,
        quantization,
        weights_bytes,
        kv_cache_bytes,
        placement,
        steps,
    }))
}

fn gpu_plan(
    model: &ModelFacts,
    resource: &kaito_core::workspace::ResourceSpec,
    instance: Option<&'static InstanceType>,
    weights_need: f64,
    kv_total: f64,
    bypass: bool,
    steps: &mut Vec<String>,
) -> Result<GpuPlan> {
    let too_small = |path: &str, msg: String| -> Result<()> {
        if bypass {
            Ok(())
        } else {
            Err(Error::invalid(
                path,
                format!(
                    "GPU memory too small: {msg} (set the annotation {} to skip this check)",
                    keys::BYPASS_RESOURCE_CHECKS
                ),
            ))
        }
    };
    let partition = resource.partition.as_ref();
    let mig_profile = partition
        .filter(|p| p.mode == "mig")
        .and_then(|p| p.profile.clone());
    let (gpu_memory_gib, gpus_per_node) = if let Some(profile) = &mig_profile {
        let mem = instance_types::mig_profile_memory_gib(profile).ok_or_else(|| {
            Error::invalid(
                "resource.partition.profile",
                format!("`{profile}` is not a MIG profile like 1g.10gb"),
            )
        })?;
        steps.push(format!("MIG slice {profile}: {mem} GiB, one slice per pod"));
        (Some(mem), 1)
    } else if let Some(t) = instance {
        if t.gpu_count == 0 {
            return Err(Error::invalid(
                "resource.instanceType",
                format!("{} has no GPU; {} needs one (or use a GGUF preset such as smollm2-135m-instruct)", t.name, model.name),
            ));
        }
        steps.push(format!(
            "{}: {} × {} with {} GiB each",
            t.name, t.gpu_count, t.gpu_model, t.gpu_memory_gib
        ));
        (Some(t.gpu_memory_gib), t.gpu_count)
    } else {
        let count = partition.and_then(|p| p.count).unwrap_or(1).max(1) as u32;
        steps.push(format!("no known instance type: {count} GPU(s) per node of unknown memory (bring-your-own nodes)"));
        (None, count)
    };

    let required_gpus = match gpu_memory_gib {
        Some(mem) => {
            let usable = mem * GIB * GPU_USABLE_FRACTION;
            let per_gpu = usable - GPU_RESERVE_GIB * GIB;
            steps.push(format!("usable per GPU: {mem} GiB × {GPU_USABLE_FRACTION} − {GPU_RESERVE_GIB} GiB reserve = {}", gib(per_gpu)));
            if per_gpu <= 0.0 {
                return Err(Error::invalid(
                    "resource.instanceType",
                    format!("{mem} GiB GPUs leave no room for {}", model.name),
                ));
            }
            let n = ((weights_need + kv_total) / per_gpu).ceil().max(1.0) as u32;
            steps.push(format!(
                "GPUs needed: ceil(({} + {}) / {}) = {n}",
                gib(weights_need),
                gib(kv_total),
                gib(per_gpu)
            ));
            n
        }
        None => gpus_per_node,
    };
    if mig_profile.is_some() && required_gpus > 1 {
        too_small(
            "resource.partition.profile",
            format!(
                "{} needs {required_gpus} slices of {} GiB but a MIG workload runs on one slice",
                model.name,
                gpu_memory_gib.unwrap_or_default()
            ),
        )?;
    }
    let estimated_nodes = required_gpus.div_ceil(gpus_per_node).max(1);
    let node_count = match resource.count {
        Some(c) if (c as u32) < estimated_nodes => {
            too_small(
                "resource.count",
                format!(
                    "{} needs {estimated_nodes} node(s) of {} GPU(s) but count is {c}",
                    model.name, gpus_per_node
                ),
            )?;
            c as u32
        }
        Some(c) => c as u32,
        None => estimated_nodes,
    };
    let node_count = if mig_profile.is_some() { 1 } else { node_count };
    steps.push(format!(
        "nodes: ceil({required_gpus} / {gpus_per_node}) = {estimated_nodes}; using {node_count}"
    ));
    Ok(GpuPlan {
        instance,
        gpu_memory_gib,
        gpus_per_node,
        required_gpus,
        node_count,
        tensor_parallel: gpus_per_node,
        pipeline_parallel: node_count,
        mig_profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(yaml: &str) -> Workspace {
        Workspace::from_core(kaito_core::Workspace::from_yaml(yaml).unwrap()).unwrap()
    }

    fn gpu(e: &Estimate) -> &GpuPlan {
        match &e.placement {
            Placement::Gpu(g) => g,
            Placement::Cpu(_) => panic!("expected a GPU plan"),
        }
    }

    const HEAD: &str = "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: w}\n";

    #[test]
    fn phi4_mini_fits_one_a100() {
        let w = ws(&format!("{HEAD}resource: {{instanceType: Standard_NC24ads_A100_v4, labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: phi-4-mini-instruct}}}}\n"));
        let e = estimate(&w, &EstimateInputs::default()).unwrap().unwrap();
        let g = gpu(&e);
        assert_eq!(
            (g.required_gpus, g.node_count, g.tensor_parallel),
            (1, 1, 1)
        );
        // KV: 2 × 32 × 8 × 128 × 2 bytes = 131072 bytes per token × 2048 tokens
        assert_eq!(e.kv_cache_bytes, 131_072 * 2048);
        assert!(e.report("w").contains("GPUs needed"));
    }

    #[test]
    fn llama_70b_needs_two_a100s_on_a_four_gpu_node() {
        let w = ws(&format!("{HEAD}resource: {{instanceType: Standard_NC96ads_A100_v4, labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: llama-3.3-70b-instruct, presetOptions: {{modelAccessSecret: s}}}}}}\n"));
        let e = estimate(&w, &EstimateInputs::default()).unwrap().unwrap();
        let g = gpu(&e);
        // (141.1e9 × 1.02 + 0.625 GiB) / (80 × 0.84 − 2.3 GiB) → 3 GPUs, one 4-GPU node, TP 4
        assert_eq!(
            (g.required_gpus, g.node_count, g.tensor_parallel),
            (3, 1, 4)
        );
    }

    #[test]
    fn int4_quantization_shrinks_the_weights() {
        let base = "resource: {instanceType: Standard_NC24ads_A100_v4, labelSelector: {matchLabels: {a: b}}}\ninference: {preset: {name: llama-3.3-70b-instruct, presetOptions: {modelAccessSecret: s}}}\n";
        let plain = estimate(&ws(&format!("{HEAD}{base}")), &EstimateInputs::default())
            .unwrap()
            .unwrap();
        let q = ws(&format!("apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {{name: w, annotations: {{kaito.sh/quantization: int4}}}}\n{base}"));
        let quant = estimate(&q, &EstimateInputs::default()).unwrap().unwrap();
        assert!(gpu(&plain).node_count >= 2);
        assert_eq!(gpu(&quant).node_count, 1);
        assert_eq!(quant.weights_bytes, 35_300_000_000);
    }

    #[test]
    fn gguf_preset_is_sized_for_cpu() {
        let w = ws(&format!("{HEAD}inference: {{preset: {{name: smollm2-135m-instruct}}, engine: {{threads: 1, ctxSize: 2048}}}}\n"));
        let e = estimate(&w, &EstimateInputs::default()).unwrap().unwrap();
        match e.placement {
            Placement::Cpu(c) => {
                assert_eq!(c.cpu_cores, 1);
                // 98.4 MB × 1.02 + 2 × 30 × 3 × 64 × 2 × 2048 bytes (45 MiB) + 128 MiB prefix
                // cache + 256 MiB ≈ 525 MiB → 576
                assert_eq!(c.memory_mib, 576);
            }
            Placement::Gpu(_) => panic!("GGUF must run on CPU"),
        }
    }

    #[test]
    fn rejects_context_above_the_model_limit() {
        let w = ws(&format!("{HEAD}inference: {{preset: {{name: smollm2-135m-instruct}}, engine: {{ctxSize: 100000}}}}\n"));
        let err = estimate(&w, &EstimateInputs::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("inference.engine.ctxSize:"), "{err}");
    }

    #[test]
    fn rejects_a_mig_slice_too_small() {
        let w = ws(&format!("{HEAD}resource: {{labelSelector: {{matchLabels: {{a: b}}}}, partition: {{mode: mig, profile: 1g.10gb}}}}\ninference: {{preset: {{name: phi-4}}}}\n"));
        let err = estimate(&w, &EstimateInputs::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("resource.partition.profile: GPU memory too small"),
            "{err}"
        );
    }

    #[test]
    fn unknown_instance_type_is_rejected_unless_nodes_are_brought() {
        let w = ws(&format!("{HEAD}resource: {{instanceType: Standard_Bogus, labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: phi-4}}}}\n"));
        let err = estimate(&w, &EstimateInputs::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("resource.instanceType: unknown instance type"),
            "{err}"
        );
        let byo = ws(&format!("{HEAD}resource: {{instanceType: Standard_Bogus, preferredNodes: [n1], labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: phi-4}}}}\n"));
        assert!(estimate(&byo, &EstimateInputs::default()).is_ok());
    }
}
