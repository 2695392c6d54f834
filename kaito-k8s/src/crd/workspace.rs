//! The `Workspace` resource: kaito-core's fields under a Kubernetes `ObjectMeta`.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::NamespaceResourceScope;
use kaito_core::workspace::{InferenceSpec, ResourceSpec, TuningSpec, WorkspaceStatus};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{GROUP, WORKSPACE_VERSION};
use crate::error::{Error, Result};

/// A KAITO Workspace as stored in the cluster. `resource`, `inference`, `tuning` and `status` are
/// `kaito-core` types, so the cluster and `kaito serve` read the same fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workspace {
    /// Kubernetes metadata.
    pub metadata: ObjectMeta,
    /// The compute the workload needs.
    pub resource: Option<ResourceSpec>,
    /// What to serve.
    pub inference: Option<InferenceSpec>,
    /// What to fine-tune (accepted, not run).
    pub tuning: Option<TuningSpec>,
    /// Written by the controller.
    pub status: Option<WorkspaceStatus>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceOut<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: &'a ObjectMeta,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: &'a Option<ResourceSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inference: &'a Option<InferenceSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tuning: &'a Option<TuningSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: &'a Option<WorkspaceStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceIn {
    #[serde(default, rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(default, rename = "kind")]
    _kind: Option<String>,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    resource: Option<ResourceSpec>,
    #[serde(default)]
    inference: Option<InferenceSpec>,
    #[serde(default)]
    tuning: Option<TuningSpec>,
    #[serde(default)]
    status: Option<WorkspaceStatus>,
}

impl Serialize for Workspace {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        WorkspaceOut {
            api_version: "kaito.sh/v1beta1",
            kind: "Workspace",
            metadata: &self.metadata,
            resource: &self.resource,
            inference: &self.inference,
            tuning: &self.tuning,
            status: &self.status,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Workspace {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = WorkspaceIn::deserialize(d)?;
        Ok(Workspace {
            metadata: w.metadata,
            resource: w.resource,
            inference: w.inference,
            tuning: w.tuning,
            status: w.status,
        })
    }
}

impl kube::Resource for Workspace {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Workspace".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        WORKSPACE_VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "workspaces".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Workspace {
    /// The name (empty when unset).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The namespace, `default` when unset.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// `inference.model` when its source is an `oci://` reference (pulled into the node cache).
    pub fn oci_model(&self) -> Option<&kaito_core::workspace::ModelSpec> {
        self.inference
            .as_ref()?
            .model
            .as_ref()
            .filter(|m| m.source.starts_with("oci://"))
    }

    /// Converts a parsed and validated `kaito-core` Workspace.
    pub fn from_core(ws: kaito_core::Workspace) -> Result<Self> {
        let metadata: ObjectMeta = serde_json::from_value(serde_json::to_value(&ws.metadata)?)
            .map_err(|e| Error::invalid("metadata", e.to_string()))?;
        Ok(Workspace {
            metadata,
            resource: ws.resource,
            inference: ws.inference,
            tuning: ws.tuning,
            status: ws.status,
        })
    }

    /// The `kaito-core` view `kaito serve -f` reads: user metadata only (name, namespace, labels,
    /// annotations), no status.
    pub fn to_core(&self) -> kaito_core::Workspace {
        kaito_core::Workspace {
            api_version: kaito_core::workspace::WORKSPACE_API_VERSION.to_owned(),
            kind: kaito_core::workspace::WORKSPACE_KIND.to_owned(),
            metadata: kaito_core::workspace::ObjectMeta {
                name: self.metadata.name.clone(),
                namespace: self.metadata.namespace.clone(),
                labels: self.metadata.labels.clone().unwrap_or_default(),
                annotations: self.metadata.annotations.clone().unwrap_or_default(),
                other: Default::default(),
            },
            resource: self.resource.clone(),
            inference: self.inference.clone(),
            tuning: self.tuning.clone(),
            status: None,
        }
    }
}
