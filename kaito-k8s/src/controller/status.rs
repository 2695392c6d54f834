//! Pure status logic: what the pods say, and KAITO's conditions computed from it.

use k8s_openapi::api::core::v1::Pod;
use kaito_core::workspace::Condition;

/// Container states that mean the inference will not become ready by waiting.
pub const FAILING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// What a Workspace's pods say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodSummary {
    /// Pods that exist.
    pub pods: u32,
    /// Pods whose `Ready` condition is `True`.
    pub ready: u32,
    /// Pods that run the current template (their rollout hash matches).
    pub current: u32,
    /// A failing container: (reason, message).
    pub failing: Option<(String, String)>,
    /// A pod the scheduler cannot place: its message.
    pub unschedulable: Option<String>,
    /// Nodes the pods run on.
    pub nodes: Vec<String>,
}

/// Summarises `pods` against the rollout hash of the current template.
pub fn summarize_pods(pods: &[Pod], rollout_hash: &str) -> PodSummary {
    let mut s = PodSummary::default();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        s.pods += 1;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let hash = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kaito.sh/rollout-hash"));
        if hash.map(String::as_str) == Some(rollout_hash) {
            s.current += 1;
        }
        if let Some(node) = pod.spec.as_ref().and_then(|sp| sp.node_name.clone()) {
            if !s.nodes.contains(&node) {
                s.nodes.push(node);
            }
        }
        let Some(status) = &pod.status else { continue };
        let conditions = status.conditions.as_deref().unwrap_or_default();
        let ready = conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if ready {
            s.ready += 1;
        }
        if let Some(c) = conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        {
            s.unschedulable.get_or_insert_with(|| {
                format!(
                    "pod {name}: {}",
                    c.message
                        .clone()
                        .unwrap_or_else(|| "cannot be scheduled".into())
                )
            });
        }
        if status.phase.as_deref() == Some("Failed") {
            s.failing.get_or_insert_with(|| {
                (
                    "PodFailed".into(),
                    format!(
                        "pod {name} failed: {}",
                        status.message.clone().unwrap_or_default()
                    ),
                )
            });
        }
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in containers {
            let waiting = cs.state.as_ref().and_then(|st| st.waiting.as_ref());
            if let Some(w) = waiting {
                let reason = w.reason.clone().unwrap_or_default();
                if FAILING_REASONS.contains(&reason.as_str()) {
                    let last = cs
                        .last_state
                        .as_ref()
                        .and_then(|l| l.terminated.as_ref())
                        .map(|t| {
                            format!(
                                " (last exit {}{})",
                                t.exit_code,
                                t.reason
                                    .as_ref()
                                    .map(|r| format!(", {r}"))
                                    .unwrap_or_default()
                            )
                        })
                        .unwrap_or_default();
                    s.failing.get_or_insert_with(|| {
                        (
                            reason.clone(),
                            format!(
                                "pod {name} container {}: {reason}{last}: {}, {} restart(s)",
                                cs.name,
                                w.message.clone().unwrap_or_default(),
                                cs.restart_count
                            ),
                        )
                    });
                }
            }
            if !ready && cs.restart_count > 0 {
                if let Some(t) = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
                    if t.reason.as_deref() == Some("OOMKilled") {
                        s.failing.get_or_insert_with(|| {
                            (
                                "OOMKilled".into(),
                                format!(
                                    "pod {name} container {} was killed for using too much memory",
                                    cs.name
                                ),
                            )
                        });
                    }
                }
            }
        }
    }
    s.nodes.sort();
    s
}

/// RFC 3339 "now", to the second.
pub fn now() -> String {
    let t = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// Sets a condition; the transition time changes only when the status does.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &str,
) {
    let status = if status { "True" } else { "False" };
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(now.to_owned());
            }
            c.status = status.to_owned();
            c.reason = Some(reason.to_owned());
            c.message = Some(message);
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message),
            last_transition_time: Some(now.to_owned()),
            observed_generation: generation,
        }),
    }
}

