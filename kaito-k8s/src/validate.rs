//! Every rule a Workspace or InferenceSet must pass before it is rendered, admitted or
//! reconciled. Each problem is an [`Error::Invalid`] naming the field path; all problems are
//! reported, not only the first.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::catalogue;
use crate::crd::{keys, InferenceSet, Workspace};
use crate::error::Error;
use crate::estimate::{self, Estimate, EstimateInputs};
use crate::facts::{vllm_config, ClusterFacts};

/// Longest Workspace name: the StatefulSet's pods and revision labels must stay within 63 characters.
pub const MAX_NAME_LEN: usize = 52;

/// DNS-1035 label of at most [`MAX_NAME_LEN`] characters.
pub fn object_name(path: &str, name: &str, problems: &mut Vec<Error>) {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        problems.push(Error::invalid(
            path,
            format!("`{name}` is not a DNS-1035 label of at most {MAX_NAME_LEN} characters (lowercase letters, digits and '-', starting with a letter)"),
        ));
    }
}

/// The static part of the SSRF guard: a URL whose host is a literal private, loopback,
/// link-local (cloud metadata) or unspecified address, or a well-known internal name.
pub fn forbidden_url(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(stripped) = host_port.strip_prefix('[') {
        stripped.split(']').next().unwrap_or_default().to_owned()
    } else {
        host_port.split(':').next().unwrap_or_default().to_owned()
    };
    let host = host.to_ascii_lowercase();
    if host.is_empty() {
        return Some("has no host".to_owned());
    }
    if host == "localhost"
        || host.ends_with(".localhost")
        || host == "metadata.google.internal"
        || host.ends_with(".internal")
        || host.ends_with(".svc")
        || host.ends_with(".cluster.local")
    {
        return Some(format!("points at the internal host `{host}`"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if let Some(why) = forbidden_ip(ip) {
            return Some(format!("points at {why} address {ip}"));
        }
    }
    None
}

/// Why an address may not be fetched, if it may not.
pub fn forbidden_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback")
            } else if v4.is_link_local() {
                Some("a link-local (cloud metadata)")
            } else if v4.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
                Some("a private")
            } else if v4.is_unspecified() || v4.is_broadcast() {
                Some("an unspecified")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("a loopback")
            } else if v6.is_unspecified() {
                Some("an unspecified")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("a link-local")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("a private")
            } else {
                None
            }
        }
    }
}

/// A Workspace that passed [`check`], with what checking it computed: the vLLM settings its
/// config names and the estimate. `render::render_workspace` takes
/// one, so a Workspace is validated and sized once per render.
#[derive(Debug, Clone)]
pub struct ValidWorkspace<'a> {
    workspace: &'a Workspace,
    facts: &'a ClusterFacts,
    vllm_config: BTreeMap<String, serde_yaml::Value>,
    estimate: Option<Estimate>,
}

impl<'a> ValidWorkspace<'a> {
    /// The Workspace.
    pub fn workspace(&self) -> &'a Workspace {
        self.workspace
    }

    /// What the cluster said about the objects it references.
    pub fn facts(&self) -> &'a ClusterFacts {
        self.facts
    }

    /// The `vllm:` section of its inference config.
    pub fn vllm_config(&self) -> &BTreeMap<String, serde_yaml::Value> {
        &self.vllm_config
    }

    /// Its sizing; `None` for a pod template.
    pub fn estimate(&self) -> Option<&Estimate> {
        self.estimate.as_ref()
    }
}

/// Validates a Workspace against what the cluster (or file) says about the objects it references,
/// and sizes it: every problem, or the Workspace ready to render.
/// `Err` always holds at least one problem.
pub fn check<'a>(
    ws: &'a Workspace,
    facts: &'a ClusterFacts,
) -> Result<ValidWorkspace<'a>, Vec<Error>> {
    let (problems, sized) = problems_and_size(ws, facts);
    match sized {
        Some((vllm_config, estimate)) if problems.is_empty() => Ok(ValidWorkspace {
            workspace: ws,
            facts,
            vllm_config,
            estimate,
        }),
        _ => Err(problems),
    }
}

