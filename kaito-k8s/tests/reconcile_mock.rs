//! Reconcile tests against kube's `tower_test` mock API: each test lists the exact requests a
//! reconcile must make, in order, with the response the "API server" gives (the
//! ApiServerVerifier pattern), including 409 conflicts, 500 errors, a missing CRD (404) and
//! deletion with the finalizer.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kaito_k8s::controller::{error_policy, inferenceset, workspace, Context};
use kaito_k8s::{InferenceSet, Workspace};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

/// One expected request and its response. `body: None` echoes the request body.
struct Step {
    method: &'static str,
    path: String,
    status: u16,
    body: Option<Value>,
}

fn step(method: &'static str, path: &str, status: u16, body: Option<Value>) -> Step {
    Step {
        method,
        path: path.to_owned(),
        status,
        body,
    }
}

fn not_found() -> Option<Value> {
    Some(
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "message": "not found", "code": 404}),
    )
}

fn error_status(code: u16, reason: &str) -> Option<Value> {
    Some(
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": reason, "code": code}),
    )
}

/// A recorded request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Value,
}

/// Runs `reconcile` against the steps; returns its result, what was seen, and the context.
async fn run<F, Fut, T>(steps: Vec<Step>, reconcile: F) -> (T, Vec<Seen>, Arc<Context>)
where
    F: FnOnce(Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let ctx = Arc::new(Context::new(client));
    let verifier = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut steps = steps.into_iter();
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let path = req.uri().path().to_owned();
            let query = req.uri().query().unwrap_or_default().to_owned();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            seen.push(Seen {
                method: method.clone(),
                path: path.clone(),
                query,
                body: body.clone(),
            });
            let Some(s) = steps.next() else {
                send.send_response(
                    Response::builder()
                        .status(500)
                        .body(Body::from(b"unexpected request".to_vec()))
                        .unwrap(),
                );
                continue;
            };
            assert_eq!(
                (method.as_str(), path.as_str()),
                (s.method, s.path.as_str()),
                "request {} out of sequence",
                seen.len()
            );
            let out = s.body.unwrap_or(body);
            send.send_response(
                Response::builder()
                    .status(s.status)
                    .body(Body::from(serde_json::to_vec(&out).unwrap()))
                    .unwrap(),
            );
        }
        let left: Vec<String> = steps.map(|s| format!("{} {}", s.method, s.path)).collect();
        (seen, left)
    });
    let result = tokio::time::timeout(Duration::from_secs(10), reconcile(ctx.clone()))
        .await
        .expect("reconcile finished");
    let ctx_out = ctx.clone();
    drop(ctx);
    // The Context (and with it the client) must go for the mock to end: keep only a weak copy.
    let weak = Arc::downgrade(&ctx_out);
    let metrics = ctx_out.metrics.clone();
    drop(ctx_out);
    let (seen, left) = tokio::time::timeout(Duration::from_secs(5), verifier)
        .await
        .expect("verifier ended")
        .unwrap();
    assert!(
        left.is_empty(),
        "expected requests never made: {left:?}\nseen: {:#?}",
        seen.iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect::<Vec<_>>()
    );
    assert!(weak.upgrade().is_none());
    let ctx = Arc::new(Context::with_options(
        Client::new(
            tower_test::mock::pair::<Request<Body>, Response<Body>>().0,
            "default",
        ),
        Default::default(),
        metrics,
    ));
    (result, seen, ctx)
}

const WS_PATH: &str = "/apis/kaito.sh/v1beta1/namespaces/default/workspaces/smol";
const QUOTAS: &str = "/api/v1/namespaces/default/resourcequotas";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn smol(finalized: bool) -> Workspace {
    let mut v = json!({
        "apiVersion": "kaito.sh/v1beta1", "kind": "Workspace",
        "metadata": {"name": "smol", "namespace": "default", "uid": "uid-1", "generation": 1, "resourceVersion": "1"},
        "resource": {"labelSelector": {"matchLabels": {"pool": "cpu"}}},
        "inference": {"preset": {"name": "smollm2-135m-instruct"}}
    });
    if finalized {
        v["metadata"]["finalizers"] = json!(["workspace.kaito.sh/finalizer"]);
    }
    serde_json::from_value(v).unwrap()
}

