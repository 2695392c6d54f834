//! An InferenceSet's replicas as the Workspaces it creates: what the renderer emits and the
//! validator checks.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde_json::Value;

use super::{keys, InferenceSet, Workspace};

/// Name of replica `index`.
pub fn child_workspace_name(set: &InferenceSet, index: i32) -> String {
    format!("{}-{index}", set.name())
}

/// The labels that select an InferenceSet's children (also its `status.selector`).
pub fn child_selector(set: &InferenceSet) -> BTreeMap<String, String> {
    BTreeMap::from([(keys::INFERENCESET_LABEL.to_owned(), set.name().to_owned())])
}

/// Replica `index` of the set: the template's resource and inference, the spec's label selector.
pub fn child_workspace(set: &InferenceSet, index: i32) -> Workspace {
    let t = &set.spec.template;
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    if let Some(meta) = &t.metadata {
        for (field, out) in [("labels", &mut labels), ("annotations", &mut annotations)] {
            if let Some(map) = meta.get(field).and_then(Value::as_object) {
                for (k, v) in map {
                    if let Some(v) = v.as_str() {
                        out.insert(k.clone(), v.to_owned());
                    }
                }
            }
        }
    }
    // Workspace-level annotations of the set (runtime, bypass, quantization) pass down.
    // Preheating is the set's: one DaemonSet for all replicas.
    for (k, v) in set.metadata.annotations.iter().flatten() {
        if k.starts_with("kaito.sh/") && k != keys::PREHEAT {
            annotations.insert(k.clone(), v.clone());
        }
    }
    labels.extend(child_selector(set));
    let mut resource = t.resource.clone().unwrap_or_default();
    resource.label_selector = Some(set.spec.label_selector.clone());
    let owner = set
        .metadata
        .uid
        .as_ref()
        .and_then(|_| set.controller_owner_ref(&()));
    Workspace {
        metadata: ObjectMeta {
            name: Some(child_workspace_name(set, index)),
            namespace: Some(set.namespace().to_owned()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: owner.map(|mut o| {
                o.block_owner_deletion = Some(true);
                vec![o]
            }),
            ..Default::default()
        },
        resource: Some(resource),
        inference: Some(t.inference.clone()),
        tuning: None,
        status: None,
    }
}
