//! The admission webhook rejects every listed bad input with a message naming the field, over
//! its handler and over real HTTPS.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use kaito_k8s::webhook::{admit, router, serve_tls_on, ClusterLookup};
use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::{json, Value};

#[derive(Default)]
struct StaticLookup {
    config_maps: BTreeMap<String, String>,
    dns: BTreeMap<String, Vec<IpAddr>>,
}

#[async_trait::async_trait]
impl ClusterLookup for StaticLookup {
    async fn inference_config(&self, _namespace: &str, name: &str) -> Option<String> {
        self.config_maps.get(name).cloned()
    }
    async fn resolve(&self, host: &str) -> Vec<IpAddr> {
        self.dns.get(host).cloned().unwrap_or_default()
    }
}

fn review(kind: &str, object: Value, old: Option<Value>) -> Value {
    let (group, version, resource) = match kind {
        "Workspace" => ("kaito.sh", "v1beta1", "workspaces"),
        _ => ("kaito.sh", "v1alpha1", "inferencesets"),
    };
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "req-1", "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": object["metadata"]["name"], "namespace": "default",
            "operation": if old.is_some() { "UPDATE" } else { "CREATE" },
            "userInfo": {}, "object": object, "oldObject": old, "dryRun": false
        }
    })
}

async fn decide(
    kind: &str,
    object: Value,
    old: Option<Value>,
    lookup: &StaticLookup,
    mutate: bool,
) -> (bool, String, Value) {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(review(kind, object, old)).unwrap();
    let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
    let resp = admit(&req, lookup, mutate).await;
    let v = serde_json::to_value(&resp).unwrap();
    (resp.allowed, resp.result.message.clone(), v)
}

fn ws() -> Value {
    json!({
        "apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "metadata": {"name": "phi", "namespace": "default"},
        "resource": {"instanceType": "Standard_NC24ads_A100_v4", "labelSelector": {"matchLabels": {"apps": "phi"}}},
        "inference": {"preset": {"name": "phi-4-mini-instruct"}}
    })
}

async fn denied_with(object: Value, expect: &str) {
    let (allowed, message, _) =
        decide("Workspace", object, None, &StaticLookup::default(), false).await;
    assert!(!allowed, "expected a denial containing {expect:?}");
    assert!(
        message.contains(expect),
        "expected {expect:?} in {message:?}"
    );
}

#[tokio::test]
async fn admits_a_good_workspace() {
    let (allowed, message, _) =
        decide("Workspace", ws(), None, &StaticLookup::default(), false).await;
    assert!(allowed, "{message}");
}

/// Every Workspace and InferenceSet of our fixtures and (when present) of KAITO's examples is
/// admitted, with the ConfigMaps of its file as the cluster's.
#[tokio::test]
async fn admits_every_manifest() {
    for (name, path) in common::all_manifests() {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lookup = StaticLookup::default();
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .filter_map(|d| {
                serde_json::to_value(
                    <serde_yaml::Value as serde::Deserialize>::deserialize(d).ok()?,
                )
                .ok()
            })
            .filter(|v: &Value| !v.is_null())
            .collect();
        for d in docs.iter().filter(|d| d["kind"] == "ConfigMap") {
            if let Some(c) = d["data"]["inference_config.yaml"].as_str() {
                lookup.config_maps.insert(
                    d["metadata"]["name"].as_str().unwrap().to_owned(),
                    c.to_owned(),
                );
            }
        }
        for d in docs
            .iter()
            .filter(|d| d["kind"] == "Workspace" || d["kind"] == "InferenceSet")
        {
            let (allowed, message, _) =
                decide(d["kind"].as_str().unwrap(), d.clone(), None, &lookup, false).await;
            assert!(allowed, "{name}: {message}");
        }
    }
}

#[tokio::test]
async fn rejects_preset_and_template() {
    let mut w = ws();
    w["inference"]["template"] = json!({"spec": {"containers": []}});
    denied_with(w, "inference: exactly one of inference.preset, inference.template or inference.model must be set").await;
}

#[tokio::test]
async fn rejects_unknown_preset_and_instance_type() {
    let mut w = ws();
    w["inference"]["preset"]["name"] = json!("gpt-9");
    denied_with(w, "inference.preset.name: unknown preset `gpt-9`").await;
    let mut t = ws();
    t["resource"]["instanceType"] = json!("Standard_Unknown");
    denied_with(
        t,
        "resource.instanceType: unknown instance type `Standard_Unknown`",
    )
    .await;
}

