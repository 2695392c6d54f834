//! The custom resources: KAITO's `Workspace` (`kaito.sh/v1beta1`) and `InferenceSet`
//! (`kaito.sh/v1alpha1`), as `kube::Resource`s.
//!
//! The field layout of `resource`, `inference` and `tuning` is not copied: it is `kaito-core`'s
//! serde types ([`kaito_core::workspace`]), wrapped here with a Kubernetes `ObjectMeta` so that
//! `kube::Api` can read, watch and apply them. KAITO's Workspace has no `spec`, so
//! `#[derive(CustomResource)]` does not fit; [`kube::Resource`] is implemented by hand and the
//! CRD (with its OpenAPI schema and CEL rules) is built in [`schema`] and [`generate`].

pub mod check;
mod children;
pub mod generate;
mod inferenceset;
pub mod schema;
mod workspace;

pub use children::{child_selector, child_workspace, child_workspace_name};
pub use inferenceset::{InferenceSet, InferenceSetSpec, InferenceSetStatus, InferenceSetTemplate};
pub use workspace::Workspace;

/// The API group of every kind here.
pub const GROUP: &str = "kaito.sh";
/// Workspace version served and stored.
pub const WORKSPACE_VERSION: &str = "v1beta1";
/// InferenceSet version the controller uses (v1beta1 is also served, same schema).
pub const INFERENCESET_VERSION: &str = "v1alpha1";
/// Every InferenceSet version served.
pub const INFERENCESET_VERSIONS: &[&str] = &["v1alpha1", "v1beta1"];

/// KAITO's condition types.
pub mod conditions {
    /// Karpenter NodeClaims exist and are ready.
    pub const NODE_CLAIM_READY: &str = "NodeClaimReady";
    /// Enough matching nodes are ready.
    pub const NODES_READY: &str = "NodesReady";
    /// Nodes and child objects are in place.
    pub const RESOURCE_READY: &str = "ResourceReady";
    /// Every inference pod is Ready (and none is crash-looping).
    pub const INFERENCE_READY: &str = "InferenceReady";
    /// Tuning job started (tuning Workspaces).
    pub const JOB_STARTED: &str = "JobStarted";
    /// The Workspace reached its goal.
    pub const WORKSPACE_SUCCEEDED: &str = "WorkspaceSucceeded";
    /// Deletion in progress.
    pub const WORKSPACE_DELETING: &str = "WorkspaceDeleting";
    /// InferenceSet: every child Workspace succeeded.
    pub const INFERENCE_SET_READY: &str = "InferenceSetReady";
    /// kaito-rs: every node the preheat DaemonSet runs on holds the `oci://` model.
    pub const MODEL_CACHED: &str = "ModelCached";
}

/// Annotations and labels, KAITO's and ours.
pub mod keys {
    /// Runtime selection: `vllm` or `kaito` (ours); KAITO's `transformers` is not supported.
    pub const RUNTIME: &str = "kaito.sh/runtime";
    /// Skip the GPU-memory check.
    pub const BYPASS_RESOURCE_CHECKS: &str = "kaito.sh/bypass-resource-checks";
    /// KAITO: expose the service through a LoadBalancer.
    pub const ENABLE_LB: &str = "kaito.sh/enablelb";
    /// KAITO: `balanced`, `interactivity` or `throughput`.
    pub const PERFORMANCE_MODE: &str = "kaito.sh/performance-mode";
    /// kaito-rs extension: `fp8`, `int8` or `int4` weight quantization for vLLM presets.
    pub const QUANTIZATION: &str = "kaito.sh/quantization";
    /// kaito-rs extension: `false` turns off Karpenter NodeClaim creation for this Workspace.
    pub const AUTO_PROVISION: &str = "kaito.sh/auto-provision";
    /// kaito-rs extension: `"true"` on a Workspace or InferenceSet with an `oci://` model pulls
    /// the model into the node cache of every matching node (a DaemonSet) before replicas run.
    pub const PREHEAT: &str = "kaito.sh/preheat";
    /// Label on the pods of a preheat DaemonSet: the Workspace or InferenceSet it preheats for.
    pub const PREHEAT_LABEL: &str = "kaito.sh/preheat-for";
    /// Label on every child object and pod: the Workspace name.
    pub const WORKSPACE_LABEL: &str = "kaito.sh/workspace";
    /// Label on every child object: the Workspace namespace.
    pub const WORKSPACE_NAMESPACE_LABEL: &str = "kaito.sh/workspacenamespace";
    /// Label on child Workspaces of an InferenceSet.
    pub const INFERENCESET_LABEL: &str = "inferenceset.kaito.sh/created-by";
    /// Namespace label that lets a gateway namespace reach every Workspace.
    pub const GATEWAY_LABEL: &str = "kaito.sh/gateway";
    /// KEDA: create a ScaledObject for the InferenceSet.
    pub const SCALEDOBJECT_AUTO_PROVISION: &str = "scaledobject.kaito.sh/auto-provision";
    /// KEDA: the metric to scale on.
    pub const SCALEDOBJECT_METRIC: &str = "scaledobject.kaito.sh/metricName";
    /// KEDA: the per-replica threshold.
    pub const SCALEDOBJECT_THRESHOLD: &str = "scaledobject.kaito.sh/threshold";
    /// KEDA: most replicas (ours; defaults to `nodeCountLimit` or 10).
    pub const SCALEDOBJECT_MAX_REPLICAS: &str = "scaledobject.kaito.sh/max-replicas";
    /// The finalizer of both controllers.
    pub const FINALIZER: &str = "workspace.kaito.sh/finalizer";
    /// Server-side apply field manager.
    pub const FIELD_MANAGER: &str = "kaito-rs-controller";
}