/// All problems of a Workspace ([`check`] without the result).
pub fn workspace(ws: &Workspace, facts: &ClusterFacts) -> Vec<Error> {
    problems_and_size(ws, facts).0
}

/// The vLLM settings and estimate, when the Workspace got as far as being sized.
type Sized = (BTreeMap<String, serde_yaml::Value>, Option<Estimate>);

fn problems_and_size(ws: &Workspace, facts: &ClusterFacts) -> (Vec<Error>, Option<Sized>) {
    let mut p = Vec::new();
    object_name("metadata.name", ws.name(), &mut p);
    if let Err(e) = ws.to_core().validate() {
        p.push(e.into());
    }
    match &ws.resource {
        None => p.push(Error::invalid(
            "resource",
            "required: resource.labelSelector selects the nodes",
        )),
        Some(r) if r.label_selector.is_none() => {
            p.push(Error::invalid("resource.labelSelector", "required"))
        }
        _ => {}
    }
    if ws.tuning.is_some() {
        p.push(Error::invalid(
            "tuning",
            "fine-tuning Workspaces are not run by kaito-rs; use KAITO for tuning",
        ));
    }
    if let Some(mode) = ws.annotation(keys::PERFORMANCE_MODE) {
        if !matches!(mode, "balanced" | "interactivity" | "throughput") {
            p.push(Error::invalid(
                format!("metadata.annotations[{}]", keys::PERFORMANCE_MODE),
                format!("`{mode}` is not one of balanced, interactivity, throughput"),
            ));
        }
    }
    preheat(
        ws.annotation(keys::PREHEAT),
        ws.oci_model().is_some(),
        "inference.model.source",
        &mut p,
    );
    let Some(inf) = &ws.inference else {
        return size(ws, facts, p);
    };
    for (i, a) in inf.adapters.iter().enumerate() {
        for (j, url) in a.source.iter().flat_map(|s| s.urls.iter()).enumerate() {
            if let Some(why) = forbidden_url(url) {
                p.push(Error::invalid(
                    format!("inference.adapters[{i}].source.urls[{j}]"),
                    format!("`{url}` {why}"),
                ));
            }
        }
    }
    // With no single thing to serve (preset, template or model), there is nothing to size.
    if p.iter()
        .any(|e| matches!(e, Error::Invalid { path, .. } if path == "inference"))
    {
        return (p, None);
    }
    let model = match estimate::model_of(ws) {
        Ok(m) => m,
        Err(e) => {
            p.push(e);
            return (p, None);
        }
    };
    if let Some((m, _)) = &model {
        if m.gated {
            let secret = inf
                .preset
                .as_ref()
                .and_then(|x| x.preset_options.as_ref())
                .and_then(|o| o.model_access_secret.as_ref());
            if secret.is_none() {
                p.push(Error::invalid(
                    "inference.preset.presetOptions.modelAccessSecret",
                    format!(
                        "`{}` is gated on Hugging Face: name a Secret holding HF_TOKEN",
                        m.name
                    ),
                ));
            }
        }
        if let Some(oci) = ws.oci_model() {
            if let Err(e) = kaito_core::model::OciReference::parse(&oci.source) {
                p.push(Error::invalid("inference.model.source", e.to_string()));
            }
            if m.runtime != catalogue::Runtime::Kaito {
                p.push(Error::invalid(
                    "inference.model.preset",
                    format!("`oci://` models are served by the kaito runtime, which serves GGUF presets; `{}` needs vLLM", m.name),
                ));
            }
        }
        if m.runtime == catalogue::Runtime::Kaito && !inf.adapters.is_empty() {
            p.push(Error::invalid(
                "inference.adapters",
                "LoRA adapters need the vllm runtime; GGUF presets take none",
            ));
        }
    }
    size(ws, facts, p)
}

