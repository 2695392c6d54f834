"""Every error path raises the right kaito exception with the Rust error's clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

import kaito

HELLO = [{"role": "user", "content": "Hi"}]


def test_unknown_preset() -> None:
    with pytest.raises(kaito.ModelNotFoundError, match="model `no-such-model` not found") as info:
        kaito.LLM("no-such-model")
    assert "smollm2-135m-instruct" in str(info.value)  # lists what exists
    assert info.value.kind == "model_not_found"


def test_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    with pytest.raises(kaito.ModelNotFoundError, match="missing.gguf"):
        kaito.LLM(missing)


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(kaito.ModelLoadError, match="is a directory without config.json"):
        kaito.LLM(tmp_path)


def test_file_that_is_not_gguf(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a gguf file" * 10)
    with pytest.raises(kaito.ModelLoadError, match="junk.gguf") as info:
        kaito.LLM(junk, threads=1)
    assert info.value.kind == "model_load"


def test_bad_hf_reference() -> None:
    with pytest.raises(kaito.InvalidSpecError, match="hf:ORG/REPO/FILE.gguf"):
        kaito.LLM("hf:just-a-repo")


def test_bad_engine_arguments() -> None:
    with pytest.raises(kaito.InvalidRequestError, match="ctx_size"):
        kaito.LLM(ctx_size=4)
    with pytest.raises(kaito.InvalidRequestError, match="threads"):
        kaito.LLM(threads=0)
    with pytest.raises(kaito.InvalidSpecError, match="vllm"):
        kaito.LLM(backend="vllm")


@pytest.mark.parametrize(
    "sampling, field",
    [
        ({"temperature": 3.0}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"min_p": 2.0}, "min_p"),
        ({"top_k": -1}, "top_k"),
        ({"presence_penalty": 5}, "presence_penalty"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"n": 99}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_bad_sampling_values(llm: kaito.LLM, sampling: Dict[str, Any], field: str) -> None:
    with pytest.raises(kaito.InvalidRequestError, match=field) as info:
        llm.complete("Hello", **sampling)
    assert info.value.kind == "invalid_request"


def test_wrong_types_and_unknown_arguments(llm: kaito.LLM) -> None:
    with pytest.raises(TypeError, match="temperature"):
        llm.generate("Hello", temperature="hot")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        llm.generate("Hello", temprature=0.5)  # type: ignore[call-overload]


def test_prompt_longer_than_the_context(llm: kaito.LLM) -> None:
    with pytest.raises(kaito.InvalidRequestError, match="maximum context length is 512 tokens"):
        llm.generate("Hello", max_tokens=10_000)
    with pytest.raises(kaito.InvalidRequestError, match="maximum context length"):
        llm.generate("word " * 2000, max_tokens=1)


def test_empty_prompt(llm: kaito.LLM) -> None:
    with pytest.raises(kaito.InvalidRequestError, match="prompt is empty"):
        llm.generate("")


def test_bad_messages(llm: kaito.LLM) -> None:
    with pytest.raises(kaito.InvalidRequestError, match="messages is empty|`messages` is empty"):
        llm.chat([])
    with pytest.raises(kaito.InvalidRequestError, match=r"messages\[0\]\.role"):
        llm.chat([{"role": "wizard", "content": "hi"}])
    with pytest.raises(kaito.InvalidRequestError, match=r"messages\[1\]\.content"):
        llm.chat([{"role": "user", "content": "hi"}, {"role": "user", "content": 42}])
    with pytest.raises(TypeError):
        llm.chat([{"role": "user", "content": object()}])


def test_empty_embedding_input(llm: kaito.LLM) -> None:
    with pytest.raises(kaito.InvalidRequestError, match="empty"):
        llm.embed([])


def test_serve_port_in_use(llm: kaito.LLM) -> None:
    with kaito.serve(llm) as srv:
        port = int(srv.url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(kaito.KaitoError, match=f"cannot listen on 127.0.0.1:{port}"):
            kaito.serve(llm, port=port)
