//! Serde types of KAITO's `kaito.sh/v1beta1` Workspace, field for field, plus kaito-rs extensions.
//!
//! The Workspace has no `spec`: `resource`, `inference` and `tuning` sit at the top level, as in KAITO.
//! Every struct denies unknown fields so that a misspelt key is an error naming its path.
//! Pod templates and volume sources are Kubernetes core types; they are kept as raw JSON here
//! (`kaito-core` has no Kubernetes dependency) and typed by `kaito-k8s`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API version of the Workspace kind.
pub const WORKSPACE_API_VERSION: &str = "kaito.sh/v1beta1";
/// The Workspace kind.
pub const WORKSPACE_KIND: &str = "Workspace";

/// A KAITO Workspace: a model and the resources it needs, served as an inference service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Workspace {
    /// Always `kaito.sh/v1beta1`.
    pub api_version: String,
    /// Always `Workspace`.
    pub kind: String,
    /// Name, namespace, labels and annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The compute the workload needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceSpec>,
    /// What to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceSpec>,
    /// What to fine-tune (accepted for compatibility; not run locally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<TuningSpec>,
    /// Written by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkspaceStatus>,
}

/// The subset of Kubernetes `ObjectMeta` a user writes; other server-set fields are kept verbatim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name (DNS-1123 subdomain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations (`kaito.sh/runtime`, `kaito.sh/bypass-resource-checks`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Server-populated fields (uid, resourceVersion, generation, ...), preserved as given.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `resource`: the nodes a Workspace runs on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceSpec {
    /// Deprecated in KAITO: the number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Cloud instance type (e.g. `Standard_NC24ads_A100_v4`); nodes are provisioned when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Selects the nodes the workload may run on. Required by KAITO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Existing nodes to prefer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_nodes: Vec<String>,
    /// GPU partitioning (MIG or whole accelerators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionSpec>,
}

/// Kubernetes `LabelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Exact label matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based label requirement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In`/`NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `resource.partition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PartitionSpec {
    /// `mig` or `accelerator`.
    pub mode: String,
    /// MIG profile such as `1g.10gb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Number of partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
}

/// `inference`: what the Workspace serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InferenceSpec {
    /// A catalogue model. Exactly one of `preset`, `template` and `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<PresetSpec>,
    /// A user-supplied Kubernetes `PodTemplateSpec`, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// Name of a ConfigMap holding `inference_config.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// LoRA adapters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<AdapterSpec>,
    /// kaito-rs extension: explicit model weights (a GGUF path, `hf:ORG/REPO/FILE.gguf`,
    /// `oci://REGISTRY/REPO:TAG`, or a preset name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    /// kaito-rs extension: engine parameters for the `kaito` runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineSpec>,
}

/// `inference.preset` (also `tuning.preset`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PresetSpec {
    /// Preset model name, e.g. `phi-4-mini-instruct` or `smollm2-135m-instruct`.
    pub name: String,
    /// `public` or `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<String>,
    /// Image and secrets for private or gated models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_options: Option<PresetOptions>,
}

/// `preset.presetOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PresetOptions {
    /// Image for private presets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Pull secrets for `image`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// Secret holding `HF_TOKEN` for gated models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_access_secret: Option<String>,
}

/// One LoRA adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdapterSpec {
    /// Where the adapter comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DataSource>,
    /// Scale, as a decimal string (`"1.0"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<String>,
}

/// A data source: an image, URLs or a volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataSource {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// HTTP(S) URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// An OCI image holding the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Pull secrets for `image`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// A Kubernetes `VolumeSource`, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_source: Option<Value>,
}

/// Where tuning output goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataDestination {
    /// Image to push the result to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Push secret for `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_push_secret: Option<String>,
    /// A Kubernetes `VolumeSource`, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_source: Option<Value>,
}

/// `tuning`: accepted and validated for compatibility with KAITO.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TuningSpec {
    /// Base model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<PresetSpec>,
    /// `lora` or `qlora`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// ConfigMap with tuning parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Training data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<DataSource>,
    /// Where the adapter goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<DataDestination>,
}

/// kaito-rs extension `inference.model`: explicit weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelSpec {
    /// A GGUF path, `hf:ORG/REPO/FILE.gguf`, `oci://REGISTRY/REPO[:TAG|@DIGEST]`, or a
    /// catalogue preset name.
    pub source: String,
    /// Expected sha256 of the weights file (hex); checked after download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Name the OpenAI API serves the model under (defaults to the preset or file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_name: Option<String>,
    /// In a cluster: the catalogue model whose weights `source` holds, which sizes the pods of a
    /// source the estimator cannot read offline (`oci://`). Ignored by a local `kaito serve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// In a cluster: `kubernetes.io/dockerconfigjson` Secrets with the registry credentials of
    /// an `oci://` source (as `imagePullSecrets` are for images).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// In a cluster: a PersistentVolumeClaim that holds the model cache of an `oci://` source
    /// instead of the node's `/var/lib/kaito/models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_volume_claim: Option<String>,
    /// The most the model cache may hold, in GiB: after each pull the least recently used
    /// models no process holds are evicted down to it (`--cache-max-gib`). In a cluster it bounds
    /// the node's cache (or the PVC) for every pod that pulls into it.
    #[serde(
        default,
        rename = "cacheMaxGiB",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_max_gib: Option<f64>,
}

/// kaito-rs extension `inference.engine`: engine parameters for the `kaito` runtime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EngineSpec {
    /// `auto` (default: GGUF → `llama-cpp`, safetensors checkpoint → `torch`), `llama-cpp`,
    /// `torch` or `quant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Inference threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// Context window of one sequence, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_size: Option<u32>,
    /// Sequences generated at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u32>,
    /// Requests allowed to wait for a free sequence before new ones get 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u32>,
    /// Tokens per engine step (prefill chunk budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Layers to offload to the GPU (needs a CUDA build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_layers: Option<u32>,
    /// Host memory, in MiB, for the KV of finished prompts, restored when a later prompt shares
    /// a prefix (llama.cpp engine; 0 turns it off; default 128). At most
    /// [`MAX_PREFIX_CACHE_MIB`](crate::engine::MAX_PREFIX_CACHE_MIB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_mib: Option<u32>,
    /// Device of the torch engines: `cpu`, `cuda` or `cuda:N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Compute dtype of the torch engines: `f32`, `bf16` or `f16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Weight-only quantization of the quant engine: `int8` or `int4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
}

/// Status written by the controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// Nodes the workload runs on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worker_nodes: Vec<String>,
    /// KAITO condition types: `ResourceReady`, `InferenceReady`, `WorkspaceSucceeded`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Remaining status fields, preserved.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A Kubernetes status condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
