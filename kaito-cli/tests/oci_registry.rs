//! Models as OCI artifacts against a real registry (Debian's `docker-registry`, CNCF Distribution
//! 2.8, started here on a loopback port) and a real independent client (`skopeo`):
//! `kaito model package --push`, `kaito pull oci://…`, `kaito serve --model oci://…`, artifacts in
//! the Docker Model Runner and Ollama layouts, and what goes wrong. `scripts/bootstrap.sh` installs
//! both tools.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const KAITO: &str = env!("CARGO_BIN_EXE_kaito");

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The bundled SmolLM2 GGUF (as `kaito pull` gives it, or `$KAITO_TEST_MODEL`).
fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KAITO_TEST_MODEL") {
        return PathBuf::from(p);
    }
    let (ok, out, err) = kaito(&["pull"]);
    assert!(ok, "kaito pull failed: {err}");
    PathBuf::from(out.lines().last().expect("a path").trim())
}

/// Runs `kaito ARGS`: (success, stdout, stderr).
fn kaito(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(KAITO).args(args).output().expect("run kaito");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert!(
        !found.is_empty(),
        "`{name}` is not installed: scripts/bootstrap.sh installs it (Debian package {name})"
    );
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CNCF Distribution registry on a loopback port, storing under a temporary directory.
struct Registry {
    child: Child,
    port: u16,
    storage: tempfile::TempDir,
}

impl Registry {
    fn start() -> Self {
        Self::start_with_user(None)
    }

    /// With `user`: HTTP basic authentication from an htpasswd (bcrypt) file made by `htpasswd`.
    fn start_with_user(user: Option<(&str, &str)>) -> Self {
        let binary = tool("docker-registry");
        let storage = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = storage.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.path().join("data").display()
        );
        if let Some((name, password)) = user {
            let out = Command::new(tool("htpasswd"))
                .args(["-Bbn", name, password])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let file = storage.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            text.push_str(&format!(
                "auth:\n  htpasswd: {{realm: kaito-test, path: {}}}\n",
                file.display()
            ));
        }
        std::fs::write(&config, text).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = Self {
            child,
            port,
            storage,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match ureq::get(&format!("{}/v2/", registry.base())).call() {
                Ok(r) if r.status() == 200 => break,
                Err(ureq::Error::StatusCode(401)) if user.is_some() => break,
                _ => {}
            }
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("oci://127.0.0.1:{}/{repo_tag}", self.port)
    }

    /// Uploads `bytes` as a blob of `repo` (monolithic) and returns its digest.
    fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", sha(bytes));
        let started = ureq::post(&format!("{}/v2/{repo}/blobs/uploads/", self.base()))
            .send_empty()
            .unwrap();
        assert_eq!(started.status(), 202);
        let location = started.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base())
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let done = ureq::put(&format!("{location}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .unwrap();
        assert_eq!(done.status(), 201);
        digest
    }

    fn push_manifest(&self, repo: &str, tag: &str, manifest: &Value, media_type: &str) {
        let put = ureq::put(&format!("{}/v2/{repo}/manifests/{tag}", self.base()))
            .header("Content-Type", media_type)
            .send(serde_json::to_vec(manifest).unwrap().as_slice())
            .unwrap();
        assert_eq!(put.status(), 201);
    }

    /// What `skopeo inspect --raw` reads as the manifest of `repo_tag`.
    fn skopeo_raw(&self, repo_tag: &str) -> Vec<u8> {
        let raw = Command::new(tool("skopeo"))
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://127.0.0.1:{}/{repo_tag}", self.port))
            .output()
            .unwrap();
        assert!(
            raw.status.success(),
            "{}",
            String::from_utf8_lossy(&raw.stderr)
        );
        raw.stdout
    }

    /// The file holding a blob in the registry's storage.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files below `dir` whose names end with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found
}

/// Starts `kaito serve --model MODEL` and returns it with its base URL.
fn serve(model: &str, cache: &str) -> (Child, String) {
    let mut command = Command::new(KAITO);
    command.args(["--model", model, "--cache-dir", cache]);
    start_server(command)
}

/// Starts `COMMAND serve --port 0 --threads 1 --ctx-size 1024` (`COMMAND` holds the rest of the
/// arguments and the environment) and returns it with its base URL once it is ready.
fn start_server(command: Command) -> (Child, String) {
    let rest: Vec<std::ffi::OsString> = command.get_args().map(ToOwned::to_owned).collect();
    let mut full = Command::new(command.get_program());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => full.env(k, v),
            None => full.env_remove(k),
        };
    }
    let mut child = full
        .args([
            "serve",
            "--port",
            "0",
            "--threads",
            "1",
            "--ctx-size",
            "1024",
        ])
        .args(rest)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kaito serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("` at ").nth(1) {
                let _ = tx.send(rest.trim().trim_end_matches("/v1").to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the server became ready");
    (child, base)
}

#[test]
fn a_packaged_model_is_pushed_read_by_skopeo_pulled_once_and_served() {
    let registry = Registry::start();
    let gguf = model_path();
    let gguf_str = gguf.to_str().unwrap();
    let reference = registry.reference("smollm2:q4");

    // Packaged twice into OCI layouts: byte-for-byte the same manifest.
    let layouts = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for name in ["a", "b"] {
        let dir = layouts.path().join(name);
        let (ok, out, err) = kaito(&[
            "model",
            "package",
            "--model",
            gguf_str,
            "--out",
            dir.to_str().unwrap(),
            "--tag",
            "q4",
        ]);
        assert!(ok, "{err}");
        assert!(dir.join("index.json").is_file() && dir.join("oci-layout").is_file());
        digests.push(out.trim().to_owned());
    }
    assert_eq!(digests[0], digests[1]);
    assert!(digests[0].starts_with("sha256:"), "{digests:?}");

    // Pushed: the same digest; skopeo reads exactly that manifest.
    let (ok, out, err) = kaito(&[
        "model", "package", "--model", gguf_str, "--push", &reference,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), digests[0]);
    assert!(err.contains("2 blobs uploaded, 0 mounted"), "{err}");
    let skopeo = tool("skopeo");
    let docker_ref = format!("docker://127.0.0.1:{}/smollm2:q4", registry.port);
    let raw = registry.skopeo_raw("smollm2:q4");
    assert_eq!(format!("sha256:{}", sha(&raw)), digests[0]);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.cncf.model.weight.v1.raw"
    );
    assert_eq!(
        layer["annotations"]["org.cncf.model.filepath"],
        gguf.file_name().unwrap().to_str().unwrap()
    );
    let weights = std::fs::read(&gguf).unwrap();
    assert_eq!(layer["digest"], format!("sha256:{}", sha(&weights)));
    // skopeo copies the layer out: the GGUF's bytes.
    let copied = tempfile::tempdir().unwrap();
    let dir_ref = format!("dir:{}", copied.path().join("m").display());
    let copy = Command::new(&skopeo)
        .args(["copy", "--src-tls-verify=false", &docker_ref, &dir_ref])
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let layer_file = copied.path().join("m").join(sha(&weights));
    assert_eq!(std::fs::read(layer_file).unwrap(), weights);

    // Pushed again under another tag: nothing uploaded.
    let again = registry.reference("smollm2:again");
    let (ok, _, err) = kaito(&["model", "package", "--model", gguf_str, "--push", &again]);
    assert!(ok && err.contains("0 blobs uploaded, 0 mounted"), "{err}");

    // Pulled into an empty store; the second tag links the same blob, no second copy.
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let (ok, out, err) = kaito(&["pull", &reference, "--cache-dir", cache_dir]);
    assert!(ok, "{err}");
    let pulled = PathBuf::from(out.lines().last().unwrap().trim());
    assert_eq!(std::fs::read(&pulled).unwrap(), weights);
    let (ok, _, err) = kaito(&["model", "pull", &again, "--cache-dir", cache_dir]);
    assert!(ok, "{err}");
    let (_, list, _) = kaito(&["cache", "list", "--cache-dir", cache_dir]);
    assert!(list.contains("1 file of 2 models,"), "{list}");
    assert!(
        list.contains("smollm2:q4") && list.contains("smollm2:again"),
        "{list}"
    );

    // Served from the registry reference, through the store.
    let (mut server, base) = serve(&reference, cache_dir);
    let body = json!({"model": "smollm2:q4", "max_tokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": "Say hi."}]});
    let text = ureq::post(&format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .send(body.to_string())
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        !answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{answer}"
    );
}

