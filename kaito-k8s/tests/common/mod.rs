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

/// `shared/kaito-reference`: `$KAITO_REFERENCE_DIR`, else `<repo>/../shared/kaito-reference`, else
/// `<repo>/shared/kaito-reference`. Missing: the test fails under `CI`, otherwise skips with a notice.
pub fn reference_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("KAITO_REFERENCE_DIR") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(repo_root().join("../shared/kaito-reference"));
    candidates.push(repo_root().join("shared/kaito-reference"));
    if let Some(found) = candidates.into_iter().find(|p| p.join("examples").is_dir()) {
        return Some(found);
    }
    if std::env::var_os("CI").is_some() {
        panic!("shared/kaito-reference not found (set KAITO_REFERENCE_DIR); required under CI");
    }
    eprintln!("NOTICE: shared/kaito-reference not found; skipping (set KAITO_REFERENCE_DIR)");
    None
}

/// Every file in `kaito-reference/examples`, sorted.
pub fn kaito_examples() -> Vec<PathBuf> {
    let Some(dir) = reference_dir() else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("examples"))
        .unwrap()
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
    if std::env::var_os("CI").is_some() {
        panic!("kubernetes-validate not found (pip install kubernetes-validate==1.37.0, or set KUBERNETES_VALIDATE); required under CI");
    }
    eprintln!("NOTICE: kubernetes-validate not found; schema validation skipped (pip install kubernetes-validate==1.37.0)");
    None
}
