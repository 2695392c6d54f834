//! The CRDs: the committed copy matches the generated one, the schema declares every field the
//! kaito-core types write, and the CEL rules reject each bad input the issue lists.

mod common;

use kaito_k8s::crd::check::{check, Kind};
use kaito_k8s::crd::generate::crd_yaml;
use serde_json::{json, Value};

#[test]
fn committed_crds_match_generated() {
    let generated = crd_yaml().unwrap();
    let path = common::repo_root().join("deploy/base/crds/kaito.sh_crds.yaml");
    if std::env::var_os("KAITO_UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "deploy/base/crds/kaito.sh_crds.yaml is out of date: run `KAITO_UPDATE_CRDS=1 cargo test -p kaito-k8s --test crd` (or `kaito crd > deploy/base/crds/kaito.sh_crds.yaml`)"
    );
}

/// Every key a fully-populated kaito-core Workspace serializes must be declared in the schema.
#[test]
fn schema_declares_every_kaito_core_field() {
    let full = json!({
        "apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "metadata": {"name": "full"},
        "resource": {"count": 1, "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]},
            "preferredNodes": ["n"], "partition": {"mode": "mig", "profile": "1g.10gb", "count": 1}},
        "inference": {"preset": {"name": "phi-4", "accessMode": "public",
                "presetOptions": {"image": "i", "imagePullSecrets": ["s"], "modelAccessSecret": "m"}},
            "config": "c",
            "adapters": [{"source": {"name": "a", "urls": ["https://x"], "image": "i", "imagePullSecrets": ["s"], "volumeSource": {}}, "strength": "1.0"}],
            "engine": {"backend": "llama-cpp", "threads": 1, "ctxSize": 1, "parallel": 1, "maxQueue": 1, "batchSize": 1, "gpuLayers": 0, "prefixCacheMib": 0, "device": "cpu", "dtype": "f32", "quantization": "int4"}},
        "status": {"workerNodes": ["n"], "conditions": [{"type": "InferenceReady", "status": "True", "reason": "R", "message": "m", "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1}]}
    });
    // Round-trip through kaito-core so a field kaito-core adds shows up here.
    let core: kaito_core::Workspace = serde_json::from_value(full.clone()).unwrap();
    let core_json = serde_json::to_value(&core).unwrap();
    assert_eq!(
        core_json, full,
        "the fixture must cover every kaito-core field it names"
    );
    let model =
        json!({"source": "smollm2-135m-instruct", "sha256": "0".repeat(64), "servedName": "s"});
    let tuning = json!({"preset": {"name": "phi-4"}, "method": "lora", "config": "c",
        "input": {"urls": ["https://x"]}, "output": {"image": "i", "imagePushSecret": "p", "volumeSource": {}}});
    let crd = kaito_k8s::crd::generate::workspace_crd();
    let schema = kaito_k8s::crd::generate::schema_of(&crd);
    let mut missing = Vec::new();
    declared(&schema, &full, "", &mut missing);
    declared(
        &schema["properties"]["inference"]["properties"]["model"],
        &model,
        "inference.model",
        &mut missing,
    );
    declared(
        &schema["properties"]["tuning"],
        &tuning,
        "tuning",
        &mut missing,
    );
    assert!(
        missing.is_empty(),
        "fields missing from the CRD schema: {missing:?}"
    );
}

fn declared(schema: &Value, value: &Value, path: &str, missing: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields").is_some() {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if path.is_empty() && k == "metadata" {
                    continue;
                }
                let p = format!("{path}.{k}");
                match schema
                    .get("properties")
                    .and_then(|p| p.get(k))
                    .or_else(|| schema.get("additionalProperties"))
                {
                    Some(s) => declared(s, v, &p, missing),
                    None => missing.push(p),
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                declared(&schema["items"], v, path, missing);
            }
        }
        _ => {}
    }
}

fn good_workspace() -> Value {
    json!({
        "apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "metadata": {"name": "phi"},
        "resource": {"instanceType": "Standard_NC24ads_A100_v4", "labelSelector": {"matchLabels": {"apps": "phi"}}},
        "inference": {"preset": {"name": "phi-4-mini-instruct"}}
    })
}

fn rejected(object: &Value, old: Option<&Value>, expect: &str) {
    let problems = check(Kind::Workspace, object, old);
    assert!(
        problems.iter().any(|p| p.contains(expect)),
        "expected a problem containing {expect:?}, got {problems:?}"
    );
}

#[test]
fn crd_accepts_a_good_workspace_and_its_update() {
    assert_eq!(
        check(Kind::Workspace, &good_workspace(), None),
        Vec::<String>::new()
    );
    let mut newer = good_workspace();
    newer["inference"]["preset"]["name"] = json!("phi-4");
    assert_eq!(
        check(Kind::Workspace, &newer, Some(&good_workspace())),
        Vec::<String>::new()
    );
}

#[test]
fn crd_rejects_preset_and_template_together() {
    let mut w = good_workspace();
    w["inference"]["template"] = json!({"spec": {"containers": []}});
    rejected(
        &w,
        None,
        "exactly one of inference.preset, inference.template or inference.model",
    );
}

#[test]
fn crd_rejects_missing_label_selector() {
    let mut w = good_workspace();
    w["resource"]
        .as_object_mut()
        .unwrap()
        .remove("labelSelector");
    rejected(&w, None, "resource.labelSelector: Required value");
}

#[test]
fn crd_rejects_missing_resource_and_inference_with_tuning() {
    let mut w = good_workspace();
    w.as_object_mut().unwrap().remove("resource");
    rejected(&w, None, "resource is required");
    let mut t = good_workspace();
    t["tuning"] = json!({"preset": {"name": "phi-4"}, "input": {}, "output": {}});
    rejected(&t, None, "exactly one of inference or tuning");
}

