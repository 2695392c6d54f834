//! End to end: the real kube-runtime controllers against the in-process fake API server
//! (`tests/fake_apiserver`). Apply → children appear; pods ready → conditions true; pods crash →
//! `InferenceReady` false with the reason; spec edit → rollout; InferenceSet scaling; deletion →
//! everything cleaned up and the finalizer removed.

mod fake_apiserver;

use std::sync::Arc;
use std::time::Duration;

use fake_apiserver::FakeApiServer;
use kaito_k8s::controller::runner::run_controllers;
use kaito_k8s::controller::Context;
use kaito_k8s::{InferenceSet, Workspace};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn condition(obj: &Value, type_: &str) -> Option<(String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

struct Harness {
    server: FakeApiServer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    ctx: Arc<Context>,
}

impl Harness {
    async fn start() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let server = FakeApiServer::start().await;
        // Install our CRDs the way `kubectl apply -k deploy/` would.
        let client = server.client();
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
        for crd in kaito_k8s::crd::generate::crds() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        server.put(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "labels": {"pool": "cpu"}},
                          "status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
        let ctx = Arc::new(Context::new(client.clone()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let c = ctx.clone();
        let task = tokio::spawn(async move {
            run_controllers(client, c, None, async move {
                let _ = rx.await;
            })
            .await
        });
        Harness {
            server,
            stop: Some(tx),
            task,
            ctx,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }

    fn ws(&self, name: &str) -> Option<Value> {
        self.server
            .get("kaito.sh/v1beta1", "Workspace", "default", name)
    }
}

fn smol_workspace() -> Value {
    json!({
        "apiVersion": "kaito.sh/v1beta1", "kind": "Workspace",
        "metadata": {"name": "smol", "namespace": "default"},
        "resource": {"labelSelector": {"matchLabels": {"pool": "cpu"}}},
        "inference": {"preset": {"name": "smollm2-135m-instruct"}, "engine": {"threads": 2}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_lifecycle_end_to_end() {
    let h = Harness::start().await;
    let client = h.server.client();
    let api: Api<Workspace> = Api::namespaced(client.clone(), "default");
    let ws: Workspace = serde_json::from_value(smol_workspace()).unwrap();
    api.create(&PostParams::default(), &ws).await.unwrap();

    // Children appear, owned by the Workspace; the finalizer is on; not ready yet.
    let sts = eventually("StatefulSet smol", || {
        h.server.get("apps/v1", "StatefulSet", "default", "smol")
    })
    .await;
    let uid = h.ws("smol").unwrap()["metadata"]["uid"].clone();
    assert_eq!(sts["metadata"]["ownerReferences"][0]["uid"], uid);
    for (v, k, n) in [
        ("v1", "Service", "smol"),
        ("v1", "Service", "smol-headless"),
        ("v1", "ConfigMap", "smol-inference"),
        ("policy/v1", "PodDisruptionBudget", "smol"),
        ("networking.k8s.io/v1", "NetworkPolicy", "smol"),
    ] {
        eventually(&format!("{k} {n}"), || h.server.get(v, k, "default", n)).await;
    }
    assert_eq!(
        h.ws("smol").unwrap()["metadata"]["finalizers"][0],
        "workspace.kaito.sh/finalizer"
    );
    eventually("InferenceReady False (no pods)", || {
        (condition(&h.ws("smol")?, "InferenceReady")? == ("False".into(), "PodsNotReady".into()))
            .then_some(())
    })
    .await;

    // Pods start but are not ready: still not ready. Then ready: conditions turn true.
    h.server.sync_statefulset("default", "smol");
    h.server.set_pod_state("default", "smol-0", false, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        condition(&h.ws("smol").unwrap(), "InferenceReady")
            .unwrap()
            .0,
        "False"
    );
    h.server.set_pod_state("default", "smol-0", true, None);
    eventually("WorkspaceSucceeded True", || {
        let ws = h.ws("smol")?;
        (condition(&ws, "InferenceReady")?.0 == "True"
            && condition(&ws, "WorkspaceSucceeded")?.0 == "True"
            && condition(&ws, "ResourceReady")?.0 == "True")
            .then_some(())
    })
    .await;
    let ws_now = h.ws("smol").unwrap();
    assert_eq!(ws_now["status"]["state"], "Ready");
    assert_eq!(ws_now["status"]["workerNodes"][0], "node-a");
    assert_eq!(ws_now["status"]["observedGeneration"], 1);

    // Crash loop: InferenceReady goes False with the reason, and a Warning Event says why.
    h.server
        .set_pod_state("default", "smol-0", false, Some("CrashLoopBackOff"));
    eventually("InferenceReady False CrashLoopBackOff", || {
        (condition(&h.ws("smol")?, "InferenceReady")?
            == ("False".into(), "CrashLoopBackOff".into()))
            .then_some(())
    })
    .await;
    eventually("CrashLoopBackOff event", || {
        h.server
            .list("events.k8s.io/v1", "Event")
            .into_iter()
            .find(|e| e["reason"] == "CrashLoopBackOff" && e["type"] == "Warning")
    })
    .await;
    h.server.set_pod_state("default", "smol-0", true, None);
    eventually("ready again", || {
        (condition(&h.ws("smol")?, "InferenceReady")?.0 == "True").then_some(())
    })
    .await;

    // Spec edit: the StatefulSet template changes (rollout); old pods make it RollingUpdate.
    let old_hash =
        sts["spec"]["template"]["metadata"]["annotations"]["kaito.sh/rollout-hash"].clone();
    api.patch(
        "smol",
        &PatchParams::default(),
        &Patch::Merge(json!({"inference": {"engine": {"threads": 1}}})),
    )
    .await
    .unwrap();
    let new_sts = eventually("rolled StatefulSet", || {
        let s = h.server.get("apps/v1", "StatefulSet", "default", "smol")?;
        (s["spec"]["template"]["metadata"]["annotations"]["kaito.sh/rollout-hash"] != old_hash)
            .then_some(s)
    })
    .await;
    assert!(
        new_sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "1"
    );
    eventually("RollingUpdate at generation 2", || {
        let ws = h.ws("smol")?;
        (ws["status"]["observedGeneration"] == 2
            && condition(&ws, "InferenceReady")? == ("False".into(), "RollingUpdate".into()))
            .then_some(())
    })
    .await;
    h.server.sync_statefulset("default", "smol");
    h.server.set_pod_state("default", "smol-0", true, None);
    eventually("ready after rollout", || {
        (condition(&h.ws("smol")?, "InferenceReady")?.0 == "True").then_some(())
    })
    .await;

    // An unchanged Workspace is not written again: resourceVersions stay put across reconciles.
    let rv_before = (
        h.ws("smol").unwrap()["metadata"]["resourceVersion"].clone(),
        h.server
            .get("apps/v1", "StatefulSet", "default", "smol")
            .unwrap()["metadata"]["resourceVersion"]
            .clone(),
    );
    let reconciles = h.ctx.metrics.reconcile_count("workspace");
    h.server.put({
        let mut n = h.server.get("v1", "Node", "", "node-a").unwrap();
        n["metadata"]["labels"]["touched"] = json!("yes");
        n
    });
    // Force a reconcile through the pod watch (an irrelevant pod status touch).
    h.server.set_pod_state("default", "smol-0", true, None);
    eventually("another reconcile", || {
        (h.ctx.metrics.reconcile_count("workspace") > reconciles).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rv_after = (
        h.ws("smol").unwrap()["metadata"]["resourceVersion"].clone(),
        h.server
            .get("apps/v1", "StatefulSet", "default", "smol")
            .unwrap()["metadata"]["resourceVersion"]
            .clone(),
    );
    assert_eq!(
        rv_before, rv_after,
        "an unchanged Workspace must not be written"
    );

    // Delete: finalizer runs, the Workspace goes, its children are garbage-collected.
    api.delete("smol", &Default::default()).await.unwrap();
    eventually("Workspace gone", || h.ws("smol").is_none().then_some(())).await;
    for (v, k, n) in [
        ("apps/v1", "StatefulSet", "smol"),
        ("v1", "Service", "smol"),
        ("v1", "ConfigMap", "smol-inference"),
        ("v1", "Pod", "smol-0"),
    ] {
        eventually(&format!("{k} {n} gone"), || {
            h.server.get(v, k, "default", n).is_none().then_some(())
        })
        .await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_workspace_gets_a_reason_and_an_event() {
    let h = Harness::start().await;
    let api: Api<Workspace> = Api::namespaced(h.server.client(), "default");
    let mut v = smol_workspace();
    v["metadata"]["name"] = json!("gated");
    v["inference"] = json!({"preset": {"name": "llama-3.1-8b-instruct"}});
    api.create(&PostParams::default(), &serde_json::from_value(v).unwrap())
        .await
        .unwrap();
    eventually("InvalidSpec", || {
        (condition(&h.ws("gated")?, "WorkspaceSucceeded")?
            == ("False".into(), "InvalidSpec".into()))
            .then_some(())
    })
    .await;
    let ev = eventually("InvalidSpec event", || {
        h.server
            .list("events.k8s.io/v1", "Event")
            .into_iter()
            .find(|e| e["reason"] == "InvalidSpec")
    })
    .await;
    assert!(ev["note"].as_str().unwrap().contains("modelAccessSecret"));
    assert!(h
        .server
        .get("apps/v1", "StatefulSet", "default", "gated")
        .is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeclaims_are_created_and_cleaned_up_with_karpenter_installed() {
    let h = Harness::start().await;
    let client = h.server.client();
    // Install Karpenter's NodeClaim CRD from the KAITO reference copy (or a minimal stand-in).
    h.server.put(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "nodeclaims.karpenter.sh"},
        "spec": {"group": "karpenter.sh", "scope": "Cluster", "names": {"kind": "NodeClaim", "plural": "nodeclaims"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}}));
    // The fake registers CRDs on create through the API.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    let _ = crds
        .delete("nodeclaims.karpenter.sh", &Default::default())
        .await;
    crds.create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "nodeclaims.karpenter.sh"},
        "spec": {"group": "karpenter.sh", "scope": "Cluster", "names": {"kind": "NodeClaim", "plural": "nodeclaims"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}})).unwrap()).await.unwrap();
    let api: Api<Workspace> = Api::namespaced(client.clone(), "default");
    let ws: Workspace = serde_json::from_value(json!({
        "apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "metadata": {"name": "phi", "namespace": "default"},
        "resource": {"instanceType": "Standard_NC24ads_A100_v4", "labelSelector": {"matchLabels": {"apps": "phi"}}},
        "inference": {"preset": {"name": "phi-4-mini-instruct"}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &ws).await.unwrap();
    let claims = eventually("a NodeClaim", || {
        let v = h.server.list("karpenter.sh/v1", "NodeClaim");
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(
        claims[0]["spec"]["requirements"][0]["values"][0],
        "Standard_NC24ads_A100_v4"
    );
    eventually("NodeClaimReady False", || {
        (condition(&h.ws("phi")?, "NodeClaimReady")?.0 == "False").then_some(())
    })
    .await;
    api.delete("phi", &Default::default()).await.unwrap();
    eventually("NodeClaims deleted", || {
        h.server
            .list("karpenter.sh/v1", "NodeClaim")
            .is_empty()
            .then_some(())
    })
    .await;
    eventually("Workspace gone", || h.ws("phi").is_none().then_some(())).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inferenceset_scales_through_the_scale_subresource() {
    let h = Harness::start().await;
    let client = h.server.client();
    // KEDA installed: the ScaledObject is created and owned by the set.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "scaledobjects.keda.sh"},
        "spec": {"group": "keda.sh", "scope": "Namespaced", "names": {"kind": "ScaledObject", "plural": "scaledobjects"},
                 "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}}}]}})).unwrap()).await.unwrap();
    let sets: Api<InferenceSet> = Api::namespaced(client.clone(), "default");
    let set: InferenceSet = serde_json::from_value(json!({
        "apiVersion": "kaito.sh/v1alpha1", "kind": "InferenceSet",
        "metadata": {"name": "pool", "namespace": "default", "annotations": {"scaledobject.kaito.sh/auto-provision": "true"}},
        "spec": {"replicas": 2, "labelSelector": {"matchLabels": {"pool": "cpu"}},
                 "template": {"inference": {"preset": {"name": "smollm2-135m-instruct"}}}}
    }))
    .unwrap();
    sets.create(&PostParams::default(), &set).await.unwrap();
    let count = |h: &Harness| {
        h.server
            .list("kaito.sh/v1beta1", "Workspace")
            .iter()
            .filter(|w| w["metadata"]["deletionTimestamp"].is_null())
            .count()
    };
    eventually("2 children", || (count(&h) == 2).then_some(())).await;
    eventually("children reconciled", || {
        h.server.get("apps/v1", "StatefulSet", "default", "pool-1")
    })
    .await;
    let so = eventually("ScaledObject", || {
        h.server
            .get("keda.sh/v1alpha1", "ScaledObject", "default", "pool")
    })
    .await;
    let set_uid = h
        .server
        .get("kaito.sh/v1alpha1", "InferenceSet", "default", "pool")
        .unwrap()["metadata"]["uid"]
        .clone();
    assert_eq!(so["metadata"]["ownerReferences"][0]["uid"], set_uid);
    assert_eq!(so["spec"]["scaleTargetRef"]["kind"], "InferenceSet");

    // `kubectl scale inferenceset pool --replicas=3` patches the scale subresource.
    sets.patch_scale(
        "pool",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    eventually("3 children", || (count(&h) == 3).then_some(())).await;
    sets.patch_scale(
        "pool",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("1 child", || {
        (h.server.list("kaito.sh/v1beta1", "Workspace").len() == 1).then_some(())
    })
    .await;
    eventually("pool-2 children collected", || {
        h.server
            .get("apps/v1", "StatefulSet", "default", "pool-2")
            .is_none()
            .then_some(())
    })
    .await;
    let status = eventually("status replicas 1", || {
        let s = h
            .server
            .get("kaito.sh/v1alpha1", "InferenceSet", "default", "pool")?;
        (s["status"]["replicas"] == 1).then_some(s)
    })
    .await;
    assert_eq!(
        status["status"]["selector"],
        "inferenceset.kaito.sh/created-by=pool"
    );

    // Child ready → InferenceSetReady.
    h.server.sync_statefulset("default", "pool-0");
    h.server.set_pod_state("default", "pool-0-0", true, None);
    eventually("InferenceSetReady", || {
        let s = h
            .server
            .get("kaito.sh/v1alpha1", "InferenceSet", "default", "pool")?;
        (condition(&s, "InferenceSetReady")?.0 == "True" && s["status"]["readyReplicas"] == 1)
            .then_some(())
    })
    .await;

    sets.delete("pool", &Default::default()).await.unwrap();
    eventually("all children gone", || {
        h.server
            .list("kaito.sh/v1beta1", "Workspace")
            .is_empty()
            .then_some(())
    })
    .await;
    eventually("ScaledObject gone", || {
        h.server
            .get("keda.sh/v1alpha1", "ScaledObject", "default", "pool")
            .is_none()
            .then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_that_blocks_pods_is_reported() {
    let h = Harness::start().await;
    h.server.put(json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "tight", "namespace": "default"},
        "spec": {"hard": {"requests.cpu": "1"}},
        "status": {"hard": {"requests.cpu": "1"}, "used": {"requests.cpu": "0"}}}));
    let api: Api<Workspace> = Api::namespaced(h.server.client(), "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(smol_workspace()).unwrap(),
    )
    .await
    .unwrap();
    eventually("QuotaExceeded", || {
        (condition(&h.ws("smol")?, "InferenceReady")? == ("False".into(), "QuotaExceeded".into()))
            .then_some(())
    })
    .await;
    let ev = eventually("QuotaExceeded event", || {
        h.server
            .list("events.k8s.io/v1", "Event")
            .into_iter()
            .find(|e| e["reason"] == "QuotaExceeded")
    })
    .await;
    assert!(
        ev["note"]
            .as_str()
            .unwrap()
            .contains("ResourceQuota tight: requests.cpu"),
        "{}",
        ev["note"]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_matching_nodes_and_missing_secret_are_reported() {
    let h = Harness::start().await;
    let api: Api<Workspace> = Api::namespaced(h.server.client(), "default");
    let mut v = smol_workspace();
    v["metadata"]["name"] = json!("nowhere");
    v["resource"]["labelSelector"] = json!({"matchLabels": {"pool": "gpu"}});
    api.create(&PostParams::default(), &serde_json::from_value(v).unwrap())
        .await
        .unwrap();
    eventually("NodesReady False", || {
        (condition(&h.ws("nowhere")?, "NodesReady")? == ("False".into(), "NoMatchingNodes".into()))
            .then_some(())
    })
    .await;
    assert_eq!(
        condition(&h.ws("nowhere").unwrap(), "ResourceReady").unwrap(),
        ("False".into(), "NoMatchingNodes".into())
    );
    eventually("NoMatchingNodes event", || {
        h.server
            .list("events.k8s.io/v1", "Event")
            .into_iter()
            .find(|e| e["reason"] == "NoMatchingNodes")
    })
    .await;

    let mut g = smol_workspace();
    g["metadata"]["name"] = json!("gated");
    g["inference"] = json!({"preset": {"name": "llama-3.1-8b-instruct", "presetOptions": {"modelAccessSecret": "hf-token"}}});
    api.create(&PostParams::default(), &serde_json::from_value(g).unwrap())
        .await
        .unwrap();
    eventually("SecretNotFound", || {
        (condition(&h.ws("gated")?, "ResourceReady")? == ("False".into(), "SecretNotFound".into()))
            .then_some(())
    })
    .await;
    eventually("SecretNotFound event", || {
        h.server
            .list("events.k8s.io/v1", "Event")
            .into_iter()
            .find(|e| e["reason"] == "SecretNotFound")
    })
    .await;
    h.stop().await;
}
