//! The `ModelCached` condition: how far a preheat DaemonSet got.

use k8s_openapi::api::apps::v1::DaemonSet;
use kaito_core::workspace::Condition;
use kube::Api;

use super::status::{model_cached, set_condition};
use super::Context;
use crate::crd::conditions::MODEL_CACHED;
use crate::error::Result;

/// Reads the live state of the rendered DaemonSet `preheat` and sets `ModelCached` from it
/// ("N of M nodes").
pub(crate) async fn set_model_cached(
    ctx: &Context,
    preheat: &DaemonSet,
    conditions: &mut Vec<Condition>,
    generation: Option<i64>,
    now: &str,
) -> Result<()> {
    let name = preheat.metadata.name.as_deref().unwrap_or_default();
    let namespace = preheat.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), namespace);
    let (ok, reason, message) = match api.get_opt(name).await? {
        Some(ds) => model_cached(&ds),
        None => (
            false,
            "PreheatPending".to_owned(),
            format!("the preheat DaemonSet {name} does not exist yet"),
        ),
    };
    set_condition(
        conditions,
        MODEL_CACHED,
        ok,
        &reason,
        message,
        generation,
        now,
    );
    Ok(())
}
