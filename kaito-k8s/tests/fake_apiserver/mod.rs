//! An in-process fake Kubernetes API server for end-to-end tests of the real kube-runtime
//! controllers. Small and honest about what it is:
//!
//! Supported: discovery (`/api`, `/apis`, `/api/v1`, `/apis/{g}/{v}`, `/version`); get, list and
//! watch (with `resourceVersion`, label selectors and `metadata.name`/`metadata.namespace`
//! field selectors); create, replace (409 on a stale `resourceVersion`), delete; patch as JSON
//! merge patch, JSON patch (RFC 6902, `test` included) and server-side apply; the `status` and
//! `scale` subresources; `generation` bumps on non-metadata, non-status changes;
//! `deletionTimestamp` with finalizers; background garbage collection through
//! `ownerReferences` (also of objects written after their owners went); CRDs registered by creating a `CustomResourceDefinition`.
//!
//! Differences from a real API server: no authentication, admission, defaulting or schema
//! validation; server-side apply is a recursive merge of the applied object into the live one
//! (no `managedFields`, so fields dropped from an apply are not removed, and there are no apply
//! conflicts); a watch with a label selector does not send DELETED when an object stops
//! matching; list has no pagination; no controllers run (tests create pods themselves, see
//! `FakeApiServer::sync_statefulset`); resource versions are one global counter.

#![allow(dead_code, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// (group, plural).
type ResourceKey = (String, String);

#[derive(Clone, Debug)]
struct ResourceInfo {
    kind: String,
    namespaced: bool,
    versions: Vec<String>,
    status: bool,
}

#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    kind: &'static str,
    resource: ResourceKey,
    object: Value,
}

#[derive(Default)]
struct Store {
    rv: u64,
    resources: BTreeMap<ResourceKey, ResourceInfo>,
    /// (group, plural, namespace, name) → object.
    objects: BTreeMap<(String, String, String, String), Value>,
    log: Vec<Change>,
    uid: u64,
}

struct Shared {
    store: Mutex<Store>,
    tx: broadcast::Sender<Change>,
}

/// A running fake API server.
#[derive(Clone)]
pub struct FakeApiServer {
    shared: Arc<Shared>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "message": message, "code": code});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn ok(code: u16, v: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

fn now() -> String {
    let t = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(t.as_second())
        .unwrap()
        .to_string()
}

/// RFC 7386 merge of `patch` into `target`.
fn merge(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = json!({});
        }
        let t = target.as_object_mut().unwrap();
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// A parsed label selector requirement.
#[derive(Clone)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn parse_selector(s: &str) -> Vec<Req> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let set = |rest: &str| {
            rest.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|v| v.trim().to_owned())
                .collect::<Vec<_>>()
        };
        if let Some((k, rest)) = p.split_once(" notin ") {
            out.push(Req::NotIn(k.trim().into(), set(rest)));
        } else if let Some((k, rest)) = p.split_once(" in ") {
            out.push(Req::In(k.trim().into(), set(rest)));
        } else if let Some((k, v)) = p.split_once("!=") {
            out.push(Req::Ne(k.into(), v.into()));
        } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            out.push(Req::Eq(k.into(), v.into()));
        } else if let Some(k) = p.strip_prefix('!') {
            out.push(Req::NotExists(k.into()));
        } else {
            out.push(Req::Exists(p.into()));
        }
    }
    out
}

fn matches_labels(obj: &Value, reqs: &[Req]) -> bool {
    let labels = &obj["metadata"]["labels"];
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        Req::Eq(k, v) => get(k) == Some(v.as_str()),
        Req::Ne(k, v) => get(k) != Some(v.as_str()),
        Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        Req::Exists(k) => get(k).is_some(),
        Req::NotExists(k) => get(k).is_none(),
    })
}

fn matches_fields(obj: &Value, fields: &str) -> bool {
    fields
        .split(',')
        .filter(|f| !f.is_empty())
        .all(|f| match f.split_once('=') {
            Some(("metadata.name", v)) => obj["metadata"]["name"] == v,
            Some(("metadata.namespace", v)) => obj["metadata"]["namespace"] == v,
            _ => true,
        })
}

