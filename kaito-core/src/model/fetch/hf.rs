//! Hugging Face files: `{endpoint}/{repo}/resolve/{revision}/{file}`.

use std::path::{Path, PathBuf};

use super::cache::{self, sibling};
use super::http::{self, Download, Failure, Get};
use super::lock::Lock;
use super::{url, FetchOptions};
use crate::error::{Error, Result};

/// Where `repo`/`file`@`revision` lives in the cache (after validating the names).
pub(crate) fn cache_path(
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

/// Fetches the file (see [`super::fetch_hf`]).
pub(crate) fn fetch(
    repo: &str,
    file: &str,
    revision: &str,
    options: &FetchOptions,
) -> Result<PathBuf> {
    let dest = cache_path(&options.cache_dir, repo, file, revision)?;
    let expected = options.expected_sha256.as_deref();
    if cache::is_cached(&dest, expected)? {
        tracing::debug!(path = %dest.display(), "using cached file");
        return Ok(dest);
    }
    cache::create_parent(&dest)?;
    let what = format!("{repo}/{file}@{revision}");
    let _lock = Lock::acquire(&sibling(&dest, ".lock"), &what)?;
    if cache::is_cached(&dest, expected)? {
        return Ok(dest);
    }

    let endpoint = options.hf_endpoint();
    let url = format!(
        "{}/{}/resolve/{}/{}",
        endpoint.trim_end_matches('/'),
        url::encode(repo, true),
        url::encode(revision, false),
        url::encode(file, true)
    );
    let token = options.hf_token();
    tracing::info!(%url, dest = %dest.display(), "downloading {what}");
    let download = Download {
        get: Get {
            url: &url,
            bearer: token.as_deref(),
            ..Get::default()
        },
        expected_sha256: expected,
        progress: options.progress,
        label: url::file_name(file),
    };
    let part = sibling(&dest, ".part");
    let sha256 = http::download(&http::agent(), &download, &part)
        .map_err(|e| explain(e, repo, file, revision, token.is_some()))?;
    cache::install(&part, &dest, &sha256)?;
    tracing::info!(path = %dest.display(), sha256, "downloaded {what}");
    Ok(dest)
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
        let p = cache_path(root, "org/repo", "sub/m.gguf", "refs/pr/1").unwrap();
        assert_eq!(p, Path::new("/c/hf/org/repo/refs%2Fpr%2F1/sub/m.gguf"));
        assert!(cache_path(root, "org/repo", "../x", "main").is_err());
        assert!(cache_path(root, "org", "x", "main").is_err());
        assert!(cache_path(root, "org/repo", "/x", "main").is_err());
        assert!(cache_path(root, "org/repo", "x", "..").is_err());
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
