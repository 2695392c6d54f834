//! Registry credentials, read where container tools keep them: `$KAITO_REGISTRY_AUTH` (one file
//! or a `:`-separated list), then
//! `$REGISTRY_AUTH_FILE` (podman, skopeo), then `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`: the `auths` entry of the registry (`HOST[:PORT]`, also with an
//! `https://` prefix), either `auth` (base64 of `user:password`) or `username` and `password`.

use std::path::PathBuf;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
    /// The file they came from, for messages.
    pub origin: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The `Authorization: Basic` value.
    pub fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// The credentials for `registry` (`HOST[:PORT]`) from the first auth file that has them.
    pub fn find(registry: &str) -> Result<Option<Self>> {
        for path in auth_files() {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let Some(found) = Self::from_auth_file(&text, registry, &path.display().to_string())?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The credentials for `registry` in the docker-config JSON `text` (named `origin`).
    pub fn from_auth_file(text: &str, registry: &str, origin: &str) -> Result<Option<Self>> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            auths: std::collections::BTreeMap<String, Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            auth: Option<String>,
            username: Option<String>,
            password: Option<String>,
        }
        let bad = |why: String| Error::spec("registry credentials", format!("{origin}: {why}"));
        let file: File = serde_json::from_str(text)
            .map_err(|e| bad(format!("not a docker config file: {e}")))?;
        let entry = file.auths.iter().find(|(key, _)| {
            let key = key
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            key == registry || key.split('/').next() == Some(registry)
        });
        let Some((_, entry)) = entry else {
            return Ok(None);
        };
        let (username, password) = match (&entry.auth, &entry.username, &entry.password) {
            (Some(auth), _, _) if !auth.is_empty() => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|e| bad(format!("the `auth` of `{registry}` is not base64: {e}")))?;
                let text = String::from_utf8(decoded)
                    .map_err(|_| bad(format!("the `auth` of `{registry}` is not text")))?;
                let (u, p) = text.split_once(':').ok_or_else(|| {
                    bad(format!("the `auth` of `{registry}` is not user:password"))
                })?;
                (u.to_owned(), p.to_owned())
            }
            (_, Some(u), Some(p)) => (u.clone(), p.clone()),
            _ => return Ok(None),
        };
        Ok(Some(Self {
            username,
            password,
            origin: origin.to_owned(),
        }))
    }
}

fn auth_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    // `$KAITO_REGISTRY_AUTH` may list several files (`a.json:b.json`, as the cluster mounts one
    // per Secret); the first that has the registry wins.
    if let Some(list) = std::env::var_os("KAITO_REGISTRY_AUTH") {
        files.extend(std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(dir).join("config.json"));
    } else if let Some(home) = std::env::var_os("HOME") {
        files.push(PathBuf::from(home).join(".docker").join("config.json"));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_entries() {
        let text = r#"{"auths": {"https://reg.example.com": {"auth": "YWxpY2U6czNjcmV0"},
                       "127.0.0.1:5000": {"username": "bob", "password": "pw"}}}"#;
        let a = Credentials::from_auth_file(text, "reg.example.com", "f")
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str()),
            ("alice", "s3cret")
        );
        assert_eq!(a.basic(), "Basic YWxpY2U6czNjcmV0");
        let b = Credentials::from_auth_file(text, "127.0.0.1:5000", "f")
            .unwrap()
            .unwrap();
        assert_eq!(b.username, "bob");
        assert!(Credentials::from_auth_file(text, "other", "f")
            .unwrap()
            .is_none());
        let bad = r#"{"auths": {"r": {"auth": "!!"}}}"#;
        assert!(Credentials::from_auth_file(bad, "r", "f")
            .unwrap_err()
            .to_string()
            .contains("base64"));
    }
}