/// What a request path names.
struct Target {
    resource: ResourceKey,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() => (Some(ns.to_string()), r),
        r => (None, r),
    };
    let (plural, name, sub) = match rest {
        [p] => (p.to_string(), None, None),
        [p, n] => (p.to_string(), Some(n.to_string()), None),
        [p, n, s] => (p.to_string(), Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    Some(Target {
        resource: (group, plural),
        version,
        namespace,
        name,
        sub,
    })
}

fn builtin_resources() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static str,
    bool,
)> {
    // group, version, plural, namespaced, kind, status subresource
    vec![
        ("", "v1", "namespaces", false, "Namespace", true),
        ("", "v1", "nodes", false, "Node", true),
        ("", "v1", "pods", true, "Pod", true),
        ("", "v1", "services", true, "Service", true),
        ("", "v1", "configmaps", true, "ConfigMap", false),
        ("", "v1", "secrets", true, "Secret", false),
        ("", "v1", "events", true, "Event", false),
        ("", "v1", "resourcequotas", true, "ResourceQuota", true),
        ("apps", "v1", "statefulsets", true, "StatefulSet", true),
        (
            "policy",
            "v1",
            "poddisruptionbudgets",
            true,
            "PodDisruptionBudget",
            true,
        ),
        (
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            true,
            "NetworkPolicy",
            false,
        ),
        ("events.k8s.io", "v1", "events", true, "Event", false),
        ("coordination.k8s.io", "v1", "leases", true, "Lease", false),
        (
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            false,
            "CustomResourceDefinition",
            true,
        ),
    ]
}

impl FakeApiServer {
    /// Starts the server on a free local port.
    pub async fn start() -> Self {
        let (tx, _) = broadcast::channel(4096);
        let mut store = Store::default();
        for (g, v, p, ns, k, st) in builtin_resources() {
            store.resources.insert(
                (g.into(), p.into()),
                ResourceInfo {
                    kind: k.into(),
                    namespaced: ns,
                    versions: vec![v.into()],
                    status: st,
                },
            );
        }
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            tx,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeApiServer { shared, url }
    }

    /// A kube client for this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// Creates (or replaces) an object directly, bypassing HTTP.
    pub fn put(&self, obj: Value) -> Value {
        let (group, plural, ns, name) = self.key_of(&obj);
        let mut store = self.shared.store.lock().unwrap();
        let existing = store
            .objects
            .get(&(group.clone(), plural.clone(), ns.clone(), name.clone()))
            .cloned();
        let out = commit(
            &mut store,
            &self.shared.tx,
            (group, plural),
            ns,
            name,
            obj,
            existing.as_ref(),
            WriteKind::Full,
        );
        out
    }