#[test]
fn docker_model_runner_and_ollama_layouts_are_served() {
    let registry = Registry::start();
    let weights = std::fs::read(model_path()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();

    // Docker Model Runner, config v0.1: one `gguf.v3` layer, no file name.
    let layer = registry.push_blob("docker/smollm2", &weights);
    let config = serde_json::to_vec(&json!({"config": {"format": "gguf", "format_version": "3"},
        "files": [{"diffID": layer, "type": "application/vnd.docker.ai.gguf.v3"}]}))
    .unwrap();
    let config_digest = registry.push_blob("docker/smollm2", &config);
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.docker.ai.model.config.v0.1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.ai.gguf.v3", "digest": layer, "size": weights.len()},
                   {"mediaType": "application/vnd.docker.ai.license", "digest": config_digest, "size": config.len()}]});
    registry.push_manifest(
        "docker/smollm2",
        "latest",
        &manifest,
        "application/vnd.oci.image.manifest.v1+json",
    );

    // Ollama: a Docker v2 manifest with `image.model` and `image.template` layers.
    let layer = registry.push_blob("library/smollm2", &weights);
    let template = b"{{ .Prompt }}".to_vec();
    let template_digest = registry.push_blob("library/smollm2", &template);
    let config = serde_json::to_vec(&json!({"model_format": "gguf", "model_family": "llama",
        "rootfs": {"type": "layers", "diff_ids": [layer, template_digest]}}))
    .unwrap();
    let config_digest = registry.push_blob("library/smollm2", &config);
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": layer, "size": weights.len()},
                   {"mediaType": "application/vnd.ollama.image.template", "digest": template_digest, "size": template.len()}]});
    registry.push_manifest(
        "library/smollm2",
        "135m",
        &manifest,
        "application/vnd.docker.distribution.manifest.v2+json",
    );

    for reference in [
        registry.reference("docker/smollm2"),
        registry.reference("library/smollm2:135m"),
    ] {
        let (ok, out, err) = kaito(&["pull", &reference, "--cache-dir", cache_dir]);
        assert!(ok, "{reference}: {err}");
        let path = PathBuf::from(out.lines().last().unwrap().trim());
        assert_eq!(std::fs::read(&path).unwrap(), weights, "{reference}");
    }
    let (ok, out, err) = kaito(&[
        "generate",
        "Say hi.",
        "--max-tokens",
        "4",
        "--threads",
        "1",
        "--model",
        &registry.reference("library/smollm2:135m"),
        "--cache-dir",
        cache_dir,
    ]);
    assert!(ok && !out.trim().is_empty(), "{out}{err}");
}

