//! OpenAPI v3 schemas and CEL rules of the CRDs, built from one description of each
//! `kaito-core` struct. A test serializes fully-populated `kaito-core` values and checks that
//! every field they write is declared here, so the schema cannot silently drift from the types.

use serde_json::{json, Map, Value};

/// A string.
fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// A string from a fixed set.
fn string_enum(description: &str, values: &[&str]) -> Value {
    json!({"type": "string", "description": description, "enum": values})
}

/// A 32-bit integer with a minimum.
fn int32(description: &str, minimum: i64) -> Value {
    json!({"type": "integer", "format": "int32", "minimum": minimum, "description": description})
}

/// A list of strings.
fn strings(description: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": description})
}

/// Free-form JSON (pod templates, volume sources).
fn preserve(description: &str) -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": description})
}

/// An object with the given properties, required fields and CEL rules.
fn object(
    description: &str,
    props: Vec<(&str, Value)>,
    required: &[&str],
    rules: Vec<Value>,
) -> Value {
    let mut properties = Map::new();
    for (k, v) in props {
        properties.insert(k.to_owned(), v);
    }
    let mut o = json!({"type": "object", "description": description, "properties": properties});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    if !rules.is_empty() {
        o["x-kubernetes-validations"] = Value::Array(rules);
    }
    o
}

/// One CEL rule.
fn rule(rule: &str, message: &str) -> Value {
    json!({"rule": rule, "message": message})
}

/// Marks a field immutable once set (a CEL transition rule).
fn immutable(mut field: Value, path: &str) -> Value {
    field["x-kubernetes-validations"] =
        json!([rule("self == oldSelf", &format!("{path} is immutable"))]);
    field
}

/// A Kubernetes `LabelSelector`.
pub fn label_selector(description: &str) -> Value {
    let requirement = object(
        "A set-based label requirement.",
        vec![
            ("key", string("Label key.")),
            (
                "operator",
                string_enum(
                    "Relation of the key to the values.",
                    &["In", "NotIn", "Exists", "DoesNotExist"],
                ),
            ),
            (
                "values",
                strings("Values for In and NotIn; empty for Exists and DoesNotExist."),
            ),
        ],
        &["key", "operator"],
        vec![rule(
            "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
            "values must be non-empty for In and NotIn and empty for Exists and DoesNotExist",
        )],
    );
    let mut s = object(
        description,
        vec![
            (
                "matchLabels",
                json!({"type": "object", "additionalProperties": {"type": "string"},
                       "description": "Exact label matches."}),
            ),
            (
                "matchExpressions",
                json!({"type": "array", "items": requirement,
                                        "description": "Set-based requirements."}),
            ),
        ],
        &[],
        vec![],
    );
    s["x-kubernetes-map-type"] = json!("atomic");
    s
}

/// `resource` (`kaito_core::workspace::ResourceSpec`). `label_selector_required` is false inside
/// an InferenceSet template, whose selector comes from the spec.
pub fn resource(label_selector_required: bool) -> Value {
    let partition = object(
        "GPU partitioning: a MIG profile or whole accelerators.",
        vec![
            (
                "mode",
                string_enum("Partitioning technology.", &["mig", "accelerator"]),
            ),
            ("profile", string("MIG profile such as 1g.10gb (mode mig).")),
            (
                "count",
                int32("Whole GPUs to allocate (mode accelerator).", 1),
            ),
        ],
        &["mode"],
        vec![rule(
            "self.mode != 'mig' || has(self.profile)",
            "resource.partition.profile is required when mode is mig",
        )],
    );
    let required: &[&str] = if label_selector_required {
        &["labelSelector"]
    } else {
        &[]
    };
    object(
        "The nodes the workload runs on.",
        vec![
            ("count", int32("Deprecated: number of nodes; the estimator computes it.", 1)),
            (
                "instanceType",
                immutable(
                    string("Cloud instance type (e.g. Standard_NC24ads_A100_v4); GPU nodes are provisioned for it."),
                    "resource.instanceType",
                ),
            ),
            (
                "labelSelector",
                immutable(label_selector("Selects the nodes the workload may run on."), "resource.labelSelector"),
            ),
            ("preferredNodes", strings("Existing nodes to use first.")),
            ("partition", partition),
        ],
        required,
        vec![],
    )
}

fn preset() -> Value {
    object(
        "A catalogue model.",
        vec![
            (
                "name",
                string("Preset name, e.g. phi-4-mini-instruct or smollm2-135m-instruct."),
            ),
            (
                "accessMode",
                string_enum(
                    "Whether the model image is public or private.",
                    &["public", "private"],
                ),
            ),
            (
                "presetOptions",
                object(
                    "Image and secrets for private or gated models.",
                    vec![
                        ("image", string("Image for private presets.")),
                        ("imagePullSecrets", strings("Pull secrets for image.")),
                        (
                            "modelAccessSecret",
                            string("Secret with HF_TOKEN for gated models."),
                        ),
                    ],
                    &[],
                    vec![],
                ),
            ),
        ],
        &["name"],
        vec![],
    )
}