fn child_paths() -> Vec<String> {
    vec![
        "/api/v1/namespaces/default/configmaps/smol-inference".into(),
        "/api/v1/namespaces/default/services/smol".into(),
        "/api/v1/namespaces/default/services/smol-headless".into(),
        "/apis/apps/v1/namespaces/default/statefulsets/smol".into(),
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/smol".into(),
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/smol".into(),
    ]
}

fn ready_nodes() -> Option<Value> {
    Some(
        json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": [
            {"metadata": {"name": "node-a", "labels": {"pool": "cpu"}}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        ]}),
    )
}

fn empty_list(kind: &str) -> Option<Value> {
    Some(json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": []}))
}

fn first_reconcile_steps() -> Vec<Step> {
    reconcile_steps(&child_paths(), Vec::new())
}

/// A first reconcile of a finalized Workspace whose children are at `paths` (each created),
/// with `after_children` between the children and the pod list.
fn reconcile_steps(paths: &[String], after_children: Vec<Step>) -> Vec<Step> {
    let mut steps = vec![step("GET", "/api/v1/nodes", 200, ready_nodes())];
    for p in paths {
        steps.push(step("GET", p, 404, not_found()));
        steps.push(step("PATCH", p, 200, None));
    }
    steps.extend(after_children);
    steps.push(step(
        "GET",
        "/api/v1/namespaces/default/pods",
        200,
        empty_list("PodList"),
    ));
    steps.push(step("GET", QUOTAS, 200, empty_list("ResourceQuotaList")));
    steps.push(step(
        "PATCH",
        &format!("{WS_PATH}/status"),
        200,
        Some(serde_json::to_value(smol(true)).unwrap()),
    ));
    steps
}

#[tokio::test]
async fn first_reconcile_adds_the_finalizer_only() {
    let ws = Arc::new(smol(false));
    let steps = vec![step(
        "PATCH",
        WS_PATH,
        200,
        Some(serde_json::to_value(smol(true)).unwrap()),
    )];
    let (result, seen, _) = run(steps, |ctx| workspace::reconcile(ws, ctx)).await;
    result.unwrap();
    let patch = &seen[0].body;
    assert!(
        patch.to_string().contains("workspace.kaito.sh/finalizer"),
        "{patch}"
    );
}

#[tokio::test]
async fn reconcile_applies_children_with_server_side_apply_then_writes_status() {
    let ws = Arc::new(smol(true));
    let (result, seen, _) = run(first_reconcile_steps(), |ctx| workspace::reconcile(ws, ctx)).await;
    result.unwrap();
    for s in seen
        .iter()
        .filter(|s| s.method == "PATCH" && !s.path.ends_with("/status"))
    {
        assert!(
            s.query.contains("fieldManager=kaito-rs-controller") && s.query.contains("force=true"),
            "{}?{}",
            s.path,
            s.query
        );
        let owner = &s.body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Workspace");
        assert_eq!(owner["uid"], "uid-1");
        assert!(s.body["metadata"]["annotations"]["kaito.sh/applied-hash"].is_string());
    }
    assert!(seen
        .iter()
        .any(|s| s.path == "/api/v1/nodes" && s.query.contains("labelSelector=pool%3Dcpu")));
    let status = &seen.last().unwrap().body["status"];
    let cond = |t: &str| {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(cond("ResourceReady")["status"], "True");
    assert_eq!(cond("NodesReady")["status"], "True");
    assert_eq!(cond("InferenceReady")["status"], "False");
    assert_eq!(cond("InferenceReady")["reason"], "PodsNotReady");
    assert_eq!(cond("WorkspaceSucceeded")["status"], "False");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["state"], "Pending");
}

#[tokio::test]
async fn second_reconcile_of_an_unchanged_workspace_makes_no_write() {
    let ws = Arc::new(smol(true));
    let (_, seen, _) = run(first_reconcile_steps(), |ctx| workspace::reconcile(ws, ctx)).await;
    // Replay: the children exist as applied, the status is what was written.
    let applied: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == "PATCH" && !s.path.ends_with("/status"))
        .collect();
    let mut again = smol(true);
    again.status = serde_json::from_value(seen.last().unwrap().body["status"].clone()).unwrap();
    let mut steps = vec![step("GET", "/api/v1/nodes", 200, ready_nodes())];
    for a in &applied {
        steps.push(step("GET", &a.path, 200, Some(a.body.clone())));
    }
    steps.push(step(
        "GET",
        "/api/v1/namespaces/default/pods",
        200,
        empty_list("PodList"),
    ));
    steps.push(step("GET", QUOTAS, 200, empty_list("ResourceQuotaList")));
    let again = Arc::new(again);
    let (result, seen2, _) = run(steps, |ctx| workspace::reconcile(again, ctx)).await;
    result.unwrap();
    let writes: Vec<String> = seen2
        .iter()
        .filter(|s| s.method != "GET")
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert!(writes.is_empty(), "unexpected writes: {writes:?}");
}

