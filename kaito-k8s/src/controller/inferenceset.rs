//! The InferenceSet reconciler: child Workspaces per replica, the KEDA ScaledObject, status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::instrument;

use super::preheat::set_model_cached;
use super::status::{condition_status, now, set_condition};
use super::{apply_if_changed, Context};
use crate::crd::conditions::{INFERENCE_SET_READY, WORKSPACE_SUCCEEDED};
use crate::crd::{keys, InferenceSet, InferenceSetStatus, Workspace};
use crate::error::{Error, Result};
use crate::render::{child_workspace_name, render_inferenceset, with_type, ClusterFacts};
use crate::validate;

/// Reconciles one InferenceSet. Children carry ownerReferences, so deleting the set deletes
/// them; no finalizer is needed here.
#[instrument(skip(set, ctx), fields(inferenceset = %set.name_any(), namespace = %set.namespace()))]
pub async fn reconcile(set: Arc<InferenceSet>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let key = format!("inferenceset/{}/{}", set.namespace(), set.name_any());
    let result = apply(&set, &ctx).await;
    ctx.metrics.reconciled("inferenceset", start.elapsed());
    if result.is_ok() {
        ctx.reset_backoff(&key);
    }
    result
}

async fn write_status(set: &InferenceSet, ctx: &Context, status: InferenceSetStatus) -> Result<()> {
    if set.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<InferenceSet> = Api::namespaced(ctx.client.clone(), set.namespace());
    api.patch_status(
        &set.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(())
}

async fn apply(set: &InferenceSet, ctx: &Context) -> Result<Action> {
    let now = now();
    let generation = set.metadata.generation;
    let mut status = set.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let selector = format!("{}={}", keys::INFERENCESET_LABEL, set.name_any());
    status.selector = Some(selector.clone());

    let problems = validate::inferenceset(set, &ClusterFacts::default());
    let problems: Vec<_> = problems
        .into_iter()
        .filter(|e| !matches!(e, Error::Invalid { path, .. } if path.contains("inference.config")))
        .collect();
    if !problems.is_empty() {
        let msg = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let was = set
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == INFERENCE_SET_READY))
            .and_then(|c| c.reason.clone());
        set_condition(
            &mut status.conditions,
            INFERENCE_SET_READY,
            false,
            "InvalidSpec",
            msg.clone(),
            generation,
            &now,
        );
        if was.as_deref() != Some("InvalidSpec") {
            ctx.event(set, true, "InvalidSpec", msg).await;
        }
        write_status(set, ctx, status).await?;
        return Ok(Action::await_change());
    }

    let rendered = render_inferenceset(set, &ctx.render)?;
    // The preheat DaemonSet first, so that nodes fill their cache while replicas are created.
    if let Some(ds) = &rendered.preheat {
        apply_if_changed(
            &ctx.client,
            with_type(serde_json::to_value(ds)?, "apps/v1", "DaemonSet"),
        )
        .await?;
        set_model_cached(ctx, ds, &mut status.conditions, generation, &now).await?;
    }
    let desired = set.replicas().max(0);
    for ws in &rendered.workspaces {
        apply_if_changed(&ctx.client, serde_json::to_value(ws)?).await?;
    }
    let api: Api<Workspace> = Api::namespaced(ctx.client.clone(), set.namespace());
    let children = api.list(&ListParams::default().labels(&selector)).await?;
    let mut extra: Vec<(i32, String)> = children
        .items
        .iter()
        .filter_map(|w| {
            let name = w.name_any();
            let index: i32 = name
                .strip_prefix(&format!("{}-", set.name_any()))?
                .parse()
                .ok()?;
            (index >= desired && w.metadata.deletion_timestamp.is_none()).then_some((index, name))
        })
        .collect();
    extra.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, name) in &extra {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(so) = &rendered.scaled_object {
        match apply_if_changed(&ctx.client, serde_json::to_value(so)?).await {
            Ok(_) => {}
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => {
                ctx.event(
                    set,
                    true,
                    "KEDAMissing",
                    "keda.sh/v1alpha1 ScaledObject is not installed; autoscaling is off".into(),
                )
                .await;
            }
            Err(e) => return Err(e),
        }
    }
    let live: Vec<&Workspace> = children
        .items
        .iter()
        .filter(|w| (0..desired).any(|i| w.name_any() == child_workspace_name(set, i)))
        .collect();
    let ready = live
        .iter()
        .filter(|w| {
            w.status.as_ref().is_some_and(|s| {
                condition_status(&s.conditions, WORKSPACE_SUCCEEDED) == Some("True")
            })
        })
        .count() as i32;
    status.replicas = live.len() as i32;
    status.ready_replicas = ready;
    let all = ready == desired;
    set_condition(
        &mut status.conditions,
        INFERENCE_SET_READY,
        all,
        if all {
            "InferenceSetReady"
        } else {
            "ReplicasNotReady"
        },
        format!("{ready} of {desired} replica(s) ready"),
        generation,
        &now,
    );
    write_status(set, ctx, status).await?;
    Ok(Action::requeue(if all {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(30)
    }))
}
