//! `kaito serve`: bind, start answering probes, fetch and load the model, warm up, serve until SIGTERM.

use std::time::Duration;

use anyhow::{Context, Result};
use kaito_core::infer::{self, AppState, ServerConfig};
use kaito_core::server;

use crate::args::ServeArgs;
use crate::runtime;

/// Runs the server.
pub async fn run(args: ServeArgs) -> Result<()> {
    let plan = runtime::plan(&args.model, args.served_model_name.as_deref())?;
    let mut api_keys = Vec::new();
    if let Some(path) = &args.api_key_file {
        api_keys = server::read_key_file(path)?;
    }
    if let Some(key) = args.api_key.as_ref().filter(|k| !k.is_empty()) {
        api_keys.push(key.clone());
    }
    let address = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;

    let state = AppState::new(ServerConfig { api_keys });
    state.models.begin_loading(plan.served_name.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_rx = stop_rx.clone();
    let server = tokio::spawn(server::serve(listener, state.clone(), async move {
        let _ = server_rx.wait_for(|stop| *stop).await;
    }));
    tracing::info!(address = %format!("http://{local}"), "listening (model loading)");

    let load = async {
        let model = state.models.load(&plan.served_name, &plan).await?;
        infer::warm_up(&state).await?;
        anyhow::Ok(model)
    };
    let model = tokio::select! {
        result = load => result?,
        _ = shutdown_signal() => {
            tracing::info!("shutdown requested while loading");
            return Ok(());
        }
    };
    let info = model.info();
    tracing::info!(
        model = %plan.served_name,
        architecture = %info.architecture,
        parameters = info.parameters,
        quantization = info.quantization.as_deref().unwrap_or("?"),
        threads = plan.engine.threads,
        parallel = plan.engine.parallel,
        "ready: OpenAI API at http://{local}/v1"
    );
    eprintln!("kaito: serving `{}` at http://{local}/v1", plan.served_name);

    shutdown_signal().await;
    tracing::info!(
        timeout_s = args.shutdown_timeout,
        "shutting down: no new connections, finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(args.shutdown_timeout), server).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!("in-flight requests did not finish before the deadline; exiting"),
    }
    drop(stop_rx);
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
