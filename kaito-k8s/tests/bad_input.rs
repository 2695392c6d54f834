//! Bad input is rejected by `render` with one line per problem naming the field path.

mod common;

use kaito_k8s::render::input::render_text;
use kaito_k8s::render::RenderOptions;

fn problems(yaml: &str) -> Vec<String> {
    match render_text(yaml, &RenderOptions::default()) {
        Ok(out) => panic!("expected a rejection, got:\n{out}"),
        Err(p) => p,
    }
}

fn assert_rejects(yaml: &str, expect: &str) {
    let p = problems(yaml);
    assert!(
        p.iter().any(|l| l.contains(expect)),
        "expected a line containing {expect:?}, got {p:#?}"
    );
}

const WS: &str = "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: bad\n";

#[test]
fn preset_and_template_together() {
    assert_rejects(
        &format!("{WS}resource: {{labelSelector: {{matchLabels: {{a: b}}}}}}\ninference:\n  preset: {{name: phi-4}}\n  template: {{spec: {{containers: []}}}}\n"),
        "document[0] Workspace/bad: inference: exactly one of inference.preset, inference.template or inference.model must be set",
    );
}

#[test]
fn unknown_preset() {
    assert_rejects(
        &format!("{WS}resource: {{labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: gpt-5}}}}\n"),
        "inference.preset.name: unknown preset `gpt-5`",
    );
}

#[test]
fn unknown_instance_type() {
    assert_rejects(
        &format!("{WS}resource: {{instanceType: Standard_XYZ, labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: phi-4}}}}\n"),
        "resource.instanceType: unknown instance type `Standard_XYZ`",
    );
}

#[test]
fn gpu_too_small() {
    assert_rejects(
        &format!("{WS}resource: {{count: 1, instanceType: Standard_NC6s_v3, labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: qwen2.5-coder-32b-instruct}}}}\n"),
        "resource.count: GPU memory too small",
    );
    assert_rejects(
        &format!("{WS}resource: {{instanceType: Standard_D4s_v5, labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: phi-4}}}}\n"),
        "resource.instanceType: Standard_D4s_v5 has no GPU",
    );
}

#[test]
fn gpu_check_can_be_bypassed() {
    let yaml = "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: bypass\n  annotations: {kaito.sh/bypass-resource-checks: \"true\"}\nresource: {count: 1, instanceType: Standard_NC6s_v3, labelSelector: {matchLabels: {a: b}}}\ninference: {preset: {name: qwen2.5-coder-32b-instruct}}\n";
    assert!(render_text(yaml, &RenderOptions::default()).is_ok());
}

#[test]
fn missing_label_selector() {
    assert_rejects(
        &format!("{WS}resource: {{instanceType: Standard_NC24ads_A100_v4}}\ninference: {{preset: {{name: phi-4}}}}\n"),
        "resource.labelSelector: Required value",
    );
    assert_rejects(
        "apiVersion: kaito.sh/v1alpha1\nkind: InferenceSet\nmetadata: {name: s}\nspec:\n  template: {inference: {preset: {name: phi-4}}}\n",
        "spec.labelSelector: Required value",
    );
}

#[test]
fn invalid_names() {
    assert_rejects(
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: Bad_Name}\nresource: {labelSelector: {matchLabels: {a: b}}}\ninference: {preset: {name: phi-4}}\n",
        "metadata.name: a Workspace name must be a DNS-1035 label",
    );
}

