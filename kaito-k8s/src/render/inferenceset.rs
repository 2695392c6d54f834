//! An InferenceSet's children: one Workspace per replica and a KEDA ScaledObject.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use kube::Resource;
use serde_json::{json, Value};

use super::workspace::typed;
use super::{RenderOptions, RUNTIME_PORT};
use crate::crd::{keys, InferenceSet, Workspace};
use crate::error::Result;

/// The child Workspaces and the ScaledObject of an InferenceSet.
#[derive(Debug, Clone)]
pub struct RenderedInferenceSet {
    /// `<set>-0` … `<set>-(replicas-1)`.
    pub workspaces: Vec<Workspace>,
    /// KEDA `ScaledObject` (`keda.sh/v1alpha1`), when `scaledobject.kaito.sh/auto-provision` is `true`.
    pub scaled_object: Option<DynamicObject>,
}

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
    for (k, v) in set.metadata.annotations.iter().flatten() {
        if k.starts_with("kaito.sh/") {
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

/// Renders an InferenceSet.
pub fn render_inferenceset(
    set: &InferenceSet,
    opts: &RenderOptions,
) -> Result<RenderedInferenceSet> {
    let workspaces = (0..set.replicas().max(0))
        .map(|i| child_workspace(set, i))
        .collect();
    let scaled_object = if set.annotation(keys::SCALEDOBJECT_AUTO_PROVISION) == Some("true") {
        Some(scaled_object(set, opts)?)
    } else {
        None
    };
    Ok(RenderedInferenceSet {
        workspaces,
        scaled_object,
    })
}

fn scaled_object(set: &InferenceSet, opts: &RenderOptions) -> Result<DynamicObject> {
    let metric = set
        .annotation(keys::SCALEDOBJECT_METRIC)
        .unwrap_or("vllm:num_requests_waiting");
    let threshold = set.annotation(keys::SCALEDOBJECT_THRESHOLD).unwrap_or("10");
    let max = set
        .annotation(keys::SCALEDOBJECT_MAX_REPLICAS)
        .and_then(|v| v.parse::<i32>().ok())
        .or(set.spec.node_count_limit)
        .unwrap_or(10)
        .max(set.replicas());
    let mut meta =
        json!({"name": set.name(), "namespace": set.namespace(), "labels": child_selector(set)});
    if set.metadata.uid.is_some() {
        if let Some(mut o) = set.controller_owner_ref(&()) {
            o.block_owner_deletion = Some(true);
            meta["ownerReferences"] = serde_json::to_value(vec![o])?;
        }
    }
    typed(json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "kaito.sh/v1alpha1", "kind": "InferenceSet", "name": set.name()},
            "minReplicaCount": set.replicas().clamp(1, max),
            "maxReplicaCount": max,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [{
                "type": "external",
                "metricType": "AverageValue",
                "metadata": {
                    "scalerAddress": opts.keda_scaler_address,
                    "inferenceSetName": set.name(),
                    "inferenceSetNamespace": set.namespace(),
                    "metricName": metric,
                    "threshold": threshold,
                    "metricProtocol": "http",
                    "metricPort": RUNTIME_PORT.to_string(),
                    "metricPath": "/metrics",
                },
            }],
        }
    }))
}
