//! Server-side apply of rendered objects, skipped when nothing changed.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use crate::crd::keys;
use crate::error::{Error, Result};
use crate::render::short_hash;

/// Annotation holding the hash of what was last applied.
pub const APPLIED_HASH: &str = "kaito.sh/applied-hash";

fn plural(kind: &str) -> Option<(&'static str, bool)> {
    // (plural, namespaced)
    Some(match kind {
        "ConfigMap" => ("configmaps", true),
        "Service" => ("services", true),
        "StatefulSet" => ("statefulsets", true),
        "DaemonSet" => ("daemonsets", true),
        "PodDisruptionBudget" => ("poddisruptionbudgets", true),
        "NetworkPolicy" => ("networkpolicies", true),
        "Workspace" => ("workspaces", true),
        "ScaledObject" => ("scaledobjects", true),
        "NodeClaim" => ("nodeclaims", false),
        _ => return None,
    })
}

/// The dynamic API of an object, from its `apiVersion` and `kind`.
pub(crate) fn dynamic_api(client: &Client, obj: &Value) -> Result<(Api<DynamicObject>, String)> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let (plural, namespaced) =
        plural(kind).ok_or_else(|| Error::Config(format!("cannot apply kind {kind}")))?;
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api = if namespaced {
        Api::namespaced_with(
            client.clone(),
            obj["metadata"]["namespace"].as_str().unwrap_or("default"),
            &ar,
        )
    } else {
        Api::all_with(client.clone(), &ar)
    };
    Ok((api, name))
}

/// Applies `obj` with server-side apply under the controller's field manager, unless the live
/// object already carries the hash of exactly this content. Returns whether it wrote.
pub async fn apply_if_changed(client: &Client, mut obj: Value) -> Result<bool> {
    let hash = short_hash(&obj.to_string());
    obj["metadata"]["annotations"][APPLIED_HASH] = json!(hash);
    let (api, name) = dynamic_api(client, &obj)?;
    if let Some(live) = api.get_opt(&name).await? {
        let live_hash = live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(APPLIED_HASH));
        if live_hash == Some(&hash) {
            return Ok(false);
        }
    }
    api.patch(
        &name,
        &PatchParams::apply(keys::FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await?;
    Ok(true)
}
