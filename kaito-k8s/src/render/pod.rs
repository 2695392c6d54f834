//! The pod template: runtime container, resources, affinity, probes, volumes, security.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::model_cache::{cache_parts, RUNTIME_UID};
use super::workspace::{child_labels, selector_labels};
use super::{RenderOptions, CACHE_DIR, RUNTIME_PORT, WORKSPACE_FILE};
use crate::catalogue::Runtime;
use crate::crd::{keys, Workspace};
use crate::error::{Error, Result};
use crate::estimate::{Estimate, Placement};

/// What the pod template is built from.
pub(crate) struct PodPlan<'a> {
    pub estimate: Option<&'a Estimate>,
    pub vllm_config: &'a BTreeMap<String, serde_yaml::Value>,
    pub config_map_name: String,
    pub rollout_hash: String,
    pub node_count: u32,
}

fn http_probe(path: &str, period: i32, failures: i32) -> Value {
    json!({"httpGet": {"path": path, "port": RUNTIME_PORT}, "periodSeconds": period,
           "timeoutSeconds": 5, "failureThreshold": failures})
}

/// Required node affinity from `resource.labelSelector` and the instance type; preferred
/// affinity for `resource.preferredNodes`.
pub(crate) fn affinity(ws: &Workspace, multi_pod: bool) -> Value {
    let resource = ws.resource.clone().unwrap_or_default();
    let mut exprs: Vec<Value> = Vec::new();
    if let Some(sel) = &resource.label_selector {
        for (k, v) in &sel.match_labels {
            exprs.push(json!({"key": k, "operator": "In", "values": [v]}));
        }
        for e in &sel.match_expressions {
            let mut x = json!({"key": e.key, "operator": e.operator});
            if !e.values.is_empty() {
                x["values"] = json!(e.values);
            }
            exprs.push(x);
        }
    }
    if let Some(t) = resource
        .instance_type
        .as_deref()
        .and_then(crate::instance_types::find)
    {
        exprs.push(json!({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [t.name]}));
    }
    let mut node_affinity = json!({});
    if !exprs.is_empty() {
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] =
            json!({"nodeSelectorTerms": [{"matchExpressions": exprs}]});
    }
    if !resource.preferred_nodes.is_empty() {
        node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = json!([{
            "weight": 100,
            "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": resource.preferred_nodes}]}
        }]);
    }
    let mut a = json!({"nodeAffinity": node_affinity});
    if multi_pod {
        a["podAntiAffinity"] = json!({"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": selector_labels(ws)},
            "topologyKey": "kubernetes.io/hostname"
        }]});
    }
    a
}

fn yaml_arg(key: &str, v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::Bool(true) => Some(format!("--{key}")),
        serde_yaml::Value::Bool(false) | serde_yaml::Value::Null => None,
        serde_yaml::Value::String(s) => Some(format!("--{key}={s}")),
        serde_yaml::Value::Number(n) => Some(format!("--{key}={n}")),
        other => Some(format!(
            "--{key}={}",
            serde_json::to_string(other).unwrap_or_default()
        )),
    }
}