fn data_source(description: &str) -> Value {
    object(
        description,
        vec![
            ("name", string("Name.")),
            ("urls", strings("HTTP(S) URLs.")),
            ("image", string("An image that holds the data.")),
            ("imagePullSecrets", strings("Pull secrets for image.")),
            ("volumeSource", preserve("A Kubernetes VolumeSource.")),
        ],
        &[],
        vec![],
    )
}

/// `inference` (`kaito_core::workspace::InferenceSpec`).
pub fn inference() -> Value {
    object(
        "What the Workspace serves.",
        vec![
            ("preset", preset()),
            ("template", preserve("A PodTemplateSpec, used as given instead of a preset.")),
            ("config", string("ConfigMap holding inference_config.yaml.")),
            (
                "adapters",
                json!({"type": "array", "description": "LoRA adapters.", "items": object(
                    "One adapter.",
                    vec![
                        ("source", data_source("Where the adapter comes from.")),
                        ("strength", string("Scale, a decimal between 0 and 1.")),
                    ],
                    &[],
                    vec![],
                )}),
            ),
            (
                "model",
                object(
                    "kaito-rs extension: explicit GGUF weights served by the kaito runtime.",
                    vec![
                        ("source", string("A GGUF path, hf:ORG/REPO/FILE.gguf, oci://REGISTRY/REPO[:TAG|@DIGEST], or a preset name.")),
                        ("sha256", string("Expected sha256 of the weights.")),
                        ("servedName", string("Name the OpenAI API serves the model under.")),
                        ("preset", string("The catalogue model the weights are; sizes the pods of an oci:// source.")),
                        (
                            "imagePullSecrets",
                            json!({"type": "array", "items": {"type": "string"},
                                   "description": "kubernetes.io/dockerconfigjson Secrets with the registry credentials of an oci:// source."}),
                        ),
                        ("cacheVolumeClaim", string("A PersistentVolumeClaim for the model cache of an oci:// source (default: the node's /var/lib/kaito/models).")),
                        (
                            "cacheMaxGiB",
                            json!({"type": "number", "minimum": 0, "exclusiveMinimum": true,
                                   "description": "The most the model cache may hold, in GiB: each pull evicts the least recently used models no pod holds down to it."}),
                        ),
                    ],
                    &["source"],
                    vec![],
                ),
            ),
            (
                "engine",
                object(
                    "kaito-rs extension: engine parameters of the kaito runtime.",
                    vec![
                        (
                            "backend",
                            string_enum(
                                "Inference engine: auto (by model format), llama-cpp, torch or quant.",
                                kaito_core::BackendKind::NAMES,
                            ),
                        ),
                        ("threads", int32("Inference threads.", 1)),
                        ("ctxSize", int32("Context window of one sequence, in tokens.", 1)),
                        ("parallel", int32("Sequences generated at once.", 1)),
                        ("maxQueue", int32("Requests allowed to wait.", 0)),
                        ("batchSize", int32("Tokens per engine step.", 1)),
                        ("gpuLayers", int32("Layers offloaded to the GPU.", 0)),
                        (
                            "prefixCacheMib",
                            json!({
                                "type": "integer",
                                "format": "int32",
                                "minimum": 0,
                                "maximum": kaito_core::engine::MAX_PREFIX_CACHE_MIB,
                                "description": "Host memory (MiB) for the KV of finished prompts, reused when a later prompt shares a prefix; 0 turns it off (default 128).",
                            }),
                        ),
                        ("device", string("Device of the torch engines: cpu, cuda or cuda:N.")),
                        (
                            "dtype",
                            string_enum(
                                "Compute dtype of the torch engines.",
                                kaito_core::engine::DTYPE_NAMES,
                            ),
                        ),
                        (
                            "quantization",
                            string_enum(
                                "Weight-only quantization of the quant engine.",
                                kaito_core::engine::QUANTIZATION_NAMES,
                            ),
                        ),
                    ],
                    &[],
                    vec![],
                ),
            ),
        ],
        &[],
        vec![rule(
            "(has(self.preset) ? 1 : 0) + (has(self.template) ? 1 : 0) + (has(self.model) ? 1 : 0) == 1",
            "exactly one of inference.preset, inference.template or inference.model must be set",
        )],
    )
}

fn tuning() -> Value {
    object(
        "Fine-tuning (accepted for compatibility; not run by kaito-rs).",
        vec![
            ("preset", preset()),
            ("method", string_enum("Tuning method.", &["lora", "qlora"])),
            ("config", string("ConfigMap with tuning parameters.")),
            ("input", data_source("Training data.")),
            (
                "output",
                object(
                    "Where the adapter goes.",
                    vec![
                        ("image", string("Image to push the result to.")),
                        ("imagePushSecret", string("Push secret for image.")),
                        ("volumeSource", preserve("A Kubernetes VolumeSource.")),
                    ],
                    &[],
                    vec![],
                ),
            ),
        ],
        &["input", "output"],
        vec![],
    )
}