#[test]
fn malformed_yaml() {
    assert_rejects(
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: [x\n",
        "malformed YAML",
    );
}

#[test]
fn gated_model_without_secret() {
    assert_rejects(
        &format!("{WS}resource: {{instanceType: Standard_NC24ads_A100_v4, labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: llama-3.1-8b-instruct}}}}\n"),
        "inference.preset.presetOptions.modelAccessSecret: `llama-3.1-8b-instruct` is gated",
    );
}

#[test]
fn adapter_url_to_cloud_metadata() {
    assert_rejects(
        &format!("{WS}resource: {{instanceType: Standard_NC24ads_A100_v4, labelSelector: {{matchLabels: {{a: b}}}}}}\ninference:\n  preset: {{name: phi-4}}\n  adapters: [{{source: {{name: a, urls: [\"http://169.254.169.254/latest\"]}}}}]\n"),
        "inference.adapters[0].source.urls[0]: `http://169.254.169.254/latest` points at a link-local (cloud metadata) address",
    );
}

#[test]
fn context_above_model_limit() {
    assert_rejects(
        &format!("{WS}resource: {{labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: smollm2-135m-instruct}}, engine: {{ctxSize: 65536}}}}\n"),
        "inference.engine.ctxSize: context length 65536 exceeds the limit of smollm2-135m-instruct (8192)",
    );
}

#[test]
fn prefix_cache_beyond_a_tebibyte_or_negative() {
    assert_rejects(
        &format!("{WS}resource: {{labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: smollm2-135m-instruct}}, engine: {{prefixCacheMib: 4000000}}}}\n"),
        "inference.engine.prefixCacheMib: 4000000 MiB is more than 1048576 MiB (1 TiB); the field is in MiB",
    );
    assert_rejects(
        &format!("{WS}resource: {{labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: smollm2-135m-instruct}}, engine: {{prefixCacheMib: -1}}}}\n"),
        "inference.engine.prefixCacheMib",
    );
}

#[test]
fn prefix_cache_counts_in_the_cpu_memory_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let estimate = |engine: &str| {
        let f = dir.path().join("ws.yaml");
        std::fs::write(&f, format!("{WS}resource: {{labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: smollm2-135m-instruct}}, engine: {{{engine}}}}}\n")).unwrap();
        kaito_k8s::cli::estimate_file(&f).unwrap()
    };
    let default = estimate("parallel: 1");
    assert!(
        default.contains(" + 128 MiB prefix cache + 256 MiB runtime = "),
        "{default}"
    );
    let big = estimate("parallel: 1, prefixCacheMib: 2048");
    assert!(
        big.contains(" + 2048 MiB prefix cache + 256 MiB runtime = "),
        "{big}"
    );
    let mib = |out: &str| -> u64 {
        let line = out.lines().find(|l| l.contains("CPU memory:")).unwrap();
        let total = line.split(" = ").last().unwrap();
        total.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(mib(&big) - mib(&default), 1920, "{default}\n{big}");
}

#[test]
fn misspelt_field_and_bad_enum() {
    assert_rejects(
        &format!("{WS}resource: {{labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: phi-4, acessMode: public}}}}\n"),
        "inference.preset.acessMode: field not declared in schema",
    );
    assert_rejects(
        &format!("{WS}resource: {{labelSelector: {{matchLabels: {{a: b}}}}, partition: {{mode: slices}}}}\ninference: {{preset: {{name: phi-4}}}}\n"),
        "resource.partition.mode: unsupported value",
    );
}

#[test]
fn every_problem_of_every_document_is_reported() {
    let yaml = format!(
        "{WS}resource: {{labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: nope}}}}\n---\napiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {{name: two}}\nresource: {{instanceType: Nope, labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: phi-4}}}}\n"
    );
    let p = problems(&yaml);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(p[0].starts_with("document[0] Workspace/bad: inference.preset.name"));
    assert!(p[1].starts_with("document[1] Workspace/two: resource.instanceType"));
}

#[test]
fn cli_render_file_reports_missing_files() {
    let err = kaito_k8s::cli::render_file(std::path::Path::new("/nonexistent.yaml")).unwrap_err();
    assert!(err[0].contains("cannot read /nonexistent.yaml"));
}

#[test]
fn cli_estimate_prints_the_arithmetic() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ws.yaml");
    std::fs::write(&f, format!("{WS}resource: {{instanceType: Standard_NC96ads_A100_v4, labelSelector: {{matchLabels: {{a: b}}}}}}\ninference: {{preset: {{name: llama-3.3-70b-instruct, presetOptions: {{modelAccessSecret: s}}}}}}\n")).unwrap();
    let out = kaito_k8s::cli::estimate_file(&f).unwrap();
    assert!(
        out.contains("result: 1 node(s) × 4 GPU(s) of Standard_NC96ads_A100_v4 (A100)"),
        "{out}"
    );
    assert!(out.contains("KV cache per token: 2 × 80 layers × 8 kv heads × 128 head dim × 2 bytes = 327680 bytes"), "{out}");
}

