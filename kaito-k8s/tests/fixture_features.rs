//! The project's own manifests (`tests/fixtures/`) stand in for KAITO's examples in a clone
//! without them: each fixture renders what its feature promises, the README's table lists every
//! fixture, and (when KAITO's examples are there) every field, annotation and inference-config key
//! that an example uses is used by some fixture too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kaito_k8s::render::input::render_text;
use kaito_k8s::render::RenderOptions;
use serde_json::Value;

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| {
            serde_json::to_value(<serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap())
                .unwrap()
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn render(text: &str) -> Result<Vec<Value>, Vec<String>> {
    render_text(text, &RenderOptions::default()).map(|y| documents(&y))
}

fn fixture(name: &str) -> String {
    let path = common::fixtures_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The first container of every StatefulSet.
fn containers(docs: &[Value]) -> Vec<&Value> {
    of_kind(docs, "StatefulSet")
        .into_iter()
        .map(|s| &s["spec"]["template"]["spec"]["containers"][0])
        .collect()
}

/// A container's arguments, or for a multi-node pod the `sh -c` script, as one string.
fn command_line(c: &Value) -> String {
    let words = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect()
    };
    [words(&c["command"]), words(&c["args"])].concat().join(" ")
}

fn names(docs: &[&Value]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Each fixture, rendered, shows the feature it stands for (see tests/fixtures/README.md).
#[test]
fn each_fixture_renders_its_feature() {
    let docs = |name: &str| render(&fixture(name)).unwrap_or_else(|p| panic!("{name}: {p:#?}"));

    // A public preset on one GPU: one pod with one GPU, one NodeClaim of that type.
    let d = docs("preset_public_l4.yaml");
    let c = containers(&d)[0];
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert!(command_line(c).contains("--model=mistralai/Ministral-3-3B-Instruct-2512"));
    let claims = of_kind(&d, "NodeClaim");
    assert_eq!(claims.len(), 1);
    assert!(serde_json::to_string(&claims[0]["spec"]["requirements"])
        .unwrap()
        .contains("\"g6.xlarge\""));

    // Gated preset: the token from the named Secret, the pull secret on the pod.
    let d = docs("gated_preset_secret.yaml");
    let c = containers(&d)[0];
    assert!(c["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "HF_TOKEN"
            && e["valueFrom"]["secretKeyRef"]["name"] == "hub-credentials"));
    let pod = &of_kind(&d, "StatefulSet")[0]["spec"]["template"]["spec"];
    assert_eq!(pod["imagePullSecrets"][0]["name"], "registry-pull");

    // inference.config before / after the Workspace: the user's ConfigMap is mounted and its vLLM
    // keys become flags; tensor-parallel-size is the estimator's.
    for (name, config, flag) in [
        (
            "config_before_workspace.yaml",
            "phi-medium-params",
            "--max-model-len=65536",
        ),
        (
            "byo_nodes_config_after.yaml",
            "on-prem-params",
            "--max-model-len=8192",
        ),
    ] {
        let d = docs(name);
        let pod = &of_kind(&d, "StatefulSet")[0]["spec"]["template"]["spec"];
        assert!(
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["configMap"]["name"] == config),
            "{name}: {config} not mounted"
        );
        let line = command_line(containers(&d)[0]);
        assert!(line.contains(flag), "{name}: {line}");
        assert_eq!(
            line.matches("--tensor-parallel-size=").count(),
            1,
            "{name}: {line}"
        );
    }
    let line = command_line(containers(&docs("config_before_workspace.yaml"))[0]);
    assert!(line.contains("--tensor-parallel-size=2") && line.contains("--enable-chunked-prefill"));

    // Bring-your-own nodes: preferred affinity for the named nodes, no NodeClaim.
    let d = docs("byo_nodes_config_after.yaml");
    assert!(of_kind(&d, "NodeClaim").is_empty());
    let affinity = &of_kind(&d, "StatefulSet")[0]["spec"]["template"]["spec"]["affinity"];
    let preferred = serde_json::to_string(
        &affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"],
    )
    .unwrap();
    assert!(preferred.contains("gpu-rack1-node3") && preferred.contains("gpu-rack1-node4"));

    // Tool calling through the inference config.
    let line = command_line(containers(&docs("tool_calling.yaml"))[0]);
    for flag in [
        "--tool-call-parser=hermes",
        "--enable-auto-tool-choice",
        "--chat-template=/workspace/chat_templates/tool-chat-hermes.jinja",
    ] {
        assert!(line.contains(flag), "{flag}: {line}");
    }

    // gpt-oss with a token and its own memory fraction.
    let d = docs("gpt_oss_config.yaml");
    let line = command_line(containers(&d)[0]);
    assert!(
        line.contains("--model=openai/gpt-oss-20b")
            && line.contains("--gpu-memory-utilization=0.88")
    );

    // resource.count: two 8-GPU nodes, pipeline parallel over Ray.
    let d = docs("multinode_count.yaml");
    let set = of_kind(&d, "StatefulSet")[0];
    assert_eq!(set["spec"]["replicas"], 2);
    assert_eq!(of_kind(&d, "NodeClaim").len(), 2);
    let line = command_line(containers(&d)[0]);
    assert!(
        line.contains("ray start") && line.contains("--pipeline-parallel-size=2"),
        "{line}"
    );
    assert_eq!(
        containers(&d)[0]["resources"]["limits"]["nvidia.com/gpu"],
        "8"
    );

    // Accelerator partition: the count is the pod's GPUs; existing nodes, no NodeClaim.
    let d = docs("partition_accelerator.yaml");
    assert_eq!(
        containers(&d)[0]["resources"]["limits"]["nvidia.com/gpu"],
        "2"
    );
    assert!(of_kind(&d, "NodeClaim").is_empty());

    // Performance modes.
    let line = command_line(containers(&docs("bypass_resource_checks.yaml"))[0]);
    assert!(line.contains("--max-num-seqs=32"), "{line}");
    let line = command_line(containers(&docs("adapters_gcp.yaml"))[0]);
    assert!(
        line.contains("--max-num-seqs=512") && line.contains("--enable-lora"),
        "{line}"
    );

    // InferenceSet on GPUs: one Workspace per replica, each with the template and the selector,
    // and a ScaledObject on the named metric.
    let d = docs("inferenceset_gpu_keda.yaml");
    let children = of_kind(&d, "Workspace");
    assert_eq!(
        names(&children),
        ["llama-8b-pool-0", "llama-8b-pool-1", "llama-8b-pool-2"]
    );
    for w in &children {
        assert_eq!(w["resource"]["instanceType"], "Standard_NC40ads_H100_v5");
        assert_eq!(
            w["resource"]["labelSelector"]["matchLabels"]["apps"],
            "llama-8b-pool"
        );
        assert_eq!(
            w["inference"]["preset"]["presetOptions"]["modelAccessSecret"],
            "hub-credentials"
        );
    }
    let scaled = serde_json::to_string(&of_kind(&d, "ScaledObject")[0]).unwrap();
    assert!(
        scaled.contains("vllm:num_requests_running") && scaled.contains("\"16\""),
        "{scaled}"
    );
    assert_eq!(of_kind(&d, "StatefulSet").len(), 3);

    // InferenceSet on MIG slices: the slice is the pod's resource, in the set's namespace.
    let d = docs("inferenceset_mig.yaml");
    assert_eq!(of_kind(&d, "Workspace").len(), 4);
    for c in containers(&d) {
        assert_eq!(c["resources"]["limits"]["nvidia.com/mig-3g.40gb"], "1");
    }
    assert!(of_kind(&d, "StatefulSet")
        .iter()
        .all(|s| s["metadata"]["namespace"] == "inference"));
    assert_eq!(of_kind(&d, "ScaledObject").len(), 1);

    // InferenceSet whose template has no resource, without autoscaling.
    let d = docs("inferenceset_template_no_resource.yaml");
    assert_eq!(of_kind(&d, "Workspace").len(), 2);
    assert!(of_kind(&d, "ScaledObject").is_empty());
    assert!(of_kind(&d, "Workspace")
        .iter()
        .all(|w| w["inference"]["preset"]["accessMode"] == "public"));

    // MultiRoleInference: one Workspace per role replica; a repository name finds its preset.
    let d = docs("multirole_repo.yaml");
    let ws = of_kind(&d, "Workspace");
    assert_eq!(
        names(&ws),
        [
            "ministral-pd-prefill-0",
            "ministral-pd-decode-0",
            "ministral-pd-decode-1"
        ]
    );
    for w in &ws {
        assert_eq!(w["inference"]["preset"]["name"], "ministral-3-8b-instruct");
        assert_eq!(
            w["inference"]["preset"]["presetOptions"]["modelAccessSecret"],
            "hub-credentials"
        );
    }
    assert_eq!(
        ws[0]["resource"]["instanceType"],
        "Standard_NC40ads_H100_v5"
    );
    assert_eq!(
        ws[1]["resource"]["instanceType"],
        "Standard_NC24ads_A100_v4"
    );
    let d = docs("multirole_preset.yaml");
    let ws = of_kind(&d, "Workspace");
    assert_eq!(names(&ws), ["gemma-pd-prefill-0", "gemma-pd-decode-0"]);
    assert!(ws.iter().all(|w| w["metadata"]["namespace"] == "inference"
        && w["metadata"]["labels"]["kaito.sh/multiroleinference"] == "gemma-pd"));

    // A custom pod template is used as given.
    let d = docs("template.yaml");
    assert_eq!(containers(&d)[0]["image"], "nginx:1.27");

    // An oci:// model: the StatefulSet's pods pull it into the node cache (a hostPath made the
    // runtime's by a root init container) with the Secret's credentials, then serve it from
    // there; the preheat DaemonSet pulls it on every matching node and keeps it held.
    let d = docs("oci_model_preheat.yaml");
    let sts = of_kind(&d, "StatefulSet")[0];
    let pod = &sts["spec"]["template"]["spec"];
    let init = pod["initContainers"].as_array().unwrap();
    let init_names = |init: &[Value]| -> Vec<String> {
        init.iter()
            .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(init_names(init), ["model-cache-owner", "model-pull"]);
    assert_eq!(init[0]["securityContext"]["runAsUser"], 0);
    assert_eq!(
        command_line(&init[1]),
        "kaito pull oci://registry.example.com/models/smollm2:q4"
    );
    let cache = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "model-cache")
        .unwrap();
    assert_eq!(cache["hostPath"]["path"], "/var/lib/kaito/models");
    let env = &containers(&d)[0]["env"];
    assert!(env
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "KAITO_REGISTRY_AUTH"
            && e["value"] == "/var/run/kaito/registry/registry-credentials.json"));
    let ds = of_kind(&d, "DaemonSet");
    assert_eq!(names(&ds), ["smol-oci-preheat"]);
    let ds_pod = &ds[0]["spec"]["template"]["spec"];
    assert_eq!(
        command_line(&ds_pod["containers"][0]),
        "kaito pull oci://registry.example.com/models/smollm2:q4 --hold"
    );
    assert_eq!(
        ds_pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0]["key"],
        "pool"
    );
    // Its pods are not the Workspace's inference pods (the controller counts those by label).
    assert!(ds[0]["spec"]["template"]["metadata"]["labels"]
        .get("kaito.sh/workspace")
        .is_none());

    // An InferenceSet: one DaemonSet for the set, none per replica; the cache is a PVC, so no
    // root init container.
    let d = docs("inferenceset_oci_preheat.yaml");
    assert_eq!(names(&of_kind(&d, "DaemonSet")), ["smol-oci-set-preheat"]);
    for sts in of_kind(&d, "StatefulSet") {
        let pod = &sts["spec"]["template"]["spec"];
        assert_eq!(
            init_names(pod["initContainers"].as_array().unwrap()),
            ["model-pull"]
        );
        assert!(pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "model-cache"
                && v["persistentVolumeClaim"]["claimName"] == "model-cache"));
        // The cache bound reaches the pull and the runtime, which both evict down to it.
        let containers = pod["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(pod["containers"].as_array().unwrap());
        for c in containers {
            assert!(
                c["env"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["name"] == "KAITO_CACHE_MAX_GIB" && e["value"] == "40"),
                "{}",
                c["name"]
            );
        }
    }
    let ds = of_kind(&d, "DaemonSet")[0];
    let pull = &ds["spec"]["template"]["spec"]["initContainers"][0];
    assert!(pull["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "KAITO_CACHE_MAX_GIB"));
}

/// The bypass annotation is what lets the undersized GPU through.
#[test]
fn bypass_annotation_is_what_admits_the_undersized_gpu() {
    let text = fixture("bypass_resource_checks.yaml");
    assert!(render(&text).is_ok());
    let without = text.replace("    kaito.sh/bypass-resource-checks: \"true\"\n", "");
    assert_ne!(without, text);
    let problems = render(&without).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("GPU memory too small")),
        "{problems:#?}"
    );
}

