//! The `InferenceSet` resource: N replicas of a Workspace template, scaled by KEDA.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::NamespaceResourceScope;
use kaito_core::workspace::{Condition, InferenceSpec, LabelSelector, ResourceSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{GROUP, INFERENCESET_VERSION};

/// A KAITO InferenceSet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceSet {
    /// Kubernetes metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: InferenceSetSpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<InferenceSetStatus>,
}

/// `spec` of an InferenceSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InferenceSetSpec {
    /// Number of child Workspaces (default 1); the `scale` subresource writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Most GPU nodes all replicas together may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_count_limit: Option<i32>,
    /// Copied into every child's `resource.labelSelector`. Required.
    pub label_selector: LabelSelector,
    /// The child Workspace template.
    pub template: InferenceSetTemplate,
    /// Accepted for compatibility (rolling update settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<Value>,
    /// Accepted for compatibility (base image auto-upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_upgrade: Option<Value>,
}

/// `spec.template`: the Workspace fields every replica gets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InferenceSetTemplate {
    /// Labels and annotations for the child Workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// `resource` of each child (its `labelSelector` comes from the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceSpec>,
    /// `inference` of each child.
    pub inference: InferenceSpec,
}

/// `status` of an InferenceSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceSetStatus {
    /// Child Workspaces that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Child Workspaces whose inference is ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the children, for the `scale` subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `InferenceSetReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Serialize for InferenceSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            api_version: &'a str,
            kind: &'a str,
            metadata: &'a ObjectMeta,
            spec: &'a InferenceSetSpec,
            #[serde(skip_serializing_if = "Option::is_none")]
            status: &'a Option<InferenceSetStatus>,
        }
        Out {
            api_version: "kaito.sh/v1alpha1",
            kind: "InferenceSet",
            metadata: &self.metadata,
            spec: &self.spec,
            status: &self.status,
        }
        .serialize(s)
    }
}

impl kube::Resource for InferenceSet {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "InferenceSet".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        INFERENCESET_VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "inferencesets".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl InferenceSet {
    /// The name (empty when unset).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The namespace, `default` when unset.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// Desired replicas (default 1).
    pub fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }
}
