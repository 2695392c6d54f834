//! Reading a multi-document YAML file of Workspaces, InferenceSets, KAITO MultiRoleInferences
//! and the ConfigMaps they reference; rendering and estimating all of it. Every problem is one
//! line: `document[N] Kind/name: field.path: message`.

use std::collections::BTreeMap;

use kaito_core::workspace::{from_value_strict, split_documents};
use serde_json::Value;

use super::{
    render_inferenceset, render_workspace, to_yaml_documents, ClusterFacts, RenderOptions,
};
use crate::catalogue;
use crate::crd::check::{check, Kind};
use crate::crd::{InferenceSet, Workspace};
use crate::error::Error;
use crate::estimate::{self, EstimateInputs};
use crate::validate;

/// One object of the file that the controller acts on.
#[derive(Debug, Clone)]
pub enum Input {
    /// A Workspace.
    Workspace(Workspace),
    /// An InferenceSet.
    InferenceSet(InferenceSet),
    /// KAITO's MultiRoleInference, rendered as one Workspace per role replica.
    MultiRole {
        /// Its name.
        name: String,
        /// The Workspaces it stands for.
        workspaces: Vec<Workspace>,
    },
}

/// A parsed file.
#[derive(Debug, Clone, Default)]
pub struct ParsedFile {
    /// The objects, in file order, with their document index.
    pub inputs: Vec<(usize, Input)>,
    /// `inference_config.yaml` of each ConfigMap in the file, by name.
    pub inference_configs: BTreeMap<String, String>,
}

impl ParsedFile {
    /// What the file says about a Workspace's referenced objects.
    pub fn facts_for(&self, ws: &Workspace) -> ClusterFacts {
        let config = ws.inference.as_ref().and_then(|i| i.config.as_ref());
        ClusterFacts {
            inference_config: config.and_then(|c| self.inference_configs.get(c).cloned()),
        }
    }
}

fn line(index: usize, kind: &str, name: &str, problem: impl std::fmt::Display) -> String {
    format!("document[{index}] {kind}/{name}: {problem}")
}

fn to_json(v: &serde_yaml::Value) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("not representable as JSON: {e}"))
}

