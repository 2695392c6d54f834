//! Against a real cluster (kind, k3d, AKS, ...): `#[ignore]`d, run with
//!
//! ```text
//! KUBECONFIG=~/.kube/config cargo test -p kaito-k8s --test real_cluster -- --ignored --nocapture
//! ```
//!
//! It installs the CRDs (server-side apply), runs the controllers in-process, applies a CPU
//! Workspace in a fresh namespace, waits for its StatefulSet and status, then deletes everything
//! and checks that the finalizer let go. No GPU or Karpenter is needed; the model pod itself may
//! stay pending on a cluster without nodes labelled `kaito.sh/test-pool=cpu`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kaito_k8s::controller::runner::run_controllers;
use kaito_k8s::controller::Context;
use kaito_k8s::Workspace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

async fn wait<F, Fut, T>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..120 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster (KUBECONFIG); see docs/kubernetes.md"]
async fn workspace_on_a_real_cluster() {
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG must point at a cluster");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kaito_k8s::crd::generate::crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply("kaito-rs-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // CRD establishment
    let ns_name = format!("kaito-test-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns_name}})).unwrap(),
        )
        .await
        .unwrap();

    let ctx = Arc::new(Context::new(client.clone()));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let ns_for_controller = ns_name.clone();
    let c = client.clone();
    let task = tokio::spawn(async move {
        run_controllers(c, ctx, Some(&ns_for_controller), async move {
            let _ = rx.await;
        })
        .await
    });

    let api: Api<Workspace> = Api::namespaced(client.clone(), &ns_name);
    let ws: Workspace = serde_json::from_value(json!({
        "apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "metadata": {"name": "smol"},
        "resource": {"labelSelector": {"matchLabels": {"kaito.sh/test-pool": "cpu"}}},
        "inference": {"preset": {"name": "smollm2-135m-instruct"}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &ws).await.unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns_name);
    wait("StatefulSet", || async {
        sts.get_opt("smol").await.ok().flatten()
    })
    .await;
    let status = wait("status", || async {
        let w = api.get("smol").await.ok()?;
        w.status.filter(|s| !s.conditions.is_empty())
    })
    .await;
    println!("conditions: {:#?}", status.conditions);
    api.delete("smol", &Default::default()).await.unwrap();
    wait("Workspace deleted", || async {
        api.get_opt("smol")
            .await
            .ok()
            .and_then(|w| w.is_none().then_some(()))
    })
    .await;
    let _ = tx.send(());
    let _ = task.await;
    namespaces
        .delete(&ns_name, &Default::default())
        .await
        .unwrap();
}
