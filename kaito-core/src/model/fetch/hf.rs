//! Hugging Face files: `{endpoint}/{repo}/resolve/{revision}/{file}`.

use std::path::{Path, PathBuf};

use super::http::{self, Download, Failure, Get};
use super::{url, FetchOptions};
use crate::error::{Error, Result};
use crate::model::store::{ModelFormat, ModelStore, Progress, Source, StoredModel};

/// Where the cache before the store kept `repo`/`file`@`revision` (after validating the names).
pub(crate) fn legacy_path(
    cache_dir: &Path,
    repo: &str,
    file: &str,
    revision: &str,
) -> Result<PathBuf> {
    let bad = |what: &str, value: &str| {
        Error::spec("model", format!("invalid Hugging Face {what} `{value}`"))
    };
    let safe = |path: &str| {
        !path.is_empty()
            && !path.starts_with('/')
            && !path.contains('\\')
            && path
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != "..")
    };
    if !safe(repo) || repo.split('/').count() != 2 {
        return Err(bad("repository", repo));
    }
    if !safe(file) {
        return Err(bad("file", file));
    }
    if revision.is_empty() || revision.contains("..") {
        return Err(bad("revision", revision));
    }
    // `refs/pr/1` is a valid revision: keep it one directory level.
    let revision_dir = url::encode(revision, false);
    Ok(cache_dir
        .join("hf")
        .join(repo)
        .join(revision_dir)
        .join(file))
}

/// A file in a Hugging Face repository, as a [`Source`]: stored under the key
/// `hf/ORG/REPO/REVISION/FILE`.
///
/// Downloads `{endpoint}/{repo}/resolve/{revision}/{file}` (following redirects to the CDN) with
/// the token as bearer, sent to the endpoint only. The file is checked against the expected
/// sha256 if given, else against the sha256 Hugging Face publishes for LFS files
/// (`X-Linked-Etag`). HTTP 401/403 and 404 become [`Error::Download`] messages naming the file
/// and `HF_TOKEN`.
#[derive(Debug, Clone)]
pub struct HuggingFaceFile {
    repo: String,
    file: String,
    revision: String,
    sha256: Option<String>,
    endpoint: String,
    token: Option<String>,
}

impl HuggingFaceFile {
    /// `repo`/`file`@`revision` with the endpoint, token and expected sha256 of `options`.
    pub fn new(repo: &str, file: &str, revision: &str, options: &FetchOptions) -> Self {
        Self {
            repo: repo.to_owned(),
            file: file.to_owned(),
            revision: revision.to_owned(),
            sha256: options.expected_sha256.clone(),
            endpoint: options.hf_endpoint(),
            token: options.hf_token(),
        }
    }
}

impl Source for HuggingFaceFile {
    fn key(&self) -> String {
        format!("hf/{}/{}/{}", self.repo, self.revision, self.file)
    }

    fn resolve(&self, store: &ModelStore, progress: &dyn Progress) -> Result<StoredModel> {
        let (repo, file, revision) = (&*self.repo, &*self.file, &*self.revision);
        let old = legacy_path(store.root(), repo, file, revision)?;
        let key = self.key();
        let expected = self.sha256.as_deref();
        if let Some(found) = store.lookup(&key, expected)? {
            tracing::debug!(path = %found.primary.display(), "using the stored file");
            return Ok(found);
        }
        let what = format!("{repo}/{file}@{revision}");
        let ingest = store.ingest(&key, &what)?;
        if let Some(found) = ingest.lookup(expected)? {
            return Ok(found);
        }
        let ingest = match ingest.adopt(&old, file, expected, ModelFormat::Gguf)? {
            Ok(found) => return Ok(found),
            Err(ingest) => ingest,
        };

        let url = format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint.trim_end_matches('/'),
            url::encode(repo, true),
            url::encode(revision, false),
            url::encode(file, true)
        );
        tracing::info!(%url, "downloading {what}");
        let authorization = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let download = Download {
            get: Get {
                url: &url,
                authorization: authorization.as_deref(),
                ..Get::default()
            },
            expected_sha256: expected,
            progress,
            label: url::file_name(file),
        };
        let sha256 = http::download(&http::agent(), &download, &ingest.part())
            .map_err(|e| explain(e, repo, file, revision, self.token.is_some()))?;
        let stored = ingest.commit(file, &sha256, ModelFormat::Gguf)?;
        tracing::info!(path = %stored.primary.display(), sha256, "downloaded {what}");
        Ok(stored)
    }
}

/// Words HTTP statuses in Hugging Face terms.
fn explain(failure: Failure, repo: &str, file: &str, revision: &str, has_token: bool) -> Error {
    let Failure::Status { code, url, detail } = failure else {
        return failure.into();
    };
    if !matches!(code, 401 | 403 | 404) {
        return Failure::Status { code, url, detail }.into();
    }
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" (server: {detail})")
    };
    let message = match code {
        401 | 403 => {
            let token = if has_token {
                "the token in HF_TOKEN was refused or does not grant access to it; check the token and accept the model's terms on its Hugging Face page"
            } else {
                "set HF_TOKEN to a Hugging Face access token (https://huggingface.co/settings/tokens) that can read it"
            };
            format!(
                "access denied (HTTP {code}) to `{file}` in repository `{repo}` at revision `{revision}`: the repository is private, gated, or does not exist; {token}{detail}"
            )
        }
        _ => format!(
            "not found (HTTP 404): repository `{repo}` has no file `{file}` at revision `{revision}` (check the repository, file path and revision){detail}"
        ),
    };
    Error::Download { url, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_paths() {
        let root = Path::new("/c");
        let p = legacy_path(root, "org/repo", "sub/m.gguf", "refs/pr/1").unwrap();
        assert_eq!(p, Path::new("/c/hf/org/repo/refs%2Fpr%2F1/sub/m.gguf"));
        assert!(legacy_path(root, "org/repo", "../x", "main").is_err());
        assert!(legacy_path(root, "org", "x", "main").is_err());
        assert!(legacy_path(root, "org/repo", "/x", "main").is_err());
        assert!(legacy_path(root, "org/repo", "x", "..").is_err());
    }

    #[test]
    fn explains_statuses() {
        let status = |code: u16, detail: &str| Failure::Status {
            code,
            url: "u".into(),
            detail: detail.into(),
        };
        let msg = explain(
            status(401, "Invalid credentials"),
            "o/r",
            "f.gguf",
            "main",
            false,
        )
        .to_string();
        assert!(
            msg.contains("HF_TOKEN") && msg.contains("Invalid credentials"),
            "{msg}"
        );
        let msg = explain(status(404, ""), "o/r", "f.gguf", "v1", false).to_string();
        assert!(
            msg.contains("o/r") && msg.contains("f.gguf") && msg.contains("v1"),
            "{msg}"
        );
        let msg = explain(status(500, "boom"), "o/r", "f", "main", false).to_string();
        assert!(msg.contains("HTTP 500: boom"), "{msg}");
    }
}
