//! The CustomResourceDefinitions, as `k8s-openapi` objects and as the YAML `kaito crd` prints.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{json, Value};

use super::{schema, GROUP, INFERENCESET_VERSION, INFERENCESET_VERSIONS, WORKSPACE_VERSION};
use crate::error::Result;

fn printer(name: &str, type_: &str, path: &str) -> Value {
    json!({"name": name, "type": type_, "jsonPath": path})
}

fn condition_column(name: &str, condition: &str) -> Value {
    printer(
        name,
        "string",
        &format!(".status.conditions[?(@.type==\"{condition}\")].status"),
    )
}

/// The Workspace CRD (`workspaces.kaito.sh`): v1beta1 stored, KAITO's v1alpha1 also served
/// (deprecated) with the same schema.
pub fn workspace_crd() -> CustomResourceDefinition {
    let value = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("workspaces.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {"kind": "Workspace", "listKind": "WorkspaceList", "plural": "workspaces",
                      "singular": "workspace", "shortNames": ["wk"], "categories": ["kaito"]},
            "scope": "Namespaced",
            "versions": ([WORKSPACE_VERSION, "v1alpha1"].iter().map(|v| {
                let mut version = json!({
                    "name": v,
                    "served": true,
                    "storage": *v == WORKSPACE_VERSION,
                    "schema": {"openAPIV3Schema": schema::workspace()},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        printer("Instance", "string", ".resource.instanceType"),
                        condition_column("ResourceReady", "ResourceReady"),
                        condition_column("InferenceReady", "InferenceReady"),
                        condition_column("JobStarted", "JobStarted"),
                        condition_column("WorkspaceSucceeded", "WorkspaceSucceeded"),
                        printer("TargetNodeCount", "integer", ".status.targetNodeCount"),
                        printer("State", "string", ".status.state"),
                        printer("Age", "date", ".metadata.creationTimestamp"),
                    ],
                });
                if *v != WORKSPACE_VERSION {
                    // KAITO's older version, served with the same schema for existing manifests.
                    version["deprecated"] = json!(true);
                    version["deprecationWarning"] = json!("kaito.sh/v1alpha1 Workspace is deprecated; use kaito.sh/v1beta1");
                }
                version
            }).collect::<Vec<_>>()),
        },
    });
    serde_json::from_value(value).expect("the Workspace CRD is a valid CustomResourceDefinition")
}

/// The InferenceSet CRD (`inferencesets.kaito.sh`): v1alpha1 and v1beta1 served with one schema,
/// v1alpha1 stored.
pub fn inferenceset_crd() -> CustomResourceDefinition {
    let versions: Vec<Value> = INFERENCESET_VERSIONS
        .iter()
        .map(|v| {
            json!({
                "name": v,
                "served": true,
                "storage": *v == INFERENCESET_VERSION,
                "schema": {"openAPIV3Schema": schema::inferenceset()},
                "subresources": {
                    "status": {},
                    "scale": {"specReplicasPath": ".spec.replicas",
                              "statusReplicasPath": ".status.replicas",
                              "labelSelectorPath": ".status.selector"},
                },
                "additionalPrinterColumns": [
                    printer("Replicas", "integer", ".spec.replicas"),
                    printer("ReadyReplicas", "integer", ".status.readyReplicas"),
                    condition_column("Ready", "InferenceSetReady"),
                    printer("Age", "date", ".metadata.creationTimestamp"),
                ],
            })
        })
        .collect();
    let value = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("inferencesets.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {"kind": "InferenceSet", "listKind": "InferenceSetList", "plural": "inferencesets",
                      "singular": "inferenceset", "categories": ["kaito"]},
            "scope": "Namespaced",
            "versions": versions,
        },
    });
    serde_json::from_value(value).expect("the InferenceSet CRD is a valid CustomResourceDefinition")
}

/// Both CRDs.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![workspace_crd(), inferenceset_crd()]
}

/// Both CRDs as multi-document YAML (what `kaito crd` prints and `deploy/base/crds/` holds).
pub fn crd_yaml() -> Result<String> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).map_err(crate::error::Error::Yaml)?);
    }
    Ok(out)
}

/// The `openAPIV3Schema` of a CRD's first version, as JSON (for client-side CEL checks).
pub fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let v = &crd.spec.versions[0];
    serde_json::to_value(
        v.schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref()),
    )
    .expect("a schema serializes")
}