#[test]
fn bad_references_missing_tags_dead_registries_and_corrupt_layers_are_clear_errors() {
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let fails = |args: &[&str], needles: &[&str]| {
        let (ok, _, err) = kaito(args);
        assert!(!ok, "{args:?} succeeded");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        for needle in needles {
            assert!(
                lines[0].contains(needle),
                "{args:?}: `{needle}` not in {err}"
            );
        }
    };
    fails(
        &[
            "pull",
            &registry.reference("Bad/name"),
            "--cache-dir",
            cache_dir,
        ],
        &["path component `Bad`"],
    );
    fails(
        &[
            "pull",
            &registry.reference("m:-x"),
            "--cache-dir",
            cache_dir,
        ],
        &["the tag `-x`"],
    );
    fails(
        &[
            "pull",
            &registry.reference("nothing:here"),
            "--cache-dir",
            cache_dir,
        ],
        &["no `here`", "nothing"],
    );
    let dead = format!("oci://127.0.0.1:{}/m:t", free_port());
    fails(
        &["pull", &dead, "--cache-dir", cache_dir],
        &["cannot reach the registry"],
    );

    // A host no resolver knows (`.invalid` is reserved for that).
    fails(
        &[
            "pull",
            "oci://no-such-registry.invalid/m:t",
            "--cache-dir",
            cache_dir,
        ],
        &["cannot reach the registry `no-such-registry.invalid`"],
    );

    // An index whose entries are all images for other platforms: nothing to choose.
    let config = registry.push_blob("multi/arch", b"{}");
    let image = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": []});
    registry.push_manifest(
        "multi/arch",
        "arm",
        &image,
        "application/vnd.oci.image.manifest.v1+json",
    );
    let image_bytes = serde_json::to_vec(&image).unwrap();
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", sha(&image_bytes)), "size": image_bytes.len(),
            "platform": {"os": "linux", "architecture": "arm64"}}]});
    registry.push_manifest(
        "multi/arch",
        "v1",
        &index,
        "application/vnd.oci.image.index.v1+json",
    );
    fails(
        &[
            "pull",
            &registry.reference("multi/arch:v1"),
            "--cache-dir",
            cache_dir,
        ],
        &["the index has no usable entry (1 entries"],
    );

    // An artifact with nothing kaito serves: the media types it has are named.
    let blob = registry.push_blob("odd/thing", b"not a model");
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob, "size": 11},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob, "size": 11}]});
    registry.push_manifest(
        "odd/thing",
        "v1",
        &manifest,
        "application/vnd.oci.image.manifest.v1+json",
    );
    fails(
        &[
            "pull",
            &registry.reference("odd/thing:v1"),
            "--cache-dir",
            cache_dir,
        ],
        &["application/vnd.oci.image.layer.v1.tar+gzip"],
    );

    // A layer whose stored bytes no longer match its digest: refused, naming the layer, and
    // nothing half-written stays in the store.
    let weights = std::fs::read(model_path()).unwrap();
    push_model(&model_path(), &registry.reference("broken:v1"));
    let digest = format!("sha256:{}", sha(&weights));
    let stored = registry.blob_file(&digest);
    let mut bytes = Vec::new();
    std::fs::File::open(&stored)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();
    fails(
        &[
            "pull",
            &registry.reference("broken:v1"),
            "--cache-dir",
            cache_dir,
        ],
        &[&digest, "sha256 mismatch"],
    );
    assert!(files_ending(cache.path(), ".part").is_empty());
    assert!(files_ending(&cache.path().join("blobs"), "").is_empty());
}

/// `kaito model package --model FILE --push REFERENCE`, which must succeed.
fn push_model(file: &Path, reference: &str) {
    let (ok, _, err) = kaito(&[
        "model",
        "package",
        "--model",
        file.to_str().unwrap(),
        "--push",
        reference,
    ]);
    assert!(ok, "{err}");
}

/// A fresh registry holding the bundled SmolLM2 as `smollm2:q4` (pushed by `kaito model package`):
/// the registry, the GGUF's bytes and the `oci://` reference.
fn registry_with_smollm2() -> (Registry, Vec<u8>, String) {
    let registry = Registry::start();
    let gguf = model_path();
    let weights = std::fs::read(&gguf).unwrap();
    let reference = registry.reference("smollm2:q4");
    push_model(&gguf, &reference);
    (registry, weights, reference)
}

