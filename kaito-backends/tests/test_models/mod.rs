//! Where the backend tests find SmolLM2-135M-Instruct, the real model every engine test runs:
//!
//! - the Q4_1 GGUF: `$KAITO_TEST_MODEL`, else the bundled preset, fetched into the kaito cache
//!   once (as `kaito pull` does);
//! - its Hugging Face checkpoint (f32 safetensors, for the torch and quant engines):
//!   `$KAITO_TEST_HF_DIR`, else converted from that GGUF once (as `kaito convert` does) into
//!   `<kaito cache>/derived/<GGUF name>-hf-f32/` and reused by later runs.
//!
//! So a plain `cargo test` needs no environment; `scripts/test.sh` sets both variables to
//! share one copy between the Rust and Python suites.
#![allow(dead_code)] // Each test file uses the part its features need.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kaito_core::model::convert::{convert_gguf_to_hf, ConvertOptions};
use kaito_core::model::{catalogue, default_cache_dir, fetch};

/// The SmolLM2-135M-Instruct Q4_1 GGUF.
pub fn gguf() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| match std::env::var_os("KAITO_TEST_MODEL") {
        Some(p) => existing(PathBuf::from(p), "KAITO_TEST_MODEL"),
        None => fetch::fetch_preset(catalogue::default_preset(), &fetch::FetchOptions::default())
            .expect("fetch the bundled SmolLM2 model into the kaito cache"),
    })
    .clone()
}

/// The Hugging Face checkpoint of [`gguf`] (f32).
pub fn hf_dir() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| match std::env::var_os("KAITO_TEST_HF_DIR") {
        Some(p) => existing(PathBuf::from(p), "KAITO_TEST_HF_DIR"),
        None => converted(&gguf()),
    })
    .clone()
}

fn existing(path: PathBuf, var: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{var}={} does not exist (unset it to let the tests fetch or convert the model themselves)",
        path.display()
    );
    path
}

/// Converts `gguf` once per cache: into a private folder, renamed into place when complete, so
/// that test binaries running at the same time never read a half-written checkpoint.
fn converted(gguf: &Path) -> PathBuf {
    let stem = gguf.file_stem().unwrap_or_default().to_string_lossy();
    let derived = default_cache_dir().join("derived");
    let out = derived.join(format!("{stem}-hf-f32"));
    if out.join("config.json").exists() {
        return out;
    }
    std::fs::create_dir_all(&derived).expect("create the derived-model cache folder");
    let partial = derived.join(format!(".{stem}-hf-f32.partial-{}", std::process::id()));
    eprintln!(
        "NOTICE: converting {} into {} for the torch and quant tests (once; set KAITO_TEST_HF_DIR to use another checkpoint)",
        gguf.display(),
        out.display()
    );
    let _ = std::fs::remove_dir_all(&partial);
    convert_gguf_to_hf(gguf, &partial, &ConvertOptions::default())
        .expect("convert the SmolLM2 GGUF to a Hugging Face checkpoint");
    if std::fs::rename(&partial, &out).is_err() {
        // Another process finished first: its copy is complete, ours is not needed.
        let _ = std::fs::remove_dir_all(&partial);
        assert!(
            out.join("config.json").exists(),
            "{} is incomplete",
            out.display()
        );
    }
    out
}
