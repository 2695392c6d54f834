//! The validating and defaulting admission webhook (HTTPS): what needs the catalogue or the
//! cluster. It runs the CRD's own structural and CEL checks too, so a cluster where the CRD is
//! older than the controller still gets the current rules, then every rule of [`validate`]:
//! unknown preset, unknown instance type, GPU memory too small (unless
//! `kaito.sh/bypass-resource-checks`), gated model without `modelAccessSecret`, context length
//! above the model's limit, and the SSRF guard on URLs (literal addresses, internal names and,
//! here, what the host name resolves to).
//!
//! Endpoints: `POST /validate`, `POST /mutate` (defaults `inference.preset.accessMode` and the
//! `kaito.sh/runtime` annotation of preset Workspaces),
//! `GET /healthz`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::{Api, Client};
use serde_json::Value;

use crate::crd::check::{check, Kind};
use crate::crd::{InferenceSet, Workspace};
use crate::error::{Error, Result};
use crate::render::ClusterFacts;
use crate::validate;

/// What the webhook asks the cluster.
#[async_trait::async_trait]
pub trait ClusterLookup: Send + Sync {
    /// `inference_config.yaml` of a ConfigMap, `None` when it does not exist.
    async fn inference_config(&self, namespace: &str, name: &str) -> Option<String>;
    /// The addresses a host name resolves to (empty when it does not resolve).
    async fn resolve(&self, host: &str) -> Vec<IpAddr>;
}

/// [`ClusterLookup`] against a real cluster and the system resolver.
pub struct KubeLookup {
    /// The API client.
    pub client: Client,
}

#[async_trait::async_trait]
impl ClusterLookup for KubeLookup {
    async fn inference_config(&self, namespace: &str, name: &str) -> Option<String> {
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        cms.get_opt(name)
            .await
            .ok()
            .flatten()?
            .data?
            .get("inference_config.yaml")
            .cloned()
    }

    async fn resolve(&self, host: &str) -> Vec<IpAddr> {
        let lookup = tokio::net::lookup_host((host, 443));
        match tokio::time::timeout(std::time::Duration::from_secs(2), lookup).await {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
            _ => Vec::new(),
        }
    }
}

fn url_hosts(ws: &Workspace) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, a) in ws
        .inference
        .iter()
        .flat_map(|inf| inf.adapters.iter())
        .enumerate()
    {
        for (j, url) in a.source.iter().flat_map(|s| s.urls.iter()).enumerate() {
            let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
            let host = rest
                .split(['/', '?', '#'])
                .next()
                .unwrap_or_default()
                .rsplit('@')
                .next()
                .unwrap_or_default();
            let host = host.split(':').next().unwrap_or_default().to_owned();
            out.push((format!("inference.adapters[{i}].source.urls[{j}]"), host));
        }
    }
    out
}

/// Every problem of a Workspace the webhook knows of, one per line, each naming its field.
pub async fn workspace_problems(
    ws: &Workspace,
    lookup: &dyn ClusterLookup,
) -> (Vec<String>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut facts = ClusterFacts::default();
    if let Some(name) = ws.inference.as_ref().and_then(|i| i.config.as_ref()) {
        facts.inference_config = lookup.inference_config(ws.namespace(), name).await;
        if facts.inference_config.is_none() {
            warnings.push(format!("inference.config: ConfigMap `{name}` not found in namespace `{}`; the Workspace stays pending until it exists", ws.namespace()));
        }
    }
    let mut problems: Vec<String> = validate::workspace(ws, &facts)
        .iter()
        .map(ToString::to_string)
        .collect();
    for (path, host) in url_hosts(ws) {
        if host.parse::<IpAddr>().is_ok() {
            continue; // literal addresses are checked statically
        }
        for ip in lookup.resolve(&host).await {
            if let Some(why) = validate::forbidden_ip(ip) {
                problems.push(format!(
                    "{path}: host `{host}` resolves to {why} address {ip}"
                ));
                break;
            }
        }
    }
    (problems, warnings)
}

/// Decides one admission request. `mutate` selects the defaulting endpoint.
pub async fn admit(
    req: &AdmissionRequest<DynamicObject>,
    lookup: &dyn ClusterLookup,
    mutate: bool,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(req);
    if matches!(req.operation, Operation::Delete | Operation::Connect) || req.sub_resource.is_some()
    {
        return response;
    }
    let Some(obj) = &req.object else {
        return response;
    };
    let Ok(value) = serde_json::to_value(obj) else {
        return response.deny("object is not JSON");
    };
    let old = req
        .old_object
        .as_ref()
        .and_then(|o| serde_json::to_value(o).ok());
    let kind = req.kind.kind.as_str();
    let name = format!(
        "{}/{}",
        req.namespace.as_deref().unwrap_or("default"),
        req.name
    );
    if mutate {
        return default_object(response, kind, &value);
    }
    // Never block the controller's own bookkeeping: an update that leaves the spec and the
    // annotations as they were (finalizers, labels, owner references), or any update of an
    // object being deleted, is admitted even if the object no longer passes today's rules —
    // otherwise a catalogue change could make a finalizer impossible to remove.
    if let Some(old) = &old {
        let spec_of = |v: &Value| {
            serde_json::json!([
                v.get("resource"),
                v.get("inference"),
                v.get("tuning"),
                v.get("spec"),
                v.pointer("/metadata/annotations")
            ])
        };
        if spec_of(old) == spec_of(&value) || value.pointer("/metadata/deletionTimestamp").is_some()
        {
            return response;
        }
    }
    let (problems, warnings) = match kind {
        "Workspace" => {
            let mut p = check(Kind::Workspace, &value, old.as_ref());
            let mut w = Vec::new();
            if p.is_empty() {
                match parse_workspace(&value, req.namespace.as_deref()) {
                    Ok(ws) => {
                        let (more, warn) = workspace_problems(&ws, lookup).await;
                        p.extend(more);
                        w = warn;
                    }
                    Err(e) => p.push(e.to_string()),
                }
            }
            (p, w)
        }
        "InferenceSet" => {
            let mut p = check(Kind::InferenceSet, &value, old.as_ref());
            if p.is_empty() {
                match serde_json::from_value::<InferenceSet>(value.clone()) {
                    Ok(mut set) => {
                        set.metadata.namespace =
                            set.metadata.namespace.or_else(|| req.namespace.clone());
                        let child = crate::render::child_workspace(&set, 0);
                        let (more, _) = workspace_problems(&child, lookup).await;
                        p.extend(
                            validate::inferenceset(&set, &ClusterFacts::default())
                                .iter()
                                .map(ToString::to_string)
                                .filter(|e| !e.contains("inference.config")),
                        );
                        p.extend(
                            more.into_iter()
                                .filter(|m| m.contains("resolves to"))
                                .map(|m| format!("spec.template.{m}")),
                        );
                    }
                    Err(e) => p.push(format!("spec: {e}")),
                }
            }
            (p, Vec::new())
        }
        _ => (Vec::new(), Vec::new()),
    };
    let mut response = response;
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    if problems.is_empty() {
        response
    } else {
        response.deny(format!("{kind} {name} is invalid: {}", problems.join("; ")))
    }
}