#[tokio::test]
async fn conflict_409_fails_the_reconcile_and_backs_off() {
    let ws = Arc::new(smol(true));
    let first = &child_paths()[0];
    let steps = vec![
        step("GET", "/api/v1/nodes", 200, ready_nodes()),
        step("GET", first, 404, not_found()),
        step("PATCH", first, 409, error_status(409, "Conflict")),
    ];
    let (result, _, ctx) = run(steps, |ctx| workspace::reconcile(ws.clone(), ctx)).await;
    let err = result.unwrap_err();
    assert_eq!(err.metric_label(), "Conflict");
    let first_delay = error_policy(ws.clone(), &err, ctx.clone());
    let second_delay = error_policy(ws.clone(), &err, ctx.clone());
    assert_eq!(ctx.metrics.error_count("workspace", "Conflict"), 2);
    assert_ne!(
        format!("{first_delay:?}"),
        format!("{second_delay:?}"),
        "backoff grows"
    );
}

#[tokio::test]
async fn api_500_fails_the_reconcile() {
    let ws = Arc::new(smol(true));
    let steps = vec![step(
        "GET",
        "/api/v1/nodes",
        500,
        error_status(500, "InternalError"),
    )];
    let (result, _, _) = run(steps, |ctx| workspace::reconcile(ws, ctx)).await;
    assert_eq!(result.unwrap_err().metric_label(), "KubeError");
}

#[tokio::test]
async fn missing_nodeclaim_crd_is_reported_not_fatal() {
    let mut v = serde_json::to_value(smol(true)).unwrap();
    v["resource"]["instanceType"] = json!("Standard_NC24ads_A100_v4");
    v["inference"] = json!({"preset": {"name": "phi-4-mini-instruct"}});
    let ws: Workspace = serde_json::from_value(v).unwrap();
    let ws = Arc::new(ws);
    let nc = "/apis/karpenter.sh/v1/nodeclaims/smol-37a8eec1-0";
    let mut steps = vec![
        step("GET", nc, 404, not_found()),
        step(
            "PATCH",
            nc,
            404,
            Some(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "message": "the server could not find the requested resource", "code": 404}),
            ),
        ),
        step("GET", "/api/v1/nodes", 200, ready_nodes()),
    ];
    for p in child_paths() {
        steps.push(step("GET", &p, 404, not_found()));
        steps.push(step("PATCH", &p, 200, None));
    }
    steps.push(step(
        "GET",
        "/api/v1/namespaces/default/pods",
        200,
        empty_list("PodList"),
    ));
    steps.push(step("GET", QUOTAS, 200, empty_list("ResourceQuotaList")));
    steps.push(step("POST", EVENTS, 201, None));
    steps.push(step(
        "PATCH",
        &format!("{WS_PATH}/status"),
        200,
        Some(serde_json::to_value(smol(true)).unwrap()),
    ));
    let (result, seen, _) = run(steps, |ctx| workspace::reconcile(ws, ctx)).await;
    result.unwrap();
    let event = seen.iter().find(|s| s.path == EVENTS).unwrap();
    assert_eq!(event.body["reason"], "NodeClaimCRDMissing");
    assert_eq!(event.body["type"], "Warning");
    let status = &seen.last().unwrap().body["status"];
    assert!(status.to_string().contains("NodeClaimCRDMissing"));
}

