//! HTTP with `ureq`: one agent setup, redirects followed by hand (to read headers on the way and
//! to keep credentials on their origin), and resumable, checksummed downloads reporting their progress.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use ureq::http::{HeaderMap, Response};
use ureq::tls::{RootCerts, TlsConfig};
use ureq::Body;

use super::url;
use crate::error::{Error, Result};
use crate::model::store::Progress;

const MAX_REDIRECTS: usize = 10;
/// Tries of one download, resuming after each transient failure.
pub(super) const MAX_ATTEMPTS: u32 = 5;
pub(super) const CHUNK: usize = 256 * 1024;

/// Why a request failed, so callers can word HTTP statuses for their audience.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server answered with an error status.
    Status {
        /// HTTP status.
        code: u16,
        /// URL that answered it (after redirects).
        url: String,
        /// `X-Error-Message` or the start of the body.
        detail: String,
    },
    /// The connection failed or broke; worth another try.
    Transient { url: String, message: String },
    /// The bytes so far are unusable: start over from zero.
    Restart { url: String, message: String },
    /// Anything else.
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Status { code, url, detail } => {
                let message = if detail.is_empty() {
                    format!("HTTP {code}")
                } else {
                    format!("HTTP {code}: {detail}")
                };
                Error::Download { url, message }
            }
            Failure::Transient { url, message } | Failure::Restart { url, message } => {
                Error::Download { url, message }
            }
            Failure::Fatal(e) => e,
        }
    }
}

