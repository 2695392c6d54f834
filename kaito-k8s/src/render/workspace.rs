//! A Workspace's children.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::DynamicObject;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::model_cache::preheat_daemon_set;
use super::pod::{affinity, pod_template, PodPlan};
use super::{short_hash, RenderOptions, RUNTIME_PORT};
use crate::catalogue::Runtime;
use crate::crd::{keys, Workspace};
use crate::error::{Error, Result};
use crate::estimate::{self, Estimate, Placement};
use crate::validate::ValidWorkspace;

/// Every object the controller applies for one Workspace.
#[derive(Debug, Clone)]
pub struct RenderedWorkspace {
    /// The estimate behind the sizes (`None` for pod templates).
    pub estimate: Option<Estimate>,
    /// The runtime's ConfigMap (`<name>-inference`): the Workspace for `kaito serve`, or the
    /// default `inference_config.yaml` for vLLM. `None` when the user names a ConfigMap.
    pub config_map: Option<ConfigMap>,
    /// ClusterIP Service `<name>`: port 80 → 5000.
    pub service: Service,
    /// Headless Service `<name>-headless` for the StatefulSet.
    pub headless_service: Service,
    /// The StatefulSet `<name>`: one pod per node; pod 0 leads multi-node inference.
    pub stateful_set: StatefulSet,
    /// PodDisruptionBudget `<name>`.
    pub pdb: PodDisruptionBudget,
    /// NetworkPolicy `<name>`: same namespace and labelled gateway namespaces only.
    pub network_policy: NetworkPolicy,
    /// Karpenter NodeClaims (cluster-scoped).
    pub node_claims: Vec<DynamicObject>,
    /// DaemonSet `<name>-preheat` (`kaito.sh/preheat: "true"` and an `oci://` model): pulls the
    /// model into the node cache of every matching node.
    pub preheat: Option<DaemonSet>,
}

impl RenderedWorkspace {
    /// The objects as JSON, in apply order.
    pub fn to_values(&self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for nc in &self.node_claims {
            out.push(serde_json::to_value(nc)?);
        }
        if let Some(cm) = &self.config_map {
            out.push(with_type(serde_json::to_value(cm)?, "v1", "ConfigMap"));
        }
        if let Some(ds) = &self.preheat {
            out.push(with_type(serde_json::to_value(ds)?, "apps/v1", "DaemonSet"));
        }
        out.push(with_type(
            serde_json::to_value(&self.service)?,
            "v1",
            "Service",
        ));
        out.push(with_type(
            serde_json::to_value(&self.headless_service)?,
            "v1",
            "Service",
        ));
        out.push(with_type(
            serde_json::to_value(&self.stateful_set)?,
            "apps/v1",
            "StatefulSet",
        ));
        out.push(with_type(
            serde_json::to_value(&self.pdb)?,
            "policy/v1",
            "PodDisruptionBudget",
        ));
        out.push(with_type(
            serde_json::to_value(&self.network_policy)?,
            "networking.k8s.io/v1",
            "NetworkPolicy",
        ));
        Ok(out)
    }
}

/// Typed k8s-openapi objects serialize `apiVersion` and `kind` themselves; this keeps them first.
pub fn with_type(mut v: Value, api_version: &str, kind: &str) -> Value {
    if let Value::Object(map) = &mut v {
        let mut out = serde_json::Map::new();
        out.insert("apiVersion".into(), json!(api_version));
        out.insert("kind".into(), json!(kind));
        for (k, val) in std::mem::take(map) {
            if k != "apiVersion" && k != "kind" {
                out.insert(k, val);
            }
        }
        return Value::Object(out);
    }
    v
}

pub(crate) fn typed<T: DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(Error::Serialization)
}

/// Labels on every child and pod.
pub fn child_labels(ws: &Workspace) -> BTreeMap<String, String> {
    BTreeMap::from([
        (keys::WORKSPACE_LABEL.to_owned(), ws.name().to_owned()),
        (
            keys::WORKSPACE_NAMESPACE_LABEL.to_owned(),
            ws.namespace().to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "kaito-rs".to_owned(),
        ),
    ])
}

