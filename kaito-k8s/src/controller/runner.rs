//! `kaito controller`: configuration and the process that runs the controllers, the metrics and
//! health server, leader election and (optionally) the admission webhook.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client};

use super::leader::LeaderElector;
use super::{error_policy, inferenceset, workspace, Context, Metrics};
use crate::crd::{keys, InferenceSet, Workspace};
use crate::error::{Error, Result};
use crate::render::RenderOptions;

/// Options of `kaito controller` (flatten into a clap command with `#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerOptions {
    /// Kubeconfig file; default: `KUBECONFIG`, `~/.kube/config`, then in-cluster config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (default: all).
    #[arg(long, env = "KAITO_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "KAITO_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Turn Lease-based leader election off (only one replica may run then).
    #[arg(long)]
    pub no_leader_election: bool,
    /// Namespace of the leader Lease (default: the pod's namespace, else `kaito-system`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kaito-system")]
    pub leader_namespace: String,
    /// Create Karpenter NodeClaims for `instanceType` Workspaces.
    #[arg(long, env = "KAITO_AUTO_PROVISION", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_provision: bool,
    /// Image of the kaito runtime.
    #[arg(long, env = "KAITO_RUNTIME_IMAGE", default_value = crate::render::KAITO_IMAGE)]
    pub kaito_image: String,
    /// Image of vLLM.
    #[arg(long, env = "KAITO_VLLM_IMAGE", default_value = crate::render::VLLM_IMAGE)]
    pub vllm_image: String,
    /// Address of the admission webhook (HTTPS); needs `--webhook-cert` and `--webhook-key`.
    #[arg(long, env = "KAITO_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_addr: std::net::SocketAddr,
    /// PEM certificate of the webhook server; the webhook is off without it.
    #[arg(long, env = "KAITO_WEBHOOK_CERT")]
    pub webhook_cert: Option<PathBuf>,
    /// PEM private key of the webhook server.
    #[arg(long, env = "KAITO_WEBHOOK_KEY")]
    pub webhook_key: Option<PathBuf>,
}

impl ControllerOptions {
    /// Rendering options from the flags.
    pub fn render_options(&self) -> RenderOptions {
        RenderOptions {
            auto_provision: self.auto_provision,
            kaito_image: self.kaito_image.clone(),
            vllm_image: self.vllm_image.clone(),
            ..RenderOptions::default()
        }
    }
}

async fn client(opts: &ControllerOptions) -> Result<Client> {
    let config = match &opts.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Error::Config(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| Error::Config(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Config(e.to_string()))?,
    };
    Client::try_from(config).map_err(Error::Kube)
}

/// Runs the Workspace and InferenceSet controllers against `client` until `shutdown` resolves.
pub async fn run_controllers(
    client: Client,
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=kaito-rs");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let ws = Controller::new(
        api::<Workspace>(&client, namespace),
        watcher::Config::default(),
    )
    .owns(api::<StatefulSet>(&client, namespace), managed.clone())
    .owns(api::<Service>(&client, namespace), managed.clone())
    .watches(
        api::<Pod>(&client, namespace),
        watcher::Config::default().labels(keys::WORKSPACE_LABEL),
        |pod: Pod| {
            let name = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(keys::WORKSPACE_LABEL))
                .cloned();
            name.map(|n| {
                ObjectRef::<Workspace>::new(&n)
                    .within(pod.metadata.namespace.as_deref().unwrap_or("default"))
            })
        },
    )
    .graceful_shutdown_on(stop(rx.clone()))
    .run(workspace::reconcile, error_policy, ctx.clone())
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "workspace controller");
        }
    });
    let sets = Controller::new(
        api::<InferenceSet>(&client, namespace),
        watcher::Config::default(),
    )
    .owns(
        api::<Workspace>(&client, namespace),
        watcher::Config::default().labels(keys::INFERENCESET_LABEL),
    )
    .graceful_shutdown_on(stop(rx))
    .run(inferenceset::reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "inferenceset controller");
        }
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    futures::join!(ws, sets);
}

async fn serve_metrics(addr: std::net::SocketAddr, metrics: Arc<Metrics>) -> Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| {
                let m = metrics.clone();
                async move {
                    use axum::http::header::{ACCEPT, CONTENT_TYPE};
                    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
                    let format = kaito_core::metrics::Exposition::for_accept(accept);
                    ([(CONTENT_TYPE, format.content_type())], m.render_as(format))
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Io {
            context: format!("cannot bind {addr}"),
            source: e,
        })?;
    axum::serve(listener, app).await.map_err(|e| Error::Io {
        context: "metrics server".into(),
        source: e,
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs the controllers until SIGTERM or Ctrl-C (or until leadership is lost, which is an
/// error so that the pod restarts and rejoins the election).
pub async fn run_controller(opts: ControllerOptions) -> Result<()> {
    // One TLS crypto provider for the process (kube's client and the webhook), whatever other
    // crates in the binary enable.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client(&opts).await?;
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::with_options(
        client.clone(),
        opts.render_options(),
        metrics.clone(),
    ));
    let metrics_server = tokio::spawn(serve_metrics(opts.metrics_addr, metrics.clone()));
    if let (Some(cert), Some(key)) = (&opts.webhook_cert, &opts.webhook_key) {
        let server =
            crate::webhook::serve_tls(opts.webhook_addr, cert.clone(), key.clone(), client.clone());
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "webhook server stopped");
            }
        });
    }
    let lost = if opts.no_leader_election {
        None
    } else {
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("kaito-controller-{}", std::process::id()));
        let elector = LeaderElector::new(
            Api::<Lease>::namespaced(client.clone(), &opts.leader_namespace),
            "kaito-rs-controller",
            &identity,
            Duration::from_secs(15),
        );
        tracing::info!(%identity, "waiting for the leader Lease");
        elector.acquire().await;
        metrics.set_leader(true);
        tracing::info!(%identity, "leading");
        Some(tokio::spawn(async move { elector.hold().await }))
    };
    let lost_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = lost_flag.clone();
    let shutdown = async move {
        match lost {
            Some(handle) => {
                tokio::select! {
                    _ = shutdown_signal() => {},
                    _ = handle => flag.store(true, std::sync::atomic::Ordering::SeqCst),
                }
            }
            None => shutdown_signal().await,
        }
    };
    run_controllers(client, ctx, opts.watch_namespace.as_deref(), shutdown).await;
    metrics_server.abort();
    if lost_flag.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Error::Config("lost the leader Lease".into()));
    }
    Ok(())
}