#[test]
fn crd_rejects_bad_enum_values() {
    let mut w = good_workspace();
    w["inference"]["preset"]["accessMode"] = json!("secret");
    rejected(&w, None, "inference.preset.accessMode: unsupported value");
    let mut p = good_workspace();
    p["resource"]["partition"] = json!({"mode": "slices"});
    rejected(&p, None, "resource.partition.mode: unsupported value");
    let mut e = good_workspace();
    e["resource"]["labelSelector"] =
        json!({"matchExpressions": [{"key": "k", "operator": "Near"}]});
    rejected(&e, None, "operator: unsupported value");
}

#[test]
fn crd_rejects_invalid_names() {
    let mut w = good_workspace();
    w["metadata"]["name"] = json!("Phi_4");
    rejected(&w, None, "DNS-1035 label");
    w["metadata"]["name"] = json!("a".repeat(60));
    rejected(&w, None, "DNS-1035 label");
}

#[test]
fn crd_rejects_unknown_fields() {
    let mut w = good_workspace();
    w["inference"]["presett"] = json!({});
    rejected(&w, None, "inference.presett: field not declared");
}

#[test]
fn crd_keeps_instance_type_and_selector_immutable() {
    let old = good_workspace();
    let mut w = good_workspace();
    w["resource"]["instanceType"] = json!("Standard_NC96ads_A100_v4");
    rejected(&w, Some(&old), "resource.instanceType is immutable");
    let mut s = good_workspace();
    s["resource"]["labelSelector"] = json!({"matchLabels": {"apps": "other"}});
    rejected(&s, Some(&old), "resource.labelSelector is immutable");
}

#[test]
fn crd_checks_inferenceset() {
    let good = json!({
        "apiVersion": "kaito.sh/v1alpha1", "kind": "InferenceSet", "metadata": {"name": "phi"},
        "spec": {"replicas": 2, "labelSelector": {"matchLabels": {"apps": "phi"}},
                 "template": {"inference": {"preset": {"name": "phi-4-mini-instruct"}}}}
    });
    assert_eq!(check(Kind::InferenceSet, &good, None), Vec::<String>::new());
    let mut bad = good.clone();
    bad["spec"].as_object_mut().unwrap().remove("labelSelector");
    bad["spec"]["replicas"] = json!(-1);
    let problems = check(Kind::InferenceSet, &bad, None);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("spec.labelSelector: Required value")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("spec.replicas: must be greater")),
        "{problems:?}"
    );
}

/// Every CEL rule compiles (an API server refuses a CRD whose rule does not).
#[test]
fn cel_rules_compile() {
    for crd in kaito_k8s::crd::generate::crds() {
        let schema = kaito_k8s::crd::generate::schema_of(&crd);
        let compiled = kube::core::cel::compile_schema(&schema);
        assert!(
            !compiled.has_errors(),
            "{}: {:?}",
            crd.metadata.name.unwrap(),
            compiled.compilation_errors()
        );
    }
}

/// Every field KAITO's CRDs declare (v1beta1 Workspace; both InferenceSet versions) exists in
/// ours, and every field KAITO requires is required by ours too.
#[test]
fn schema_is_a_superset_of_kaito() {
    let Some(dir) = common::reference_dir() else {
        return;
    };
    let pairs = [
        (
            "kaito.sh_workspaces.yaml",
            "v1beta1",
            kaito_k8s::crd::generate::workspace_crd(),
        ),
        (
            "kaito.sh_inferencesets.yaml",
            "v1alpha1",
            kaito_k8s::crd::generate::inferenceset_crd(),
        ),
        (
            "kaito.sh_inferencesets.yaml",
            "v1beta1",
            kaito_k8s::crd::generate::inferenceset_crd(),
        ),
    ];
    let mut problems = Vec::new();
    for (file, version, ours) in pairs {
        let theirs: Value =
            serde_yaml::from_str(&std::fs::read_to_string(dir.join("crds").join(file)).unwrap())
                .unwrap();
        let theirs = theirs["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == version)
            .unwrap()["schema"]["openAPIV3Schema"]
            .clone();
        let ours_v = serde_json::to_value(&ours).unwrap();
        let ours = ours_v["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == version)
            .unwrap()["schema"]["openAPIV3Schema"]
            .clone();
        compare(&theirs, &ours, &format!("{file}@{version}"), &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn compare(theirs: &Value, ours: &Value, path: &str, problems: &mut Vec<String>) {
    if ours.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || theirs.get("x-kubernetes-preserve-unknown-fields").is_some()
    {
        return;
    }
    let mut theirs_required: Vec<&str> = theirs["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let ours_required: Vec<&str> = ours["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    theirs_required.retain(|r| !ours_required.contains(r));
    // KAITO requires `input`/`output` on tuning and we do too; `description` in performance
    // metrics is KAITO's benchmark output, which we keep as free-form JSON.
    for r in theirs_required {
        problems.push(format!("{path}: KAITO requires `{r}`, we do not"));
    }
    if let Some(props) = theirs["properties"].as_object() {
        for (k, t) in props {
            match ours["properties"].get(k) {
                Some(o) => compare(t, o, &format!("{path}.{k}"), problems),
                None if path.ends_with(".metadata") => {}
                None => problems.push(format!("{path}.{k}: declared by KAITO, missing from ours")),
            }
        }
    }
    if let (Some(t), Some(o)) = (theirs.get("items"), ours.get("items")) {
        compare(t, o, &format!("{path}[]"), problems);
    }
}
