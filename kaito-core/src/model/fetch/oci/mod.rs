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
pub use package::{package, Packaged};
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