#[tokio::test]
async fn missing_secret_is_reported_with_an_event() {
    let mut v = serde_json::to_value(smol(true)).unwrap();
    v["inference"] = json!({"preset": {"name": "llama-3.1-8b-instruct", "presetOptions": {"modelAccessSecret": "hf-token"}}});
    let ws = Arc::new(serde_json::from_value::<Workspace>(v).unwrap());
    let steps = vec![
        step(
            "GET",
            "/api/v1/namespaces/default/secrets/hf-token",
            404,
            not_found(),
        ),
        step("POST", EVENTS, 201, None),
        step(
            "PATCH",
            &format!("{WS_PATH}/status"),
            200,
            Some(serde_json::to_value(smol(true)).unwrap()),
        ),
    ];
    let (result, seen, _) = run(steps, |ctx| workspace::reconcile(ws, ctx)).await;
    result.unwrap();
    assert_eq!(seen[1].body["reason"], "SecretNotFound");
    assert!(seen[1].body["note"]
        .as_str()
        .unwrap()
        .contains("Secret `hf-token` not found"));
}

fn deleting(ago_secs: i64) -> Workspace {
    let mut v = serde_json::to_value(smol(true)).unwrap();
    let t = k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(ago_secs);
    v["metadata"]["deletionTimestamp"] =
        json!(k8s_openapi::jiff::Timestamp::from_second(t.as_second())
            .unwrap()
            .to_string());
    serde_json::from_value(v).unwrap()
}

fn marked_deleting(ago_secs: i64) -> Workspace {
    let mut ws = deleting(ago_secs);
    ws.status = serde_json::from_value(json!({"conditions": [{"type": "WorkspaceDeleting", "status": "True", "reason": "Deleting", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]})).unwrap();
    ws
}

#[tokio::test]
async fn deletion_cleans_up_nodeclaims_and_removes_the_finalizer() {
    let ws = Arc::new(deleting(1));
    let claims = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaimList", "metadata": {}, "items": [
        {"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim", "metadata": {"name": "smol-x-0"}}
    ]});
    let steps = vec![
        step(
            "PATCH",
            &format!("{WS_PATH}/status"),
            200,
            Some(serde_json::to_value(deleting(1)).unwrap()),
        ),
        step("GET", "/apis/karpenter.sh/v1/nodeclaims", 200, Some(claims)),
        step(
            "DELETE",
            "/apis/karpenter.sh/v1/nodeclaims/smol-x-0",
            200,
            Some(
                json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim", "metadata": {"name": "smol-x-0"}}),
            ),
        ),
        step("POST", EVENTS, 201, None),
        step(
            "PATCH",
            WS_PATH,
            200,
            Some(serde_json::to_value(smol(false)).unwrap()),
        ),
    ];
    let (result, seen, _) = run(steps, |ctx| workspace::reconcile(ws, ctx)).await;
    result.unwrap();
    assert_eq!(
        seen[0].body["status"]["conditions"][0]["type"],
        "WorkspaceDeleting"
    );
    assert_eq!(seen[0].body["status"]["state"], "Deleting");
    assert!(
        seen[1]
            .query
            .contains("labelSelector=kaito.sh%2Fworkspace%3Dsmol"),
        "{}",
        seen[1].query
    );
    assert!(
        seen[4].body.to_string().contains("remove"),
        "{}",
        seen[4].body
    );
}

#[tokio::test]
async fn deletion_with_a_missing_crd_still_removes_the_finalizer() {
    let ws = Arc::new(deleting(1));
    let steps = vec![
        step(
            "PATCH",
            &format!("{WS_PATH}/status"),
            200,
            Some(serde_json::to_value(deleting(1)).unwrap()),
        ),
        step("GET", "/apis/karpenter.sh/v1/nodeclaims", 404, not_found()),
        step("POST", EVENTS, 201, None),
        step(
            "PATCH",
            WS_PATH,
            200,
            Some(serde_json::to_value(smol(false)).unwrap()),
        ),
    ];
    let (result, _, _) = run(steps, |ctx| workspace::reconcile(ws, ctx)).await;
    result.unwrap();
}

