"""Server-level behaviour: overload, API keys, client disconnect, SIGTERM, bad CLI input."""

import concurrent.futures as cf
import json
import signal
import socket
import subprocess
import time

import httpx
import openai
import pytest

from helpers import (
    MODEL_NAME,
    KaitoServer,
    assert_error_doc,
    error_doc,
    free_port,
    get_metrics,
    metric_sum,
    sse_events,
)

LONG_COUNT = [{"role": "user", "content": "Count from 1 to 500, separated by commas."}]
SHORT = [{"role": "user", "content": "Say hi."}]


def wait_for_metric(base_url, name, want, timeout, headers=None):
    """Poll /metrics until `name` == want; return the elapsed seconds (or None on timeout)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = metric_sum(get_metrics(base_url, headers), name, model_name=MODEL_NAME)
        if v == want:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


# ---------------------------------------------------------------- startup


def test_ready_answers_only_503_until_it_answers_200(start_server):
    srv = start_server(name="startup", wait=False)
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert srv.proc.poll() is None, f"server exited with {srv.proc.returncode}"
        try:
            r = httpx.get(f"{srv.base_url}/ready", timeout=2)
        except httpx.TransportError:
            time.sleep(0.02)
            continue
        seen.append(r.status_code)
        if r.status_code == 200:
            break
        time.sleep(0.02)
    assert seen and seen[-1] == 200, f"/ready never returned 200: {seen[-5:]}"
    assert set(seen[:-1]) <= {503}, f"/ready answered {sorted(set(seen))} while loading"
    # once ready it stays ready, and /health agrees
    assert httpx.get(f"{srv.base_url}/ready", timeout=5).status_code == 200
    assert httpx.get(f"{srv.base_url}/health", timeout=5).status_code == 200


# ---------------------------------------------------------------- overload


def test_overload_beyond_running_plus_queue_is_503_with_retry_after(start_server):
    srv = start_server(["--parallel", "1", "--max-queue", "1"], name="overload")
    c = srv.client()
    long_body = {
        "model": MODEL_NAME,
        "messages": LONG_COUNT,
        "max_tokens": 200,
        "temperature": 0,
        "stream": True,
    }
    with httpx.Client(timeout=60) as hx, cf.ThreadPoolExecutor(1) as pool:
        # A occupies the only slot
        with hx.stream("POST", f"{srv.base_url}/v1/chat/completions", json=long_body) as ra:
            assert ra.status_code == 200
            events = sse_events(ra)
            next(events)
            # B waits in the queue
            fut_b = pool.submit(
                c.chat.completions.create,
                model=MODEL_NAME, messages=SHORT, max_tokens=4, temperature=0,
            )
            assert wait_for_metric(srv.base_url, "vllm:num_requests_waiting", 1, 10) is not None, (
                "second request never showed up as waiting"
            )
            running = metric_sum(
                get_metrics(srv.base_url), "vllm:num_requests_running", model_name=MODEL_NAME
            )
            assert running == 1, "the long request should still be running"
            # C is one too many
            rc = hx.post(
                f"{srv.base_url}/v1/chat/completions",
                json={"model": MODEL_NAME, "messages": SHORT, "max_tokens": 4},
                timeout=10,
            )
            assert rc.status_code == 503, f"HTTP {rc.status_code}: {rc.text[:300]}"
            retry_after = rc.headers.get("retry-after")
            assert retry_after is not None and retry_after.strip().isdigit(), rc.headers
            assert_error_doc(rc.json())
            # drain A so B gets the slot
            for _ in events:
                pass
        b = fut_b.result(timeout=60)
        assert b.choices[0].message.content is not None
    # and the server still serves normally
    after = c.chat.completions.create(model=MODEL_NAME, messages=SHORT, max_tokens=4, temperature=0)
    assert after.usage.completion_tokens >= 1


# ---------------------------------------------------------------- API keys

KEYS = ["sk-kaito-first-key", "sk-kaito-second-key"]


@pytest.fixture(scope="module")
def auth_server(kaito_bin, model_path, tmp_path_factory):
    keyfile = tmp_path_factory.mktemp("auth") / "keys.txt"
    keyfile.write_text("\n".join(KEYS) + "\n")
    srv = KaitoServer(kaito_bin, model_path, ["--api-key-file", str(keyfile)], name="auth")
    srv.start()
    try:
        srv.wait_ready(headers={"Authorization": f"Bearer {KEYS[0]}"})
        yield srv
    finally:
        srv.stop()


def test_auth_request_without_key_is_401(auth_server):
    r = httpx.post(
        f"{auth_server.base_url}/v1/chat/completions",
        json={"model": MODEL_NAME, "messages": SHORT, "max_tokens": 2},
        timeout=30,
    )
    assert r.status_code == 401, r.text
    assert_error_doc(r.json())
    r = httpx.get(f"{auth_server.base_url}/v1/models", timeout=30)
    assert r.status_code == 401, r.text


def test_auth_wrong_key_is_401(auth_server):
    c = auth_server.client(api_key="sk-wrong")
    with pytest.raises(openai.AuthenticationError) as ei:
        c.chat.completions.create(model=MODEL_NAME, messages=SHORT, max_tokens=2)
    assert ei.value.status_code == 401
    assert_error_doc(error_doc(ei.value))
    with pytest.raises(openai.AuthenticationError):
        c.embeddings.create(model=MODEL_NAME, input="hi", encoding_format="float")


@pytest.mark.parametrize("key", KEYS, ids=["first-line", "second-line"])
def test_auth_every_key_in_the_file_works(auth_server, key):
    c = auth_server.client(api_key=key)
    assert [m.id for m in c.models.list()] == [MODEL_NAME]
    resp = c.chat.completions.create(model=MODEL_NAME, messages=SHORT, max_tokens=2, temperature=0)
    assert resp.usage.completion_tokens >= 1


def test_auth_health_needs_no_key(auth_server):
    r = httpx.get(f"{auth_server.base_url}/health", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


# ---------------------------------------------------------------- client disconnect


def test_closing_a_stream_cancels_the_generation(client, server):
    stream = client.chat.completions.create(
        model=MODEL_NAME, messages=LONG_COUNT, max_tokens=1000, temperature=0, stream=True
    )
    it = iter(stream)
    for _ in range(3):
        next(it)
    before = get_metrics(server.base_url)
    assert metric_sum(before, "vllm:num_requests_running", model_name=MODEL_NAME) == 1
    stream.close()
    elapsed = wait_for_metric(server.base_url, "vllm:num_requests_running", 0, 2.5)
    assert elapsed is not None, "generation still running 2.5 s after the client disconnected"
    # the server keeps serving
    resp = client.chat.completions.create(model=MODEL_NAME, messages=SHORT, max_tokens=2)
    assert resp.usage.completion_tokens >= 1


# ---------------------------------------------------------------- SIGTERM


def test_sigterm_drains_in_flight_stream_and_exits_zero(start_server):
    srv = start_server(name="sigterm")
    body = {
        "model": MODEL_NAME,
        "messages": LONG_COUNT,
        "max_tokens": 200,
        "temperature": 0,
        "stream": True,
    }
    with httpx.Client(timeout=60) as hx:
        with hx.stream("POST", f"{srv.base_url}/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            events = sse_events(r)
            first = next(events)
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            # no new connections are accepted while draining
            with pytest.raises((httpx.ConnectError, httpx.TimeoutException)):
                httpx.get(f"{srv.base_url}/health", timeout=2)
            rest = list(events)
    payloads = [first, *rest]
    assert payloads[-1] == "[DONE]", f"stream did not finish cleanly: {payloads[-3:]}"
    chunks = [json.loads(p) for p in payloads[:-1]]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] in ("stop", "length")
    assert len(chunks) > 3, "the in-flight request should have kept generating after SIGTERM"
    assert srv.proc.wait(timeout=30) == 0


def test_sigterm_on_idle_server_exits_zero_quickly(start_server):
    srv = start_server(name="sigterm-idle")
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=10) == 0


# ---------------------------------------------------------------- bad CLI input


def test_nonexistent_model_path_exits_nonzero_with_one_line(kaito_bin):
    proc = subprocess.run(
        [str(kaito_bin), "serve", "--model", "/nonexistent.gguf", "--host", "127.0.0.1",
         "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    assert "/nonexistent.gguf" in lines[0]


def test_port_in_use_exits_nonzero_mentioning_the_address(kaito_bin, model_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        proc = subprocess.run(
            [str(kaito_bin), "serve", "--model", str(model_path), "--host", "127.0.0.1",
             "--port", str(port), "--threads", "1", "--ctx-size", "2048"],
            capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode != 0
    out = proc.stderr + proc.stdout
    assert str(port) in out or "address" in out.lower(), f"stderr:\n{proc.stderr}"
