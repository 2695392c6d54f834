"""Helpers shared by the kaito end-to-end tests (server process, metrics, errors)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import openai

MODEL_NAME = "smollm2"
# Which engine the suite runs against: llama-cpp (the GGUF, default) or torch (KAITO_TEST_HF_DIR,
# the same weights converted to a Hugging Face checkpoint by `kaito convert`).
BACKEND = os.environ.get("KAITO_TEST_BACKEND", "llama-cpp")
READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 15.0

# Every server started in this session with the test that started it (for logs).
REGISTRY: list = []
CURRENT_TEST: list = [None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KaitoServer:
    """One `kaito serve` process with its log file."""

    def __init__(self, kaito_bin: Path, model: Path | str, extra_args=(), name="server"):
        self.port = free_port()
        self.host = "127.0.0.1"
        self.base_url = f"http://{self.host}:{self.port}"
        self.args = [
            str(kaito_bin),
            "serve",
            "--model",
            str(model),
            "--served-model-name",
            MODEL_NAME,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--threads",
            "1",
            "--ctx-size",
            "2048",
            "--backend",
            BACKEND,
            *extra_args,
        ]
        if "--parallel" not in extra_args:
            self.args += ["--parallel", "4"]
        fd, log = tempfile.mkstemp(prefix=f"kaito-{name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "KaitoServer":
        REGISTRY.append((self, CURRENT_TEST[0]))
        self._log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if k != "KAITO_API_KEY"}
        self.proc = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, headers=None) -> "KaitoServer":
        deadline = time.monotonic() + timeout
        last = "no response"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"kaito serve exited with code {self.proc.returncode} before "
                    f"becoming ready\n{self.log_tail()}"
                )
            try:
                r = httpx.get(f"{self.base_url}/ready", timeout=2.0, headers=headers)
                if r.status_code == 200:
                    return self
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.2)
        raise RuntimeError(
            f"kaito serve not ready after {timeout}s (last /ready: {last})\n{self.log_tail()}"
        )

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        lines = self.log_text().splitlines()[-n:]
        return f"--- {self.log_path} (last {len(lines)} lines) ---\n" + "\n".join(lines)

    def client(self, api_key: str = "unused", timeout: float = 60) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=api_key, max_retries=0, timeout=timeout
        )


_SAMPLE_RE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)"
)
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    """Parse Prometheus text exposition into (name, labels, value) samples."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            continue
        labels = dict(_LABEL_RE.findall(m.group("labels") or ""))
        try:
            value = float(m.group("value"))
        except ValueError:
            continue
        out.append((m.group("name"), labels, value))
    return out


def metric_sum(samples, name: str, **labels) -> float | None:
    """Sum of all samples called `name` whose labels include `labels`; None if absent."""
    vals = [
        v
        for n, lab, v in samples
        if n == name and all(lab.get(k) == want for k, want in labels.items())
    ]
    return sum(vals) if vals else None


def get_metrics(base_url: str, headers=None):
    r = httpx.get(f"{base_url}/metrics", timeout=10, headers=headers)
    r.raise_for_status()
    return parse_metrics(r.text)


def assert_error_doc(doc, param=None):
    """Assert `doc` is an OpenAI error document {"error": {message, type, param, code}}.

    Returns the inner error object. If `param` is given, the error must name it.
    """
    assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), (
        f"not an OpenAI error document: {doc!r}"
    )
    err = doc["error"]
    for key in ("message", "type", "param", "code"):
        assert key in err, f"error object lacks {key!r}: {doc!r}"
    assert isinstance(err["message"], str) and err["message"], doc
    assert isinstance(err["type"], str) and err["type"], doc
    if param is not None:
        assert err["param"] == param, f"expected param={param!r}, got {doc!r}"
    return err


def error_doc(exc) -> dict:
    """The full JSON document of an openai.APIStatusError's response."""
    try:
        return exc.response.json()
    except ValueError:
        raise AssertionError(f"error response is not JSON: {exc.response.text!r}")


def sse_events(response: httpx.Response):
    """Yield the `data:` payloads of a server-sent-event stream (raw strings)."""
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield line[len("data:"):].strip()


def constrained_decoding(test):
    """Marks a test whose requests need constrained decoding (JSON mode, forced tool calls).

    The llama-cpp engine runs the test as written. Engines without constrained decoding (torch)
    must refuse the same request with a 400 OpenAI error naming `response_format`, so there the
    test passes only when its first request is refused that way.
    """
    import functools

    @functools.wraps(test)
    def run(*args, **kwargs):
        if BACKEND == "llama-cpp":
            return test(*args, **kwargs)
        try:
            test(*args, **kwargs)
        except openai.BadRequestError as e:
            body = e.body if isinstance(e.body, dict) else {}
            assert e.status_code == 400
            assert body.get("param") == "response_format", body
            assert "constrained decoding" in body.get("message", ""), body
            return
        raise AssertionError(f"the {BACKEND} backend accepted a request that needs constrained decoding")

    return run
