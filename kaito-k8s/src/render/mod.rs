//! Pure rendering: every object the controller applies for a Workspace or an InferenceSet,
//! computed without a cluster (`kaito render`, like `helm template`).
//!
//! A Workspace becomes a StatefulSet (one pod per node), a ClusterIP Service and a headless
//! Service, the inference ConfigMap, a PodDisruptionBudget, a NetworkPolicy and, when
//! `resource.instanceType` is set and auto-provisioning is on, one Karpenter `NodeClaim` per node.
//! An InferenceSet becomes one child Workspace per replica and, when its
//! `scaledobject.kaito.sh/auto-provision` annotation is `true`, a KEDA `ScaledObject`.
//! An `oci://` model is pulled by init containers into a node-local cache; with
//! `kaito.sh/preheat: "true"` a DaemonSet fills that cache on every matching node first.

mod inferenceset;
pub mod input;
mod model_cache;
mod pod;
mod workspace;

pub use inferenceset::{render_inferenceset, RenderedInferenceSet};
pub use model_cache::{NODE_CACHE_DIR, REGISTRY_AUTH_DIR};

pub use crate::crd::{child_selector, child_workspace, child_workspace_name};
pub use workspace::{render_workspace, with_type, RenderedWorkspace};

pub use crate::facts::{vllm_context, ClusterFacts};

/// Image of our runtime.
pub const KAITO_IMAGE: &str = concat!("ghcr.io/kaito-rs/kaito:", env!("CARGO_PKG_VERSION"));
/// Image of the vLLM runtime.
pub const VLLM_IMAGE: &str = "vllm/vllm-openai:v0.11.0";
/// Port every runtime listens on.
pub const RUNTIME_PORT: i32 = 5000;
/// Where the kaito runtime reads its Workspace.
pub const WORKSPACE_FILE: &str = "/etc/kaito/workspace.yaml";
/// Model cache mount.
pub const CACHE_DIR: &str = "/var/cache/kaito";

/// Settings that are not part of the Workspace: controller flags and cluster facts.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Create Karpenter NodeClaims for `instanceType` Workspaces (a Workspace can opt out with
    /// the `kaito.sh/auto-provision: "false"` annotation).
    pub auto_provision: bool,
    /// `nodeClassRef` of the NodeClaims: (group, kind, name). `None`: picked from the cloud of the
    /// instance type (AKSNodeClass, EC2NodeClass, GCENodeClass named `default`).
    pub node_class: Option<(String, String, String)>,
    /// Address of the KEDA external scaler for InferenceSets.
    pub keda_scaler_address: String,
    /// Image of our runtime.
    pub kaito_image: String,
    /// Image of vLLM.
    pub vllm_image: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            auto_provision: true,
            node_class: None,
            keda_scaler_address: "keda-kaito-scaler-svc.kaito-workspace.svc.cluster.local:10450"
                .to_owned(),
            kaito_image: KAITO_IMAGE.to_owned(),
            vllm_image: VLLM_IMAGE.to_owned(),
        }
    }
}

/// A short stable hash (hex) of some text, for names and rollout annotations.
pub fn short_hash(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Serializes objects as multi-document YAML, in order.
pub fn to_yaml_documents(objects: &[serde_json::Value]) -> crate::Result<String> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(o).map_err(crate::Error::Yaml)?);
    }
    Ok(out)
}
