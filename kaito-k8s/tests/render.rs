//! Golden render tests: every fixture of ours and (when `KAITO_REFERENCE_DIR` or
//! `../shared/kaito-reference` has them) every KAITO example renders; the output is
//! compared with `tests/golden/`, validated by `kubernetes-validate --strict` (built-in kinds),
//! and checked for what that tool misses: selectors that match template labels, DNS names,
//! label syntax, enum values, volumes that exist, NodeClaims against Karpenter's CRD schema and
//! child Workspaces against our own CRD.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kaito_k8s::crd::check::{check, check_with_schema, Kind};
use kaito_k8s::render::input::render_text;
use kaito_k8s::render::RenderOptions;
use serde_json::Value;

/// Our fixtures always; KAITO's examples when the reference manifests are there.
fn all_inputs() -> Vec<(String, PathBuf)> {
    common::all_manifests()
}

fn render(path: &Path) -> Result<String, Vec<String>> {
    render_text(
        &std::fs::read_to_string(path).unwrap(),
        &RenderOptions::default(),
    )
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| {
            serde_json::to_value(<serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap())
                .unwrap()
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

#[test]
fn every_input_renders_and_matches_golden() {
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("KAITO_UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for (name, path) in all_inputs() {
        let out = match render(&path) {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{name}: render failed: {e:#?}"));
                continue;
            }
        };
        let golden = golden_dir.join(&name);
        if update {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &out).unwrap();
        } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(out.as_str()) {
            failures.push(format!(
                "{name}: differs from {} (KAITO_UPDATE_GOLDEN=1 to accept)",
                golden.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rendered_builtin_objects_pass_kubernetes_validate_strict() {
    let Some(tool) = common::kubernetes_validate() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, (name, path)) in all_inputs().into_iter().enumerate() {
        let docs: Vec<Value> = documents(&render(&path).unwrap())
            .into_iter()
            .filter(|d| {
                let api = d["apiVersion"].as_str().unwrap_or_default();
                !api.contains(".sh/") // NodeClaim, ScaledObject, Workspace: checked below against their CRDs
            })
            .collect();
        let file = dir
            .path()
            .join(format!("{i:02}-{}.yaml", name.replace('/', "_")));
        let text: String = docs
            .iter()
            .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
            .collect();
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }
    let out = std::process::Command::new(&tool)
        .args(["--strict", "-k", "1.33.0", "--quiet"])
        .args(&files)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("ERROR"),
        "kubernetes-validate failed:\n{text}"
    );
}

fn label_ok(s: &str, max: usize) -> bool {
    s.len() <= max
        && (s.is_empty()
            || (s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))))
}

fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.len() <= 63
                && label_ok(p, 63)
                && !p.contains('_')
                && p == p.to_ascii_lowercase()
        })
}

fn dns_label(s: &str) -> bool {
    dns_subdomain(s) && !s.contains('.') && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn labels_ok(map: &Value, what: &str, problems: &mut Vec<String>) {
    for (k, v) in map.as_object().into_iter().flatten() {
        let (prefix, name) = k
            .rsplit_once('/')
            .map(|(p, n)| (Some(p), n))
            .unwrap_or((None, k.as_str()));
        if prefix.is_some_and(|p| !dns_subdomain(p)) || !label_ok(name, 63) || name.is_empty() {
            problems.push(format!("{what}: bad label key {k}"));
        }
        if !label_ok(v.as_str().unwrap_or("?!"), 63) {
            problems.push(format!("{what}: bad label value {v}"));
        }
    }
}

fn subset(sel: &Value, labels: &Value) -> bool {
    sel.as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| k == "apps.kubernetes.io/pod-index" || labels.get(k) == Some(v))
}

fn karpenter_schema() -> Option<Value> {
    let dir = common::reference_dir()?;
    let crd: Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("crds/karpenter.sh_nodeclaims.yaml")).unwrap(),
    )
    .unwrap();
    Some(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
}

