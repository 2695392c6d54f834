//! Embed kaito's OpenAI-compatible server in your own program.
//!
//! `cargo run --release -p kaito-examples --example embedded_server` then
//! `curl http://127.0.0.1:8181/v1/chat/completions -H 'content-type: application/json' -d '{"model":"smollm2-135m-instruct","messages":[{"role":"user","content":"Hi"}]}'`

use kaito_core::infer::{self, AdmissionLimits, AppState, ModelHandle, ServerConfig};
use kaito_core::model::{catalogue, fetch};
use kaito_core::server::ServerHandle;
use kaito_core::EngineConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. Weights: the bundled preset, fetched into the cache once.
    let preset = catalogue::default_preset();
    let options = fetch::FetchOptions {
        progress: true,
        ..Default::default()
    };
    let path = tokio::task::spawn_blocking(move || fetch::fetch_preset(preset, &options)).await??;

    // 2. Engine: llama.cpp with one thread and two parallel sequences.
    let engine = EngineConfig::default().with_threads(1).with_parallel(2);
    // Admission (requests decoding, then waiting, before 503) follows the engine's settings.
    let limits = AdmissionLimits::from(&engine);
    let name = preset.name.to_owned();
    let backend =
        tokio::task::spawn_blocking(move || kaito_backends::load(&path, &name, &engine)).await??;

    // 3. Server state: the model served under its preset name; warm-up, then serve until Ctrl-C.
    let state = AppState::new(ServerConfig::default());
    state
        .models
        .insert(ModelHandle::new(preset.name, backend, limits)?);
    infer::warm_up(&state).await?;
    let server = ServerHandle::start("127.0.0.1:8181", state).await?;
    println!(
        "serving {} at http://{}/v1 (Ctrl-C stops)",
        preset.name,
        server.local_addr()
    );
    tokio::signal::ctrl_c().await?;
    // Stop accepting connections; give requests in flight 10 s to finish.
    server.stop(std::time::Duration::from_secs(10)).await?;
    Ok(())
}