/// Status conditions, as in KAITO (`metav1.Condition`).
fn conditions() -> Value {
    json!({
        "type": "array",
        "description": "KAITO condition types.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": object(
            "A status condition.",
            vec![
                ("type", json!({"type": "string", "maxLength": 316})),
                ("status", string_enum("Condition status.", &["True", "False", "Unknown"])),
                ("reason", json!({"type": "string", "maxLength": 1024})),
                ("message", json!({"type": "string", "maxLength": 32768})),
                ("lastTransitionTime", json!({"type": "string", "format": "date-time"})),
                ("observedGeneration", json!({"type": "integer", "format": "int64", "minimum": 0})),
            ],
            &["type", "status", "reason", "message", "lastTransitionTime"],
            vec![],
        )
    })
}

fn workspace_status() -> Value {
    object(
        "Observed state, written by the controller.",
        vec![
            ("workerNodes", strings("Nodes the workload runs on.")),
            ("conditions", conditions()),
            (
                "state",
                string("Summary state: Pending, Running, Ready, Failed or Deleting."),
            ),
            (
                "targetNodeCount",
                int32("Nodes the estimator asked for.", 0),
            ),
            (
                "observedGeneration",
                json!({"type": "integer", "format": "int64", "minimum": 0,
                                          "description": "Generation this status describes."}),
            ),
            ("performance", preserve("Benchmark results (KAITO).")),
        ],
        &[],
        vec![],
    )
}

/// The CEL rule that bounds the object name so every child (Services included) gets a valid name.
fn name_rule(kind: &str) -> Value {
    rule(
        "self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        &format!("metadata.name: a {kind} name must be a DNS-1035 label of at most 52 characters (lowercase letters, digits and '-', starting with a letter) so its Services and pods get valid names"),
    )
}

fn metadata_props() -> Vec<(&'static str, Value)> {
    vec![
        ("apiVersion", string("API version.")),
        ("kind", string("Kind.")),
        ("metadata", json!({"type": "object"})),
    ]
}

/// The Workspace's `openAPIV3Schema`.
pub fn workspace() -> Value {
    let mut props = metadata_props();
    props.extend([
        ("resource", resource(true)),
        ("inference", inference()),
        ("tuning", tuning()),
        ("status", workspace_status()),
    ]);
    object(
        "A model served on the cluster (KAITO-compatible; no spec: resource, inference and tuning sit at the top level).",
        props,
        &[],
        vec![
            rule("has(self.inference) != has(self.tuning)", "exactly one of inference or tuning must be set"),
            rule("has(self.resource)", "resource is required (resource.labelSelector selects the nodes)"),
            json!({"rule": "has(oldSelf.inference) == has(self.inference)",
                   "message": "a Workspace cannot switch between inference and tuning"}),
            name_rule("Workspace"),
        ],
    )
}

/// The InferenceSet's `openAPIV3Schema`.
pub fn inferenceset() -> Value {
    let spec = object(
        "Desired state.",
        vec![
            (
                "replicas",
                json!({"type": "integer", "format": "int32", "minimum": 0, "default": 1,
                                "description": "Number of child Workspaces."}),
            ),
            (
                "nodeCountLimit",
                int32("Most GPU nodes all replicas may use.", 1),
            ),
            (
                "labelSelector",
                immutable(
                    label_selector("Copied into each child's resource.labelSelector."),
                    "spec.labelSelector",
                ),
            ),
            (
                "template",
                object(
                    "Template of each child Workspace.",
                    vec![
                        (
                            "metadata",
                            preserve("Labels and annotations of the children."),
                        ),
                        ("resource", resource(false)),
                        ("inference", inference()),
                    ],
                    &["inference"],
                    vec![],
                ),
            ),
            (
                "updateStrategy",
                preserve("Rolling update settings (accepted for compatibility)."),
            ),
            (
                "autoUpgrade",
                preserve("Base image auto-upgrade (accepted for compatibility)."),
            ),
        ],
        &["labelSelector", "template"],
        vec![],
    );
    let status = object(
        "Observed state.",
        vec![
            ("replicas", int32("Child Workspaces that exist.", 0)),
            (
                "readyReplicas",
                int32("Child Workspaces whose inference is ready.", 0),
            ),
            (
                "selector",
                string("Label selector of the children (scale subresource)."),
            ),
            (
                "observedGeneration",
                json!({"type": "integer", "format": "int64", "minimum": 0}),
            ),
            ("conditions", conditions()),
            (
                "autoUpgrade",
                preserve("Base image auto-upgrade state (KAITO)."),
            ),
            ("performance", preserve("Benchmark results (KAITO).")),
        ],
        &[],
        vec![],
    );
    let mut props = metadata_props();
    props.extend([("spec", spec), ("status", status)]);
    object(
        "A set of identical Workspaces scaled together (KAITO-compatible).",
        props,
        &["spec"],
        vec![name_rule("InferenceSet")],
    )
}