/// What `kubernetes-validate` does not check.
fn semantic_problems(docs: &[Value], karpenter: Option<&Value>) -> Vec<String> {
    let mut p = Vec::new();
    let templates: BTreeMap<String, Value> = docs
        .iter()
        .filter(|d| d["kind"] == "StatefulSet")
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_owned(),
                d["spec"]["template"].clone(),
            )
        })
        .collect();
    let selects_a_template = |sel: &Value| {
        templates
            .values()
            .any(|t| subset(sel, &t["metadata"]["labels"]))
    };
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("{kind}/{name}");
        let name_ok = if kind == "Service" {
            dns_label(name) && name.len() <= 63
        } else {
            dns_subdomain(name)
        };
        if !name_ok {
            p.push(format!("{what}: invalid name"));
        }
        labels_ok(&d["metadata"]["labels"], &what, &mut p);
        match kind {
            "StatefulSet" => {
                let t = &d["spec"]["template"];
                if !subset(
                    &d["spec"]["selector"]["matchLabels"],
                    &t["metadata"]["labels"],
                ) {
                    p.push(format!(
                        "{what}: selector does not match the template labels"
                    ));
                }
                labels_ok(&t["metadata"]["labels"], &what, &mut p);
                let svc = d["spec"]["serviceName"].as_str().unwrap_or_default();
                if !docs.iter().any(|o| {
                    o["kind"] == "Service"
                        && o["metadata"]["name"] == svc
                        && o["spec"]["clusterIP"] == "None"
                }) {
                    p.push(format!(
                        "{what}: serviceName {svc} is not a rendered headless Service"
                    ));
                }
                let volumes: Vec<&str> = t["spec"]["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["name"].as_str())
                    .collect();
                let containers = t["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(t["spec"]["initContainers"].as_array().into_iter().flatten());
                for c in containers {
                    for m in c["volumeMounts"].as_array().into_iter().flatten() {
                        if !volumes.contains(&m["name"].as_str().unwrap_or_default()) {
                            p.push(format!("{what}: mount {} has no volume", m["name"]));
                        }
                    }
                    for port in c["ports"].as_array().into_iter().flatten() {
                        if port["name"].as_str().is_some_and(|n| n.len() > 15) {
                            p.push(format!("{what}: port name too long"));
                        }
                    }
                }
                let ns_hint = templates.contains_key(name);
                assert!(ns_hint);
            }
            "Service" => {
                if !selects_a_template(&d["spec"]["selector"]) {
                    p.push(format!("{what}: selector matches no pod template"));
                }
                let ty = d["spec"]["type"].as_str().unwrap_or("ClusterIP");
                if !["ClusterIP", "LoadBalancer", "NodePort", "ExternalName"].contains(&ty) {
                    p.push(format!("{what}: bad type {ty}"));
                }
            }
            "PodDisruptionBudget" if !selects_a_template(&d["spec"]["selector"]["matchLabels"]) => {
                p.push(format!("{what}: selector matches no pod template"));
            }
            "NetworkPolicy" if !selects_a_template(&d["spec"]["podSelector"]["matchLabels"]) => {
                p.push(format!("{what}: podSelector matches no pod template"));
            }
            "NodeClaim" => {
                if let Some(schema) = karpenter {
                    for e in check_with_schema(schema, d, None) {
                        p.push(format!("{what}: {e}"));
                    }
                }
            }
            "Workspace" => {
                for e in check(Kind::Workspace, d, None) {
                    p.push(format!("{what}: {e}"));
                }
            }
            "ScaledObject"
                if d["spec"]["scaleTargetRef"]["kind"] != "InferenceSet"
                    || d["spec"]["triggers"]
                        .as_array()
                        .is_none_or(|t| t.is_empty()) =>
            {
                p.push(format!(
                    "{what}: needs a scaleTargetRef to an InferenceSet and a trigger"
                ));
            }
            _ => {}
        }
    }
    p
}

#[test]
fn rendered_objects_pass_semantic_checks() {
    let karpenter = karpenter_schema();
    let mut problems = Vec::new();
    for (name, path) in all_inputs() {
        let docs = documents(&render(&path).unwrap());
        assert!(
            docs.iter().any(|d| d["kind"] == "StatefulSet"),
            "{name}: no StatefulSet"
        );
        for e in semantic_problems(&docs, karpenter.as_ref()) {
            problems.push(format!("{name}: {e}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn semantic_checks_catch_a_broken_selector() {
    let mut docs = documents(&render(&common::our_fixtures()[0]).unwrap());
    for d in docs.iter_mut().filter(|d| d["kind"] == "StatefulSet") {
        d["spec"]["selector"]["matchLabels"]["extra"] = Value::from("x");
    }
    assert!(!semantic_problems(&docs, None).is_empty());
}
