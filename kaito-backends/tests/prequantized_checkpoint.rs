//! A checkpoint quantized ahead of time (`kaito quantize`) is served by the quant engine as stored:
//! `auto` picks the quant engine for it, it answers like the float model, and asking for another
//! scheme is refused rather than silently ignored.
#![cfg(feature = "quant")]

mod test_models;

use std::path::PathBuf;

use futures::StreamExt;
use kaito_backends::quant::{quantize_checkpoint, QuantScheme};
use kaito_core::{Backend, EngineConfig, GenerateRequest, GenerationEvent};

fn checkpoint() -> PathBuf {
    test_models::hf_dir()
}

async fn answer(backend: &dyn Backend, question: &str) -> String {
    let prompt = format!("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n");
    let tokens = backend.tokenize(&prompt, false, true).unwrap();
    let mut stream = backend
        .generate(GenerateRequest::new("q", tokens, 24))
        .unwrap();
    let mut bytes = Vec::new();
    while let Some(event) = stream.next().await {
        if let GenerationEvent::Token(t) = event.unwrap() {
            bytes.extend(t.bytes);
        }
    }
    String::from_utf8(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prequantized_checkpoint_is_served_as_stored() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("int8");
    let report = quantize_checkpoint(&checkpoint(), &dir, QuantScheme::Int8).unwrap();
    assert_eq!(
        report.modules.len(),
        30 * 7,
        "every decoder projection is quantized"
    );
    assert!(dir.join("quantization_config.json").is_file());

    let config = EngineConfig::default().with_ctx_size(256).with_parallel(1);
    assert_eq!(
        kaito_backends::resolve_backend(&dir, &config),
        kaito_core::BackendKind::Quant
    );
    let backend = kaito_backends::load(&dir, "int8", &config).unwrap();
    assert_eq!(backend.name(), "quant");
    assert_eq!(backend.model().quantization.as_deref(), Some("INT8"));
    let text = answer(backend.as_ref(), "What is the capital of France?").await;
    assert!(text.contains("Paris"), "{text:?}");

    let mut other = config.clone();
    other.quantization = Some("int4".into());
    let err = kaito_backends::load(&dir, "int8", &other)
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("int4") && message.contains("pre-quantized int8"),
        "{message}"
    );
}
