//! Cache entries: a final file, its `.part` while downloading, its `.lock`, and a `.sha256`
//! sidecar remembering a verified checksum so it is computed once.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use super::sha256_file;
use crate::error::{Error, Result};

/// `path` with `suffix` appended to its file name (`model.gguf` → `model.gguf.part`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Creates the directory that will hold `path`.
pub(crate) fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => fs::create_dir_all(dir).map_err(|e| {
            Error::io(
                format!("cannot create cache directory {}", dir.display()),
                e,
            )
        }),
        None => Ok(()),
    }
}

/// Whether `path` is a usable cache entry: it exists and, when `expected_sha256` is given, has
/// that checksum. A match is remembered in the sidecar so later calls do not hash again.
pub(crate) fn is_cached(path: &Path, expected_sha256: Option<&str>) -> Result<bool> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(false);
    };
    if !meta.is_file() {
        return Ok(false);
    }
    let Some(expected) = expected_sha256 else {
        return Ok(true);
    };
    if let Some((sha, size)) = read_sidecar(path) {
        if size == meta.len() && sha.eq_ignore_ascii_case(expected) {
            return Ok(true);
        }
    }
    let actual = sha256_file(path)?;
    if actual.eq_ignore_ascii_case(expected) {
        write_sidecar(path, &actual, meta.len());
        Ok(true)
    } else {
        tracing::warn!(
            path = %path.display(),
            expected,
            actual,
            "cached file does not have the expected sha256; downloading it again"
        );
        Ok(false)
    }
}

/// Moves a complete, verified `part` to `dest` (atomic within a file system) and records `sha256`.
pub(crate) fn install(part: &Path, dest: &Path, sha256: &str) -> Result<()> {
    let sidecar = sibling(dest, ".sha256");
    let _ = fs::remove_file(&sidecar);
    fs::rename(part, dest).map_err(|e| {
        Error::io(
            format!("cannot move {} to {}", part.display(), dest.display()),
            e,
        )
    })?;
    let size = fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    write_sidecar(dest, sha256, size);
    Ok(())
}

fn read_sidecar(path: &Path) -> Option<(String, u64)> {
    let text = fs::read_to_string(sibling(path, ".sha256")).ok()?;
    let mut words = text.split_whitespace();
    let sha = words.next()?.to_owned();
    let size = words.next()?.parse().ok()?;
    Some((sha, size))
}

/// Best effort: a missing sidecar only costs one more hash.
fn write_sidecar(path: &Path, sha256: &str, size: u64) {
    let sidecar = sibling(path, ".sha256");
    if let Err(e) = fs::write(&sidecar, format!("{sha256} {size}\n")) {
        tracing::debug!(path = %sidecar.display(), error = %e, "cannot write checksum sidecar");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_remembers_verification() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.gguf");
        fs::write(&file, b"abc").unwrap();
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sibling(&file, ".part"), dir.path().join("m.gguf.part"));
        assert!(is_cached(&file, None).unwrap());
        assert!(!is_cached(&file, Some(&"0".repeat(64))).unwrap());
        assert!(is_cached(&file, Some(sha)).unwrap());
        assert_eq!(read_sidecar(&file), Some((sha.to_owned(), 3)));
        assert!(!is_cached(&dir.path().join("absent"), Some(sha)).unwrap());
    }
}
