"""Fixtures for the end-to-end tests of `kaito serve`.

The suite drives the real server binary with the official `openai` client.

Environment:
  KAITO_BIN         path of the `kaito` binary (default: <repo>/target/release/kaito)
  KAITO_TEST_MODEL  path of the SmolLM2-135M-Instruct GGUF; when unset,
                    `kaito pull` is run and the last line of its stdout is used.
  KAITO_TEST_MODEL_REF  a model reference served instead of a file (e.g. oci://HOST:PORT/REPO:TAG).
  KAITO_TEST_BACKEND  llama-cpp (default) or torch; torch serves the same model converted by
                    `kaito convert` to a Hugging Face checkpoint: KAITO_TEST_HF_DIR, else the
                    GGUF converted once into <kaito cache>/derived/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import openai
import pytest

import helpers
from helpers import KaitoServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def kaito_bin() -> Path:
    path = Path(os.environ.get("KAITO_BIN", REPO / "target" / "release" / "kaito"))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"kaito binary not found or not executable at {path}; build it with "
            "`cargo build --release` or point KAITO_BIN at it",
            pytrace=False,
        )
    return path


def _pulled_gguf(kaito_bin: Path) -> Path:
    env = os.environ.get("KAITO_TEST_MODEL")
    if env:
        path = Path(env)
        if not path.is_file():
            pytest.fail(f"KAITO_TEST_MODEL={env} does not exist", pytrace=False)
        return path
    proc = subprocess.run(
        [str(kaito_bin), "pull"], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`{kaito_bin} pull` failed with code {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}",
            pytrace=False,
        )
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if not lines or not Path(lines[-1]).is_file():
        pytest.fail(
            "`kaito pull` did not print an existing model path as the last line "
            f"of its stdout:\n{proc.stdout}",
            pytrace=False,
        )
    return Path(lines[-1])


def _cache_dir() -> Path:
    """The kaito cache, as the binary computes it."""
    if os.environ.get("KAITO_CACHE_DIR"):
        return Path(os.environ["KAITO_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "kaito"
    return Path.home() / ".cache" / "kaito"


def _converted_checkpoint(kaito_bin: Path, gguf: Path) -> Path:
    """KAITO_TEST_HF_DIR, else `kaito convert` of the GGUF into the cache's derived/ folder
    (once; the Rust backend tests use the same folder)."""
    env = os.environ.get("KAITO_TEST_HF_DIR")
    if env:
        if not Path(env, "config.json").is_file():
            pytest.fail(
                f"KAITO_TEST_HF_DIR={env} is not a checkpoint (no config.json); unset it to "
                "let the suite convert the GGUF itself",
                pytrace=False,
            )
        return Path(env)
    derived = _cache_dir() / "derived"
    out = derived / f"{gguf.stem}-hf-f32"
    if (out / "config.json").is_file():
        return out
    partial = derived / f".{gguf.stem}-hf-f32.partial-{os.getpid()}"
    proc = subprocess.run(
        [str(kaito_bin), "convert", "--model", str(gguf), "--out", str(partial), "--force"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(f"`kaito convert` failed:\n{proc.stderr}", pytrace=False)
    try:
        partial.rename(out)
    except OSError:
        # Another run finished first; its checkpoint is complete.
        shutil.rmtree(partial, ignore_errors=True)
    return out


@pytest.fixture(scope="session")
def model_path(kaito_bin: Path) -> Path | str:
    reference = os.environ.get("KAITO_TEST_MODEL_REF")
    if reference:
        # A model reference the server resolves itself (scripts/test.sh: oci://HOST:PORT/REPO:TAG).
        return reference
    gguf = _pulled_gguf(kaito_bin)
    if helpers.BACKEND != "llama-cpp":
        return _converted_checkpoint(kaito_bin, gguf)
    return gguf


@pytest.fixture(scope="session")
def server(kaito_bin, model_path):
    """The main server, shared by the whole session (--parallel 4, --deterministic).

    Many tests compare exact texts (greedy answers, stream vs non-stream, seeds) while other
    requests run or have left KV cached: with batching and prefix reuse those texts can
    legitimately differ (llama.cpp's numerics depend on batch shape), so the shared server runs
    batch-invariant. The default mode is exercised by the short-lived servers below and the Rust tests.
    """
    srv = KaitoServer(kaito_bin, model_path, extra_args=["--deterministic"], name="main")
    srv.start()
    try:
        srv.wait_ready()
    except RuntimeError as e:
        srv.stop()
        pytest.fail(str(e), pytrace=False)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server) -> openai.OpenAI:
    return server.client()


@pytest.fixture(scope="session")
def http(server):
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        yield c


@pytest.fixture
def start_server(kaito_bin, model_path):
    """Factory for short-lived servers with special flags; stopped after the test."""
    mine: list[KaitoServer] = []

    def _start(extra_args=(), name="extra", wait=True) -> KaitoServer:
        srv = KaitoServer(kaito_bin, model_path, extra_args=list(extra_args), name=name)
        mine.append(srv)
        srv.start()
        if wait:
            srv.wait_ready()
        return srv

    yield _start
    for srv in mine:
        srv.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    helpers.CURRENT_TEST[0] = item.nodeid
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call"):
        for srv, owner in helpers.REGISTRY:
            running = srv.proc is not None and srv.proc.poll() is None
            if running or owner == item.nodeid:
                rep.sections.append((f"kaito log {srv.log_path}", srv.log_tail(60)))
