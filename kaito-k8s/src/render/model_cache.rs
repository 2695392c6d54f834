//! The node-local model cache of an `oci://` model: the init containers that pull it before
//! `kaito serve` starts, the volume it lives on, and the preheat DaemonSet that fills it on every
//! matching node before replicas are scheduled.
//!
//! The cache is the model store of `kaito_core::model::store` (blobs by digest, held markers,
//! a lock per download), so pods of any Workspace on one node share it, two pods pulling at once
//! download once, and a model a running pod holds is never evicted.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use kaito_core::workspace::ModelSpec;
use serde_json::{json, Value};

use super::workspace::typed;
use super::{RenderOptions, CACHE_DIR};
use crate::crd::{keys, Workspace};
use crate::error::Result;

/// Default node directory of the cache (a `hostPath`), unless `inference.model.cacheVolumeClaim`
/// names a PersistentVolumeClaim.
pub const NODE_CACHE_DIR: &str = "/var/lib/kaito/models";
/// Where the registry credentials of `inference.model.imagePullSecrets` are mounted.
pub const REGISTRY_AUTH_DIR: &str = "/var/run/kaito/registry";
/// UID and GID of the runtime (the image's `kaito` user).
pub(crate) const RUNTIME_UID: i64 = 65532;

/// What a pod needs to read the model from the node cache.
pub(crate) struct CacheParts {
    /// The `model-cache` volume (replacing the pod's emptyDir) and the credentials volume.
    pub volumes: Vec<Value>,
    /// Mounts of the credentials for the runtime container (the cache is mounted already).
    pub mounts: Vec<Value>,
    /// `KAITO_REGISTRY_AUTH`, when there are credentials.
    pub env: Vec<Value>,
    /// Run before the runtime: make the hostPath directory the runtime's, then pull.
    pub init_containers: Vec<Value>,
}

fn restricted() -> Value {
    json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
           "capabilities": {"drop": ["ALL"]}})
}

/// The pieces of a pod that pulls `model` into the cache before anything else runs.
pub(crate) fn cache_parts(model: &ModelSpec, opts: &RenderOptions) -> CacheParts {
    let cache_volume = match &model.cache_volume_claim {
        Some(claim) => {
            json!({"name": "model-cache", "persistentVolumeClaim": {"claimName": claim}})
        }
        None => {
            json!({"name": "model-cache", "hostPath": {"path": NODE_CACHE_DIR, "type": "DirectoryOrCreate"}})
        }
    };
    let mut volumes = vec![cache_volume];
    let mut mounts = Vec::new();
    let mut env = vec![json!({"name": "KAITO_CACHE_DIR", "value": CACHE_DIR})];
    if let Some(gib) = model.cache_max_gib {
        env.push(json!({"name": "KAITO_CACHE_MAX_GIB", "value": gib.to_string()}));
    }
    if !model.image_pull_secrets.is_empty() {
        let sources: Vec<Value> = model
            .image_pull_secrets
            .iter()
            .map(|s| json!({"secret": {"name": s, "items": [{"key": ".dockerconfigjson", "path": format!("{s}.json")}]}}))
            .collect();
        volumes.push(json!({"name": "registry-auth", "projected": {"sources": sources, "defaultMode": 0o440}}));
        mounts.push(
            json!({"name": "registry-auth", "mountPath": REGISTRY_AUTH_DIR, "readOnly": true}),
        );
        let files: Vec<String> = model
            .image_pull_secrets
            .iter()
            .map(|s| format!("{REGISTRY_AUTH_DIR}/{s}.json"))
            .collect();
        env.push(json!({"name": "KAITO_REGISTRY_AUTH", "value": files.join(":")}));
    }
    let cache_mount = json!({"name": "model-cache", "mountPath": CACHE_DIR});
    let mut init_containers = Vec::new();
    if model.cache_volume_claim.is_none() {
        // A hostPath directory the kubelet creates belongs to root; fsGroup does not apply to it.
        let mut sc = restricted();
        sc["runAsUser"] = json!(0);
        sc["runAsNonRoot"] = json!(false);
        sc["capabilities"]["add"] = json!(["CHOWN"]);
        init_containers.push(json!({
            "name": "model-cache-owner",
            "image": opts.kaito_image,
            "command": ["chown", format!("{RUNTIME_UID}:{RUNTIME_UID}"), CACHE_DIR],
            "volumeMounts": [cache_mount.clone()],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "16Mi"}},
            "securityContext": sc,
        }));
    }
    let mut pull_mounts = vec![cache_mount, json!({"name": "tmp", "mountPath": "/tmp"})];
    pull_mounts.extend(mounts.iter().cloned());
    init_containers.push(pull_container(
        "model-pull",
        model,
        opts,
        &env,
        pull_mounts,
        false,
    ));
    CacheParts {
        volumes,
        mounts,
        env,
        init_containers,
    }
}