/// A docker config file with `auths` for `registry` (user name and password in the clear).
fn auth_file(dir: &Path, name: &str, registry: &str, user: &str, password: &str) -> PathBuf {
    let path = dir.join(name);
    let config = json!({"auths": {registry: {"username": user, "password": password}}});
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

#[test]
fn an_authenticated_registry_then_what_the_cluster_pods_run() {
    let registry = Registry::start_with_user(Some(("alice", "s3cret")));
    let host = format!("127.0.0.1:{}", registry.port);
    let gguf = model_path();
    let gguf_str = gguf.to_str().unwrap();
    let reference = registry.reference("private/smollm2:q4");
    let dir = tempfile::tempdir().unwrap();
    let good = auth_file(dir.path(), "good.json", &host, "alice", "s3cret");
    let wrong = auth_file(dir.path(), "wrong.json", &host, "alice", "guess");
    let other = auth_file(
        dir.path(),
        "other.json",
        "elsewhere.example.com",
        "bob",
        "x",
    );
    let cache = dir.path().join("node-cache");
    let empty_docker_config = tempfile::tempdir().unwrap();
    // `kaito ARGS` with only the credentials in `auth` (a `:`-separated list of files).
    let command = |auth: Option<&str>| {
        let mut c = Command::new(KAITO);
        c.env("DOCKER_CONFIG", empty_docker_config.path())
            .env_remove("REGISTRY_AUTH_FILE")
            .env("KAITO_CACHE_DIR", &cache);
        match auth {
            Some(list) => c.env("KAITO_REGISTRY_AUTH", list),
            None => c.env_remove("KAITO_REGISTRY_AUTH"),
        };
        c
    };
    let run = |auth: Option<&str>, args: &[&str]| {
        let out = command(auth).args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let push = [
        "model", "package", "--model", gguf_str, "--push", &reference,
    ];

    // No credentials, then a wrong password: refused, naming the registry or the file.
    let (ok, _, err) = run(None, &push);
    assert!(
        !ok && err.contains("asks for a user name and password"),
        "{err}"
    );
    let (ok, _, err) = run(Some(wrong.to_str().unwrap()), &push);
    assert!(!ok, "{err}");
    assert!(
        err.contains("HTTP 401") && err.contains("wrong.json") && err.contains("were refused"),
        "{err}"
    );
    // The right ones, second in the list the cluster mounts (one file per Secret): pushed.
    let list = format!("{}:{}", other.display(), good.display());
    let (ok, digest, err) = run(Some(&list), &push);
    assert!(ok, "{err}");
    let digest = digest.trim().to_owned();
    // skopeo, with the same user, reads the same manifest.
    let raw = Command::new(tool("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "alice:s3cret",
        ])
        .arg(format!("docker://{host}/private/smollm2:q4"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(format!("sha256:{}", sha(&raw.stdout)), digest);

    // Pulling without credentials fails and leaves nothing in the store.
    let (ok, _, err) = run(None, &["pull", &reference]);
    assert!(
        !ok && err.contains("asks for a user name and password"),
        "{err}"
    );
    assert!(files_ending(&cache.join("blobs"), "").is_empty());

    // The preheat DaemonSet's container: `kaito pull REF --hold` pulls, prints the path, and
    // holds the model, so pruning the node cache keeps it.
    let mut hold = command(Some(&list))
        .args(["pull", &reference, "--hold"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(hold.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(
        std::fs::read(first.trim()).unwrap(),
        std::fs::read(&gguf).unwrap()
    );
    let (ok, out, err) = run(None, &["cache", "prune", "--max-size", "0"]);
    assert!(ok, "{err}");
    assert!(format!("{out}{err}").contains("held"), "{out}{err}");
    assert!(
        hold.try_wait().unwrap().is_none(),
        "--hold exited on its own"
    );

    // The registry goes away. The StatefulSet's runtime, `kaito serve -f` on the Workspace that
    // names the oci:// source, serves from the node cache without asking the registry.
    drop(registry);
    let ws = dir.path().join("workspace.yaml");
    std::fs::write(
        &ws,
        format!("apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {{name: smol-oci}}\nresource: {{labelSelector: {{matchLabels: {{pool: cpu}}}}}}\ninference:\n  model:\n    source: {reference}\n    preset: smollm2-135m-instruct\n    servedName: smol\n    imagePullSecrets: [registry-credentials]\n"),
    )
    .unwrap();
    let mut serve = command(Some(&list));
    serve.args(["-f", ws.to_str().unwrap()]);
    let (mut server, base) = start_server(serve);
    let body = json!({"model": "smol", "max_tokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": "Say hi."}]});
    let answer = ureq::post(&format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .send(body.to_string())
        .map(|mut r| r.body_mut().read_to_string().unwrap());
    let _ = server.kill();
    let _ = server.wait();
    let answer: Value = serde_json::from_str(&answer.expect("a chat completion")).unwrap();
    assert!(
        !answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{answer}"
    );

    // SIGTERM ends the hold cleanly; then the model can be evicted.
    let term = Command::new("kill")
        .args(["-TERM", &hold.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = hold.wait().unwrap();
    assert!(status.success(), "kaito pull --hold exited with {status}");
    let (ok, _, err) = run(None, &["cache", "prune", "--max-size", "0"]);
    assert!(ok, "{err}");
    let (_, list_out, _) = run(None, &["cache", "list"]);
    assert!(list_out.contains("0 files of 0 models"), "{list_out}");
}

#[test]
fn the_cache_limit_evicts_the_least_recently_used_model_never_a_held_one() {
    let registry = Registry::start();
    let gguf = model_path();
    let size = std::fs::metadata(&gguf).unwrap().len();
    let dir = tempfile::tempdir().unwrap();
    // A second, different model: the same GGUF with a byte appended (a different digest).
    let other = dir.path().join("other.gguf");
    let mut bytes = std::fs::read(&gguf).unwrap();
    bytes.push(0);
    std::fs::write(&other, &bytes).unwrap();
    let (a, b) = (registry.reference("a:v1"), registry.reference("b:v1"));
    push_model(&gguf, &a);
    push_model(&other, &b);
    let cache = dir.path().join("cache");
    let cache_dir = cache.to_str().unwrap();
    let gib = |times: f64| format!("{}", size as f64 * times / (1u64 << 30) as f64);
    let listed = || kaito(&["cache", "list", "--cache-dir", cache_dir]).1;

    // Room for one and a half models: pulling b evicts a, the least recently used.
    let (ok, _, err) = kaito(&["pull", &a, "--cache-dir", cache_dir]);
    assert!(ok, "{err}");
    let (ok, _, err) = kaito(&[
        "pull",
        &b,
        "--cache-dir",
        cache_dir,
        "--cache-max-gib",
        &gib(1.5),
    ]);
    assert!(ok, "{err}");
    let list = listed();
    assert!(
        list.contains("1 file of 1 model,") && list.contains("b:v1") && !list.contains("a:v1"),
        "{list}"
    );

    // A held model stays, whatever the limit: the store then stays above it.
    let mut hold = Command::new(KAITO)
        .args(["pull", &a, "--hold", "--cache-dir", cache_dir])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(hold.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (ok, _, err) = kaito(&[
        "pull",
        &b,
        "--cache-dir",
        cache_dir,
        "--cache-max-gib",
        &gib(0.9),
    ]);
    let _ = hold.kill();
    let _ = hold.wait();
    // b alone is larger than the limit: refused, and not kept; a is held, so it stays.
    assert!(!ok, "a model larger than the limit was accepted");
    assert!(err.contains("more than the model cache may hold"), "{err}");
    let list = listed();
    assert!(
        list.contains("1 file of 1 model,") && list.contains("a:v1"),
        "{list}"
    );

    // A file outside the store does not count against the limit (the store is still pruned).
    let (ok, _, err) = kaito(&[
        "pull",
        gguf.to_str().unwrap(),
        "--cache-dir",
        cache_dir,
        "--cache-max-gib",
        &gib(0.1),
    ]);
    assert!(ok, "{err}");
    let list = listed();
    assert!(list.contains("0 files of 0 models"), "{list}");

    // A limit that is no size at all.
    let (ok, _, err) = kaito(&["pull", &a, "--cache-dir", cache_dir, "--cache-max-gib", "0"]);
    assert!(
        !ok && err.contains("--cache-max-gib must be a positive number of GiB, got 0"),
        "{err}"
    );
}

/// `key` as the store names its files (`store/key.rs`): bytes outside `[A-Za-z0-9._-]` as `%XX`.
fn store_file_name(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn an_interrupted_pull_resumes_and_a_full_disk_leaves_nothing_behind() {
    let (registry, weights, reference) = registry_with_smollm2();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_dir = cache.to_str().unwrap();
    let key = format!("oci/127.0.0.1:{}/smollm2:q4", registry.port);
    let part = cache
        .join("tmp")
        .join(format!("{}.part", store_file_name(&key)));

    // A pull stopped half-way left the first half: the next pull asks for the rest only.
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, &weights[..weights.len() / 2]).unwrap();
    let (ok, out, err) = kaito(&["pull", &reference, "--cache-dir", cache_dir]);
    assert!(ok, "{err}");
    assert!(err.contains("resuming download"), "{err}");
    assert!(
        err.contains(&format!("offset={}", weights.len() / 2)),
        "{err}"
    );
    let pulled = PathBuf::from(out.lines().last().unwrap().trim());
    assert_eq!(std::fs::read(pulled).unwrap(), weights);
    assert!(!part.exists());

    // A half that is not the layer's: the resumed file fails the digest check, so the pull says
    // so, starts over from byte 0 and ends with the right bytes.
    let (ok, _, err) = kaito(&["cache", "rm", &key, "--cache-dir", cache_dir]);
    assert!(ok, "{err}");
    let (ok, _, err) = kaito(&[
        "cache",
        "prune",
        "--max-size",
        "0",
        "--cache-dir",
        cache_dir,
    ]);
    assert!(ok, "{err}");
    std::fs::write(&part, vec![7u8; weights.len() / 2]).unwrap();
    let (ok, out, err) = kaito(&["pull", &reference, "--cache-dir", cache_dir]);
    assert!(ok, "{err}");
    assert!(
        err.contains("sha256 mismatch") && err.contains("downloading again from the start"),
        "{err}"
    );
    let pulled = PathBuf::from(out.lines().last().unwrap().trim());
    assert_eq!(std::fs::read(pulled).unwrap(), weights);
    assert!(!part.exists());

    // A full disk: a 32 MiB tmpfs (mounted in a user namespace, so no root is needed) cannot
    // take the 98 MB layer. One clear error, and neither a part nor a blob is left.
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=32m tmpfs '{0}' || exit 97; '{KAITO}' pull '{reference}' --cache-dir '{0}/cache'; code=$?; find '{0}/cache' -type f -name '*.part' -o -type f -path '*/blobs/*'; exit $code",
        full.display()
    );
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    let unshare_failed = String::from_utf8_lossy(&out.stderr).starts_with("unshare:");
    if out.status.code() == Some(97) || out.status.code().is_none() || unshare_failed {
        eprintln!(
            "NOTICE: cannot mount a small tmpfs in a user namespace here; the full-disk case is skipped: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the pull into 32 MiB succeeded: {stdout}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("is full"), "{stderr}");
    assert!(
        !stdout.contains(".part") && !stdout.contains("/blobs/"),
        "left behind: {stdout}"
    );
}

/// Every file below `dir` with its size, for "nothing changed here".
fn tree(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out: Vec<(PathBuf, u64)> = files_ending(dir, "")
        .into_iter()
        .map(|p| {
            let len = std::fs::symlink_metadata(&p).map(|m| m.len()).unwrap_or(0);
            (p, len)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_cache_tier_is_searched_before_the_registry_and_never_written() {
    let (registry, weights, reference) = registry_with_smollm2();
    let dir = tempfile::tempdir().unwrap();
    // The shared tier: a model store another machine filled.
    let tier = dir.path().join("tier");
    let (ok, _, err) = kaito(&["pull", &reference, "--cache-dir", tier.to_str().unwrap()]);
    assert!(ok, "{err}");
    let before = tree(&tier);
    // A tier whose blob was damaged: skipped with a warning.
    let damaged = dir.path().join("damaged");
    let copy = Command::new("cp")
        .args(["-a", tier.to_str().unwrap(), damaged.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copy.success());
    let blob = files_ending(&damaged.join("blobs"), "").pop().unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::remove_file(&blob).unwrap();
    std::fs::write(&blob, &bytes).unwrap();

    // The registry is gone: the local store has nothing, the damaged tier is refused, the good
    // one is hard-linked in (same file system here).
    drop(registry);
    let local = dir.path().join("local");
    let (ok, out, err) = kaito(&[
        "pull",
        &reference,
        "--cache-dir",
        local.to_str().unwrap(),
        "--cache-tier",
        damaged.to_str().unwrap(),
        "--cache-tier",
        tier.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("does not match its digest"), "{err}");
    assert!(
        err.contains("found in a cache tier; hard-linked into the model store"),
        "{err}"
    );
    let pulled = PathBuf::from(out.lines().last().unwrap().trim());
    assert!(pulled.starts_with(&local), "{}", pulled.display());
    assert_eq!(std::fs::read(&pulled).unwrap(), weights);
    // Nothing was written to the tier (no hold, no last use, no lock).
    assert_eq!(tree(&tier), before);
    // Nothing half-copied stayed in the local store either.
    assert!(files_ending(&local, ".part").is_empty());
    let (_, list, _) = kaito(&["cache", "list", "--cache-dir", local.to_str().unwrap()]);
    assert!(
        list.contains("1 file of 1 model,") && list.contains("smollm2:q4"),
        "{list}"
    );
    // A tier on another file system (a tmpfs in a user namespace; skipped where that cannot be
    // mounted) is copied, not linked, and the log says so.
    let other_fs = dir.path().join("other-fs");
    let local2 = dir.path().join("local2");
    std::fs::create_dir(&other_fs).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=256m tmpfs '{fs}' || exit 97; cp -a '{tier}' '{fs}/tier' || exit 98; '{KAITO}' pull '{reference}' --cache-dir '{local}' --cache-tier '{fs}/tier'",
        fs = other_fs.display(),
        tier = tier.display(),
        local = local2.display(),
    );
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(97) || stderr.starts_with("unshare:") {
        eprintln!("NOTICE: cannot mount a tmpfs in a user namespace here; the copy case is skipped: {stderr}");
        return;
    }
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("copied into the model store"), "{stderr}");
    let pulled = PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim(),
    );
    assert_eq!(std::fs::read(&pulled).unwrap(), weights);
}

#[test]
fn a_moved_tag_is_pulled_again_and_a_stored_tag_works_without_the_registry() {
    let registry = Registry::start();
    let gguf = model_path();
    let first = std::fs::read(&gguf).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.gguf");
    let mut second = first.clone();
    second.push(0);
    std::fs::write(&other, &second).unwrap();
    let reference = registry.reference("m:latest");
    let cache = dir.path().join("cache");
    let cache_dir = cache.to_str().unwrap();
    let push = |file: &Path| push_model(file, &reference);
    let pull = || {
        let (ok, out, err) = kaito(&["pull", &reference, "--cache-dir", cache_dir]);
        assert!(ok, "{err}");
        let path = PathBuf::from(out.lines().last().unwrap().trim());
        (std::fs::read(path).unwrap(), err)
    };
    push(&gguf);
    assert_eq!(pull().0, first);
    // The tag unchanged: the stored copy, no download.
    let (bytes, err) = pull();
    assert_eq!(bytes, first);
    assert!(!err.contains("pulling"), "{err}");
    // The tag moved: what it names now.
    push(&other);
    let (bytes, err) = pull();
    assert_eq!(bytes, second);
    assert!(err.contains("the tag moved"), "{err}");
    // The registry gone: the stored copy, with a warning; offline, without asking at all.
    drop(registry);
    let (bytes, err) = pull();
    assert_eq!(bytes, second);
    assert!(err.contains("using the stored copy"), "{err}");
    let out = Command::new(KAITO)
        .args(["pull", &reference, "--cache-dir", cache_dir])
        .env("KAITO_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("using the stored copy"),
        "asked the registry although offline"
    );
}

#[test]
fn a_push_mounts_blobs_from_the_repositories_they_were_pulled_from() {
    let registry = Registry::start();
    let gguf = model_path();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_dir = cache.to_str().unwrap();
    let (a, b) = (
        registry.reference("team-a/smollm2:v1"),
        registry.reference("team-b/smollm2:v1"),
    );
    let gguf_str = gguf.to_str().unwrap();
    let (ok, _, err) = kaito(&["model", "package", "--model", gguf_str, "--push", &a]);
    assert!(ok && err.contains("2 blobs uploaded"), "{err}");
    // Pulled from team-a into this machine's store: a push of the same weights to team-b mounts
    // the weights layer (only the small config goes up; the registry's config blob is new to
    // team-b's repository too, but this store does not know where it lives).
    let (ok, _, err) = kaito(&["pull", &a, "--cache-dir", cache_dir]);
    assert!(ok, "{err}");
    let (ok, _, err) = kaito(&[
        "model",
        "package",
        "--model",
        &a,
        "--push",
        &b,
        "--cache-dir",
        cache_dir,
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("1 blobs uploaded, 1 mounted from other repositories"),
        "{err}"
    );
    // team-b now serves the layer itself.
    let weights = std::fs::read(&gguf).unwrap();
    let head = ureq::head(&format!(
        "{}/v2/team-b/smollm2/blobs/sha256:{}",
        registry.base(),
        sha(&weights)
    ))
    .call()
    .unwrap();
    assert_eq!(head.status(), 200);
    let (ok, out, err) = kaito(&[
        "pull",
        &b,
        "--cache-dir",
        dir.path().join("fresh").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(out.lines().last().unwrap().trim()).unwrap(),
        weights
    );
}

/// Splits the GGUF file at `src` into `count` shards in `dir`, laid out as llama.cpp's
/// `gguf-split` writes them: `PREFIX-0000K-of-0000N.gguf`, the first with all the metadata, each
/// with `split.no` (u16), `split.count` (u16) and `split.tensors.count` (i32), the tensors dealt
/// out in file order. Returns the shards' paths.
fn split_gguf(src: &Path, dir: &Path, prefix: &str, count: u16) -> Vec<PathBuf> {
    const ALIGN: usize = 32;
    let bytes = std::fs::read(src).unwrap();
    let u32_at = |p: usize| u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap());
    let u64_at = |p: usize| u64::from_le_bytes(bytes[p..p + 8].try_into().unwrap());
    assert_eq!(&bytes[..4], b"GGUF");
    let tensor_count = u64_at(8) as usize;
    let kv_count = u64_at(16);
    // Skips one value of GGUF type `ty` at `p`.
    fn skip(bytes: &[u8], p: usize, ty: u32) -> usize {
        let u64_at = |p: usize| u64::from_le_bytes(bytes[p..p + 8].try_into().unwrap()) as usize;
        match ty {
            0 | 1 | 7 => p + 1,
            2 | 3 => p + 2,
            4..=6 => p + 4,
            10..=12 => p + 8,
            8 => p + 8 + u64_at(p),
            9 => {
                let inner = u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap());
                let n = u64_at(p + 4);
                (0..n).fold(p + 12, |q, _| skip(bytes, q, inner))
            }
            other => panic!("GGUF value type {other}"),
        }
    }
    let mut p = 24;
    for _ in 0..kv_count {
        p += 8 + u64_at(p) as usize;
        let ty = u32_at(p);
        p = skip(&bytes, p + 4, ty);
    }
    let metadata = bytes[24..p].to_vec();
    // (name bytes, dims bytes, type, offset)
    let mut tensors = Vec::with_capacity(tensor_count);
    for _ in 0..tensor_count {
        let name_len = u64_at(p) as usize;
        let name = bytes[p..p + 8 + name_len].to_vec();
        p += 8 + name_len;
        let n_dims = u32_at(p) as usize;
        let shape = bytes[p..p + 4 + 8 * n_dims].to_vec();
        p += 4 + 8 * n_dims;
        let ty = u32_at(p);
        let offset = u64_at(p + 4) as usize;
        p += 12;
        tensors.push((name, shape, ty, offset));
    }
    let data = p.div_ceil(ALIGN) * ALIGN;
    let ends: Vec<usize> = (0..tensor_count)
        .map(|i| tensors.get(i + 1).map_or(bytes.len() - data, |t| t.3))
        .collect();
    let per = tensor_count.div_ceil(count as usize);
    let mut paths = Vec::new();
    for k in 0..count as usize {
        let range = k * per..((k + 1) * per).min(tensor_count);
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((range.len() as u64).to_le_bytes());
        out.extend((3 + if k == 0 { kv_count } else { 0 }).to_le_bytes());
        if k == 0 {
            out.extend(&metadata);
        }
        let mut kv = |key: &str, ty: u32, value: &[u8]| {
            out.extend((key.len() as u64).to_le_bytes());
            out.extend(key.as_bytes());
            out.extend(ty.to_le_bytes());
            out.extend(value);
        };
        kv("split.no", 2, &(k as u16).to_le_bytes());
        kv("split.count", 2, &count.to_le_bytes());
        kv(
            "split.tensors.count",
            5,
            &(tensor_count as i32).to_le_bytes(),
        );
        let mut offset = 0usize;
        let mut body = Vec::new();
        for i in range {
            let (name, shape, ty, start) = &tensors[i];
            out.extend(name);
            out.extend(shape);
            out.extend(ty.to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            let chunk = &bytes[data + start..data + ends[i]];
            body.extend(chunk);
            let padded = chunk.len().div_ceil(ALIGN) * ALIGN;
            body.resize(body.len() + padded - chunk.len(), 0);
            offset += padded;
        }
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        out.extend(body);
        let path = dir.join(format!("{prefix}-{:05}-of-{count:05}.gguf", k + 1));
        std::fs::write(&path, out).unwrap();
        paths.push(path);
    }
    paths
}

/// `kaito generate` of a capital-of-France question, greedy, one thread: the answer.
fn ask_capital(model: &str, cache_dir: &str) -> String {
    let (ok, out, err) = kaito(&[
        "generate",
        "What is the capital of France? Answer in one word.",
        "--max-tokens",
        "12",
        "--threads",
        "1",
        "--model",
        model,
        "--cache-dir",
        cache_dir,
    ]);
    assert!(ok, "{model}: {err}");
    out
}

#[test]
fn split_gguf_shards_and_checkpoint_directories_are_artifacts_of_several_layers() {
    let registry = Registry::start();
    let model = model_path();
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();

    // A split GGUF: naming any shard packages all three, one layer each, reproducibly.
    let shards = split_gguf(&model, work.path(), "smollm2-q4", 3);
    let reference = registry.reference("smollm2-split:q4");
    let (ok, pushed, err) = kaito(&[
        "model",
        "package",
        "--model",
        shards[1].to_str().unwrap(),
        "--push",
        &reference,
    ]);
    assert!(ok, "{err}");
    let layout = work.path().join("layout");
    let (ok, written, err) = kaito(&[
        "model",
        "package",
        "--model",
        shards[0].to_str().unwrap(),
        "--out",
        layout.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        pushed.trim(),
        written.trim(),
        "the same shards give the same digest"
    );
    let raw = registry.skopeo_raw("smollm2-split:q4");
    assert_eq!(format!("sha256:{}", sha(&raw)), pushed.trim());
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for (layer, shard) in layers.iter().zip(&shards) {
        assert_eq!(
            layer["annotations"]["org.cncf.model.filepath"],
            shard.file_name().unwrap().to_str().unwrap()
        );
        assert_eq!(
            layer["digest"],
            format!("sha256:{}", sha(&std::fs::read(shard).unwrap()))
        );
    }

    // Pulled, the shards lie side by side under their names; llama.cpp loads all three from
    // the first and answers as from the single file.
    let (ok, out, err) = kaito(&["pull", &reference, "--cache-dir", cache_dir]);
    assert!(ok, "{err}");
    let first = PathBuf::from(out.lines().last().unwrap().trim());
    assert!(
        first.ends_with("smollm2-q4-00001-of-00003.gguf"),
        "{}",
        first.display()
    );
    for shard in &shards {
        let pulled = first.with_file_name(shard.file_name().unwrap());
        assert_eq!(
            std::fs::read(&pulled).unwrap(),
            std::fs::read(shard).unwrap()
        );
    }
    let whole = ask_capital(model.to_str().unwrap(), cache_dir);
    assert!(whole.contains("Paris"), "{whole}");
    assert_eq!(ask_capital(&reference, cache_dir), whole);
    let (ok, listed, _) = kaito(&["cache", "ls", "--cache-dir", cache_dir]);
    assert!(ok);
    for shard in &shards {
        let name = shard.file_name().unwrap().to_str().unwrap();
        assert!(listed.contains(&format!(":q4 [{name}]")), "{listed}");
    }
    assert!(listed.contains("3 files of 1 model,"), "{listed}");

    // A checkpoint directory (made by `kaito convert`): every file a layer under its path.
    let checkpoint = work.path().join("smollm2-hf");
    let (ok, _, err) = kaito(&[
        "convert",
        "--model",
        model.to_str().unwrap(),
        "--out",
        checkpoint.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    std::fs::write(checkpoint.join("README.md"), "SmolLM2-135M, converted.\n").unwrap();
    // Pushed in 16 MiB PATCH chunks (the 538 MB safetensors file takes 33).
    let reference = registry.reference("smollm2-hf:f32");
    let pushed = Command::new(KAITO)
        .args(["model", "package", "--model"])
        .arg(&checkpoint)
        .args(["--push", &reference])
        .env("KAITO_PUSH_CHUNK_MIB", "16")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&pushed.stderr);
    assert!(pushed.status.success(), "{log}");
    assert!(log.contains("chunks=33"), "{log}");
    let manifest: Value = serde_json::from_slice(&registry.skopeo_raw("smollm2-hf:f32")).unwrap();
    let types: Vec<(&str, &str)> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["annotations"]["org.cncf.model.filepath"]
                    .as_str()
                    .unwrap(),
                l["mediaType"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        types.contains(&(
            "model.safetensors",
            "application/vnd.cncf.model.weight.v1.raw"
        )),
        "{types:?}"
    );
    assert!(
        types.contains(&(
            "config.json",
            "application/vnd.cncf.model.weight.config.v1.raw"
        )),
        "{types:?}"
    );
    assert!(
        types.contains(&("README.md", "application/vnd.cncf.model.doc.v1.raw")),
        "{types:?}"
    );
    let config_blob = registry.blob_file(manifest["config"]["digest"].as_str().unwrap());
    let config: Value = serde_json::from_slice(&std::fs::read(config_blob).unwrap()).unwrap();
    assert_eq!(config["config"]["format"], "safetensors");
    assert_eq!(config["config"]["precision"], "fp32");
    assert_eq!(
        config["modelfs"]["diffIds"].as_array().unwrap().len(),
        types.len()
    );

    let (ok, out, err) = kaito(&["pull", &reference, "--cache-dir", cache_dir]);
    assert!(ok, "{err}");
    let dir = PathBuf::from(out.lines().last().unwrap().trim());
    assert!(dir.is_dir(), "{}", dir.display());
    for (name, _) in &types {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            std::fs::read(checkpoint.join(name)).unwrap(),
            "{name}"
        );
    }
    // The torch engine serves the pulled directory (kaito-cli built with `torch` or `quant`).
    if cfg!(feature = "torch") {
        let answer = ask_capital(&reference, cache_dir);
        assert!(answer.contains("Paris"), "{answer}");
    }
    if cfg!(feature = "quant") {
        // `kaito quantize` of the pulled checkpoint; its output packages with its scheme.
        let quantized = work.path().join("smollm2-int8");
        let (ok, _, err) = kaito(&[
            "quantize",
            "--model",
            &reference,
            "--out",
            quantized.to_str().unwrap(),
            "--scheme",
            "int8",
            "--cache-dir",
            cache_dir,
        ]);
        assert!(ok, "{err}");
        let layout = work.path().join("int8-layout");
        let (ok, digest, err) = kaito(&[
            "model",
            "package",
            "--model",
            quantized.to_str().unwrap(),
            "--out",
            layout.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(digest.trim().trim_start_matches("sha256:")),
            )
            .unwrap(),
        )
        .unwrap();
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let config: Value = serde_json::from_slice(
            &std::fs::read(layout.join("blobs/sha256").join(config_digest)).unwrap(),
        )
        .unwrap();
        assert_eq!(config["config"]["quantization"], "int8", "{config}");
    }
}

/// Debian's nginx on a loopback port in front of `registry`, forbidding (HTTP 403, with
/// Distribution's `DENIED` error body) every repository under `private/`, as a site's proxy does.
struct ForbiddingProxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl ForbiddingProxy {
    fn start(registry: &Registry) -> Self {
        let nginx = Command::new("sh")
            .args(["-c", "command -v nginx || ls /usr/sbin/nginx"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        assert!(
            !nginx.is_empty(),
            "`nginx` is not installed: scripts/bootstrap.sh installs it (Debian package nginx-light)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let config = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    location /v2/private/ {{\n      default_type application/json;\n      return 403 '{{\"errors\":[{{\"code\":\"DENIED\",\"message\":\"requested access to the resource is denied\"}}]}}';\n    }}\n    location / {{ proxy_pass http://127.0.0.1:{}; }}\n  }}\n}}\n",
            registry.port
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("http://127.0.0.1:{port}/v2/"))
            .call()
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for ForbiddingProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_forbidden_repository_is_a_clear_error_and_leaves_nothing() {
    let registry = Registry::start();
    let model = model_path();
    push_model(&model, &registry.reference("private/smollm2:q4"));
    push_model(&model, &registry.reference("public/smollm2:q4"));
    let proxy = ForbiddingProxy::start(&registry);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();

    // Through the proxy, the public repository pulls as directly.
    let public = format!("oci://127.0.0.1:{}/public/smollm2:q4", proxy.port);
    let (ok, _, err) = kaito(&["pull", &public, "--cache-dir", cache_dir]);
    assert!(ok, "{err}");

    // The private one: refused anonymously and with credentials, naming the repository, the
    // registry's reason and where the credentials came from; nothing new in the store.
    let before = tree(cache.path());
    let private = format!("oci://127.0.0.1:{}/private/smollm2:q4", proxy.port);
    let (ok, _, err) = kaito(&["pull", &private, "--cache-dir", cache_dir]);
    assert!(!ok);
    for needed in ["HTTP 403", "DENIED", "private/smollm2", "anonymous access"] {
        assert!(err.contains(needed), "{needed}: {err}");
    }
    let auth = auth_file(
        cache.path(),
        "auth.json",
        &format!("127.0.0.1:{}", proxy.port),
        "alice",
        "pw",
    );
    let out = Command::new(KAITO)
        .args(["pull", &private, "--cache-dir", cache_dir])
        .env("KAITO_REGISTRY_AUTH", &auth)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("HTTP 403") && err.contains("auth.json"),
        "{err}"
    );
    let after: Vec<_> = tree(cache.path())
        .into_iter()
        .filter(|(p, _)| !p.ends_with("auth.json"))
        .collect();
    assert_eq!(before, after, "a refused pull changed the store");
}

/// `kaito pull` with the range threshold at 16 MiB: the 98 MB layer comes in 4 ranges at once.
fn pull_in_ranges(reference: &str, cache_dir: &str) -> (bool, String, String) {
    let out = Command::new(KAITO)
        .args(["pull", reference, "--cache-dir", cache_dir])
        .env("KAITO_PULL_RANGE_MIN_MIB", "16")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_large_layer_is_pulled_in_ranges_that_resume_where_they_stopped() {
    let (registry, weights, reference) = registry_with_smollm2();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_dir = cache.to_str().unwrap();

    let (ok, out, err) = pull_in_ranges(&reference, cache_dir);
    assert!(ok, "{err}");
    assert!(
        err.contains("pulling a layer in ranges") && err.contains("ranges=4"),
        "{err}"
    );
    let pulled = PathBuf::from(out.lines().last().unwrap().trim());
    assert_eq!(std::fs::read(&pulled).unwrap(), weights);

    // A pull stopped part-way: ranges 0 and 2 got some of their bytes, as their record says.
    let key = format!("oci/127.0.0.1:{}/smollm2:q4", registry.port);
    let forget = |cache_dir: &str| {
        assert!(kaito(&["cache", "rm", &key, "--cache-dir", cache_dir]).0);
        assert!(
            kaito(&[
                "cache",
                "prune",
                "--max-size",
                "0",
                "--cache-dir",
                cache_dir
            ])
            .0
        );
    };
    forget(cache_dir);
    let part = cache
        .join("tmp")
        .join(format!("{}.part", store_file_name(&key)));
    let record = part.with_file_name(format!("{}.part.ranges", store_file_name(&key)));
    let size = weights.len();
    let q = size.div_ceil(4);
    let ranges = [
        (0, q, q / 2),
        (q, 2 * q, 0),
        (2 * q, 3 * q, q - 1),
        (3 * q, size, 0),
    ];
    let write_partial = |fill: u8| {
        let mut bytes = vec![0u8; size];
        for (start, _, done) in ranges {
            bytes[start..start + done].copy_from_slice(&weights[start..start + done]);
        }
        bytes[2 * q] = bytes[2 * q].wrapping_add(fill);
        std::fs::write(&part, bytes).unwrap();
        let state = json!({"size": size, "ranges": ranges});
        std::fs::write(&record, state.to_string()).unwrap();
    };
    write_partial(0);
    let (ok, out, err) = pull_in_ranges(&reference, cache_dir);
    assert!(ok, "{err}");
    assert!(err.contains("resuming a ranged download"), "{err}");
    assert!(err.contains(&format!("done={}", q / 2 + q - 1)), "{err}");
    assert_eq!(
        std::fs::read(out.lines().last().unwrap().trim()).unwrap(),
        weights
    );
    assert!(!part.exists() && !record.exists());

    // A kept range whose bytes are not the layer's: the digest check fails, the pull says so and
    // fetches the layer again as one stream.
    forget(cache_dir);
    write_partial(1);
    let (ok, out, err) = pull_in_ranges(&reference, cache_dir);
    assert!(ok, "{err}");
    assert!(
        err.contains("sha256 mismatch") && err.contains("as one stream"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(out.lines().last().unwrap().trim()).unwrap(),
        weights
    );
    assert!(!part.exists() && !record.exists());
}