    /// Reads an object directly.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let probe = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}});
        let key = self.key_of(&probe);
        self.shared.store.lock().unwrap().objects.get(&key).cloned()
    }

    /// Every object of a kind (all namespaces).
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let probe = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
        let (g, p, _, _) = self.key_of(&probe);
        self.shared
            .store
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((og, op, _, _), _)| *og == g && *op == p)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Deletes an object directly (honouring finalizers and garbage collection).
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let probe = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}});
        let (g, p, ns, n) = self.key_of(&probe);
        let mut store = self.shared.store.lock().unwrap();
        delete_object(&mut store, &self.shared.tx, &(g, p), &ns, &n);
    }

    fn key_of(&self, obj: &Value) -> (String, String, String, String) {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let group = api_version
            .split_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_owned();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let store = self.shared.store.lock().unwrap();
        let (key, info) = store
            .resources
            .iter()
            .find(|((g, _), i)| *g == group && i.kind == kind)
            .unwrap_or_else(|| panic!("unknown kind {api_version} {kind}"));
        let ns = if info.namespaced {
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        (
            key.0.clone(),
            key.1.clone(),
            ns,
            obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    /// Plays the StatefulSet controller once: each StatefulSet gets `replicas` pods named
    /// `<name>-<i>` from its template; pods whose rollout hash is stale are replaced; extra pods go.
    pub fn sync_statefulset(&self, namespace: &str, name: &str) {
        let Some(sts) = self.get("apps/v1", "StatefulSet", namespace, name) else {
            return;
        };
        let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1);
        let template = &sts["spec"]["template"];
        let hash = template["metadata"]["annotations"]["kaito.sh/rollout-hash"].clone();
        for i in 0..replicas {
            let pod_name = format!("{name}-{i}");
            let current = self.get("v1", "Pod", namespace, &pod_name);
            if current
                .as_ref()
                .is_some_and(|p| p["metadata"]["annotations"]["kaito.sh/rollout-hash"] == hash)
            {
                continue;
            }
            if current.is_some() {
                self.delete("v1", "Pod", namespace, &pod_name);
            }
            let mut labels = template["metadata"]["labels"].clone();
            labels["apps.kubernetes.io/pod-index"] = json!(i.to_string());
            self.put(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": namespace, "labels": labels,
                             "annotations": template["metadata"]["annotations"],
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                                                  "uid": sts["metadata"]["uid"], "controller": true}]},
                "spec": template["spec"],
                "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
            }));
        }
    }

    /// Sets a pod's status: ready, or a waiting container with `reason` (e.g. CrashLoopBackOff).
    pub fn set_pod_state(&self, namespace: &str, name: &str, ready: bool, waiting: Option<&str>) {
        let Some(mut pod) = self.get("v1", "Pod", namespace, name) else {
            panic!("no pod {name}")
        };
        let container = pod["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("c")
            .to_owned();
        let mut cs = json!({"name": container, "ready": ready, "restartCount": 0, "image": "i", "imageID": "", "state": {"running": {}}});
        if let Some(reason) = waiting {
            cs["state"] = json!({"waiting": {"reason": reason, "message": "back-off restarting failed container"}});
            cs["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
            cs["restartCount"] = json!(4);
        }
        pod["spec"]["nodeName"] = json!("node-a");
        pod["status"] = json!({
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [cs],
        });
        self.put(pod);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum WriteKind {
    /// Everything but status (main resource with a status subresource).
    Spec,
    /// Status only.
    Status,
    /// Everything (no status subresource, or test helpers).
    Full,
}

/// Stores `obj` as the new version of a key, maintaining uid, resourceVersion, generation and
/// creation time; removes it when deletion is pending and no finalizer remains.
#[allow(clippy::too_many_arguments)]
fn commit(
    store: &mut Store,
    tx: &broadcast::Sender<Change>,
    resource: ResourceKey,
    ns: String,
    name: String,
    mut obj: Value,
    existing: Option<&Value>,
    write: WriteKind,
) -> Value {
    store.rv += 1;
    let rv = store.rv;
    if let Some(old) = existing {
        match write {
            WriteKind::Status => {
                let status = obj.get("status").cloned();
                obj = old.clone();
                match status {
                    Some(s) => obj["status"] = s,
                    None => {
                        obj.as_object_mut().unwrap().remove("status");
                    }
                }
            }
            WriteKind::Spec => {
                if let Some(s) = old.get("status") {
                    obj["status"] = s.clone();
                } else if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
            }
            WriteKind::Full => {}
        }
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
        ] {
            if let Some(v) = old["metadata"].get(k) {
                obj["metadata"][k] = v.clone();
            } else if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove(k);
            }
        }
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("metadata");
                o.remove("status");
            }
            v
        };
        if strip(old) != strip(&obj) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            obj["metadata"]["generation"] = json!(g);
        }
    } else {
        store.uid += 1;
        obj["metadata"]["uid"] = json!(format!("uid-{}", store.uid));
        obj["metadata"]["creationTimestamp"] = json!(now());
        obj["metadata"]["generation"] = json!(1);
        if write == WriteKind::Spec {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
    }
    obj["metadata"]["name"] = json!(name);
    if !ns.is_empty() {
        obj["metadata"]["namespace"] = json!(ns);
    }
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    let key = (
        resource.0.clone(),
        resource.1.clone(),
        ns.clone(),
        name.clone(),
    );
    let deleting = obj["metadata"].get("deletionTimestamp").is_some();
    let no_finalizers = obj["metadata"]["finalizers"]
        .as_array()
        .is_none_or(|f| f.is_empty());
    if deleting && no_finalizers {
        store.objects.remove(&key);
        emit(store, tx, "DELETED", resource.clone(), obj.clone());
        collect_garbage(store, tx, &obj);
        return obj;
    }
    let kind = if existing.is_some() {
        "MODIFIED"
    } else {
        "ADDED"
    };
    store.objects.insert(key.clone(), obj.clone());
    emit(store, tx, kind, resource.clone(), obj.clone());
    // Like the real garbage collector (which does it asynchronously): an object whose owners
    // are all gone is deleted, even when it was written after they went.
    if let Some(refs) = obj["metadata"]["ownerReferences"]
        .as_array()
        .filter(|r| !r.is_empty())
    {
        let alive = refs.iter().any(|r| {
            store
                .objects
                .values()
                .any(|o| o["metadata"]["uid"] == r["uid"])
        });
        if !alive {
            delete_object(store, tx, &resource, &key.2, &key.3);
        }
    }
    obj
}

