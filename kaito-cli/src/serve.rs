//! `kaito serve`: bind, start answering probes, fetch and load the model, warm up, serve until SIGTERM.

use std::time::Duration;

use anyhow::Result;
use kaito_core::infer::{self, AppState, ServerConfig};
use kaito_core::server::{self, ServerHandle};

use crate::args::ServeArgs;
use crate::runtime;

/// Runs the server.
pub async fn run(args: ServeArgs) -> Result<()> {
    let plan = runtime::plan(&args.model.load_options(args.served_model_name.as_deref())?)?;
    let mut api_keys = Vec::new();
    if let Some(path) = &args.api_key_file {
        api_keys = server::read_key_file(path)?;
    }
    if let Some(key) = args.api_key.as_ref().filter(|k| !k.is_empty()) {
        api_keys.push(key.clone());
    }
    let state = AppState::new(ServerConfig { api_keys });
    state.models.begin_loading(plan.served_name.clone());
    let address = format!("{}:{}", args.host, args.port);
    let server = ServerHandle::start(&address, state.clone()).await?;
    let local = server.local_addr();
    tracing::info!(address = %format!("http://{local}"), "listening (model loading)");

    let load = async {
        let model = state
            .models
            .load(&plan.served_name, &runtime::PlanLoader(&plan))
            .await?;
        infer::warm_up(&state).await?;
        anyhow::Ok(model)
    };
    let model = tokio::select! {
        result = load => result?,
        _ = crate::signal::shutdown() => {
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

    crate::signal::shutdown().await;
    tracing::info!(
        timeout_s = args.shutdown_timeout,
        "shutting down: no new connections, finishing in-flight requests"
    );
    if !server
        .stop(Duration::from_secs(args.shutdown_timeout))
        .await?
    {
        tracing::warn!("in-flight requests did not finish before the deadline; exiting");
    }
    tracing::info!("stopped");
    Ok(())
}