fn parse_workspace(value: &Value, namespace: Option<&str>) -> Result<Workspace> {
    let yaml: serde_yaml::Value = serde_yaml::to_value(value).map_err(Error::Yaml)?;
    let core: kaito_core::Workspace = kaito_core::workspace::from_value_strict(yaml)?;
    let mut ws = Workspace::from_core(core)?;
    if ws.metadata.namespace.is_none() {
        ws.metadata.namespace = namespace.map(str::to_owned);
    }
    Ok(ws)
}

/// The defaulting patch: KAITO's `accessMode: public` on presets.
fn default_object(response: AdmissionResponse, kind: &str, value: &Value) -> AdmissionResponse {
    let base = match kind {
        "Workspace" => "/inference/preset",
        "InferenceSet" => "/spec/template/inference/preset",
        _ => return response,
    };
    let mut ops = Vec::new();
    if let Some(preset) = value.pointer(base) {
        // KAITO's default.
        if preset.get("accessMode").is_none() {
            ops.push(serde_json::json!({"op": "add", "path": format!("{base}/accessMode"), "value": "public"}));
        }
        // Freeze the runtime the preset defaults to, so a later change of defaults does not
        // switch a running Workspace's runtime.
        let annotations = value.pointer("/metadata/annotations");
        let has_runtime = annotations
            .and_then(|a| a.get(crate::crd::keys::RUNTIME))
            .is_some();
        let runtime = preset
            .get("name")
            .and_then(Value::as_str)
            .and_then(crate::catalogue::find)
            .map(|m| m.runtime.name());
        if let (false, Some(runtime), "Workspace") = (has_runtime, runtime, kind) {
            if annotations.is_some() {
                ops.push(serde_json::json!({"op": "add", "path": "/metadata/annotations/kaito.sh~1runtime", "value": runtime}));
            } else {
                ops.push(serde_json::json!({"op": "add", "path": "/metadata/annotations", "value": {crate::crd::keys::RUNTIME: runtime}}));
            }
        }
    }
    if ops.is_empty() {
        return response;
    }
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops)).expect("a valid JSON patch");
    match response.clone().with_patch(patch) {
        Ok(r) => r,
        Err(e) => response.deny(e.to_string()),
    }
}

async fn handle(
    lookup: Arc<dyn ClusterLookup>,
    review: AdmissionReview<DynamicObject>,
    mutate: bool,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    Json(admit(&req, lookup.as_ref(), mutate).await.into_review())
}

/// The webhook's HTTP routes.
pub fn router(lookup: Arc<dyn ClusterLookup>) -> Router {
    let l2 = lookup.clone();
    Router::new()
        .route(
            "/validate",
            post(move |Json(r): Json<AdmissionReview<DynamicObject>>| {
                handle(lookup.clone(), r, false)
            }),
        )
        .route(
            "/mutate",
            post(move |Json(r): Json<AdmissionReview<DynamicObject>>| handle(l2.clone(), r, true)),
        )
        .route("/healthz", get(|| async { "ok" }))
}

/// A rustls server configuration from PEM files.
pub fn tls_config(cert: &PathBuf, key: &PathBuf) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| Error::Config(format!("{}: {e}", cert.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Config(format!("{}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Config(format!("{}: {e}", key.display())))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Config(e.to_string()))
}

/// Serves [`router`] over HTTPS on `listener` until the task is dropped.
pub async fn serve_tls_on(
    listener: tokio::net::TcpListener,
    config: rustls::ServerConfig,
    app: Router,
) -> Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let (tcp, _) = listener.accept().await.map_err(|e| Error::Io {
            context: "webhook accept".into(),
            source: e,
        })?;
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Serves the webhook over HTTPS at `addr` with the PEM `cert` and `key`.
pub async fn serve_tls(
    addr: std::net::SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    client: Client,
) -> Result<()> {
    let config = tls_config(&cert, &key)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Io {
            context: format!("cannot bind {addr}"),
            source: e,
        })?;
    serve_tls_on(listener, config, router(Arc::new(KubeLookup { client }))).await
}