#[tokio::test]
async fn rejects_gpu_too_small_unless_bypassed() {
    let mut w = ws();
    w["resource"] = json!({"count": 1, "instanceType": "Standard_NC6s_v3", "labelSelector": {"matchLabels": {"a": "b"}}});
    w["inference"]["preset"]["name"] = json!("qwen2.5-coder-32b-instruct");
    denied_with(w.clone(), "resource.count: GPU memory too small").await;
    w["metadata"]["annotations"] = json!({"kaito.sh/bypass-resource-checks": "true"});
    let (allowed, message, _) = decide("Workspace", w, None, &StaticLookup::default(), false).await;
    assert!(allowed, "{message}");
}

#[tokio::test]
async fn rejects_missing_label_selector_and_bad_names() {
    let mut w = ws();
    w["resource"]
        .as_object_mut()
        .unwrap()
        .remove("labelSelector");
    denied_with(w, "resource.labelSelector: Required value").await;
    let mut n = ws();
    n["metadata"]["name"] = json!("Bad.Name");
    denied_with(n, "metadata.name").await;
}

#[tokio::test]
async fn rejects_gated_model_without_secret() {
    let mut w = ws();
    w["inference"]["preset"]["name"] = json!("llama-3.3-70b-instruct");
    denied_with(w, "inference.preset.presetOptions.modelAccessSecret").await;
}

#[tokio::test]
async fn ssrf_guard_covers_literal_addresses_and_dns() {
    let mut w = ws();
    w["inference"]["adapters"] =
        json!([{"source": {"name": "a", "urls": ["http://[::1]:8080/adapter"]}}]);
    denied_with(w.clone(), "inference.adapters[0].source.urls[0]").await;
    w["inference"]["adapters"] =
        json!([{"source": {"name": "a", "urls": ["https://adapters.example.net/a.safetensors"]}}]);
    let mut lookup = StaticLookup::default();
    lookup.dns.insert(
        "adapters.example.net".into(),
        vec!["169.254.169.254".parse().unwrap()],
    );
    let (allowed, message, _) = decide("Workspace", w.clone(), None, &lookup, false).await;
    assert!(!allowed);
    assert!(message.contains("inference.adapters[0].source.urls[0]: host `adapters.example.net` resolves to a link-local (cloud metadata) address 169.254.169.254"), "{message}");
    lookup.dns.insert(
        "adapters.example.net".into(),
        vec!["93.184.216.34".parse().unwrap()],
    );
    assert!(decide("Workspace", w, None, &lookup, false).await.0);
}

#[tokio::test]
async fn rejects_context_above_the_model_limit() {
    let mut w = ws();
    w["inference"]["config"] = json!("params");
    let mut lookup = StaticLookup::default();
    lookup
        .config_maps
        .insert("params".into(), "vllm:\n  max-model-len: 200000\n".into());
    let (allowed, message, _) = decide("Workspace", w.clone(), None, &lookup, false).await;
    assert!(!allowed);
    assert!(message.contains("inference.config (max-model-len): context length 200000 exceeds the limit of phi-4-mini-instruct (131072)"), "{message}");
    // A missing ConfigMap is a warning, not a denial.
    let (allowed, _, v) = decide("Workspace", w, None, &StaticLookup::default(), false).await;
    assert!(allowed);
    assert!(v["warnings"][0]
        .as_str()
        .unwrap()
        .contains("ConfigMap `params` not found"));
}

#[tokio::test]
async fn keeps_instance_type_immutable() {
    let mut w = ws();
    w["resource"]["instanceType"] = json!("Standard_NC48ads_A100_v4");
    let (allowed, message, _) =
        decide("Workspace", w, Some(ws()), &StaticLookup::default(), false).await;
    assert!(!allowed);
    assert!(
        message.contains("resource.instanceType is immutable"),
        "{message}"
    );
}