/// `kaito estimate` sizes every Workspace, InferenceSet and MultiRoleInference of our fixtures
/// and (when present) of KAITO's examples.
#[test]
fn estimate_covers_every_manifest() {
    for (name, path) in common::all_manifests() {
        let out = kaito_k8s::cli::estimate_file(&path).unwrap_or_else(|p| panic!("{name}: {p:#?}"));
        assert!(
            out.contains("result:") || out.contains("nothing to estimate"),
            "{name}: {out}"
        );
    }
}

#[test]
fn several_problems_of_one_document_are_all_reported() {
    let p = problems(&format!(
        "{WS}resource: {{instanceType: Standard_NC24ads_A100_v4}}\ninference: {{preset: {{name: nope, accessMode: secret}}}}\n"
    ));
    assert!(
        p.iter()
            .any(|l| l.ends_with("resource.labelSelector: Required value")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|l| l.contains("inference.preset.accessMode: unsupported value")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|l| l.contains("inference.preset.name: unknown preset `nope`")),
        "{p:#?}"
    );
}

#[test]
fn workspace_versions() {
    let v1alpha1 = "apiVersion: kaito.sh/v1alpha1\nkind: Workspace\nmetadata: {name: old}\nresource: {labelSelector: {matchLabels: {a: b}}}\ninference: {preset: {name: smollm2-135m-instruct}}\n";
    assert!(
        render_text(v1alpha1, &RenderOptions::default()).is_ok(),
        "KAITO's v1alpha1 is served too"
    );
    assert_rejects(
        &v1alpha1.replace("v1alpha1", "v2"),
        "apiVersion: `kaito.sh/v2` is not one of",
    );
}

#[test]
fn oci_models_need_a_catalogue_preset_the_kaito_runtime_and_good_names() {
    let ws = |model: &str, annotations: &str| {
        format!("apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: bad\n  annotations: {{{annotations}}}\nresource: {{labelSelector: {{matchLabels: {{a: b}}}}}}\ninference:\n  model: {model}\n")
    };
    assert_rejects(
        &ws("{source: 'oci://reg.example.com/m:q4'}", ""),
        "inference.model.preset: required for an `oci://` source",
    );
    assert_rejects(
        &ws("{source: 'oci://reg.example.com/m:q4', preset: gpt-5}", ""),
        "inference.model.preset: unknown preset `gpt-5`",
    );
    assert_rejects(
        &ws("{source: 'oci://reg.example.com/m:q4', preset: phi-4}", ""),
        "`oci://` models are served by the kaito runtime",
    );
    assert_rejects(
        &ws(
            "{source: 'oci://reg.example.com/Bad:q4', preset: smollm2-135m-instruct}",
            "",
        ),
        "inference.model.source",
    );
    assert_rejects(
        &ws("{source: 'oci://reg.example.com/m:q4', preset: smollm2-135m-instruct, imagePullSecrets: [Not_A_Name]}", ""),
        "inference.model.imagePullSecrets[0]: `Not_A_Name` is not a valid name",
    );
    assert_rejects(
        &ws(
            "{source: 'oci://reg.example.com/m:q4', preset: smollm2-135m-instruct, cacheMaxGiB: 0}",
            "",
        ),
        "inference.model.cacheMaxGiB: must be a positive number of GiB, got 0",
    );
    assert_rejects(
        &ws("{source: 'oci://reg.example.com/m:q4', preset: smollm2-135m-instruct, cacheMaxGiB: lots}", ""),
        "cacheMaxGiB",
    );
    assert_rejects(
        &ws(
            "{source: smollm2-135m-instruct}",
            "kaito.sh/preheat: 'true'",
        ),
        "metadata.annotations[kaito.sh/preheat]: preheating pulls an `oci://` model",
    );
    assert_rejects(
        &ws(
            "{source: 'oci://reg.example.com/m:q4', preset: smollm2-135m-instruct}",
            "kaito.sh/preheat: 'yes'",
        ),
        "metadata.annotations[kaito.sh/preheat]: `yes` is not `true` or `false`",
    );
    // An InferenceSet's preheat annotation is checked against its template.
    assert_rejects(
        "apiVersion: kaito.sh/v1alpha1\nkind: InferenceSet\nmetadata:\n  name: bad\n  annotations: {kaito.sh/preheat: 'true'}\nspec:\n  replicas: 1\n  labelSelector: {matchLabels: {a: b}}\n  template:\n    inference: {preset: {name: smollm2-135m-instruct}}\n",
        "metadata.annotations[kaito.sh/preheat]",
    );
}
