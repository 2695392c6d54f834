//! An InferenceSet's children: one Workspace per replica and a KEDA ScaledObject.

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::DynamicObject;
use kube::Resource;
use serde_json::json;

use super::model_cache::preheat_daemon_set;
use super::pod::affinity;
use super::workspace::typed;
use super::{RenderOptions, RUNTIME_PORT};
use crate::crd::{child_selector, child_workspace, keys, InferenceSet, Workspace};
use crate::error::Result;

/// The child Workspaces and the ScaledObject of an InferenceSet.
#[derive(Debug, Clone)]
pub struct RenderedInferenceSet {
    /// `<set>-0` … `<set>-(replicas-1)`.
    pub workspaces: Vec<Workspace>,
    /// KEDA `ScaledObject` (`keda.sh/v1alpha1`), when `scaledobject.kaito.sh/auto-provision` is `true`.
    pub scaled_object: Option<DynamicObject>,
    /// DaemonSet `<set>-preheat`, when `kaito.sh/preheat` is `true`: one for all replicas, on the
    /// nodes `spec.labelSelector` matches, so that scaling up starts from the node cache.
    pub preheat: Option<DaemonSet>,
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
    let preheat = if set.annotation(keys::PREHEAT) == Some("true") {
        let template = child_workspace(set, 0);
        preheat_daemon_set(
            &template,
            set.name(),
            set_metadata(set)?,
            affinity(&template, false),
            opts,
        )?
    } else {
        None
    };
    Ok(RenderedInferenceSet {
        workspaces,
        scaled_object,
        preheat,
    })
}

/// Metadata of an object the set owns: its namespace, the child selector as labels, and an
/// owner reference when the set came from a cluster.
fn set_metadata(set: &InferenceSet) -> Result<serde_json::Value> {
    let mut meta =
        json!({"name": set.name(), "namespace": set.namespace(), "labels": child_selector(set)});
    if set.metadata.uid.is_some() {
        if let Some(mut o) = set.controller_owner_ref(&()) {
            o.block_owner_deletion = Some(true);
            meta["ownerReferences"] = serde_json::to_value(vec![o])?;
        }
    }
    Ok(meta)
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
    let meta = set_metadata(set)?;
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