#[tokio::test]
async fn rejects_a_bad_inferenceset() {
    let set = json!({
        "apiVersion": "kaito.sh/v1alpha1", "kind": "InferenceSet", "metadata": {"name": "s", "namespace": "default"},
        "spec": {"replicas": 2, "labelSelector": {"matchLabels": {"a": "b"}},
                 "template": {"resource": {"instanceType": "Standard_NC24ads_A100_v4"}, "inference": {"preset": {"name": "nope"}}}}
    });
    let (allowed, message, _) =
        decide("InferenceSet", set, None, &StaticLookup::default(), false).await;
    assert!(!allowed);
    assert!(
        message.contains("spec.template.inference.preset.name: unknown preset `nope`"),
        "{message}"
    );
}

fn patch_of(v: &Value) -> Value {
    // `patch` is the JSON patch bytes.
    let bytes: Vec<u8> = match &v["patch"] {
        Value::Array(a) => a.iter().map(|b| b.as_u64().unwrap() as u8).collect(),
        other => panic!("no patch: {other}"),
    };
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn mutate_defaults_access_mode_and_runtime() {
    let (allowed, _, v) = decide("Workspace", ws(), None, &StaticLookup::default(), true).await;
    assert!(allowed);
    assert_eq!(v["patchType"], "JSONPatch");
    let mut obj = ws();
    json_patch::patch(
        &mut obj,
        &serde_json::from_value::<json_patch::Patch>(patch_of(&v)).unwrap(),
    )
    .unwrap();
    assert_eq!(obj["inference"]["preset"]["accessMode"], "public");
    assert_eq!(obj["metadata"]["annotations"]["kaito.sh/runtime"], "vllm");
    // With annotations present and both already set: nothing to do.
    let mut set = ws();
    set["metadata"]["annotations"] = json!({"kaito.sh/runtime": "vllm"});
    set["inference"]["preset"]["accessMode"] = json!("public");
    let (_, _, v) = decide("Workspace", set, None, &StaticLookup::default(), true).await;
    assert!(v.get("patch").is_none());
    // A GGUF preset defaults to our runtime.
    let mut smol = ws();
    smol["metadata"]["annotations"] = json!({"team": "a"});
    smol["inference"]["preset"] = json!({"name": "smollm2-135m-instruct", "accessMode": "public"});
    let (_, _, v) = decide(
        "Workspace",
        smol.clone(),
        None,
        &StaticLookup::default(),
        true,
    )
    .await;
    json_patch::patch(
        &mut smol,
        &serde_json::from_value::<json_patch::Patch>(patch_of(&v)).unwrap(),
    )
    .unwrap();
    assert_eq!(smol["metadata"]["annotations"]["kaito.sh/runtime"], "kaito");
    assert_eq!(smol["metadata"]["annotations"]["team"], "a");
}

#[tokio::test]
async fn serves_over_https() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let config = kaito_k8s::webhook::tls_config(&cert_path, &key_path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls_on(
        listener,
        config,
        router(Arc::new(StaticLookup::default())),
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let mut bad = ws();
    bad["inference"]["preset"]["name"] = json!("nope");
    let body = review("Workspace", bad, None).to_string();
    let request = format!("POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = tls.read_to_string(&mut response).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let json_start = response.find("\r\n\r\n").unwrap() + 4;
    let out: Value = serde_json::from_str(response[json_start..].trim()).unwrap();
    assert_eq!(out["response"]["allowed"], false);
    assert_eq!(out["response"]["uid"], "req-1");
    assert!(out["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("inference.preset.name: unknown preset `nope`"));
}

#[tokio::test]
async fn never_blocks_finalizer_changes_or_deletion() {
    // An object that no longer passes (its preset left the catalogue) ...
    let mut old = ws();
    old["inference"]["preset"]["name"] = json!("retired-model");
    old["metadata"]["finalizers"] = json!(["workspace.kaito.sh/finalizer"]);
    // ... can still lose its finalizer,
    let mut new = old.clone();
    new["metadata"]["finalizers"] = json!([]);
    let (allowed, message, _) = decide(
        "Workspace",
        new,
        Some(old.clone()),
        &StaticLookup::default(),
        false,
    )
    .await;
    assert!(allowed, "{message}");
    // ... but a spec edit is still checked.
    let mut edit = old.clone();
    edit["inference"]["engine"] = json!({"threads": 2});
    assert!(
        !decide(
            "Workspace",
            edit,
            Some(old),
            &StaticLookup::default(),
            false
        )
        .await
        .0
    );
}