/// The agent for all downloads: the platform trust store (so corporate CAs in the system store and
/// `SSL_CERT_FILE` work), proxies from the environment (`ureq`'s default), no automatic redirects,
/// error statuses returned as responses, no content encoding (byte ranges must be of the file).
pub(crate) fn agent() -> ureq::Agent {
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .accept_encoding("identity")
        .user_agent(concat!("kaito-rs/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// One GET.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Get<'a> {
    pub url: &'a str,
    /// `Authorization` header value (`Bearer …`, `Basic …`), sent only to the origin of `url`
    /// (never to the hosts it redirects to).
    pub authorization: Option<&'a str>,
    /// `Accept` header.
    pub accept: Option<&'a str>,
    /// Ask for the bytes from this offset on (`Range: bytes=N-`) when non-zero.
    pub range_from: u64,
    /// With `range_from`: the last byte wanted (`Range: bytes=N-END`).
    pub range_end: Option<u64>,
}

/// A successful (2xx) response after redirects.
pub(crate) struct Fetched {
    /// Final URL.
    pub url: String,
    /// The response.
    pub response: Response<Body>,
    /// A sha256 the server published for the content: `X-Linked-Etag` or `ETag` (of the first
    /// hop that has one), when it is 64 hex digits. Hugging Face puts LFS files' sha256 there.
    pub published_sha256: Option<String>,
}

/// Performs `get`, following up to ten redirects.
pub(crate) fn get(agent: &ureq::Agent, get: &Get<'_>) -> Result<Fetched, Failure> {
    let origin = url::origin(get.url);
    let mut current = get.url.to_owned();
    let mut published_sha256 = None;
    for _ in 0..=MAX_REDIRECTS {
        let mut request = agent.get(&current);
        if let Some(value) = get
            .authorization
            .filter(|_| url::origin(&current) == origin)
        {
            request = request.header("Authorization", value);
        }
        if let Some(accept) = get.accept {
            request = request.header("Accept", accept);
        }
        match get.range_end {
            Some(end) => {
                request = request.header("Range", format!("bytes={}-{end}", get.range_from));
            }
            None if get.range_from > 0 => {
                request = request.header("Range", format!("bytes={}-", get.range_from));
            }
            None => {}
        }
        let response = request.call().map_err(|e| call_failure(&current, e))?;
        if published_sha256.is_none() {
            published_sha256 = sha256_header(response.headers());
        }
        let status = response.status();
        if status.is_redirection() {
            if let Some(location) = header(response.headers(), "location") {
                let next = url::join(&current, &location);
                tracing::debug!(from = %current, to = %next, status = status.as_u16(), "redirect");
                current = next;
                continue;
            }
        }
        if status.is_client_error() || status.is_server_error() || status.is_redirection() {
            return Err(status_failure(current, response));
        }
        return Ok(Fetched {
            url: current,
            response,
            published_sha256,
        });
    }
    Err(Failure::Fatal(Error::Download {
        url: get.url.to_owned(),
        message: format!("more than {MAX_REDIRECTS} redirects"),
    }))
}

/// Reads a text response (an index page), at most `limit` bytes.
pub(crate) fn read_text(fetched: Fetched, limit: u64) -> Result<String> {
    let url = fetched.url;
    fetched
        .response
        .into_body()
        .into_with_config()
        .limit(limit)
        .read_to_string()
        .map_err(|e| Error::Download {
            url,
            message: format!("cannot read the response: {e}"),
        })
}

/// A download into a `.part` file.
pub(crate) struct Download<'a> {
    pub get: Get<'a>,
    /// Checksum the result must have; when `None`, a sha256 the server publishes is checked instead.
    pub expected_sha256: Option<&'a str>,
    /// Told how far the download got.
    pub progress: &'a dyn Progress,
    /// Name the progress is reported under.
    pub label: &'a str,
}

/// Downloads into `part`, resuming what it already holds, until it is complete and verified.
/// Returns its sha256. The caller holds the entry's lock and moves `part` into place.
///
/// Transient failures are retried (resuming); on final failure `part` is kept for a later resume,
/// except after a checksum mismatch, which deletes it.
pub(crate) fn download(
    agent: &ureq::Agent,
    download: &Download<'_>,
    part: &Path,
) -> Result<String, Failure> {
    let mut attempt = 1;
    let result = loop {
        match try_download(agent, download, part) {
            Ok(sha) => break Ok(sha),
            Err(Failure::Transient { url, message }) if attempt < MAX_ATTEMPTS => {
                tracing::warn!(%url, attempt, "download interrupted ({message}); resuming");
                std::thread::sleep(Duration::from_millis(250 << attempt));
            }
            Err(Failure::Restart { url, message }) if attempt < MAX_ATTEMPTS => {
                tracing::warn!(%url, attempt, "{message}; downloading again from the start");
                remove(part)?;
            }
            Err(Failure::Status { code, url, detail }) if code >= 500 && attempt < MAX_ATTEMPTS => {
                tracing::warn!(%url, attempt, "server error HTTP {code} {detail}; retrying");
                std::thread::sleep(Duration::from_millis(500 << attempt));
            }
            Err(Failure::Restart { url, message }) => {
                remove(part)?;
                break Err(Failure::Fatal(Error::Download { url, message }));
            }
            Err(other) => break Err(other),
        }
        attempt += 1;
    };
    download.progress.finished(download.label, result.is_ok());
    result
}

fn try_download(
    agent: &ureq::Agent,
    download: &Download<'_>,
    part: &Path,
) -> Result<String, Failure> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let get = Get {
        range_from: have,
        ..download.get
    };
    let fetched = match self::get(agent, &get) {
        Err(Failure::Status { code: 416, url, .. }) => return complete_part(download, part, url),
        other => other?,
    };
    let url = fetched.url.clone();
    let headers = fetched.response.headers();
    let (start, total) = if fetched.response.status().as_u16() == 206 {
        match header(headers, "content-range")
            .as_deref()
            .and_then(parse_content_range)
        {
            Some((start, total)) if start == have => (start, total),
            _ => {
                let message =
                    format!("server resumed at an unexpected offset (asked for byte {have})");
                return Err(Failure::Restart { url, message });
            }
        }
    } else {
        let length = header(headers, "content-length").and_then(|v| v.parse().ok());
        (0, length)
    };
    if start > 0 {
        tracing::info!(%url, offset = start, "resuming download");
    } else if have > 0 {
        tracing::info!(%url, "server ignored the range request; downloading from the start");
    }
    let expected = download
        .expected_sha256
        .map(str::to_owned)
        .or(fetched.published_sha256);

    let mut file = open_part(part, start).map_err(Failure::Fatal)?;
    let mut hasher = Sha256::new();
    if start > 0 {
        hash_prefix(&mut file, start, &mut hasher).map_err(|e| io_failure(part, "read", e))?;
    }
    let progress = download.progress;
    progress.transferred(download.label, start, total);

    let mut body = fetched.response.into_body().into_reader();
    let mut buf = vec![0u8; CHUNK];
    let mut received = start;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = file.sync_data();
                return Err(Failure::Transient {
                    url,
                    message: e.to_string(),
                });
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| write_failure(part, e))?;
        hasher.update(&buf[..n]);
        received += n as u64;
        progress.transferred(download.label, received, total);
    }
    file.sync_all().map_err(|e| write_failure(part, e))?;
    if let Some(total) = total.filter(|&t| t != received) {
        let message = format!("connection closed after {received} of {total} bytes");
        return Err(Failure::Transient { url, message });
    }
    let actual = format!("{:x}", hasher.finalize());
    verify(&url, expected.as_deref(), &actual, part, start > 0)?;
    Ok(actual)
}