/// `kaito pull SOURCE` (with `--hold`: and keep it held until the pod stops).
fn pull_container(
    name: &str,
    model: &ModelSpec,
    opts: &RenderOptions,
    env: &[Value],
    mounts: Vec<Value>,
    hold: bool,
) -> Value {
    let mut args = vec!["pull".to_owned(), model.source.clone()];
    if hold {
        args.push("--hold".to_owned());
    }
    let mut env = env.to_vec();
    env.push(json!({"name": "HOME", "value": "/tmp"}));
    json!({
        "name": name,
        "image": opts.kaito_image,
        "command": ["kaito"],
        "args": args,
        "env": env,
        "volumeMounts": mounts,
        // Layers stream to disk; memory stays small whatever the model's size. Holding only
        // waits (a cache hit, then a heartbeat every few seconds).
        "resources": if hold {
            json!({"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "512Mi"}})
        } else {
            json!({"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}})
        },
        "securityContext": restricted(),
    })
}

/// The preheat DaemonSet `<owner>-preheat`: on every node `ws`'s label selector matches, pull
/// the model into the node cache (an init container, so the pod is Ready only once the model is
/// there), then keep it held so no prune evicts it while the DaemonSet exists. `owner` is the
/// Workspace or InferenceSet that asked, with its metadata (`ownerReferences`).
pub(crate) fn preheat_daemon_set(
    ws: &Workspace,
    owner: &str,
    metadata: Value,
    affinity: Value,
    opts: &RenderOptions,
) -> Result<Option<DaemonSet>> {
    let Some(model) = ws.oci_model() else {
        return Ok(None);
    };
    let parts = cache_parts(model, opts);
    let labels = BTreeMap::from([
        (keys::PREHEAT_LABEL.to_owned(), owner.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "kaito-rs".to_owned(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            "model-preheat".to_owned(),
        ),
    ]);
    let selector = BTreeMap::from([(keys::PREHEAT_LABEL.to_owned(), owner.to_owned())]);
    let mut volumes = parts.volumes;
    volumes.push(json!({"name": "tmp", "emptyDir": {}}));
    let mut mounts = vec![
        json!({"name": "model-cache", "mountPath": CACHE_DIR}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    mounts.extend(parts.mounts);
    let hold = pull_container("hold", model, opts, &parts.env, mounts, true);
    let mut metadata = metadata;
    metadata["name"] = json!(format!("{owner}-preheat"));
    let mut object_labels = metadata["labels"].as_object().cloned().unwrap_or_default();
    for (k, v) in &labels {
        object_labels.insert(k.clone(), json!(v));
    }
    metadata["labels"] = Value::Object(object_labels);
    typed(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": affinity,
                    "initContainers": parts.init_containers,
                    "containers": [hold],
                    "volumes": volumes,
                    "terminationGracePeriodSeconds": 10,
                    "enableServiceLinks": false,
                    "automountServiceAccountToken": false,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": RUNTIME_UID, "runAsGroup": RUNTIME_UID,
                                        "fsGroup": RUNTIME_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                },
            },
        }
    }))
    .map(Some)
}