/// A condition's status, if present.
pub fn condition_status<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The `InferenceReady` verdict: (ready, reason, message). Ready only when every expected pod
/// exists, runs the current template and is Ready — never while one crash-loops.
pub fn inference_ready(s: &PodSummary, expected: u32) -> (bool, String, String) {
    if let Some((reason, message)) = &s.failing {
        return (false, reason.clone(), message.clone());
    }
    if let Some(m) = &s.unschedulable {
        return (false, "Unschedulable".into(), m.clone());
    }
    if s.current < expected && s.pods > 0 && s.current < s.pods {
        return (
            false,
            "RollingUpdate".into(),
            format!("{} of {expected} pod(s) run the current spec", s.current),
        );
    }
    if s.ready >= expected && s.current >= expected && s.pods == expected {
        return (
            true,
            "InferenceReady".into(),
            format!("{expected} of {expected} inference pod(s) ready"),
        );
    }
    (
        false,
        "PodsNotReady".into(),
        format!(
            "{} of {expected} inference pod(s) ready",
            s.ready.min(expected)
        ),
    )
}

/// The `ModelCached` verdict of a preheat DaemonSet: (cached on every node, reason, message).
/// A pod of the DaemonSet is Ready only after its init container pulled the model.
pub fn model_cached(ds: &k8s_openapi::api::apps::v1::DaemonSet) -> (bool, String, String) {
    let Some(status) = &ds.status else {
        return (
            false,
            "PreheatPending".into(),
            "the preheat DaemonSet has no status yet".into(),
        );
    };
    let (ready, wanted) = (status.number_ready, status.desired_number_scheduled);
    if wanted == 0 {
        return (
            false,
            "NoMatchingNodes".into(),
            "no node matches the label selector; nothing to preheat".into(),
        );
    }
    let message = format!("{ready} of {wanted} nodes have the model in their cache");
    if ready >= wanted {
        (true, "ModelCached".into(), message)
    } else {
        (false, "Pulling".into(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, hash: &str, ready: bool, waiting: Option<&str>) -> Pod {
        let mut cs = json!({"name": "vllm", "ready": ready, "restartCount": if waiting.is_some() { 3 } else { 0 }, "image": "i", "imageID": ""});
        if let Some(w) = waiting {
            cs["state"] = json!({"waiting": {"reason": w, "message": "back-off 5m0s"}});
            cs["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"kaito.sh/rollout-hash": hash}},
            "spec": {"containers": [], "nodeName": "node-a"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}], "containerStatuses": [cs]}
        }))
        .unwrap()
    }

    #[test]
    fn ready_only_when_all_current_pods_are_ready() {
        let s = summarize_pods(&[pod("p-0", "h", true, None)], "h");
        assert!(inference_ready(&s, 1).0);
        assert!(!inference_ready(&s, 2).0);
        let old = summarize_pods(&[pod("p-0", "old", true, None)], "h");
        assert_eq!(inference_ready(&old, 1).1, "RollingUpdate");
    }

    #[test]
    fn crash_loop_is_never_ready() {
        // A pod that flaps Ready while restarting still reports the crash loop.
        let s = summarize_pods(
            &[
                pod("p-0", "h", true, None),
                pod("p-1", "h", false, Some("CrashLoopBackOff")),
            ],
            "h",
        );
        let (ready, reason, message) = inference_ready(&s, 2);
        assert!(!ready);
        assert_eq!(reason, "CrashLoopBackOff");
        assert!(
            message.contains("pod p-1 container vllm: CrashLoopBackOff (last exit 1, Error)"),
            "{message}"
        );
    }

    #[test]
    fn transition_time_changes_only_with_status() {
        let mut c = Vec::new();
        set_condition(
            &mut c,
            "InferenceReady",
            false,
            "PodsNotReady",
            "0 of 1",
            Some(1),
            "t1",
        );
        set_condition(
            &mut c,
            "InferenceReady",
            false,
            "PodsNotReady",
            "0 of 1",
            Some(1),
            "t2",
        );
        assert_eq!(c[0].last_transition_time.as_deref(), Some("t1"));
        set_condition(
            &mut c,
            "InferenceReady",
            true,
            "InferenceReady",
            "1 of 1",
            Some(1),
            "t3",
        );
        assert_eq!(c[0].last_transition_time.as_deref(), Some("t3"));
    }
}

/// Parses a Kubernetes quantity (`100m`, `16Gi`, `2`, `1e3`) into a number.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let suffixes: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (s, mult) in suffixes {
        if let Some(n) = q.strip_suffix(s) {
            return n.parse::<f64>().ok().map(|v| v * mult);
        }
    }
    q.parse().ok()
}