/// Parses and validates every document. Problems of all documents are collected.
pub fn parse(text: &str) -> Result<ParsedFile, Vec<String>> {
    let docs = split_documents(text).map_err(|e| vec![e.to_string()])?;
    let mut out = ParsedFile::default();
    let mut problems = Vec::new();
    // ConfigMaps first, so Workspaces can read them wherever they sit in the file.
    for d in &docs {
        if d.kind.as_deref() == Some("ConfigMap") {
            let name = d
                .value
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str());
            let data = d
                .value
                .get("data")
                .and_then(|m| m.get("inference_config.yaml"))
                .and_then(|n| n.as_str());
            if let (Some(n), Some(t)) = (name, data) {
                out.inference_configs.insert(n.to_owned(), t.to_owned());
            }
        }
    }
    for d in docs {
        let kind = d.kind.clone().unwrap_or_default();
        let name = d
            .value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("<unnamed>")
            .to_owned();
        let api_version = d.api_version.clone().unwrap_or_default();
        let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
        match (group, kind.as_str()) {
            ("kaito.sh", "Workspace") if !matches!(api_version.as_str(), "kaito.sh/v1beta1" | "kaito.sh/v1alpha1") => problems.push(line(
                d.index,
                &kind,
                &name,
                format!("apiVersion: `{api_version}` is not one of kaito.sh/v1beta1, kaito.sh/v1alpha1"),
            )),
            ("kaito.sh", "Workspace") => match parse_workspace(&d.value, &out) {
                Ok(ws) => out.inputs.push((d.index, Input::Workspace(ws))),
                Err(ps) => problems.extend(ps.into_iter().map(|p| line(d.index, &kind, &name, p))),
            },
            ("kaito.sh", "InferenceSet") => match parse_inferenceset(&d.value, &api_version, &out) {
                Ok(set) => out.inputs.push((d.index, Input::InferenceSet(set))),
                Err(ps) => problems.extend(ps.into_iter().map(|p| line(d.index, &kind, &name, p))),
            },
            ("kaito.sh", "MultiRoleInference") => match parse_multirole(&d.value, &out) {
                Ok(workspaces) => out.inputs.push((d.index, Input::MultiRole { name: name.clone(), workspaces })),
                Err(ps) => problems.extend(ps.into_iter().map(|p| line(d.index, &kind, &name, p))),
            },
            ("kaito.sh", other) => problems.push(line(d.index, other, &name, format!("kind: `{other}` is not a kind kaito-rs knows (Workspace, InferenceSet, MultiRoleInference)"))),
            _ => {} // ConfigMaps, Secrets and other objects are the user's own.
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The field path a problem line starts with.
fn path_of(problem: &str) -> &str {
    problem.split_once(": ").map(|(p, _)| p).unwrap_or(problem)
}

/// Adds `more` to `problems`, except those about a field already reported.
fn merge_problems(problems: &mut Vec<String>, more: impl IntoIterator<Item = String>) {
    for m in more {
        let path = path_of(&m).to_owned();
        if !problems
            .iter()
            .any(|p| path_of(p) == path || path.starts_with(&format!("{}.", path_of(p))))
        {
            problems.push(m);
        }
    }
}

fn parse_workspace(value: &serde_yaml::Value, file: &ParsedFile) -> Result<Workspace, Vec<String>> {
    let json = to_json(value).map_err(|e| vec![e])?;
    let mut problems = check(Kind::Workspace, &json, None);
    // Also the catalogue rules, so every problem is reported at once (those about a field the
    // schema already rejected are left out).
    let parsed = from_value_strict::<kaito_core::Workspace>(value.clone())
        .map_err(|e| Error::from(e).to_string())
        .and_then(|core| Workspace::from_core(core).map_err(|e| e.to_string()));
    match parsed {
        Ok(mut ws) => {
            ws.metadata
                .namespace
                .get_or_insert_with(|| "default".to_owned());
            let semantic = validate::workspace(&ws, &file.facts_for(&ws));
            merge_problems(&mut problems, semantic.iter().map(ToString::to_string));
            if problems.is_empty() {
                return Ok(ws);
            }
        }
        Err(e) => merge_problems(&mut problems, [e]),
    }
    Err(problems)
}

fn parse_inferenceset(
    value: &serde_yaml::Value,
    api_version: &str,
    file: &ParsedFile,
) -> Result<InferenceSet, Vec<String>> {
    if !crate::crd::INFERENCESET_VERSIONS
        .iter()
        .any(|v| api_version == format!("kaito.sh/{v}"))
    {
        return Err(vec![format!(
            "apiVersion: `{api_version}` is not one of kaito.sh/v1alpha1, kaito.sh/v1beta1"
        )]);
    }
    let json = to_json(value).map_err(|e| vec![e])?;
    let mut problems = check(Kind::InferenceSet, &json, None);
    match from_value_strict::<InferenceSet>(value.clone()) {
        Ok(mut set) => {
            set.metadata
                .namespace
                .get_or_insert_with(|| "default".to_owned());
            let child = super::child_workspace(&set, 0);
            let semantic = validate::inferenceset(&set, &file.facts_for(&child));
            merge_problems(&mut problems, semantic.iter().map(ToString::to_string));
            if problems.is_empty() {
                return Ok(set);
            }
        }
        Err(e) => merge_problems(&mut problems, [Error::from(e).to_string()]),
    }
    Err(problems)
}

/// KAITO's MultiRoleInference (prefill/decode roles). kaito-rs renders each role replica as a
/// Workspace labelled `kaito.sh/role`; it does not wire KV-cache transfer between them.
fn parse_multirole(
    value: &serde_yaml::Value,
    file: &ParsedFile,
) -> Result<Vec<Workspace>, Vec<String>> {
    let v = to_json(value).map_err(|e| vec![e])?;
    let mut p = Vec::new();
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let namespace = v
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned();
    let selector = v.pointer("/spec/labelSelector");
    if selector.is_none() {
        p.push("spec.labelSelector: Required value".to_owned());
    }
    let model = v
        .pointer("/spec/model/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let facts = catalogue::find(model).or_else(|| catalogue::find_by_repo(model));
    if facts.is_none() {
        p.push(format!("spec.model.name: unknown model `{model}`; use a preset name or its Hugging Face repository"));
    }
    let roles = v
        .pointer("/spec/roles")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if roles.is_empty() {
        p.push("spec.roles: at least one role is required".to_owned());
    }
    if !p.is_empty() {
        return Err(p);
    }
    let mut workspaces = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        let ty = role.get("type").and_then(Value::as_str).unwrap_or_default();
        if !matches!(ty, "prefill" | "decode") {
            p.push(format!(
                "spec.roles[{i}].type: `{ty}` is not one of prefill, decode"
            ));
            continue;
        }
        let replicas = role.get("replicas").and_then(Value::as_i64).unwrap_or(1);
        let mut ws_json = serde_json::json!({
            "apiVersion": "kaito.sh/v1beta1", "kind": "Workspace",
            "metadata": {"namespace": namespace, "labels": {"kaito.sh/role": ty, "kaito.sh/multiroleinference": name}},
            "resource": {"labelSelector": selector.cloned().unwrap_or_default()},
            "inference": {"preset": {"name": facts.map(|f| f.name).unwrap_or_default()}},
        });
        if let Some(t) = role.get("instanceType") {
            ws_json["resource"]["instanceType"] = t.clone();
        }
        if let Some(s) = v.pointer("/spec/model/modelAccessSecret") {
            ws_json["inference"]["preset"]["presetOptions"] =
                serde_json::json!({"modelAccessSecret": s});
        }
        for r in 0..replicas.max(0) {
            ws_json["metadata"]["name"] = serde_json::json!(format!("{name}-{ty}-{r}"));
            let ws: Workspace = match serde_json::from_value(ws_json.clone()) {
                Ok(ws) => ws,
                Err(e) => {
                    p.push(format!("spec.roles[{i}]: {e}"));
                    continue;
                }
            };
            for e in validate::workspace(&ws, &file.facts_for(&ws)) {
                p.push(format!("spec.roles[{i}] ({}): {e}", ws.name()));
            }
            workspaces.push(ws);
        }
    }
    if p.is_empty() {
        Ok(workspaces)
    } else {
        Err(p)
    }
}

/// Renders every object of `text` as multi-document YAML.
pub fn render_text(text: &str, opts: &RenderOptions) -> Result<String, Vec<String>> {
    let file = parse(text)?;
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    let render_ws =
        |ws: &Workspace, index: usize, objects: &mut Vec<Value>, problems: &mut Vec<String>| {
            let facts = file.facts_for(ws);
            let rendered = match validate::check(ws, &facts) {
                Ok(valid) => render_workspace(&valid, opts).and_then(|r| r.to_values()),
                Err(found) => {
                    for e in found {
                        problems.push(line(index, "Workspace", ws.name(), e));
                    }
                    return;
                }
            };
            match rendered {
                Ok(v) => objects.extend(v),
                Err(e) => problems.push(line(index, "Workspace", ws.name(), e)),
            }
        };
    for (index, input) in &file.inputs {
        match input {
            Input::Workspace(ws) => render_ws(ws, *index, &mut objects, &mut problems),
            Input::InferenceSet(set) => match render_inferenceset(set, opts) {
                Ok(r) => {
                    for ws in &r.workspaces {
                        objects.push(serde_json::to_value(ws).unwrap_or_default());
                    }
                    if let Some(so) = &r.scaled_object {
                        objects.push(serde_json::to_value(so).unwrap_or_default());
                    }
                    if let Some(ds) = &r.preheat {
                        objects.push(super::with_type(
                            serde_json::to_value(ds).unwrap_or_default(),
                            "apps/v1",
                            "DaemonSet",
                        ));
                    }
                    for ws in &r.workspaces {
                        render_ws(ws, *index, &mut objects, &mut problems);
                    }
                }
                Err(e) => problems.push(line(*index, "InferenceSet", set.name(), e)),
            },
            Input::MultiRole { workspaces, .. } => {
                for ws in workspaces {
                    objects.push(serde_json::to_value(ws).unwrap_or_default());
                }
                for ws in workspaces {
                    render_ws(ws, *index, &mut objects, &mut problems);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    to_yaml_documents(&objects).map_err(|e| vec![e.to_string()])
}

/// Estimates every Workspace of `text` (the first replica of each InferenceSet, each role of a
/// MultiRoleInference) and reports the result with its arithmetic.
pub fn estimate_text(text: &str) -> Result<String, Vec<String>> {
    let file = parse(text)?;
    let mut out = String::new();
    let mut problems = Vec::new();
    let mut one = |ws: &Workspace, label: String, index: usize, out: &mut String| {
        let context = super::vllm_context(&file.facts_for(ws));
        match context.and_then(|c| {
            estimate::estimate(
                ws,
                &EstimateInputs {
                    configured_context: c,
                },
            )
        }) {
            Ok(Some(e)) => out.push_str(&e.report(&label)),
            Ok(None) => out.push_str(&format!(
                "Workspace {label}: pod template given; nothing to estimate\n"
            )),
            Err(e) => problems.push(line(index, "Workspace", ws.name(), e)),
        }
    };
    for (index, input) in &file.inputs {
        match input {
            Input::Workspace(ws) => one(ws, ws.name().to_owned(), *index, &mut out),
            Input::InferenceSet(set) => {
                let child = super::child_workspace(set, 0);
                one(
                    &child,
                    format!(
                        "{} (each of {} replica(s) of InferenceSet {})",
                        child.name(),
                        set.replicas(),
                        set.name()
                    ),
                    *index,
                    &mut out,
                );
            }
            Input::MultiRole { name, workspaces } => {
                for ws in workspaces {
                    let role = ws
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kaito.sh/role"))
                        .cloned()
                        .unwrap_or_default();
                    one(
                        ws,
                        format!("{} ({role} role of MultiRoleInference {name})", ws.name()),
                        *index,
                        &mut out,
                    );
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}
