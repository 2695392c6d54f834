//! Client-side evaluation of a CRD schema: the structural checks an API server applies
//! (`required`, `enum`, `minimum`, types, unknown fields) and every CEL `x-kubernetes-validations`
//! rule, evaluated with `kube-cel`. `kaito render` runs it so that what the cluster would reject
//! is rejected offline too, and the tests prove the CRD rules reject each bad input.

use serde_json::Value;

use super::generate::{inferenceset_crd, schema_of, workspace_crd};

/// Which CRD to check against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `workspaces.kaito.sh`.
    Workspace,
    /// `inferencesets.kaito.sh`.
    InferenceSet,
}

/// Checks `object` (and, for an update, `old`) against the CRD; one line per problem, each
/// starting with the field path.
pub fn check(kind: Kind, object: &Value, old: Option<&Value>) -> Vec<String> {
    let crd = match kind {
        Kind::Workspace => workspace_crd(),
        Kind::InferenceSet => inferenceset_crd(),
    };
    check_with_schema(&schema_of(&crd), object, old)
}

/// Checks `object` against any CRD `openAPIV3Schema` (ours, or Karpenter's in tests).
pub fn check_with_schema(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<String> {
    let schema = schema.clone();
    let mut problems = Vec::new();
    if object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none()
        && object.get("metadata").is_some()
    {
        problems.push("metadata.name: Required value".to_owned());
        return problems;
    }
    structural(&schema, object, "", &mut problems);
    {
        if let Err(errors) = kube::core::cel::Validator::new().validate(&schema, object, old) {
            for e in errors.iter() {
                let path = if e.field_path.is_empty() {
                    ".".to_owned()
                } else {
                    e.field_path.clone()
                };
                problems.push(format!("{path}: {}", e.message));
            }
        }
    }
    problems
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn structural(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let shown = if path.is_empty() { "." } else { path };
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let type_ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        _ => true,
    };
    if !type_ok {
        out.push(format!("{shown}: expected {ty}, got {value}"));
        return;
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(value) {
            let allowed: Vec<String> = values
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect();
            out.push(format!(
                "{shown}: unsupported value {value}: supported values: {}",
                allowed.join(", ")
            ));
        }
    }
    if let (Some(min), Some(v)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if v < min {
            out.push(format!("{shown}: must be greater than or equal to {min}"));
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        out.push(format!("{}: Required value", join(path, r)));
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, v) in map {
                let child = join(path, k);
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    if path.is_empty() && k == "metadata" {
                        continue;
                    }
                    structural(s, v, &child, out);
                } else if let Some(s) = additional {
                    structural(s, v, &child, out);
                } else if props.is_some() {
                    out.push(format!("{child}: field not declared in schema"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    structural(s, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}
