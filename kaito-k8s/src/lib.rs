//! # kaito-k8s
//!
//! KAITO-compatible Kubernetes support for kaito-rs: the `Workspace` and `InferenceSet` custom
//! resources ([`crd`]), a model catalogue and GPU estimator ([`estimate`]), pure rendering of the
//! objects a Workspace needs ([`render`]), and kube-runtime controllers ([`controller`]).
//!
//! ```
//! let yaml = kaito_k8s::crd::generate::crd_yaml().unwrap();
//! assert!(yaml.contains("workspaces.kaito.sh"));
//! ```

pub mod catalogue;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod error;
pub mod estimate;
pub mod instance_types;
pub mod render;
pub mod validate;
pub mod webhook;

pub use crd::{InferenceSet, Workspace};
pub use error::{Error, Result};