/// The pod selector of a Workspace's StatefulSet.
pub fn selector_labels(ws: &Workspace) -> BTreeMap<String, String> {
    BTreeMap::from([(keys::WORKSPACE_LABEL.to_owned(), ws.name().to_owned())])
}

/// `ownerReferences` pointing at the Workspace, when it has a uid (i.e. came from a cluster).
pub fn owner_refs(ws: &Workspace) -> Option<Vec<OwnerReference>> {
    ws.meta().uid.as_ref()?;
    let mut r = ws.controller_owner_ref(&())?;
    r.block_owner_deletion = Some(true);
    Some(vec![r])
}

fn metadata(ws: &Workspace, name: &str) -> Value {
    let mut m = json!({"name": name, "namespace": ws.namespace(), "labels": child_labels(ws)});
    if let Some(refs) = owner_refs(ws) {
        m["ownerReferences"] = serde_json::to_value(refs).unwrap_or_default();
    }
    m
}

/// The default `inference_config.yaml` KAITO gives vLLM when the Workspace names none.
pub const DEFAULT_INFERENCE_CONFIG: &str = "# Created by kaito-rs. Name your own ConfigMap in inference.config to change it.\nvllm:\n  cpu-offload-gb: 0\n  gpu-memory-utilization: 0.84\n  swap-space: 4\n";

/// Renders a Workspace that passed [`crate::validate::check`] (which validated and sized it once).
pub fn render_workspace(
    valid: &ValidWorkspace<'_>,
    opts: &RenderOptions,
) -> Result<RenderedWorkspace> {
    let (ws, facts) = (valid.workspace(), valid.facts());
    let name = ws.name();
    let inference = ws.inference.clone().unwrap_or_default();
    let vllm_conf = valid.vllm_config();
    let est = valid.estimate().cloned();
    let runtime = est.as_ref().map(|e| e.runtime);

    // The runtime ConfigMap: our Workspace file, or vLLM's default config.
    let (config_map, config_text) = match runtime {
        Some(Runtime::Kaito) => {
            let text = ws.to_core().to_yaml()?;
            let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(ws, &format!("{name}-inference")),
                "data": {"workspace.yaml": text}});
            cm["metadata"]["labels"]["app.kubernetes.io/component"] = json!("inference-config");
            (Some(typed::<ConfigMap>(cm)?), text)
        }
        Some(Runtime::Vllm) if inference.config.is_none() => {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(ws, &format!("{name}-inference")),
                "data": {"inference_config.yaml": DEFAULT_INFERENCE_CONFIG}});
            (
                Some(typed::<ConfigMap>(cm)?),
                DEFAULT_INFERENCE_CONFIG.to_owned(),
            )
        }
        _ => (None, facts.inference_config.clone().unwrap_or_default()),
    };

    let node_count = match &est {
        Some(e) => e.node_count(),
        None => ws
            .resource
            .as_ref()
            .and_then(|r| r.count)
            .unwrap_or(1)
            .max(1) as u32,
    };
    let multi_node =
        matches!(&est, Some(Estimate { placement: Placement::Gpu(g), .. }) if g.node_count > 1);
    let plan = PodPlan {
        estimate: est.as_ref(),
        vllm_config: vllm_conf,
        config_map_name: match (runtime, &inference.config) {
            (Some(Runtime::Vllm), Some(user)) => user.clone(),
            _ => format!("{name}-inference"),
        },
        rollout_hash: short_hash(&format!(
            "{}\n{config_text}",
            serde_json::to_string(&(&ws.resource, &ws.inference))?
        )),
        node_count,
    };
    let template = pod_template(ws, &plan, opts)?;

    let sel = selector_labels(ws);
    let mut svc_selector = sel.clone();
    if multi_node {
        svc_selector.insert("apps.kubernetes.io/pod-index".to_owned(), "0".to_owned());
    }
    let lb = ws.annotation(keys::ENABLE_LB) == Some("true");
    let service = typed::<Service>(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": metadata(ws, name),
        "spec": {"type": if lb { "LoadBalancer" } else { "ClusterIP" }, "selector": svc_selector,
                 "ports": [{"name": "http", "port": 80, "targetPort": RUNTIME_PORT, "protocol": "TCP"}]}
    }))?;
    let mut headless_ports = vec![
        json!({"name": "http", "port": RUNTIME_PORT, "targetPort": RUNTIME_PORT, "protocol": "TCP"}),
    ];
    if multi_node {
        headless_ports
            .push(json!({"name": "ray", "port": 6379, "targetPort": 6379, "protocol": "TCP"}));
    }
    let headless_service = typed::<Service>(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": metadata(ws, &format!("{name}-headless")),
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "selector": sel, "ports": headless_ports}
    }))?;
    let stateful_set = typed::<StatefulSet>(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata(ws, name),
        "spec": {
            "replicas": node_count,
            "serviceName": format!("{name}-headless"),
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": sel},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": template,
        }
    }))?;
    let pdb = typed::<PodDisruptionBudget>(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(ws, name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": sel}}
    }))?;
    let network_policy = typed::<NetworkPolicy>(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata(ws, name),
        "spec": {
            "podSelector": {"matchLabels": sel},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    {"podSelector": {}},
                    {"namespaceSelector": {"matchLabels": {keys::GATEWAY_LABEL: "true"}}},
                ],
            }],
        }
    }))?;
    let node_claims = match &est {
        Some(Estimate {
            placement: Placement::Gpu(g),
            ..
        }) => node_claims(ws, g, opts)?,
        _ => Vec::new(),
    };
    let preheat = if ws.annotation(keys::PREHEAT) == Some("true") {
        preheat_daemon_set(ws, name, metadata(ws, name), affinity(ws, false), opts)?
    } else {
        None
    };
    Ok(RenderedWorkspace {
        preheat,
        estimate: est,
        config_map,
        service,
        headless_service,
        stateful_set,
        pdb,
        network_policy,
        node_claims,
    })
}