/// Every fixture is in the README's table, and every file the table names exists.
#[test]
fn readme_lists_every_fixture() {
    let readme = std::fs::read_to_string(common::fixtures_dir().join("README.md")).unwrap();
    // The fixtures are named in the last column of the tables.
    let named: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| l.trim_end_matches('|').rsplit('|').next())
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|s| s.ends_with(".yaml"))
        .collect();
    let files: BTreeSet<String> = common::our_fixtures()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let unlisted: Vec<_> = files.difference(&named).collect();
    let missing: Vec<_> = named.difference(&files).collect();
    assert!(
        unlisted.is_empty() && missing.is_empty(),
        "fixtures not in README.md: {unlisted:?}; named in README.md but absent: {missing:?}"
    );
}

/// Leaf values that select behaviour (not user data), kept in the feature names.
const VALUE_KEYS: &[&str] = &[
    "mode",
    "accessMode",
    "type",
    "kaito.sh/performance-mode",
    "scaledobject.kaito.sh/auto-provision",
];

/// The features a manifest uses: each object's kind and apiVersion, the path of every field it
/// sets (label selector keys are the user's and left out), the value of the few fields in
/// [`VALUE_KEYS`], every key of each ConfigMap's `inference_config.yaml`, and whether a
/// ConfigMap follows the object that names it.
fn features(path: &Path) -> BTreeSet<String> {
    fn walk(v: &Value, kind: &str, path: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    out.insert(format!("{kind}: {p}"));
                    if k != "matchLabels" {
                        walk(c, kind, &p, out);
                    }
                }
            }
            Value::Array(a) => a
                .iter()
                .for_each(|c| walk(c, kind, &format!("{path}[]"), out)),
            Value::String(s) => {
                let last = path.rsplit('.').next().unwrap_or_default();
                let last = last.trim_end_matches("[]");
                let key = path
                    .rsplit_once("annotations.")
                    .map(|(_, k)| k)
                    .unwrap_or(last);
                if VALUE_KEYS.contains(&key) {
                    out.insert(format!("{kind}: {path}={s}"));
                }
            }
            _ => {}
        }
    }
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeSet::new();
    let mut workload_seen = false;
    for d in documents(&text) {
        let kind = d["kind"].as_str().unwrap_or("?").to_owned();
        out.insert(format!(
            "{kind} {}",
            d["apiVersion"].as_str().unwrap_or("?")
        ));
        if kind == "ConfigMap" && workload_seen {
            out.insert("a ConfigMap after the object that names it".to_owned());
        }
        workload_seen |= d["apiVersion"]
            .as_str()
            .is_some_and(|a| a.starts_with("kaito.sh/"));
        walk(&d, &kind, "", &mut out);
        if let Some(config) = d["data"]["inference_config.yaml"].as_str() {
            let config: Value = serde_yaml::from_str(config).unwrap();
            walk(&config, "inference_config.yaml", "", &mut out);
        }
    }
    out
}

/// With KAITO's examples at hand: every feature they use is used by one of our fixtures, so a
/// clone without them still tests it. (A new KAITO example with a new field fails this until a
/// fixture covers it.)
#[test]
fn fixtures_use_every_feature_of_kaito_examples() {
    let examples = common::kaito_examples();
    if examples.is_empty() {
        return;
    }
    let ours: BTreeSet<String> = common::our_fixtures()
        .iter()
        .flat_map(|p| features(p))
        .collect();
    let mut uncovered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for example in &examples {
        for f in features(example).difference(&ours) {
            uncovered
                .entry(f.clone())
                .or_default()
                .push(example.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(
        uncovered.is_empty(),
        "features of KAITO's examples that no fixture in tests/fixtures uses (add one, and a row to its README.md):\n{}",
        uncovered
            .iter()
            .map(|(f, files)| format!("  {f}   ({})", files.join(", ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
