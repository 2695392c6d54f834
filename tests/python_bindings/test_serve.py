"""kaito.serve: a real OpenAI-compatible server in-process, driven by the official openai client."""

from __future__ import annotations

import urllib.error
import urllib.request

import openai
import pytest

import kaito

HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def client_for(server: kaito.Server, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=api_key, max_retries=0, timeout=120)


def test_chat_completion_through_openai_client(server: kaito.Server, llm: kaito.LLM) -> None:
    client = client_for(server)
    reply = client.chat.completions.create(
        model=server.model, messages=HELLO, max_tokens=12, temperature=0  # type: ignore[arg-type]
    )
    in_process = llm.chat(HELLO, max_tokens=12, temperature=0)
    assert reply.choices[0].message.content == in_process.choices[0].message.content
    assert reply.usage is not None and reply.usage.prompt_tokens == in_process.usage.prompt_tokens


def test_streaming_through_openai_client(server: kaito.Server) -> None:
    client = client_for(server)
    stream = client.chat.completions.create(
        model=server.model, messages=HELLO, max_tokens=8, temperature=0, stream=True  # type: ignore[arg-type]
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)  # type: ignore[union-attr]
    assert text.strip()


def test_models_embeddings_and_completions(server: kaito.Server) -> None:
    client = client_for(server)
    assert [m.id for m in client.models.list()] == [server.model]
    emb = client.embeddings.create(model=server.model, input=["hello", "world"])
    assert len(emb.data) == 2
    completion = client.completions.create(model=server.model, prompt="The capital of France is", max_tokens=4)
    assert completion.choices[0].text


def test_probes(server: kaito.Server) -> None:
    base = server.url.removesuffix("/v1")
    with urllib.request.urlopen(base + "/ready", timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        assert b"vllm:" in r.read()


def test_server_errors_map_to_openai_errors(server: kaito.Server) -> None:
    client = client_for(server)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model=server.model, messages=HELLO, temperature=7)  # type: ignore[arg-type]


def test_api_key_and_context_manager_stop(llm: kaito.LLM) -> None:
    with kaito.serve(llm, api_key="s3cret") as srv:
        assert srv.running and srv.url.startswith("http://127.0.0.1:")
        with pytest.raises(openai.AuthenticationError):
            client_for(srv, "wrong").models.list()
        assert [m.id for m in client_for(srv, "s3cret").models.list()] == [llm.model]
        url = srv.url
    assert not srv.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/models", timeout=5)
    srv.stop()  # idempotent


def test_serve_a_workspace(model: str) -> None:
    source = f"source: {model}" if model else ""
    spec = (
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: smol}\n"
        "inference:\n"
        + (f"  model:\n    {source}\n    servedName: smol-from-ws\n" if model else "  preset: {name: smollm2-135m-instruct}\n")
        + "  engine: {threads: 1, ctxSize: 256, parallel: 1}\n"
    )
    ws = kaito.Workspace.from_yaml(spec)
    with kaito.serve(ws) as srv:
        reply = client_for(srv).chat.completions.create(
            model=srv.model, messages=HELLO, max_tokens=4  # type: ignore[arg-type]
        )
        assert reply.choices[0].message.content is not None
        assert srv.llm.context_size == 256
