//! The `kaito` command: serve a model over an OpenAI-compatible API, chat with it, or generate once.

mod args;
mod artifact;
mod bench;
mod cache;
mod chat;
mod convert;
mod k8s;
mod logging;
mod quantize;
mod runtime;
mod serve;
mod signal;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match &cli.command {
        Command::Serve(a) => a.log_format,
        _ => args::LogFormat::Text,
    };
    logging::init(log_format, cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(a) => serve::run(a).await,
            Command::Chat(a) => chat::run_chat(a).await,
            Command::Generate(a) => chat::run_generate(a).await,
            Command::Pull(a) => runtime::pull(a.load_options(), a.hold).await,
            Command::Cache(a) => cache::run(a),
            Command::Model(a) => artifact::run(a).await,
            Command::Convert(a) => convert::run(a).await,
            Command::Quantize(a) => quantize::run(a).await,
            Command::Bench(a) => bench::run(a).await,
            Command::Crd => k8s::crd(),
            Command::Render(a) => k8s::render(&a.file),
            Command::Estimate(a) => k8s::estimate(&a.file),
            Command::Controller(opts) => kaito_k8s::cli::run_controller(opts)
                .await
                .map_err(Into::into),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// One line: the error and its causes joined by ": ".
fn format_error(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}
