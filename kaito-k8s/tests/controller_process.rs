//! `kaito controller` as a whole (`cli::run_controller`): kubeconfig loading, leader election,
//! the metrics endpoint and the controllers, against the fake API server.

mod fake_apiserver;

use std::time::Duration;

use clap::Parser;
use kaito_k8s::cli::{run_controller, ControllerOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    opts: ControllerOptions,
}

async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_process_leads_reconciles_and_serves_metrics() {
    let server = fake_apiserver::FakeApiServer::start().await;
    let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = kube::Api::all(server.client());
    for crd in kaito_k8s::crd::generate::crds() {
        crds.create(&Default::default(), &crd).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: fake, user: u, namespace: default}}}}]\ncurrent-context: c\n", server.url),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let cli = Cli::try_parse_from([
        "kaito",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--metrics-addr",
        &metrics,
        "--leader-namespace",
        "kaito-system",
    ])
    .unwrap();
    let task = tokio::spawn(run_controller(cli.opts));

    // It takes the Lease ...
    let lease = wait(|| {
        server.get(
            "coordination.k8s.io/v1",
            "Lease",
            "kaito-system",
            "kaito-rs-controller",
        )
    })
    .await;
    assert!(lease["spec"]["holderIdentity"].as_str().is_some());
    // ... reconciles ...
    server.put(json!({"apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "metadata": {"name": "smol", "namespace": "default"},
        "resource": {"labelSelector": {"matchLabels": {"pool": "cpu"}}}, "inference": {"preset": {"name": "smollm2-135m-instruct"}}}));
    wait(|| server.get("apps/v1", "StatefulSet", "default", "smol")).await;
    // ... and serves metrics and health.
    let text = wait_async(|| async {
        let t = http_get(&metrics, "/metrics").await?;
        t.contains("kaito_reconciles_total{controller=\"workspace\"}")
            .then_some(t)
    })
    .await;
    assert!(text.contains("kaito_leader 1"), "{text}");
    assert!(wait_async(|| http_get(&metrics, "/healthz"))
        .await
        .starts_with("HTTP/1.1 200"));
    task.abort();
}

async fn wait<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out");
}

async fn wait_async<T, F: std::future::Future<Output = Option<T>>>(mut f: impl FnMut() -> F) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out");
}