fn emit(
    store: &mut Store,
    tx: &broadcast::Sender<Change>,
    kind: &'static str,
    resource: ResourceKey,
    object: Value,
) {
    let rv = object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(store.rv);
    let change = Change {
        rv,
        kind,
        resource,
        object,
    };
    store.log.push(change.clone());
    let _ = tx.send(change);
}

/// Deletes, or marks for deletion when finalizers remain.
fn delete_object(
    store: &mut Store,
    tx: &broadcast::Sender<Change>,
    resource: &ResourceKey,
    ns: &str,
    name: &str,
) -> Option<Value> {
    let key = (
        resource.0.clone(),
        resource.1.clone(),
        ns.to_owned(),
        name.to_owned(),
    );
    let obj = store.objects.get(&key)?.clone();
    let has_finalizers = obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if obj["metadata"].get("deletionTimestamp").is_some() {
            return Some(obj);
        }
        let mut marked = obj.clone();
        marked["metadata"]["deletionTimestamp"] = json!(now());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        store.rv += 1;
        marked["metadata"]["resourceVersion"] = json!(store.rv.to_string());
        store.objects.insert(key, marked.clone());
        emit(store, tx, "MODIFIED", resource.clone(), marked.clone());
        return Some(marked);
    }
    store.objects.remove(&key);
    store.rv += 1;
    let mut gone = obj.clone();
    gone["metadata"]["resourceVersion"] = json!(store.rv.to_string());
    emit(store, tx, "DELETED", resource.clone(), gone.clone());
    collect_garbage(store, tx, &gone);
    Some(gone)
}

/// Background garbage collection: delete every object owned by `owner` (by uid).
fn collect_garbage(store: &mut Store, tx: &broadcast::Sender<Change>, owner: &Value) {
    let uid = owner["metadata"]["uid"].clone();
    let dependents: Vec<(String, String, String, String)> = store
        .objects
        .iter()
        .filter(|(_, o)| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for (g, p, ns, n) in dependents {
        delete_object(store, tx, &(g, p), &ns, &n);
    }
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), urlencoding_decode(v)))
        .collect()
}

fn urlencoding_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let h = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = h {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn discovery(store: &Store, path: &str) -> Option<Value> {
    let groups: BTreeMap<String, BTreeSet<String>> =
        store
            .resources
            .iter()
            .fold(BTreeMap::new(), |mut m, ((g, _), i)| {
                m.entry(g.clone())
                    .or_default()
                    .extend(i.versions.iter().cloned());
                m
            });
    let resources = |group: &str, version: &str| {
        let list: Vec<Value> = store
            .resources
            .iter()
            .filter(|((g, _), i)| g == group && i.versions.iter().any(|v| v == version))
            .flat_map(|((_, p), i)| {
                let mut v = vec![json!({"name": p, "singularName": "", "namespaced": i.namespaced, "kind": i.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})];
                if i.status {
                    v.push(json!({"name": format!("{p}/status"), "singularName": "", "namespaced": i.namespaced, "kind": i.kind, "verbs": ["get", "patch", "update"]}));
                }
                v
            })
            .collect();
        let gv = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
    };
    match path.trim_end_matches('/') {
        "/version" => Some(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake"})),
        "/api" => Some(
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        ),
        "/apis" => Some(
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups.iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| {
            let versions: Vec<Value> = vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions.last().cloned().unwrap_or_default()})
        }).collect::<Vec<_>>()}),
        ),
        "/api/v1" => Some(resources("", "v1")),
        p => {
            let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
            match segs.as_slice() {
                ["apis", g, v] => groups
                    .get(*g)
                    .filter(|vs| vs.contains(*v))
                    .map(|_| resources(g, v)),
                _ => None,
            }
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = query_map(req.uri().query());
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    if method == Method::GET {
        if let Some(d) = discovery(&shared.store.lock().unwrap(), &path) {
            return ok(200, &d);
        }
    }
    let Some(t) = parse_path(&path) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let info = shared
        .store
        .lock()
        .unwrap()
        .resources
        .get(&t.resource)
        .cloned();
    let Some(info) = info.filter(|i| i.versions.contains(&t.version)) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let ns = if info.namespaced {
        t.namespace.clone().unwrap_or_default()
    } else {
        String::new()
    };
    match (method.clone(), t.name.clone()) {
        (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(shared, t, info, query)
        }
        (Method::GET, None) => list(&shared, &t, &info, &query),
        (Method::POST, None) => create(&shared, &t, &info, ns, &body),
        (Method::GET, Some(name)) => {
            let store = shared.store.lock().unwrap();
            match store
                .objects
                .get(&(t.resource.0.clone(), t.resource.1.clone(), ns, name.clone()))
            {
                Some(o) if t.sub.as_deref() == Some("scale") => ok(200, &scale_of(o)),
                Some(o) => ok(200, o),
                None => status(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", t.resource.1),
                ),
            }
        }
        (Method::PUT, Some(name)) => write(&shared, &t, &info, ns, name, &body, None),
        (Method::PATCH, Some(name)) => {
            write(&shared, &t, &info, ns, name, &body, Some(content_type))
        }
        (Method::DELETE, Some(name)) => {
            let mut store = shared.store.lock().unwrap();
            match delete_object(&mut store, &shared.tx, &t.resource, &ns, &name) {
                Some(o) => ok(200, &o),
                None => status(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", t.resource.1),
                ),
            }
        }
        _ => status(405, "MethodNotAllowed", "method not allowed"),
    }
}

