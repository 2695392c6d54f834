//! Names in the store: source keys as single file names, and the checks on what becomes a path.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Longest encoded key kept readable; longer keys are stored under their sha256.
const MAX_READABLE: usize = 160;

/// `key` as one file name: bytes outside `[A-Za-z0-9._-]` become `%XX` (so `/` is `%2F`);
/// a key too long for a file name becomes `sha256-HEX` of it.
pub(super) fn file_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_READABLE || out.starts_with('.') {
        return format!("sha256-{:x}", Sha256::digest(key.as_bytes()));
    }
    out
}

/// Whether `s` is 64 lowercase hex digits.
pub(super) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The last component of `file` when it is a usable file name.
pub(super) fn plain_file_name(file: &str) -> Result<&str> {
    let name = file.rsplit('/').next().unwrap_or(file);
    if name.is_empty() || name == "." || name == ".." || name.contains('\\') {
        return Err(Error::spec(
            "model",
            format!("`{file}` does not end in a file name"),
        ));
    }
    Ok(name)
}

/// The components of `path`, a relative path inside a model directory: each a usable file name
/// (no empty, `.` or `..` component, no backslash), not absolute.
pub(super) fn relative_path(path: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').collect();
    let bad = path.starts_with('/')
        || parts
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\\'));
    if bad {
        return Err(Error::spec(
            "model",
            format!("`{path}` is not a relative path inside the model's directory"),
        ));
    }
    Ok(parts)
}

/// `path` with `suffix` appended to its file name (`model.gguf` → `model.gguf.sha256`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_one_file_name() {
        assert_eq!(
            file_name("hf/org/repo/refs/pr/1/m.gguf"),
            "hf%2Forg%2Frepo%2Frefs%2Fpr%2F1%2Fm.gguf"
        );
        assert_eq!(file_name("a b%"), "a%20b%25");
        let long = file_name(&"x/".repeat(100));
        assert!(long.starts_with("sha256-") && long.len() == 71, "{long}");
        assert!(file_name("..").starts_with("sha256-"));
        assert!(plain_file_name("sub/m.gguf").is_ok_and(|n| n == "m.gguf"));
        assert!(plain_file_name("sub/..").is_err());
        assert_eq!(relative_path("a/b.json").unwrap(), ["a", "b.json"]);
        for bad in ["/etc/passwd", "a/../b", "a//b", "./a", ""] {
            assert!(relative_path(bad).is_err(), "{bad}");
        }
        assert!(is_sha256_hex(&"ab".repeat(32)));
        assert!(!is_sha256_hex(&"AB".repeat(32)));
    }
}