/// The server says the range is past the end: the part may already be the whole file.
fn complete_part(download: &Download<'_>, part: &Path, url: String) -> Result<String, Failure> {
    let actual = super::sha256_file(part)?;
    match download.expected_sha256 {
        Some(expected) if expected.eq_ignore_ascii_case(&actual) => Ok(actual),
        _ => {
            let message = "the partial file cannot be resumed".to_owned();
            Err(Failure::Restart { url, message })
        }
    }
}

fn verify(
    url: &str,
    expected: Option<&str>,
    actual: &str,
    part: &Path,
    resumed: bool,
) -> Result<(), Failure> {
    let Some(expected) = expected else {
        tracing::info!(%url, sha256 = actual, "no published checksum to verify against");
        return Ok(());
    };
    if expected.eq_ignore_ascii_case(actual) {
        tracing::debug!(%url, sha256 = actual, "checksum verified");
        return Ok(());
    }
    let message = format!("sha256 mismatch: expected {expected}, got {actual}");
    if resumed {
        // The bytes kept from an earlier attempt may belong to another version of the file.
        return Err(Failure::Restart {
            url: url.to_owned(),
            message,
        });
    }
    remove(part)?;
    Err(Failure::Fatal(Error::Download {
        url: url.to_owned(),
        message,
    }))
}

fn open_part(part: &Path, start: u64) -> Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(part)
        .map_err(|e| Error::io(format!("cannot open {}", part.display()), e))?;
    let positioned = file
        .set_len(start)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop));
    positioned.map_err(|e| Error::io(format!("cannot prepare {}", part.display()), e))?;
    Ok(file)
}

/// Hashes the first `len` bytes of `file`, leaving it positioned at `len`.
fn hash_prefix(file: &mut File, len: u64, hasher: &mut Sha256) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut prefix = Read::by_ref(file).take(len);
    loop {
        let n = prefix.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    file.seek(SeekFrom::Start(len)).map(drop)
}

pub(super) fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(Error::io(format!("cannot remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// A failed write into `part`. When the disk is full the part is deleted: keeping it for a resume
/// would keep the disk full.
pub(super) fn write_failure(part: &Path, e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
        let _ = std::fs::remove_file(part);
        let dir = part.parent().and_then(Path::parent).unwrap_or(part);
        return Failure::Fatal(Error::io(
            format!(
                "the disk holding the model store {} is full (the partial download was deleted; free space or use another --cache-dir)",
                dir.display()
            ),
            e,
        ));
    }
    io_failure(part, "write", e)
}

pub(super) fn io_failure(path: &Path, what: &str, e: io::Error) -> Failure {
    Failure::Fatal(Error::io(format!("cannot {what} {}", path.display()), e))
}

pub(super) fn call_failure(url: &str, error: ureq::Error) -> Failure {
    let message = error.to_string();
    let url = url.to_owned();
    match error {
        ureq::Error::Io(_)
        | ureq::Error::Timeout(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::BodyStalled => Failure::Transient { url, message },
        _ => Failure::Fatal(Error::Download { url, message }),
    }
}

fn status_failure(url: String, response: Response<Body>) -> Failure {
    let code = response.status().as_u16();
    let detail = match header(response.headers(), "x-error-message") {
        Some(message) => message,
        None => {
            let mut text = Vec::new();
            let _ = response
                .into_body()
                .into_reader()
                .take(512)
                .read_to_end(&mut text);
            let text = String::from_utf8_lossy(&text);
            let looks_like_html = text.trim_start().starts_with('<');
            if looks_like_html {
                String::new()
            } else {
                text.trim().to_owned()
            }
        }
    };
    Failure::Status { code, url, detail }
}

pub(super) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

/// `X-Linked-Etag` (Hugging Face LFS) or `ETag`, if it is a sha256 (quotes and `W/` stripped).
fn sha256_header(headers: &HeaderMap) -> Option<String> {
    let etag = header(headers, "x-linked-etag").or_else(|| header(headers, "etag"))?;
    let etag = etag.trim_start_matches("W/").trim_matches('"');
    (etag.len() == 64 && etag.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| etag.to_ascii_lowercase())
}

/// `bytes START-END/TOTAL` → (START, TOTAL if known).
pub(super) fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        let sha = "B179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
        let mut headers = HeaderMap::new();
        headers.insert("etag", "\"0123abcd\"".parse().unwrap());
        assert_eq!(sha256_header(&headers), None);
        headers.insert("x-linked-etag", format!("\"{sha}\"").parse().unwrap());
        assert_eq!(sha256_header(&headers), Some(sha.to_ascii_lowercase()));
    }
}
