//! Embedding kaito-k8s in your own controller.
//!
//! ```text
//! cargo run -p kaito-k8s --example embed            # render + estimate, no cluster needed
//! cargo run -p kaito-k8s --example embed -- --run   # also run the reconciler (uses KUBECONFIG)
//! ```
//!
//! It shows the three entry points a platform team reuses: the estimator, the pure renderer, and
//! the Workspace reconciler run inside a `kube::runtime::Controller` of your own — here wrapped
//! to add a log line and a custom requeue policy, and sharing your metrics registry.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kaito_k8s::controller::{error_policy, workspace, Context, Metrics};
use kaito_k8s::estimate::{estimate, EstimateInputs};
use kaito_k8s::render::{render_workspace, ClusterFacts, RenderOptions};
use kaito_k8s::{validate, Workspace};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client};

const WORKSPACE: &str = r#"
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: team-a-phi
  namespace: team-a
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels:
      apps: team-a-phi
inference:
  preset:
    name: phi-4-mini-instruct
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. Parse with kaito-core's strict parser, then wrap as a cluster object.
    let ws = Workspace::from_core(kaito_core::Workspace::from_yaml(WORKSPACE)?)?;

    // 2. The estimator: nodes, GPUs and the arithmetic.
    if let Some(e) = estimate(&ws, &EstimateInputs::default())? {
        print!("{}", e.report(ws.name()));
    }

    // 3. The renderer: every object the controller would apply, with your own options
    //    (here: your own image registry, and no Karpenter).
    let opts = RenderOptions {
        auto_provision: false,
        vllm_image: "registry.example.com/vllm:v0.11.0".into(),
        ..Default::default()
    };
    // Validated (and sized) once; rendering takes the result.
    let facts = ClusterFacts::default();
    let valid = validate::check(&ws, &facts).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(lines.join("; "))
    })?;
    let rendered = render_workspace(&valid, &opts)?;
    let sts = &rendered.stateful_set;
    println!(
        "StatefulSet {} with {} replica(s), {} NodeClaim(s)",
        sts.metadata.name.as_deref().unwrap_or_default(),
        sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        rendered.node_claims.len()
    );

    if !std::env::args().any(|a| a == "--run") {
        return Ok(());
    }

    // 4. The reconciler inside your own Controller.
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::with_options(client.clone(), opts, metrics.clone()));
    let reconcile = |ws: Arc<Workspace>, ctx: Arc<Context>| async move {
        println!("reconciling {}/{}", ws.namespace(), ws.name());
        workspace::reconcile(ws, ctx).await?;
        // Your policy: re-check every minute (errors still back off through `error_policy`).
        Ok::<_, kaito_k8s::Error>(Action::requeue(Duration::from_secs(60)))
    };
    Controller::new(Api::<Workspace>::all(client), watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                eprintln!("reconcile error: {e}");
            }
        })
        .await;
    print!("{}", metrics.render());
    Ok(())
}