#[tokio::test]
async fn failing_cleanup_retries_then_gives_up_after_the_timeout() {
    // Recent deletion, already marked WorkspaceDeleting: the error is returned (and retried
    // with backoff) without rewriting the status.
    let ws = Arc::new(marked_deleting(1));
    let steps = vec![
        step(
            "GET",
            "/apis/karpenter.sh/v1/nodeclaims",
            403,
            error_status(403, "Forbidden"),
        ),
        step("POST", EVENTS, 201, None),
    ];
    let (result, seen, _) = run(steps, |ctx| workspace::reconcile(ws, ctx)).await;
    assert_eq!(result.unwrap_err().metric_label(), "Forbidden");
    assert_eq!(seen[1].body["reason"], "CleanupFailed");
    // Deleting for an hour: give up, say so, and remove the finalizer.
    let ws = Arc::new(marked_deleting(3600));
    let steps = vec![
        step(
            "GET",
            "/apis/karpenter.sh/v1/nodeclaims",
            403,
            error_status(403, "Forbidden"),
        ),
        step("POST", EVENTS, 201, None),
        step(
            "PATCH",
            WS_PATH,
            200,
            Some(serde_json::to_value(smol(false)).unwrap()),
        ),
    ];
    let (result, seen, _) = run(steps, |ctx| workspace::reconcile(ws, ctx)).await;
    result.unwrap();
    assert_eq!(seen[1].body["reason"], "CleanupTimedOut");
}