fn scale_of(o: &Value) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"], "resourceVersion": o["metadata"]["resourceVersion"]},
           "spec": {"replicas": o["spec"]["replicas"]}, "status": {"replicas": o["status"]["replicas"], "selector": o["status"]["selector"]}})
}

fn list(
    shared: &Shared,
    t: &Target,
    info: &ResourceInfo,
    q: &BTreeMap<String, String>,
) -> Response {
    let store = shared.store.lock().unwrap();
    let sel = parse_selector(
        q.get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    );
    let fields = q.get("fieldSelector").cloned().unwrap_or_default();
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|((g, p, ns, _), o)| {
            *g == t.resource.0
                && *p == t.resource.1
                && t.namespace.as_ref().is_none_or(|n| n == ns)
                && matches_labels(o, &sel)
                && matches_fields(o, &fields)
        })
        .map(|(_, o)| o.clone())
        .collect();
    let api_version = if t.resource.0.is_empty() {
        t.version.clone()
    } else {
        format!("{}/{}", t.resource.0, t.version)
    };
    ok(
        200,
        &json!({"apiVersion": api_version, "kind": format!("{}List", info.kind), "metadata": {"resourceVersion": store.rv.to_string()}, "items": items}),
    )
}

fn create(shared: &Shared, t: &Target, info: &ResourceInfo, ns: String, body: &Bytes) -> Response {
    let Ok(obj) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "body is not JSON");
    };
    let mut store = shared.store.lock().unwrap();
    let mut name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        if let Some(prefix) = obj["metadata"]["generateName"].as_str() {
            name = format!("{prefix}{:05}", store.rv + 1);
        } else {
            return status(422, "Invalid", "metadata.name: Required value");
        }
    }
    let key = (
        t.resource.0.clone(),
        t.resource.1.clone(),
        ns.clone(),
        name.clone(),
    );
    if store.objects.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", t.resource.1),
        );
    }
    if t.resource.1 == "customresourcedefinitions" {
        register_crd(&mut store, &obj);
    }
    let write = if info.status {
        WriteKind::Spec
    } else {
        WriteKind::Full
    };
    let out = commit(
        &mut store,
        &shared.tx,
        t.resource.clone(),
        ns,
        name,
        obj,
        None,
        write,
    );
    ok(201, &out)
}