/// Builds the `PodTemplateSpec` as JSON.
pub(crate) fn pod_template(
    ws: &Workspace,
    plan: &PodPlan<'_>,
    opts: &RenderOptions,
) -> Result<Value> {
    let mut labels = child_labels(ws);
    labels.insert(
        "app.kubernetes.io/component".to_owned(),
        "inference".to_owned(),
    );
    let annotations = json!({"kaito.sh/rollout-hash": plan.rollout_hash});
    let inference = ws.inference.clone().unwrap_or_default();

    if let Some(template) = &inference.template {
        // A user template is used as given, with our labels and node affinity added.
        let mut t = template.clone();
        if !t.is_object() {
            return Err(Error::invalid(
                "inference.template",
                "must be a PodTemplateSpec object",
            ));
        }
        let meta = t
            .as_object_mut()
            .unwrap()
            .entry("metadata")
            .or_insert_with(|| json!({}));
        let l = meta
            .as_object_mut()
            .ok_or_else(|| Error::invalid("inference.template.metadata", "must be an object"))?
            .entry("labels")
            .or_insert_with(|| json!({}));
        for (k, v) in &labels {
            l[k] = json!(v);
        }
        meta["annotations"] = annotations;
        if t.get("spec").and_then(|s| s.get("affinity")).is_none() {
            t["spec"]["affinity"] = affinity(ws, plan.node_count > 1);
        }
        serde_json::from_value::<k8s_openapi::api::core::v1::PodTemplateSpec>(t.clone()).map_err(
            |e| {
                Error::invalid(
                    "inference.template",
                    format!("not a valid PodTemplateSpec: {e}"),
                )
            },
        )?;
        return Ok(t);
    }

    let est = plan
        .estimate
        .ok_or_else(|| Error::invalid("inference", "nothing to serve"))?;
    let mut volumes = vec![
        json!({"name": "config", "configMap": {"name": plan.config_map_name}}),
        json!({"name": "model-cache", "emptyDir": {"sizeLimit": format!("{}Mi", (est.weights_bytes as f64 * 1.25 / 1048576.0).ceil() as u64 + 512)}}),
        json!({"name": "tmp", "emptyDir": {}}),
    ];
    let mut mounts = vec![
        json!({"name": "model-cache", "mountPath": CACHE_DIR}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    let mut env = vec![json!({"name": "KAITO_CACHE_DIR", "value": CACHE_DIR})];
    let mut init_containers = Vec::new();
    let mut tolerations = Vec::new();
    let container = match (&est.placement, est.runtime) {
        (Placement::Cpu(cpu), _) => {
            mounts.push(json!({"name": "config", "mountPath": "/etc/kaito", "readOnly": true}));
            if let Some(model) = ws.oci_model() {
                // The model comes from the node cache, pulled before the runtime starts.
                let parts = cache_parts(model, opts);
                volumes.retain(|v| v["name"] != "model-cache");
                volumes.extend(parts.volumes);
                mounts.extend(parts.mounts);
                env = parts.env;
                init_containers.extend(parts.init_containers);
            }
            json!({
                "name": "kaito",
                "image": opts.kaito_image,
                "command": ["kaito"],
                "args": ["serve", "-f", WORKSPACE_FILE, "--host", "0.0.0.0", "--port", RUNTIME_PORT.to_string()],
                "resources": {
                    "requests": {"cpu": cpu.cpu_cores.to_string(), "memory": format!("{}Mi", cpu.memory_mib)},
                    "limits": {"memory": format!("{}Mi", cpu.memory_mib)},
                },
                "securityContext": {"readOnlyRootFilesystem": true},
            })
        }
        (Placement::Gpu(g), _) => {
            let preset = inference.preset.as_ref();
            if let Some(secret) = preset
                .and_then(|p| p.preset_options.as_ref())
                .and_then(|o| o.model_access_secret.as_ref())
            {
                env.push(json!({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": "HF_TOKEN"}}}));
            }
            env.push(json!({"name": "HF_HOME", "value": CACHE_DIR}));
            // vLLM, Triton and torch write caches under $HOME; the image's is root's.
            env.push(json!({"name": "HOME", "value": "/tmp"}));
            mounts.push(json!({"name": "config", "mountPath": "/mnt/config", "readOnly": true}));
            volumes.push(json!({"name": "dshm", "emptyDir": {"medium": "Memory"}}));
            mounts.push(json!({"name": "dshm", "mountPath": "/dev/shm"}));
            let mut args = vec![
                format!("--model={}", est.model.repo),
                format!("--served-model-name={}", est.model.name),
                "--host=0.0.0.0".to_owned(),
                format!("--port={RUNTIME_PORT}"),
                format!("--tensor-parallel-size={}", g.tensor_parallel),
                format!("--download-dir={CACHE_DIR}"),
            ];
            if g.pipeline_parallel > 1 {
                args.push(format!("--pipeline-parallel-size={}", g.pipeline_parallel));
                args.push("--distributed-executor-backend=ray".to_owned());
            }
            if !plan.vllm_config.contains_key("max-model-len") {
                args.push(format!("--max-model-len={}", est.context_length));
            }
            if let Some(q) = est.quantization {
                args.push(format!("--quantization={}", q.vllm_arg()));
            }
            match ws.annotation(keys::PERFORMANCE_MODE) {
                Some("throughput") => args.push("--max-num-seqs=512".to_owned()),
                Some("interactivity") => args.push("--max-num-seqs=32".to_owned()),
                _ => {}
            }
            for (k, v) in plan.vllm_config {
                if k == "tensor-parallel-size" || k == "pipeline-parallel-size" {
                    continue; // the estimator decides parallelism
                }
                args.extend(yaml_arg(k, v));
            }
            let mut lora = Vec::new();
            for (i, a) in inference.adapters.iter().enumerate() {
                let Some(src) = &a.source else { continue };
                let Some(image) = &src.image else { continue };
                let name = src.name.clone().unwrap_or_else(|| format!("adapter-{i}"));
                init_containers.push(json!({
                    "name": format!("adapter-{i}"),
                    "image": image,
                    "command": ["/bin/sh", "-c", format!("mkdir -p /mnt/adapter/{name} && cp -r /data/. /mnt/adapter/{name}/")],
                    "volumeMounts": [{"name": "adapters", "mountPath": "/mnt/adapter"}],
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                }));
                lora.push(format!("{name}=/mnt/adapter/{name}"));
            }
            if !lora.is_empty() {
                volumes.push(json!({"name": "adapters", "emptyDir": {}}));
                mounts.push(
                    json!({"name": "adapters", "mountPath": "/mnt/adapter", "readOnly": true}),
                );
                args.push("--enable-lora".to_owned());
                args.push(format!("--lora-modules={}", lora.join(" ")));
            }
            tolerations.push(
                json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}),
            );
            tolerations.push(
                json!({"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}),
            );
            let gpus = g.gpus_per_node.to_string();
            let gpu_resource = match &g.mig_profile {
                Some(p) => format!("nvidia.com/mig-{p}"),
                None => "nvidia.com/gpu".to_owned(),
            };
            let (command, args) = if g.node_count > 1 {
                env.push(json!({"name": "POD_INDEX", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}}));
                let leader = format!(
                    "{}-0.{}-headless.{}.svc.cluster.local",
                    ws.name(),
                    ws.name(),
                    ws.namespace()
                );
                let script = format!(
                    "if [ \"$POD_INDEX\" = \"0\" ]; then ray start --head --port=6379 && exec python3 -m vllm.entrypoints.openai.api_server {}; else exec ray start --address={leader}:6379 --block; fi",
                    args.join(" ")
                );
                (json!(["/bin/sh", "-c", script]), json!([]))
            } else {
                (
                    json!(["python3", "-m", "vllm.entrypoints.openai.api_server"]),
                    json!(args),
                )
            };
            json!({
                "name": "vllm",
                "image": opts.vllm_image,
                "command": command,
                "args": args,
                "resources": {
                    "requests": {gpu_resource.clone(): gpus, "cpu": "4", "memory": "16Gi"},
                    "limits": {gpu_resource: gpus},
                },
                "securityContext": {"readOnlyRootFilesystem": false},
            })
        }
    };
    let mut container = container;
    let multi_node = plan.node_count > 1
        && plan
            .estimate
            .is_some_and(|e| matches!(e.placement, Placement::Gpu(_)));
    let (startup, readiness, liveness) = if multi_node {
        // Workers run no HTTP server: pod 0 checks vLLM, the others their Ray membership.
        let leader = format!(
            "{}-0.{}-headless.{}.svc.cluster.local",
            ws.name(),
            ws.name(),
            ws.namespace()
        );
        let check = format!(
            "if [ \"$POD_INDEX\" = \"0\" ]; then python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{RUNTIME_PORT}/health')\"; else ray status --address={leader}:6379 >/dev/null; fi"
        );
        let exec = |period: i32, failures: i32| json!({"exec": {"command": ["/bin/sh", "-c", check]}, "periodSeconds": period, "timeoutSeconds": 10, "failureThreshold": failures});
        (exec(10, 180), exec(10, 3), exec(20, 3))
    } else {
        let ready_path = if est.runtime == Runtime::Kaito {
            "/ready"
        } else {
            "/health"
        };
        let startup_failures = if est.runtime == Runtime::Kaito {
            120
        } else {
            180
        };
        (
            http_probe("/health", 10, startup_failures),
            http_probe(ready_path, 5, 3),
            http_probe("/health", 10, 3),
        )
    };
    let c = container.as_object_mut().expect("container is an object");
    c.insert(
        "ports".into(),
        json!([{"name": "http", "containerPort": RUNTIME_PORT, "protocol": "TCP"}]),
    );
    c.insert("env".into(), json!(env));
    c.insert("volumeMounts".into(), json!(mounts));
    c.insert("startupProbe".into(), startup);
    c.insert("readinessProbe".into(), readiness);
    c.insert("livenessProbe".into(), liveness);
    c.insert(
        "lifecycle".into(),
        json!({"preStop": {"sleep": {"seconds": 5}}}),
    );
    let sc = c.get_mut("securityContext").expect("set above");
    sc["allowPrivilegeEscalation"] = json!(false);
    sc["capabilities"] = json!({"drop": ["ALL"]});

    let mut spec = json!({
        "affinity": affinity(ws, plan.node_count > 1),
        "containers": [container],
        "volumes": volumes,
        "terminationGracePeriodSeconds": 60,
        "enableServiceLinks": false,
        "securityContext": {"runAsNonRoot": true, "runAsUser": RUNTIME_UID, "runAsGroup": RUNTIME_UID,
                            "fsGroup": RUNTIME_UID, "seccompProfile": {"type": "RuntimeDefault"}},
    });
    if !init_containers.is_empty() {
        spec["initContainers"] = json!(init_containers);
    }
    if !tolerations.is_empty() {
        spec["tolerations"] = json!(tolerations);
    }
    let secrets: Vec<Value> = inference
        .preset
        .as_ref()
        .and_then(|p| p.preset_options.as_ref())
        .map(|o| {
            o.image_pull_secrets
                .iter()
                .map(|s| json!({"name": s}))
                .collect()
        })
        .unwrap_or_default();
    if !secrets.is_empty() {
        spec["imagePullSecrets"] = json!(secrets);
    }
    Ok(json!({"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}))
}
