//! The registry side of the OCI distribution spec, over the downloads' HTTP agent: manifests,
//! blob existence and monolithic uploads, and the two ways registries ask for credentials —
//! `WWW-Authenticate: Basic` and the bearer-token challenge (`Bearer realm=…,service=…,scope=…`).

use std::io::Read;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use ureq::http::Response;
use ureq::Body;

use super::credentials::Credentials;
use super::media;
use crate::error::{Error, Result};
use crate::model::fetch::http;
use crate::model::OciReference;

/// Manifests larger than this are refused.
const MAX_MANIFEST: u64 = 4 << 20;

/// One registry, one repository.
pub(crate) struct Registry {
    base: String,
    repository: String,
    credentials: Option<Credentials>,
    /// `Authorization` value that worked (or the challenge led to).
    authorization: Mutex<Option<String>>,
    agent: ureq::Agent,
}

/// A manifest as the registry returned it.
pub(crate) struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// `sha256:HEX` of `bytes`.
    pub digest: String,
}

impl Registry {
    /// The registry of `reference`, over plain HTTP when `insecure`.
    pub(crate) fn new(
        reference: &OciReference,
        insecure: bool,
        credentials: Option<Credentials>,
    ) -> Self {
        let scheme = if insecure { "http" } else { "https" };
        Self {
            base: format!("{scheme}://{}", reference.registry),
            repository: reference.repository.clone(),
            credentials,
            authorization: Mutex::new(None),
            agent: http::agent(),
        }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.repository)
    }

    /// The `Authorization` header value for blob downloads (after a first request set it up).
    pub(crate) fn authorization(&self) -> Option<String> {
        self.authorization
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The URL of a blob.
    pub(crate) fn blob_url(&self, digest: &str) -> String {
        self.url(&format!("blobs/{digest}"))
    }

    /// Sends a request made by `build`, answering an authentication challenge once.
    fn send(
        &self,
        what: &str,
        url: &str,
        scope_action: &str,
        mut build: impl FnMut(Option<&str>) -> std::result::Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>> {
        let current = self.authorization();
        let response = build(current.as_deref()).map_err(|e| self.unreachable(url, e))?;
        if response.status().as_u16() != 401 {
            return self.unless_forbidden(what, url, response);
        }
        let challenge = header(&response, "www-authenticate").unwrap_or_default();
        let authorization = self.answer(&challenge, scope_action, url)?;
        *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(authorization.clone());
        let response = build(Some(&authorization)).map_err(|e| self.unreachable(url, e))?;
        if response.status().as_u16() == 401 {
            let who = match &self.credentials {
                Some(c) => format!("the credentials for `{}` (from {}) were refused", self.registry_host(), c.origin),
                None => format!("no credentials for `{}` were found (~/.docker/config.json, $REGISTRY_AUTH_FILE or $KAITO_REGISTRY_AUTH)", self.registry_host()),
            };
            return Err(Error::Download {
                url: url.to_owned(),
                message: format!("{what}: the registry refused access (HTTP 401): {who}"),
            });
        }
        self.unless_forbidden(what, url, response)
    }

    /// `response`, or for a 403 an error saying who was refused, with the registry's reason.
    fn unless_forbidden(
        &self,
        what: &str,
        url: &str,
        response: Response<Body>,
    ) -> Result<Response<Body>> {
        if response.status().as_u16() != 403 {
            return Ok(response);
        }
        let body = response
            .into_body()
            .into_with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        // Distribution's error body: {"errors":[{"code":"DENIED","message":"…"}]}.
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let e = v.get("errors")?.get(0)?;
                Some(format!(
                    "{}: {}",
                    e.get("code")?.as_str()?,
                    e.get("message").and_then(|m| m.as_str()).unwrap_or("")
                ))
            })
            .unwrap_or_else(|| body.trim().chars().take(200).collect());
        let who = match &self.credentials {
            Some(c) => format!("the user from {} may not access repository `{}`", c.origin, self.repository),
            None => format!("anonymous access to repository `{}` is not allowed and no credentials were found (~/.docker/config.json, $REGISTRY_AUTH_FILE or $KAITO_REGISTRY_AUTH)", self.repository),
        };
        Err(Error::Download {
            url: url.to_owned(),
            message: format!("{what}: the registry forbids it (HTTP 403: {reason}): {who}"),
        })
    }

    fn registry_host(&self) -> &str {
        self.base.split_once("://").map_or(&self.base, |(_, h)| h)
    }

    fn unreachable(&self, url: &str, e: ureq::Error) -> Error {
        Error::Download {
            url: url.to_owned(),
            message: format!("cannot reach the registry `{}`: {e}", self.registry_host()),
        }
    }

    /// The `Authorization` value a challenge asks for.
    fn answer(&self, challenge: &str, action: &str, url: &str) -> Result<String> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let basic = self.credentials.as_ref().map(Credentials::basic);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => basic.ok_or_else(|| Error::Download {
                url: url.to_owned(),
                message: format!(
                    "the registry `{}` asks for a user name and password (HTTP 401) and none was found in ~/.docker/config.json, $REGISTRY_AUTH_FILE or $KAITO_REGISTRY_AUTH",
                    self.registry_host()
                ),
            }),
            "bearer" => {
                let params = challenge_params(params);
                let realm = params.get("realm").ok_or_else(|| Error::Download {
                    url: url.to_owned(),
                    message: format!("the registry's challenge names no token realm: `{challenge}`"),
                })?;
                let mut token_url = format!("{realm}?");
                if let Some(service) = params.get("service") {
                    token_url.push_str(&format!("service={}&", encode(service)));
                }
                let scope = params
                    .get("scope")
                    .cloned()
                    .unwrap_or_else(|| format!("repository:{}:{action}", self.repository));
                token_url.push_str(&format!("scope={}", encode(&scope)));
                let mut request = self.agent.get(&token_url);
                if let Some(basic) = &basic {
                    request = request.header("Authorization", basic);
                }
                let response = request.call().map_err(|e| self.unreachable(&token_url, e))?;
                let status = response.status().as_u16();
                if status != 200 {
                    return Err(Error::Download {
                        url: token_url,
                        message: format!(
                            "the token service refused (HTTP {status}){}",
                            if basic.is_some() { ": check the registry credentials" } else { "; no credentials were found for this registry" }
                        ),
                    });
                }
                let body: serde_json::Value = read_json(response, &token_url)?;
                body.get("token")
                    .or_else(|| body.get("access_token"))
                    .and_then(|t| t.as_str())
                    .map(|t| format!("Bearer {t}"))
                    .ok_or_else(|| Error::Download {
                        url: token_url,
                        message: "the token service answered without a token".to_owned(),
                    })
            }
            _ => Err(Error::Download {
                url: url.to_owned(),
                message: format!("the registry asks for an authentication kaito does not speak: `{challenge}`"),
            }),
        }
    }

    /// The manifest `reference` names (a tag or `sha256:` digest); an index is resolved to
    /// the model's entry.
    pub(crate) fn manifest(&self, reference: &str) -> Result<(media::Manifest, FetchedManifest)> {
        let fetched = self.manifest_bytes(reference)?;
        if fetched.media_type == media::OCI_INDEX
            || fetched.media_type == media::DOCKER_MANIFEST_LIST
        {
            let index: media::Index = parse(&fetched.bytes, "the manifest index")?;
            let entry = index
                .manifests
                .iter()
                .find(|d| d.artifact_type.as_deref() == Some(media::MODELPACK_ARTIFACT))
                .or_else(|| {
                    index.manifests.iter().find(|d| {
                        d.platform.as_ref().is_none_or(|p| p.os == "linux" && p.architecture == "amd64")
                    })
                })
                .ok_or_else(|| Error::Download {
                    url: self.url(&format!("manifests/{reference}")),
                    message: format!(
                        "the index has no usable entry ({} entries, none a model or for linux/amd64)",
                        index.manifests.len()
                    ),
                })?;
            let inner = self.manifest_bytes(&entry.digest)?;
            let manifest = parse(&inner.bytes, "the manifest")?;
            return Ok((manifest, inner));
        }
        let manifest = parse(&fetched.bytes, "the manifest")?;
        Ok((manifest, fetched))
    }

    fn manifest_bytes(&self, reference: &str) -> Result<FetchedManifest> {
        let url = self.url(&format!("manifests/{reference}"));
        let response = self.send("reading the manifest", &url, "pull", |auth| {
            let mut request = self.agent.get(&url).header("Accept", media::ACCEPT);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.call()
        })?;
        let status = response.status().as_u16();
        if status == 404 {
            return Err(Error::Download {
                url,
                message: format!(
                    "the registry has no `{reference}` in repository `{}` (HTTP 404)",
                    self.repository
                ),
            });
        }
        if status != 200 {
            return Err(status_error(response, &url));
        }
        let media_type = header(&response, "content-type")
            .map(|t| t.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        let bytes = read_bytes(response, &url)?;
        let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
        if reference.starts_with("sha256:") && reference != digest {
            return Err(Error::Download {
                url,
                message: format!(
                    "the manifest's digest is {digest}, not the {reference} asked for"
                ),
            });
        }
        // The body's own mediaType wins over a generic content type.
        let declared = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            });
        Ok(FetchedManifest {
            media_type: declared.unwrap_or(media_type),
            bytes,
            digest,
        })
    }

    /// Whether the registry has the blob.
    pub(crate) fn has_blob(&self, digest: &str) -> Result<bool> {
        let url = self.blob_url(digest);
        let response = self.send("checking a blob", &url, "pull,push", |auth| {
            let mut request = self.agent.head(&url);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.call()
        })?;
        Ok(response.status().is_success())
    }

    /// Brings blob `digest` into this repository: nothing when the registry has it here, a
    /// cross-repository mount from the first of `mount_from` (repositories of the same registry
    /// that hold it) when the registry accepts it, else an upload of the `size` bytes `open` reads:
    /// one monolithic PUT after opening a session, or PATCH chunks and a closing PUT for a blob
    /// larger than the chunk size ([`push_chunk_bytes`]).
    pub(crate) fn push_blob(
        &self,
        digest: &str,
        size: u64,
        open: &dyn Fn() -> std::io::Result<Box<dyn Read>>,
        mount_from: &[String],
    ) -> Result<BlobPush> {
        if self.has_blob(digest)? {
            return Ok(BlobPush::Present);
        }
        // One mount attempt: a registry that cannot mount opens an upload session instead (202),
        // which the upload below uses.
        let mut session = None;
        if let Some(from) = mount_from.iter().find(|f| **f != self.repository) {
            let url = self.url(&format!(
                "blobs/uploads/?mount={}&from={}",
                encode(digest),
                encode(from)
            ));
            let response = self.start_upload(&url)?;
            match response.status().as_u16() {
                201 => return Ok(BlobPush::Mounted),
                202 => session = Some((url, response)),
                _ => return Err(status_error(response, &url)),
            }
        }
        let (start, response) = match session {
            Some(opened) => opened,
            None => {
                let start = self.url("blobs/uploads/");
                let response = self.start_upload(&start)?;
                (start, response)
            }
        };
        if response.status().as_u16() != 202 {
            return Err(status_error(response, &start));
        }
        let location = header(&response, "location").ok_or_else(|| Error::Download {
            url: start.clone(),
            message: "the registry opened an upload without a Location".to_owned(),
        })?;
        let mut upload = join(&self.base, &location);
        let chunk = push_chunk_bytes();
        let (body_size, mut reader) = if size > chunk {
            upload = self.upload_chunks(&upload, size, chunk, open)?;
            (0, None)
        } else {
            (size, Some(open))
        };
        let sep = if upload.contains('?') { '&' } else { '?' };
        let put = format!("{upload}{sep}digest={}", encode(digest));
        let response = self.send("uploading a blob", &put, "pull,push", |auth| {
            let mut request = self
                .agent
                .put(&put)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", body_size.to_string());
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            match reader.as_mut() {
                Some(open) => {
                    let mut body = open().map_err(ureq::Error::Io)?;
                    request.send(ureq::SendBody::from_reader(&mut body))
                }
                None => request.send_empty(),
            }
        })?;
        if response.status().as_u16() != 201 {
            return Err(status_error(response, &put));
        }
        Ok(BlobPush::Uploaded)
    }

    /// Sends the `size` bytes `open` reads to the upload session at `upload` in PATCH chunks of
    /// `chunk` bytes (`Content-Range: START-END`), following the `Location` each answer gives.
    /// A chunk that fails in transit is sent again from where the registry says it has the
    /// bytes up to (`GET` of the session, its `Range` header). Returns the session's last URL.
    fn upload_chunks(
        &self,
        upload: &str,
        size: u64,
        chunk: u64,
        open: &dyn Fn() -> std::io::Result<Box<dyn Read>>,
    ) -> Result<String> {
        tracing::info!(
            size,
            chunks = size.div_ceil(chunk),
            chunk_bytes = chunk,
            "uploading a blob in chunks"
        );
        let io = |e: std::io::Error| Error::io("cannot read the blob to push".to_owned(), e);
        let mut url = upload.to_owned();
        let mut reader = open().map_err(io)?;
        let mut offset = 0u64;
        let mut retries = 0;
        let mut buffer = Vec::new();
        while offset < size {
            let len = chunk.min(size - offset);
            buffer.clear();
            (&mut reader)
                .take(len)
                .read_to_end(&mut buffer)
                .map_err(io)?;
            if buffer.len() as u64 != len {
                return Err(Error::Engine(format!(
                    "the blob to push ended at {} bytes, not {size}",
                    offset + buffer.len() as u64
                )));
            }
            let range = format!("{offset}-{}", offset + len - 1);
            let sent = self.send("uploading a chunk", &url, "pull,push", |auth| {
                let mut request = self
                    .agent
                    .patch(&url)
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", &range)
                    .header("Content-Length", len.to_string());
                if let Some(auth) = auth {
                    request = request.header("Authorization", auth);
                }
                request.send(&buffer[..])
            });
            match sent {
                Ok(response) if response.status().as_u16() == 202 => {
                    if let Some(location) = header(&response, "location") {
                        url = join(&self.base, &location);
                    }
                    offset += len;
                }
                Ok(response) => return Err(status_error(response, &url)),
                Err(e) if retries < 3 => {
                    retries += 1;
                    // Ask the session how far it got, and go on from there.
                    let done = self.uploaded_bytes(&url).map_err(|_| e)?;
                    tracing::warn!(
                        url,
                        offset,
                        resume_at = done,
                        "a chunk of the upload failed; resuming"
                    );
                    reader = open().map_err(io)?;
                    std::io::copy(&mut (&mut reader).take(done), &mut std::io::sink())
                        .map_err(io)?;
                    offset = done;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(url)
    }

    /// How many bytes the upload session at `url` holds (its `Range: 0-END` answer).
    fn uploaded_bytes(&self, url: &str) -> Result<u64> {
        let response = self.send("checking an upload", url, "pull,push", |auth| {
            let mut request = self.agent.get(url);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.call()
        })?;
        if response.status().as_u16() != 204 {
            return Err(status_error(response, url));
        }
        Ok(header(&response, "range")
            .and_then(|r| {
                r.rsplit('-')
                    .next()
                    .and_then(|end| end.trim().parse::<u64>().ok())
            })
            .map_or(0, |end| end + 1))
    }

    /// `POST url` (an upload session, or a mount).
    fn start_upload(&self, url: &str) -> Result<Response<Body>> {
        self.send("starting an upload", url, "pull,push", |auth| {
            let mut request = self.agent.post(url).header("Content-Length", "0");
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.send_empty()
        })
    }

    /// Puts `bytes` as the manifest tagged `tag`.
    pub(crate) fn push_manifest(&self, tag: &str, bytes: &[u8], media_type: &str) -> Result<()> {
        let url = self.url(&format!("manifests/{tag}"));
        let response = self.send("pushing the manifest", &url, "pull,push", |auth| {
            let mut request = self.agent.put(&url).header("Content-Type", media_type);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.send(bytes)
        })?;
        if !response.status().is_success() {
            return Err(status_error(response, &url));
        }
        Ok(())
    }
}

/// Blobs larger than this are pushed in PATCH chunks of this size:
/// `$KAITO_PUSH_CHUNK_MIB` MiB (default 256).
fn push_chunk_bytes() -> u64 {
    std::env::var("KAITO_PUSH_CHUNK_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&mib| mib > 0)
        .unwrap_or(256)
        << 20
}

/// What [`Registry::push_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlobPush {
    /// The repository had it.
    Present,
    /// Mounted from another repository of the registry: no bytes sent.
    Mounted,
    /// Uploaded.
    Uploaded,
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn status_error(response: Response<Body>, url: &str) -> Error {
    let status = response.status().as_u16();
    let detail = response
        .into_body()
        .into_with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    Error::Download {
        url: url.to_owned(),
        message: format!("HTTP {status}: {}", detail.trim()),
    }
}

/// The body of a small response (a manifest, a token), at most [`MAX_MANIFEST`] bytes.
fn read_bytes(response: Response<Body>, url: &str) -> Result<Vec<u8>> {
    response
        .into_body()
        .into_with_config()
        .limit(MAX_MANIFEST)
        .read_to_vec()
        .map_err(|e| Error::Download {
            url: url.to_owned(),
            message: format!("cannot read the response: {e}"),
        })
}

fn read_json<T: for<'de> serde::Deserialize<'de>>(
    response: Response<Body>,
    url: &str,
) -> Result<T> {
    let bytes = read_bytes(response, url)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Download {
        url: url.to_owned(),
        message: format!("the response is not the JSON expected: {e}"),
    })
}

fn parse<T: for<'de> serde::Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Download {
        url: String::new(),
        message: format!("{what} is not valid: {e}"),
    })
}

/// `key="value"` pairs of a challenge.
fn challenge_params(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, n)) => (v.to_owned(), n),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_owned(), n),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.insert(key, value);
        rest = next.trim_start_matches(',').trim();
    }
    out
}

fn encode(text: &str) -> String {
    crate::model::fetch::url::encode(text, false)
}

fn join(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_challenges() {
        let p = challenge_params(
            r#"realm="https://auth.example.com/token",service="registry.example.com",scope="repository:m:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example.com/token");
        assert_eq!(p["service"], "registry.example.com");
        assert_eq!(p["scope"], "repository:m:pull");
    }
}
