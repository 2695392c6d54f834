//! The Workspace reconciler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, ResourceQuota, Secret};
use kaito_core::workspace::WorkspaceStatus;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Error as FinalizerError, Event as FinalizerEvent};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use tracing::instrument;

use super::preheat::set_model_cached;
use super::status::{
    condition_status, inference_ready, now, pod_quota_usage, quota_shortfall, set_condition,
    summarize_pods,
};
use super::{apply_if_changed, Context};
use crate::crd::conditions::*;
use crate::crd::{keys, Workspace};
use crate::error::{Error, Result};
use crate::render::{render_workspace, ClusterFacts};
use crate::validate;

/// Requeue interval once everything is ready.
const READY_REQUEUE: Duration = Duration::from_secs(300);
/// Requeue interval while waiting for nodes or pods.
const PROGRESS_REQUEUE: Duration = Duration::from_secs(30);

fn nodeclaim_api(ctx: &Context) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim"),
        "nodeclaims",
    );
    Api::all_with(ctx.client.clone(), &ar)
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Reconciles one Workspace: finalizer, children, status.
#[instrument(skip(ws, ctx), fields(workspace = %ws.name_any(), namespace = %ws.namespace()))]
pub async fn reconcile(ws: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let key = format!("workspace/{}/{}", ws.namespace(), ws.name_any());
    let api: Api<Workspace> = Api::namespaced(ctx.client.clone(), ws.namespace());
    let result = finalizer(&api, keys::FINALIZER, ws, |event| async {
        match event {
            FinalizerEvent::Apply(ws) => apply(ws, ctx.clone()).await,
            FinalizerEvent::Cleanup(ws) => cleanup(ws, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| match e {
        FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
        FinalizerError::AddFinalizer(e) | FinalizerError::RemoveFinalizer(e) => Error::Kube(e),
        FinalizerError::UnnamedObject => Error::invalid("metadata.name", "required"),
        FinalizerError::InvalidFinalizer => Error::Config("invalid finalizer name".into()),
    });
    ctx.metrics.reconciled("workspace", start.elapsed());
    if result.is_ok() {
        ctx.reset_backoff(&key);
    }
    result
}

/// Reads the ConfigMap and Secret a Workspace names.
async fn cluster_facts(ws: &Workspace, ctx: &Context) -> Result<ClusterFacts> {
    let ns = ws.namespace().to_owned();
    let mut facts = ClusterFacts::default();
    let inference = ws.inference.clone().unwrap_or_default();
    if let Some(name) = &inference.config {
        let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
        match cms.get_opt(name).await? {
            Some(cm) => {
                facts.inference_config = cm
                    .data
                    .and_then(|d| d.get("inference_config.yaml").cloned())
            }
            None => {
                return Err(Error::MissingObject {
                    kind: "ConfigMap",
                    name: name.clone(),
                    namespace: ns,
                })
            }
        }
    }
    let secret = inference
        .preset
        .as_ref()
        .and_then(|p| p.preset_options.as_ref())
        .and_then(|o| o.model_access_secret.clone());
    if let Some(name) = secret {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        if secrets.get_metadata_opt(&name).await?.is_none() {
            return Err(Error::MissingObject {
                kind: "Secret",
                name,
                namespace: ns,
            });
        }
    }
    Ok(facts)
}

/// Writes `status` when it differs from the live one. Returns whether it wrote.
async fn write_status(ws: &Workspace, ctx: &Context, status: WorkspaceStatus) -> Result<bool> {
    if ws.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let api: Api<Workspace> = Api::namespaced(ctx.client.clone(), ws.namespace());
    api.patch_status(
        &ws.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(true)
}

/// Reasons that mean "still progressing", not "something is wrong": no Event for them.
const PROGRESS_REASONS: &[&str] = &[
    "PodsNotReady",
    "RollingUpdate",
    "NodeClaimsNotReady",
    "WorkspacePending",
];

/// Emits a Warning Event when condition `type_` newly became False with a failure reason.
async fn warn_on_change(
    ws: &Workspace,
    ctx: &Context,
    old: &WorkspaceStatus,
    new: &WorkspaceStatus,
    type_: &str,
) {
    let find = |s: &WorkspaceStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let after = find(new);
    if after == find(old) {
        return;
    }
    if let Some((status, Some(reason))) = after {
        if status == "False" && !PROGRESS_REASONS.contains(&reason.as_str()) {
            let msg = new
                .conditions
                .iter()
                .find(|c| c.type_ == type_)
                .and_then(|c| c.message.clone())
                .unwrap_or_default();
            ctx.event(ws, true, &reason, msg).await;
        }
    }
}

fn fail_all(
    status: &mut WorkspaceStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) {
    for t in [RESOURCE_READY, INFERENCE_READY, WORKSPACE_SUCCEEDED] {
        set_condition(
            &mut status.conditions,
            t,
            false,
            reason,
            message,
            generation,
            now,
        );
    }
    status.other.insert("state".into(), json!("Failed"));
    status
        .other
        .insert("observedGeneration".into(), json!(generation));
}

async fn apply(ws: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action> {
    let generation = ws.metadata.generation;
    let now = now();
    let old = ws.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let ns = ws.namespace().to_owned();
    let name = ws.name_any();

    let facts = match cluster_facts(&ws, &ctx).await {
        Ok(f) => f,
        Err(e @ Error::MissingObject { .. }) => {
            fail_all(
                &mut status,
                e.metric_label(),
                &e.to_string(),
                generation,
                &now,
            );
            status.other.insert("state".into(), json!("Pending"));
            warn_on_change(&ws, &ctx, &old, &status, RESOURCE_READY).await;
            write_status(&ws, &ctx, status).await?;
            return Ok(Action::requeue(PROGRESS_REQUEUE));
        }
        Err(e) => return Err(e),
    };
    let valid = match validate::check(&ws, &facts) {
        Ok(valid) => valid,
        Err(problems) => {
            let msg = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            fail_all(&mut status, "InvalidSpec", &msg, generation, &now);
            warn_on_change(&ws, &ctx, &old, &status, RESOURCE_READY).await;
            write_status(&ws, &ctx, status).await?;
            return Ok(Action::await_change());
        }
    };
    let rendered = render_workspace(&valid, &ctx.render)?;
    let node_count = rendered
        .stateful_set
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as u32;

    // Nodes: Karpenter NodeClaims when auto-provisioning, else existing nodes by label.
    let mut nodes_ready: Option<(bool, String, String)> = None;
    if !rendered.node_claims.is_empty() {
        let mut missing_crd = false;
        for nc in &rendered.node_claims {
            match apply_if_changed(&ctx.client, serde_json::to_value(nc)?).await {
                Ok(_) => {}
                Err(Error::Kube(e)) if is_status(&e, 404) => {
                    missing_crd = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if missing_crd {
            set_condition(&mut status.conditions, NODE_CLAIM_READY, false, "NodeClaimCRDMissing", "karpenter.sh/v1 NodeClaim is not installed: install Karpenter or bring your own nodes (kaito.sh/auto-provision: \"false\")", generation, &now);
        } else {
            let lp = ListParams::default().labels(&format!(
                "{}={name},{}={ns}",
                keys::WORKSPACE_LABEL,
                keys::WORKSPACE_NAMESPACE_LABEL
            ));
            let claims = nodeclaim_api(&ctx).list(&lp).await?;
            let ready = claims
                .items
                .iter()
                .filter(|c| condition_true(&c.data, "Ready"))
                .count() as u32;
            let failed = claims
                .items
                .iter()
                .find_map(|c| condition_false_reason(&c.data, "Launched"));
            let (ok, reason, msg) = match failed {
                Some((r, m)) => (false, r, m),
                None if ready >= node_count => (
                    true,
                    "NodeClaimsReady".into(),
                    format!("{ready} of {node_count} NodeClaim(s) ready"),
                ),
                None => (
                    false,
                    "NodeClaimsNotReady".into(),
                    format!("{ready} of {node_count} NodeClaim(s) ready"),
                ),
            };
            set_condition(
                &mut status.conditions,
                NODE_CLAIM_READY,
                ok,
                &reason,
                msg.clone(),
                generation,
                &now,
            );
            nodes_ready = Some((ok, if ok { "NodesReady".into() } else { reason }, msg));
        }
    }
    if nodes_ready.is_none() {
        if let Some(selector) = node_selector(&ws) {
            match Api::<Node>::all(ctx.client.clone())
                .list(&ListParams::default().labels(&selector))
                .await
            {
                Ok(nodes) => {
                    let ready = nodes
                        .items
                        .iter()
                        .filter(|n| {
                            n.status
                                .as_ref()
                                .and_then(|s| s.conditions.as_ref())
                                .is_some_and(|c| {
                                    c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                                })
                        })
                        .count() as u32;
                    nodes_ready = Some(if ready == 0 {
                        (
                            false,
                            "NoMatchingNodes".into(),
                            format!("no ready node matches resource.labelSelector ({selector})"),
                        )
                    } else {
                        (
                            true,
                            "NodesReady".into(),
                            format!("{ready} ready node(s) match resource.labelSelector"),
                        )
                    });
                }
                Err(e) if is_status(&e, 403) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Some((ok, reason, msg)) = &nodes_ready {
        set_condition(
            &mut status.conditions,
            NODES_READY,
            *ok,
            reason,
            msg.clone(),
            generation,
            &now,
        );
    }

    // Children: everything else, applied only when changed.
    for obj in rendered.to_values()? {
        if obj["kind"] != "NodeClaim" {
            apply_if_changed(&ctx.client, obj).await?;
        }
    }
    if let Some(ds) = &rendered.preheat {
        set_model_cached(&ctx, ds, &mut status.conditions, generation, &now).await?;
    }
    set_condition(
        &mut status.conditions,
        RESOURCE_READY,
        nodes_ready.as_ref().is_none_or(|n| n.0),
        nodes_ready
            .as_ref()
            .filter(|n| !n.0)
            .map(|n| n.1.as_str())
            .unwrap_or("ResourcesApplied"),
        "children applied",
        generation,
        &now,
    );

    // Pods.
    let rollout_hash = rendered
        .stateful_set
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("kaito.sh/rollout-hash").cloned())
        .unwrap_or_default();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&format!("{}={name}", keys::WORKSPACE_LABEL)))
        .await?;
    let summary = summarize_pods(&pods.items, &rollout_hash);
    let (mut ready, mut reason, mut message) = inference_ready(&summary, node_count);
    if summary.pods < node_count && summary.failing.is_none() {
        // Missing pods: say so when a ResourceQuota is why (the StatefulSet cannot create them).
        let per_pod = rendered
            .stateful_set
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(pod_quota_usage)
            .unwrap_or_default();
        match Api::<ResourceQuota>::namespaced(ctx.client.clone(), &ns)
            .list(&ListParams::default())
            .await
        {
            Ok(quotas) => {
                if let Some(m) = quota_shortfall(&quotas.items, &per_pod, node_count - summary.pods)
                {
                    (ready, reason, message) = (false, "QuotaExceeded".to_owned(), m);
                }
            }
            Err(e) if is_status(&e, 403) || is_status(&e, 404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    set_condition(
        &mut status.conditions,
        INFERENCE_READY,
        ready,
        &reason,
        message,
        generation,
        &now,
    );
    let resource_ready = condition_status(&status.conditions, RESOURCE_READY) == Some("True");
    let succeeded = ready && resource_ready;
    set_condition(
        &mut status.conditions,
        WORKSPACE_SUCCEEDED,
        succeeded,
        if succeeded {
            "WorkspaceSucceeded"
        } else {
            "WorkspacePending"
        },
        if succeeded {
            "inference is ready"
        } else {
            "waiting for resources and inference"
        },
        generation,
        &now,
    );
    status.worker_nodes = summary.nodes.clone();
    let state = if succeeded {
        "Ready"
    } else if summary.failing.is_some() {
        "Failed"
    } else if summary.pods > 0 {
        "Running"
    } else {
        "Pending"
    };
    status.other.insert("state".into(), json!(state));
    status
        .other
        .insert("targetNodeCount".into(), json!(node_count));
    status
        .other
        .insert("observedGeneration".into(), json!(generation));

    for t in [NODE_CLAIM_READY, NODES_READY, INFERENCE_READY] {
        warn_on_change(&ws, &ctx, &old, &status, t).await;
    }
    write_status(&ws, &ctx, status).await?;
    Ok(Action::requeue(if succeeded {
        READY_REQUEUE
    } else {
        PROGRESS_REQUEUE
    }))
}

fn condition_true(obj: &Value, type_: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

fn condition_false_reason(obj: &Value, type_: &str) -> Option<(String, String)> {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_ && c["status"] == "False")
        .map(|c| {
            (
                c["reason"].as_str().unwrap_or("NodeClaimFailed").to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// `resource.labelSelector` as a label selector string.
pub fn node_selector(ws: &Workspace) -> Option<String> {
    let sel = ws.resource.as_ref()?.label_selector.as_ref()?;
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in &sel.match_expressions {
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, e.values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, e.values.join(",")),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Finalizer cleanup: delete this Workspace's NodeClaims (cluster-scoped, so not garbage
/// collected through ownerReferences). Namespaced children go with their owner. A missing
/// NodeClaim CRD counts as done; any other failure is retried with backoff until
/// `cleanup_timeout` has passed since deletion began, then the finalizer is removed anyway.
async fn cleanup(ws: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action> {
    let ns = ws.namespace().to_owned();
    let old = ws.status.clone().unwrap_or_default();
    if condition_status(&old.conditions, WORKSPACE_DELETING) != Some("True") {
        let mut status = old.clone();
        set_condition(
            &mut status.conditions,
            WORKSPACE_DELETING,
            true,
            "Deleting",
            "cleaning up NodeClaims before removing the finalizer",
            ws.metadata.generation,
            &now(),
        );
        status.other.insert("state".into(), json!("Deleting"));
        if let Err(e) = write_status(&ws, &ctx, status).await {
            tracing::warn!(error = %e, "cannot mark the Workspace as deleting");
        }
    }
    let lp = ListParams::default().labels(&format!(
        "{}={},{}={ns}",
        keys::WORKSPACE_LABEL,
        ws.name_any(),
        keys::WORKSPACE_NAMESPACE_LABEL
    ));
    let result = async {
        let api = nodeclaim_api(&ctx);
        match api.list(&lp).await {
            Ok(list) => {
                for nc in list.items {
                    match api
                        .delete(&nc.name_any(), &DeleteParams::background())
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_status(&e, 404) => {}
                        Err(e) => return Err(Error::Kube(e)),
                    }
                }
                Ok(())
            }
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(Error::Kube(e)),
        }
    }
    .await;
    match result {
        Ok(()) => {
            ctx.event(
                ws.as_ref(),
                false,
                "Deleted",
                "cleanup finished; removing the finalizer".into(),
            )
            .await;
            Ok(Action::await_change())
        }
        Err(e) => {
            let deleting_for = ws
                .metadata
                .deletion_timestamp
                .as_ref()
                .map(|t| {
                    k8s_openapi::jiff::Timestamp::now()
                        .duration_since(t.0)
                        .unsigned_abs()
                })
                .unwrap_or_default();
            if deleting_for >= ctx.cleanup_timeout {
                ctx.event(ws.as_ref(), true, "CleanupTimedOut", format!("giving up on cleanup after {deleting_for:?}: {e}; NodeClaims labelled {}={} may need manual deletion", keys::WORKSPACE_LABEL, ws.name_any())).await;
                Ok(Action::await_change())
            } else {
                ctx.event(ws.as_ref(), true, "CleanupFailed", e.to_string())
                    .await;
                Err(e)
            }
        }
    }
}