/// What one pod of a Workspace asks for, under the names ResourceQuotas use.
pub fn pod_quota_usage(
    pod_spec: &k8s_openapi::api::core::v1::PodSpec,
) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::from([("pods".to_owned(), 1.0)]);
    for c in &pod_spec.containers {
        let Some(r) = &c.resources else { continue };
        for (kind, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (name, q) in map.iter().flatten() {
                let v = parse_quantity(&q.0).unwrap_or(0.0);
                *out.entry(format!("{kind}.{name}")).or_default() += v;
                if kind == "requests" && (name == "cpu" || name == "memory") {
                    *out.entry(name.clone()).or_default() += v;
                }
            }
        }
    }
    out
}

/// The first ResourceQuota that cannot fit `missing` more pods of `per_pod`, as a message.
pub fn quota_shortfall(
    quotas: &[k8s_openapi::api::core::v1::ResourceQuota],
    per_pod: &std::collections::BTreeMap<String, f64>,
    missing: u32,
) -> Option<String> {
    for quota in quotas {
        let Some(status) = &quota.status else {
            continue;
        };
        let used = status.used.clone().unwrap_or_default();
        for (name, hard) in status.hard.iter().flatten() {
            let Some(need) = per_pod.get(name) else {
                continue;
            };
            let hard_v = parse_quantity(&hard.0).unwrap_or(f64::MAX);
            let used_v = used
                .get(name)
                .and_then(|q| parse_quantity(&q.0))
                .unwrap_or(0.0);
            if used_v + need * f64::from(missing) > hard_v + 1e-9 {
                return Some(format!(
                    "ResourceQuota {}: {name} would exceed its limit (used {}, hard {}, {} more pod(s) need {} each)",
                    quota.metadata.name.as_deref().unwrap_or_default(),
                    used.get(name).map(|q| q.0.as_str()).unwrap_or("0"),
                    hard.0,
                    missing,
                    need
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod quota_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(
            parse_quantity("16Gi"),
            Some(16.0 * 1024.0 * 1024.0 * 1024.0)
        );
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1k"), Some(1000.0));
    }

    #[test]
    fn gpu_quota_shortfall_is_found() {
        let quota: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(json!({
            "metadata": {"name": "team-gpus"},
            "status": {"hard": {"requests.nvidia.com/gpu": "2", "pods": "10"}, "used": {"requests.nvidia.com/gpu": "2", "pods": "3"}}
        }))
        .unwrap();
        let per_pod = std::collections::BTreeMap::from([
            ("pods".to_owned(), 1.0),
            ("requests.nvidia.com/gpu".to_owned(), 1.0),
        ]);
        let msg = quota_shortfall(std::slice::from_ref(&quota), &per_pod, 1).unwrap();
        assert!(
            msg.contains("ResourceQuota team-gpus: requests.nvidia.com/gpu would exceed"),
            "{msg}"
        );
        let cpu_only = std::collections::BTreeMap::from([("pods".to_owned(), 1.0)]);
        assert!(quota_shortfall(&[quota], &cpu_only, 1).is_none());
    }

    #[test]
    fn model_cached_counts_ready_preheat_pods_against_matching_nodes() {
        let ds = |ready: i32, wanted: i32| -> k8s_openapi::api::apps::v1::DaemonSet {
            serde_json::from_value(json!({"metadata": {"name": "m-preheat"},
                "status": {"numberReady": ready, "desiredNumberScheduled": wanted,
                           "currentNumberScheduled": wanted, "numberMisscheduled": 0}}))
            .unwrap()
        };
        let (ok, reason, message) = model_cached(&ds(1, 3));
        assert!(!ok);
        assert_eq!(reason, "Pulling");
        assert_eq!(message, "1 of 3 nodes have the model in their cache");
        let (ok, reason, _) = model_cached(&ds(3, 3));
        assert!(ok);
        assert_eq!(reason, "ModelCached");
        let (ok, reason, _) = model_cached(&ds(0, 0));
        assert!(!ok);
        assert_eq!(reason, "NoMatchingNodes");
        let no_status: k8s_openapi::api::apps::v1::DaemonSet =
            serde_json::from_value(json!({"metadata": {"name": "m-preheat"}})).unwrap();
        assert_eq!(model_cached(&no_status).1, "PreheatPending");
    }
}
