//! Models as OCI artifacts (feature `oci`): `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]`
//! pulled into the model store ([`OciArtifact`], a [`Source`](crate::model::store::Source)), and
//! a GGUF file packaged as a CNCF ModelPack artifact ([`package`]) written as an OCI image layout
//! or pushed.
//!
//! Registries speak the OCI distribution spec; plain HTTP is used for `localhost`, `127.0.0.1`,
//! `::1` and the hosts in `$KAITO_INSECURE_REGISTRIES` (comma-separated), HTTPS elsewhere.
//! Credentials: see [`Credentials`].

mod credentials;
pub mod media;
mod package;
mod pull;
mod registry;

pub use credentials::Credentials;
pub use package::{package, Packaged, PushReport};
pub use pull::OciArtifact;

/// The registries to speak plain HTTP to besides this machine's: `$KAITO_INSECURE_REGISTRIES`.
pub fn insecure_registries() -> Vec<String> {
    std::env::var("KAITO_INSECURE_REGISTRIES")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// For each blob the model store holds from `registry` (`HOST[:PORT]`), the repositories of that
/// registry it was pulled from: where a push to the same registry can mount it from
/// ([`Packaged::push`]).
pub fn stored_repositories(
    store: &crate::model::store::ModelStore,
    registry: &str,
) -> crate::error::Result<std::collections::BTreeMap<String, Vec<String>>> {
    let prefix = format!("oci/{registry}/");
    let mut out = std::collections::BTreeMap::new();
    for entry in store.entries()? {
        let repos: Vec<String> = entry
            .keys
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|rest| rest.split([':', '@']).next())
            .map(str::to_owned)
            .collect();
        if !repos.is_empty() {
            out.insert(entry.digest, repos);
        }
    }
    Ok(out)
}
