//! Test support shared by the integration tests.
#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

mod reference;

pub use reference::{reference_dir, under_ci};

/// Every `.yaml` file of KAITO's `examples/`, sorted; empty (after the one notice) when the
/// reference manifests are absent. See [`reference_dir`].
pub fn kaito_examples() -> Vec<PathBuf> {
    let Some(dir) = reference_dir() else {
        return Vec::new();
    };
    yaml_files(&dir.join("examples"))
}

/// The project's own manifests (`kaito-k8s/tests/fixtures/*.yaml`), sorted. They cover every
/// Workspace/InferenceSet feature KAITO's examples exercise (the table is in
/// `tests/fixtures/README.md`), so the tests that loop over KAITO's examples test those features
/// in any clone.
pub fn our_fixtures() -> Vec<PathBuf> {
    let files = yaml_files(&fixtures_dir());
    assert!(files.len() >= 20, "fixtures missing: {files:?}");
    files
}

/// `kaito-k8s/tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// What the manifest loops run over: `("ours/<file>", path)` for every fixture and, when the
/// reference manifests are there, `("kaito/<file>", path)` for every KAITO example.
pub fn all_manifests() -> Vec<(String, PathBuf)> {
    let label =
        |prefix: &str, p: &Path| format!("{prefix}/{}", p.file_name().unwrap().to_string_lossy());
    let mut out: Vec<(String, PathBuf)> = kaito_examples()
        .into_iter()
        .map(|p| (label("kaito", &p), p))
        .collect();
    out.extend(our_fixtures().into_iter().map(|p| (label("ours", &p), p)));
    out
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// The `kubernetes-validate` executable: `$KUBERNETES_VALIDATE`, else on `PATH`, else
/// `<repo>/.venv/bin/kubernetes-validate`. Missing: fails under `CI`, otherwise `None` with a notice.
pub fn kubernetes_validate() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KUBERNETES_VALIDATE") {
        return Some(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("kubernetes-validate");
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let venv = repo_root().join(".venv/bin/kubernetes-validate");
    if venv.is_file() {
        return Some(venv);
    }
    if under_ci() {
        panic!("kubernetes-validate not found (pip install kubernetes-validate==1.37.0, or set KUBERNETES_VALIDATE); required under CI");
    }
    eprintln!("NOTICE: kubernetes-validate not found; schema validation skipped (pip install kubernetes-validate==1.37.0)");
    None
}