fn register_crd(store: &mut Store, crd: &Value) {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_owned();
    let plural = spec["names"]["plural"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let versions: Vec<String> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    let status = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v["subresources"].get("status").is_some());
    store.resources.insert(
        (group, plural),
        ResourceInfo {
            kind: spec["names"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            namespaced: spec["scope"] == "Namespaced",
            versions,
            status,
        },
    );
}

fn write(
    shared: &Shared,
    t: &Target,
    info: &ResourceInfo,
    ns: String,
    name: String,
    body: &Bytes,
    patch_type: Option<String>,
) -> Response {
    let Ok(input) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "body is not JSON");
    };
    let mut store = shared.store.lock().unwrap();
    let key = (
        t.resource.0.clone(),
        t.resource.1.clone(),
        ns.clone(),
        name.clone(),
    );
    let existing = store.objects.get(&key).cloned();
    let is_apply = patch_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/apply-patch"));
    let Some(live) = existing.clone().or_else(|| is_apply.then(|| json!({}))) else {
        return status(
            404,
            "NotFound",
            &format!("{} \"{name}\" not found", t.resource.1),
        );
    };
    let sub = t.sub.as_deref();
    let new = match patch_type.as_deref() {
        None => {
            let rv = input["metadata"]["resourceVersion"].as_str();
            if rv.is_some_and(|rv| Some(rv) != live["metadata"]["resourceVersion"].as_str()) {
                return status(409, "Conflict", &format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", t.resource.1));
            }
            if sub == Some("scale") {
                let mut o = live.clone();
                o["spec"]["replicas"] = input["spec"]["replicas"].clone();
                o
            } else {
                input
            }
        }
        Some(c) if c.starts_with("application/json-patch+json") => {
            // Like the real server (evanphx/json-patch), `test` of null passes on a missing path.
            let ops: Vec<Value> = input
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|op| {
                    !(op["op"] == "test"
                        && op["value"].is_null()
                        && op["path"]
                            .as_str()
                            .is_some_and(|p| live.pointer(p).is_none()))
                })
                .collect();
            let Ok(patch) = serde_json::from_value::<json_patch::Patch>(Value::Array(ops)) else {
                return status(400, "BadRequest", "bad JSON patch");
            };
            let mut o = live.clone();
            if let Err(e) = json_patch::patch(&mut o, &patch) {
                return status(422, "Invalid", &format!("JSON patch failed: {e}"));
            }
            o
        }
        Some(_) if sub == Some("scale") => {
            let mut o = live.clone();
            o["spec"]["replicas"] = input["spec"]["replicas"].clone();
            o
        }
        Some(_) => {
            // merge patch and (approximated) server-side apply
            let mut o = live.clone();
            let rv = input["metadata"]["resourceVersion"].as_str();
            if rv.is_some_and(|rv| Some(rv) != live["metadata"]["resourceVersion"].as_str()) {
                return status(409, "Conflict", "the object has been modified");
            }
            merge(&mut o, &input);
            o
        }
    };
    let write = match (sub, info.status) {
        (Some("status"), _) => WriteKind::Status,
        (_, true) => WriteKind::Spec,
        (_, false) => WriteKind::Full,
    };
    let out = commit(
        &mut store,
        &shared.tx,
        t.resource.clone(),
        ns,
        name,
        new,
        existing.as_ref(),
        write,
    );
    if sub == Some("scale") {
        return ok(200, &scale_of(&out));
    }
    ok(if existing.is_some() { 200 } else { 201 }, &out)
}

fn watch(
    shared: Arc<Shared>,
    t: Target,
    _info: ResourceInfo,
    q: BTreeMap<String, String>,
) -> Response {
    let since: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let sel = parse_selector(
        q.get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    );
    let fields = q.get("fieldSelector").cloned().unwrap_or_default();
    let rx = shared.tx.subscribe();
    let backlog: Vec<Change> = {
        let store = shared.store.lock().unwrap();
        if since == 0 {
            // "any": start with the current state as ADDED events.
            store
                .objects
                .iter()
                .filter(|((g, p, _, _), _)| *g == t.resource.0 && *p == t.resource.1)
                .map(|((g, p, _, _), o)| Change {
                    rv: store.rv,
                    kind: "ADDED",
                    resource: (g.clone(), p.clone()),
                    object: o.clone(),
                })
                .collect()
        } else {
            store.log.iter().filter(|c| c.rv > since).cloned().collect()
        }
    };
    let last_backlog = backlog.last().map(|c| c.rv).unwrap_or(since);
    let wanted = move |c: &Change| {
        c.resource == t.resource
            && t.namespace
                .as_ref()
                .is_none_or(|n| c.object["metadata"]["namespace"].as_str() == Some(n.as_str()))
            && matches_labels(&c.object, &sel)
            && matches_fields(&c.object, &fields)
    };
    let wanted2 = wanted.clone();
    let first = futures::stream::iter(backlog.into_iter().filter(move |c| wanted(c)));
    let live = tokio_stream_from(rx).filter(move |c| {
        let keep = c.rv > last_backlog && wanted2(c);
        async move { keep }
    });
    let stream = first.chain(live).map(|c| {
        Ok::<_, Infallible>(Bytes::from(format!(
            "{}\n",
            json!({"type": c.kind, "object": c.object})
        )))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn tokio_stream_from(
    rx: broadcast::Receiver<Change>,
) -> futures::stream::BoxStream<'static, Change> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(c) => return Some((c, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}
