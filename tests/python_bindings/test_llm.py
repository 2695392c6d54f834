"""In-process generation on the real bundled model: generate, chat, streaming, tokens, embeddings."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import pytest

import kaito

PROMPT = "The capital of France is"
HELLO = [{"role": "user", "content": "What is the capital of France?"}]
# With no system message SmolLM2's template inserts its default one, under which greedy decoding
# starts "L'Étoile..."; with a plain system message it answers "The capital of France is Paris."
FRANCE = [{"role": "system", "content": "You are a helpful assistant."}, *HELLO]


def test_generate_greedy_is_deterministic(llm: kaito.LLM) -> None:
    first = llm.generate(PROMPT, max_tokens=12, temperature=0)
    second = llm.generate(PROMPT, max_tokens=12, temperature=0)
    assert isinstance(first, str) and first.strip()
    assert first == second


def test_generate_stream_yields_the_same_text(llm: kaito.LLM) -> None:
    whole = llm.generate(PROMPT, max_tokens=12, temperature=0)
    pieces = list(llm.generate(PROMPT, max_tokens=12, temperature=0, stream=True))
    assert len(pieces) > 1
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == whole


def test_seeded_sampling_repeats(llm: kaito.LLM) -> None:
    a = llm.generate(PROMPT, max_tokens=10, temperature=0.9, seed=7)
    b = llm.generate(PROMPT, max_tokens=10, temperature=0.9, seed=7)
    assert a == b


def test_stop_string_cuts_the_text(llm: kaito.LLM) -> None:
    whole = llm.generate(PROMPT, max_tokens=16, temperature=0)
    words = whole.split()
    assert len(words) >= 3, whole
    stop = words[2]
    cut = llm.generate(PROMPT, max_tokens=16, temperature=0, stop=[stop])
    assert cut == whole[: whole.index(stop)]


def test_complete_returns_n_choices_and_usage(llm: kaito.LLM) -> None:
    out = llm.complete(PROMPT, n=2, max_tokens=4, temperature=0.8, seed=1)
    assert isinstance(out, kaito.Completion)
    assert [c.index for c in out.choices] == [0, 1]
    assert all(c.finish_reason in ("stop", "length") for c in out.choices)
    assert out.usage.prompt_tokens == len(llm.tokenize(PROMPT))
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    assert out.to_dict()["object"] == "text_completion"


def test_chat_is_openai_shaped(llm: kaito.LLM) -> None:
    reply = llm.chat(HELLO, max_tokens=16, temperature=0)
    assert isinstance(reply, kaito.ChatResponse)
    assert reply.object == "chat.completion"
    assert reply.model == llm.model
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 16
    assert "Paris" in llm.chat(FRANCE, max_tokens=24, temperature=0).choices[0].message.content


def test_chat_accepts_content_parts(llm: kaito.LLM) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}]
    assert llm.chat_prompt(parts) == llm.chat_prompt(HELLO)
    assert "<|im_start|>assistant" in llm.chat_prompt(HELLO)


def test_chat_stream_yields_chunks(llm: kaito.LLM) -> None:
    whole = llm.chat(HELLO, max_tokens=12, temperature=0).choices[0].message.content
    chunks = list(llm.chat(HELLO, max_tokens=12, temperature=0, stream=True))
    assert all(isinstance(c, kaito.ChatCompletionChunk) for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens <= 12
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole


def test_breaking_out_of_a_stream_cancels_it(llm: kaito.LLM) -> None:
    stream = llm.generate(PROMPT, max_tokens=200, temperature=0, stream=True)
    next(iter(stream))
    stream.close()
    # The slot is free again: a full request still runs.
    assert llm.generate(PROMPT, max_tokens=2, temperature=0)


def test_tokenize_roundtrip(llm: kaito.LLM) -> None:
    ids = llm.tokenize("Hello, world!", add_special=False)
    assert ids and all(isinstance(i, int) for i in ids)
    assert llm.detokenize(ids) == "Hello, world!"
    special = llm.tokenize("<|im_start|>", add_special=False, parse_special=True)
    assert len(special) == 1


def test_embeddings_are_normalised(llm: kaito.LLM) -> None:
    vectors = llm.embed(["The cat sat on the mat.", "A dog barked."])
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) > 100
    for v in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-3)
    assert llm.embed("one text") and len(llm.embed("one text")) == 1


def test_info_reports_the_model(llm: kaito.LLM) -> None:
    info = llm.info()
    assert info["architecture"] == "llama"
    assert info["quantization"] == "Q4_1"
    assert info["context_size"] == llm.context_size == 512
    assert repr(llm).startswith("LLM(")


def test_deterministic_is_the_default_and_can_be_turned_off(llm: kaito.LLM, model: Optional[str]) -> None:
    assert llm.info()["deterministic"] is True
    batching = kaito.LLM(model, threads=1, ctx_size=512, parallel=4, deterministic=False)
    assert batching.info()["deterministic"] is False
    # Batched, with prefix reuse: concurrent greedy calls all answer, and a prompt seen before
    # (its prefix now cached) still gives text.
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: batching.generate(PROMPT, max_tokens=8, temperature=0), range(4)))
    assert all(a.strip() for a in answers), answers
    with pytest.raises(TypeError):
        kaito.LLM(model, threads=1, ctx_size=512, deterministic="yes")  # type: ignore[arg-type]
