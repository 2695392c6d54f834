//! # kaito-k8s
//!
//! KAITO-compatible Kubernetes support for kaito-rs:
//!
//! - [`crd`]: the `Workspace` (`kaito.sh/v1beta1`, no `spec`) and `InferenceSet`
//!   (`kaito.sh/v1alpha1`) resources, wrapping `kaito-core`'s serde types, and their generated
//!   CRDs with OpenAPI schemas and CEL rules ([`crd::generate::crd_yaml`]), which
//!   [`crd::check`] can also evaluate offline.
//! - [`catalogue`], [`instance_types`] and [`estimate`]: model facts, GPU instance types and
//!   KAITO's GPU formula extended to quantized weights and CPU-only GGUF presets.
//! - [`render`]: pure functions from a Workspace or InferenceSet to every object the controller
//!   applies (`kaito render`).
//! - [`validate`]: every rule, with the field path of each problem.
//! - [`controller`]: kube-runtime reconcilers, leader election, metrics, and [`cli::run_controller`].
//! - [`webhook`]: the validating and defaulting admission webhook.
//!
//! ```
//! use kaito_k8s::render::{render_workspace, ClusterFacts, RenderOptions};
//! use kaito_k8s::Workspace;
//!
//! let core = kaito_core::Workspace::from_yaml(r#"
//! apiVersion: kaito.sh/v1beta1
//! kind: Workspace
//! metadata: {name: phi}
//! resource:
//!   instanceType: Standard_NC96ads_A100_v4
//!   labelSelector: {matchLabels: {apps: phi}}
//! inference:
//!   preset: {name: llama-3.3-70b-instruct, presetOptions: {modelAccessSecret: hf-token}}
//! "#).unwrap();
//! let ws = Workspace::from_core(core).unwrap();
//! let facts = ClusterFacts::default();
//! let valid = kaito_k8s::validate::check(&ws, &facts).unwrap();
//! let out = render_workspace(&valid, &RenderOptions::default()).unwrap();
//! // 141 GB of weights fit one node of 4 × A100 80GB: one pod, one NodeClaim, tensor-parallel 4.
//! assert_eq!(out.stateful_set.spec.as_ref().unwrap().replicas, Some(1));
//! assert_eq!(out.node_claims.len(), 1);
//! assert!(kaito_k8s::crd::generate::crd_yaml().unwrap().contains("workspaces.kaito.sh"));
//! ```

pub mod catalogue;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod error;
pub mod estimate;
pub mod facts;
pub mod instance_types;
pub mod render;
pub mod validate;
pub mod webhook;

pub use crd::{InferenceSet, Workspace};
pub use error::{Error, Result};