/// The `kaito.sh/preheat` annotation's rules: `true` or `false`, and `true` only for an `oci://`
/// model (`source_path` names where that model goes).
fn preheat(value: Option<&str>, has_oci_model: bool, source_path: &str, p: &mut Vec<Error>) {
    let path = format!("metadata.annotations[{}]", keys::PREHEAT);
    match value {
        None | Some("false") => {}
        Some("true") if has_oci_model => {}
        Some("true") => p.push(Error::invalid(
            path,
            format!("preheating pulls an `oci://` model into the node cache; set {source_path} to an oci:// reference"),
        )),
        Some(v) => p.push(Error::invalid(path, format!("`{v}` is not `true` or `false`"))),
    }
}

/// Reads the vLLM settings and estimates: what rendering needs (problems are added to `p`).
fn size(ws: &Workspace, facts: &ClusterFacts, mut p: Vec<Error>) -> (Vec<Error>, Option<Sized>) {
    let vllm_config = match vllm_config(facts.inference_config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            p.push(e);
            return (p, None);
        }
    };
    let configured_context = vllm_config.get("max-model-len").and_then(|v| v.as_u64());
    match estimate::estimate(ws, &EstimateInputs { configured_context }) {
        Ok(estimate) => (p, Some((vllm_config, estimate))),
        Err(e) => {
            p.push(e);
            (p, None)
        }
    }
}

/// All problems of an InferenceSet (its own fields and those of the child it would create).
pub fn inferenceset(set: &InferenceSet, facts: &ClusterFacts) -> Vec<Error> {
    let mut p = Vec::new();
    object_name("metadata.name", set.name(), &mut p);
    if set.name().len() > MAX_NAME_LEN - 4 {
        p.push(Error::invalid("metadata.name", format!("an InferenceSet name must be at most {} characters (children are named <name>-<index>)", MAX_NAME_LEN - 4)));
    }
    if set.replicas() < 0 {
        p.push(Error::invalid("spec.replicas", "must be at least 0"));
    }
    if !p.is_empty() {
        return p;
    }
    let child = crate::crd::child_workspace(set, 0);
    preheat(
        set.annotation(keys::PREHEAT),
        child.oci_model().is_some(),
        "spec.template.inference.model.source",
        &mut p,
    );
    for e in workspace(&child, facts) {
        p.push(match e {
            // The child's name is derived from the set's, checked above.
            Error::Invalid { path, message } if path == "metadata.name" => {
                Error::Invalid { path, message }
            }
            Error::Invalid { path, message } if path.starts_with("resource.labelSelector") => {
                Error::Invalid {
                    path: path.replacen("resource.labelSelector", "spec.labelSelector", 1),
                    message,
                }
            }
            Error::Invalid { path, message } => Error::Invalid {
                path: format!("spec.template.{path}"),
                message,
            },
            other => other,
        });
    }
    if let (Some(limit), Ok(Some(est))) = (
        set.spec.node_count_limit,
        estimate::estimate(&child, &EstimateInputs::default()),
    ) {
        let needed = est.node_count() as i64 * set.replicas() as i64;
        if needed > limit as i64 {
            p.push(Error::invalid(
                "spec.nodeCountLimit",
                format!(
                    "{} replica(s) × {} node(s) = {needed} nodes exceeds nodeCountLimit {limit}",
                    set.replicas(),
                    est.node_count()
                ),
            ));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrf_guard() {
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "https://127.0.0.1/x",
            "http://10.0.0.1/a",
            "http://[::1]/",
            "http://localhost:8080/",
            "http://metadata.google.internal/",
            "http://[fd00::1]/",
            "http://user@192.168.1.1/",
        ] {
            assert!(forbidden_url(bad).is_some(), "{bad}");
        }
        for good in [
            "https://huggingface.co/x",
            "https://8.8.8.8/a",
            "https://example.com:443/p?q=1",
        ] {
            assert!(forbidden_url(good).is_none(), "{good}");
        }
    }

    #[test]
    fn names() {
        let mut p = Vec::new();
        object_name("n", "ok-name-1", &mut p);
        assert!(p.is_empty());
        for bad in ["1abc", "Abc", "a_b", "abc-", ""] {
            object_name("n", bad, &mut p);
        }
        assert_eq!(p.len(), 5);
    }
}
