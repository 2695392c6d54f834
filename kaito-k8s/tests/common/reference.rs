// Where KAITO's own reference manifests are (`crds/`, `examples/`, `supported_models.yaml`).
// The one lookup of the kaito-k8s tests: `tests/common/mod.rs` declares it as a module and the
// unit tests of `src/catalogue.rs` `include!` it, so every test follows the same rule.
//
// Plain `//` comments only: `include!` does not accept inner doc comments.

/// True when the tests run under CI: `CI` is set to anything but empty, `0` or `false`.
pub fn under_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// The folders [`reference_dir`] looks at, in order. An explicitly set `KAITO_REFERENCE_DIR`
/// (or, under its older name, `KAITO_SHARED_DIR`, the folder holding `kaito-reference/`) is the
/// only candidate, so pointing it at a missing path means "absent" rather than "look elsewhere".
pub fn reference_candidates() -> Vec<std::path::PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("KAITO_REFERENCE_DIR") {
        return vec![std::path::PathBuf::from(dir)];
    }
    if let Some(shared) = set("KAITO_SHARED_DIR") {
        return vec![std::path::PathBuf::from(shared).join("kaito-reference")];
    }
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the repository")
        .to_path_buf();
    vec![
        repo.join("../shared/kaito-reference"),
        repo.join("shared/kaito-reference"),
    ]
}

/// KAITO's reference manifests: `$KAITO_REFERENCE_DIR` when set, else
/// `<repo>/../shared/kaito-reference`, else `<repo>/shared/kaito-reference`.
///
/// Absent: under CI the calling test fails (CI always has them); otherwise `None`, and the first
/// call of the test binary prints one notice. The notice goes straight to the process's stderr,
/// so it shows without `--nocapture`.
pub fn reference_dir() -> Option<std::path::PathBuf> {
    let candidates = reference_candidates();
    if let Some(found) = candidates.iter().find(|p| p.is_dir()) {
        return Some(found.clone());
    }
    let tried = candidates
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if under_ci() {
        panic!(
            "KAITO's reference manifests are required under CI and were not found at {tried}; set KAITO_REFERENCE_DIR"
        );
    }
    static NOTICE: std::sync::Once = std::sync::Once::new();
    NOTICE.call_once(|| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr().lock(),
            "NOTICE: KAITO's reference manifests not found ({tried}); the checks against KAITO's own \
             examples, CRDs and model list are skipped, the project's fixtures \
             (kaito-k8s/tests/fixtures) still run. Set KAITO_REFERENCE_DIR to include them."
        );
    });
    None
}