/// Whether NodeClaims are created for this Workspace.
pub fn auto_provision(ws: &Workspace, opts: &RenderOptions) -> bool {
    opts.auto_provision && ws.annotation(keys::AUTO_PROVISION) != Some("false")
}

fn node_claims(
    ws: &Workspace,
    g: &estimate::GpuPlan,
    opts: &RenderOptions,
) -> Result<Vec<DynamicObject>> {
    let Some(instance) = g.instance else {
        return Ok(Vec::new());
    };
    if !auto_provision(ws, opts) || g.mig_profile.is_some() {
        return Ok(Vec::new());
    }
    let (group, kind, class) = opts
        .node_class
        .clone()
        .unwrap_or_else(|| match instance.cloud {
            "aws" => (
                "karpenter.k8s.aws".into(),
                "EC2NodeClass".into(),
                "default".into(),
            ),
            "gcp" => (
                "karpenter.k8s.gcp".into(),
                "GCENodeClass".into(),
                "default".into(),
            ),
            _ => (
                "karpenter.azure.com".into(),
                "AKSNodeClass".into(),
                "default".into(),
            ),
        });
    let mut labels: BTreeMap<String, String> = child_labels(ws);
    if let Some(sel) = ws.resource.as_ref().and_then(|r| r.label_selector.as_ref()) {
        labels.extend(sel.match_labels.clone());
    }
    let ns_hash = short_hash(ws.namespace());
    let mut out = Vec::new();
    for i in 0..g.node_count {
        let mut meta = json!({"name": format!("{}-{ns_hash}-{i}", ws.name()), "labels": labels});
        // A cluster-scoped object cannot be owned by a namespaced one: the controller deletes
        // NodeClaims itself (by label) in its finalizer.
        meta["annotations"] =
            json!({"kaito.sh/workspace-ref": format!("{}/{}", ws.namespace(), ws.name())});
        let v = json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim", "metadata": meta,
            "spec": {
                "nodeClassRef": {"group": group, "kind": kind, "name": class},
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance.name]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                ],
                "taints": [
                    {"key": "nvidia.com/gpu", "effect": "NoSchedule"},
                    {"key": "sku", "value": "gpu", "effect": "NoSchedule"},
                ],
                "resources": {"requests": {"nvidia.com/gpu": g.gpus_per_node.to_string()}},
            }
        });
        out.push(typed::<DynamicObject>(v)?);
    }
    Ok(out)
}
