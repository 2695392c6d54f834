//! An OCI artifact as a [`Source`]: the manifest is read from the registry, the weights layer
//! streamed into the store while it is hashed (resuming with `Range`), checked against its digest
//! and committed under the key `oci/REGISTRY/REPOSITORY:TAG` (or `@DIGEST`).

use super::credentials::Credentials;
use super::media;
use super::registry::Registry;
use crate::error::{Error, Result};
use crate::model::fetch::http::{self, Download, Get};
use crate::model::store::{ModelFormat, ModelStore, Progress, Source, StoredModel};
use crate::model::OciReference;

/// A model artifact in an OCI registry.
#[derive(Debug, Clone)]
pub struct OciArtifact {
    reference: OciReference,
    insecure: bool,
}

impl OciArtifact {
    /// The artifact `reference` names; `insecure` speaks plain HTTP to its registry.
    pub fn new(reference: OciReference, insecure: bool) -> Self {
        Self {
            reference,
            insecure,
        }
    }

    /// The artifact, over plain HTTP when its registry is on this machine (`localhost`,
    /// `127.0.0.1`, `::1`) or listed in `insecure_registries` (`HOST[:PORT]` or `HOST`).
    pub fn with_insecure_list(reference: OciReference, insecure_registries: &[String]) -> Self {
        let host = reference
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let insecure = matches!(host, "localhost" | "127.0.0.1" | "::1")
            || insecure_registries
                .iter()
                .any(|r| r == &reference.registry || r == reference.host());
        Self::new(reference, insecure)
    }

    /// The reference.
    pub fn reference(&self) -> &OciReference {
        &self.reference
    }

    /// Whether its registry is spoken to over plain HTTP.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }
}

impl Source for OciArtifact {
    fn key(&self) -> String {
        let r = &self.reference;
        match (&r.tag, &r.digest) {
            (_, Some(digest)) => format!("oci/{}/{}@{digest}", r.registry, r.repository),
            (Some(tag), None) => format!("oci/{}/{}:{tag}", r.registry, r.repository),
            (None, None) => format!("oci/{}/{}", r.registry, r.repository),
        }
    }

    fn resolve(&self, store: &ModelStore, progress: &dyn Progress) -> Result<StoredModel> {
        let key = self.key();
        // A digest never moves; a tag may, so a stored tag is checked against the registry's
        // manifest unless KAITO_OFFLINE is set (or the registry cannot answer).
        let cached = match store.lookup(&key, None)? {
            Some(found) if self.reference.digest.is_some() || offline() => {
                tracing::debug!(path = %found.primary.display(), "using the stored artifact");
                return Ok(found);
            }
            other => other,
        };
        let credentials = Credentials::find(&self.reference.registry)?;
        let registry = Registry::new(&self.reference, self.insecure, credentials);
        let (manifest, fetched) = match registry.manifest(self.reference.manifest_reference()) {
            Ok(found) => found,
            Err(e) => match cached {
                Some(found) => {
                    tracing::warn!(artifact = %self.reference, error = %e, "cannot ask the registry whether the tag moved; using the stored copy");
                    return Ok(found);
                }
                None => return Err(e),
            },
        };
        let weights = media::weights(&manifest)?;
        let hex = weights
            .layer
            .digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64)
            .ok_or_else(|| Error::Download {
                url: registry.blob_url(&weights.layer.digest),
                message: format!(
                    "the weights layer has digest `{}`, not a sha256",
                    weights.layer.digest
                ),
            })?
            .to_ascii_lowercase();
        if let Some(found) = cached {
            if found.digest.as_deref() == Some(weights.layer.digest.as_str()) {
                tracing::debug!(path = %found.primary.display(), "the tag still names the stored artifact");
                return Ok(found);
            }
            tracing::info!(artifact = %self.reference, was = found.digest.as_deref().unwrap_or("?"), now = %weights.layer.digest, "the tag moved; pulling what it names now");
        }
        tracing::info!(artifact = %self.reference, manifest = %fetched.digest, layer = %weights.layer.digest, size = weights.layer.size, "pulling");
        let ingest = store.ingest(&key, &self.reference.to_string())?;
        if let Some(found) = ingest.lookup(Some(&hex))? {
            return Ok(found);
        }
        // The same layer under another tag or repository: link it, no download.
        let ingest = match ingest.link_stored(&weights.file_name, &hex, ModelFormat::Gguf)? {
            Ok(found) => return Ok(found),
            Err(ingest) => ingest,
        };
        let url = registry.blob_url(&weights.layer.digest);
        let authorization = registry.authorization();
        let download = Download {
            get: Get {
                url: &url,
                authorization: authorization.as_deref(),
                ..Get::default()
            },
            expected_sha256: Some(&hex),
            progress,
            label: &weights.file_name,
        };
        let sha = http::download(&http::agent(), &download, &ingest.part()).map_err(|f| {
            let e = Error::from(f);
            match e {
                Error::Download { url, message } => Error::Download {
                    url,
                    message: format!(
                        "layer {} ({}): {message}",
                        weights.layer.digest, weights.file_name
                    ),
                },
                other => other,
            }
        })?;
        // The digest matched, so these are the layer's bytes, whatever size the manifest claims.
        ingest.commit(&weights.file_name, &sha, ModelFormat::Gguf)
    }
}

/// `KAITO_OFFLINE` set to anything but `0`/`false`/empty: use stored tags without asking the
/// registry whether they moved.
fn offline() -> bool {
    std::env::var("KAITO_OFFLINE")
        .map(|v| !matches!(v.trim(), "" | "0" | "false"))
        .unwrap_or(false)
}