#[tokio::test]
async fn inferenceset_scales_down_by_deleting_the_highest_replicas() {
    let set: InferenceSet = serde_json::from_value(json!({
        "apiVersion": "kaito.sh/v1alpha1", "kind": "InferenceSet",
        "metadata": {"name": "s", "namespace": "default", "uid": "set-uid", "generation": 2},
        "spec": {"replicas": 1, "labelSelector": {"matchLabels": {"pool": "cpu"}},
                 "template": {"inference": {"preset": {"name": "smollm2-135m-instruct"}}}}
    }))
    .unwrap();
    let ws_base = "/apis/kaito.sh/v1beta1/namespaces/default/workspaces";
    let child = |i: i32| json!({"apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "metadata": {"name": format!("s-{i}"), "namespace": "default", "labels": {"inferenceset.kaito.sh/created-by": "s"}}});
    let steps = vec![
        step("GET", &format!("{ws_base}/s-0"), 404, not_found()),
        step("PATCH", &format!("{ws_base}/s-0"), 200, None),
        step(
            "GET",
            ws_base,
            200,
            Some(
                json!({"apiVersion": "kaito.sh/v1beta1", "kind": "WorkspaceList", "metadata": {}, "items": [child(0), child(1), child(2)]}),
            ),
        ),
        step("DELETE", &format!("{ws_base}/s-2"), 200, Some(child(2))),
        step("DELETE", &format!("{ws_base}/s-1"), 200, Some(child(1))),
        step(
            "PATCH",
            "/apis/kaito.sh/v1alpha1/namespaces/default/inferencesets/s/status",
            200,
            Some(serde_json::to_value(&set).unwrap()),
        ),
    ];
    let set = Arc::new(set);
    let (result, seen, _) = run(steps, |ctx| inferenceset::reconcile(set, ctx)).await;
    result.unwrap();
    let child0 = &seen[1].body;
    assert_eq!(
        child0["resource"]["labelSelector"]["matchLabels"]["pool"],
        "cpu"
    );
    assert_eq!(
        child0["metadata"]["ownerReferences"][0]["kind"],
        "InferenceSet"
    );
    let status = &seen[5].body["status"];
    assert_eq!(status["replicas"], 1);
    assert_eq!(status["readyReplicas"], 0);
    assert_eq!(status["selector"], "inferenceset.kaito.sh/created-by=s");
}

#[tokio::test]
async fn inferenceset_without_keda_reports_it_and_still_scales() {
    let set: InferenceSet = serde_json::from_value(json!({
        "apiVersion": "kaito.sh/v1alpha1", "kind": "InferenceSet",
        "metadata": {"name": "s", "namespace": "default", "uid": "set-uid", "generation": 1,
                     "annotations": {"scaledobject.kaito.sh/auto-provision": "true"}},
        "spec": {"replicas": 1, "labelSelector": {"matchLabels": {"pool": "cpu"}},
                 "template": {"inference": {"preset": {"name": "smollm2-135m-instruct"}}}}
    }))
    .unwrap();
    let ws_base = "/apis/kaito.sh/v1beta1/namespaces/default/workspaces";
    let so = "/apis/keda.sh/v1alpha1/namespaces/default/scaledobjects/s";
    let steps = vec![
        step("GET", &format!("{ws_base}/s-0"), 404, not_found()),
        step("PATCH", &format!("{ws_base}/s-0"), 200, None),
        step(
            "GET",
            ws_base,
            200,
            Some(
                json!({"apiVersion": "kaito.sh/v1beta1", "kind": "WorkspaceList", "metadata": {}, "items": [
                    {"apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "metadata": {"name": "s-0", "namespace": "default"}}
                ]}),
            ),
        ),
        step("GET", so, 404, not_found()),
        step("PATCH", so, 404, not_found()),
        step("POST", EVENTS, 201, None),
        step(
            "PATCH",
            "/apis/kaito.sh/v1alpha1/namespaces/default/inferencesets/s/status",
            200,
            Some(serde_json::to_value(&set).unwrap()),
        ),
    ];
    let set = Arc::new(set);
    let (result, seen, _) = run(steps, |ctx| inferenceset::reconcile(set, ctx)).await;
    result.unwrap();
    assert_eq!(seen[5].body["reason"], "KEDAMissing");
    assert_eq!(
        seen[4].body["spec"]["triggers"][0]["metadata"]["metricName"],
        "vllm:num_requests_waiting"
    );
}

#[tokio::test]
async fn a_preheated_oci_workspace_applies_its_daemon_set_and_reports_model_cached() {
    let mut v = serde_json::to_value(smol(true)).unwrap();
    v["metadata"]["annotations"] = json!({"kaito.sh/preheat": "true"});
    v["inference"] = json!({"model": {"source": "oci://registry.example.com/models/smollm2:q4",
                                      "preset": "smollm2-135m-instruct"}});
    let ws: Workspace = serde_json::from_value(v).unwrap();
    let preheat = "/apis/apps/v1/namespaces/default/daemonsets/smol-preheat";
    let mut paths = child_paths();
    paths.insert(1, preheat.to_owned());
    // One of the two matching nodes has pulled the model.
    let daemon_set = step(
        "GET",
        preheat,
        200,
        Some(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "smol-preheat", "namespace": "default"},
            "status": {"numberReady": 1, "desiredNumberScheduled": 2,
                       "currentNumberScheduled": 2, "numberMisscheduled": 0}})),
    );
    let steps = reconcile_steps(&paths, vec![daemon_set]);
    let ws = Arc::new(ws);
    let (result, seen, _) = run(steps, |ctx| workspace::reconcile(ws, ctx)).await;
    result.unwrap();
    let applied = seen
        .iter()
        .find(|s| s.method == "PATCH" && s.path == preheat)
        .unwrap();
    assert_eq!(applied.body["kind"], "DaemonSet");
    assert_eq!(
        applied.body["metadata"]["ownerReferences"][0]["uid"],
        "uid-1"
    );
    let status = &seen.last().unwrap().body["status"];
    let cached = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ModelCached")
        .cloned()
        .unwrap();
    assert_eq!(cached["status"], "False");
    assert_eq!(cached["reason"], "Pulling");
    assert_eq!(
        cached["message"],
        "1 of 2 nodes have the model in their cache"
    );
}
