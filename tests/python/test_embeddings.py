"""POST /v1/embeddings through the openai client."""

import base64
import math
import struct

import pytest

from helpers import MODEL_NAME

DIM = 576  # SmolLM2-135M hidden size


def embed(client, inp, **kw):
    kw.setdefault("encoding_format", "float")
    return client.embeddings.create(model=MODEL_NAME, input=inp, **kw)


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))


def test_single_string_gives_one_normalised_vector(client):
    resp = embed(client, "The quick brown fox jumps over the lazy dog.")
    assert resp.object == "list"
    assert resp.model == MODEL_NAME
    assert len(resp.data) == 1
    d = resp.data[0]
    assert d.object == "embedding"
    assert d.index == 0
    assert len(d.embedding) == DIM
    assert all(isinstance(x, float) and math.isfinite(x) for x in d.embedding)
    assert norm(d.embedding) == pytest.approx(1.0, abs=1e-3)


def test_list_input_gives_one_vector_per_string_in_order(client):
    texts = ["I like cats.", "Quantum chromodynamics is hard.", "Paris is in France."]
    resp = embed(client, texts)
    assert [d.index for d in resp.data] == [0, 1, 2]
    assert all(len(d.embedding) == DIM for d in resp.data)
    assert all(norm(d.embedding) == pytest.approx(1.0, abs=1e-3) for d in resp.data)
    # each batched vector is the vector of that text alone (no mixing between inputs)
    for text, d in zip(texts, resp.data):
        alone = embed(client, text).data[0].embedding
        assert cosine(alone, d.embedding) > 0.999, text


def test_different_texts_give_different_vectors(client):
    resp = embed(client, ["I like cats.", "Quantum chromodynamics is hard."])
    assert cosine(resp.data[0].embedding, resp.data[1].embedding) < 0.999


def test_same_text_gives_same_vector(client):
    a = embed(client, "Reproducible embeddings.").data[0].embedding
    b = embed(client, "Reproducible embeddings.").data[0].embedding
    assert cosine(a, b) > 0.99999


def test_usage_counts_prompt_tokens(client):
    short = embed(client, "cat").usage
    long = embed(client, "The cat sat on the mat and looked out of the window at the birds.").usage
    assert short.prompt_tokens > 0
    assert long.prompt_tokens > short.prompt_tokens
    assert long.total_tokens == long.prompt_tokens
    both = embed(client, ["cat", "The cat sat on the mat and looked out of the window at the birds."])
    assert both.usage.prompt_tokens == short.prompt_tokens + long.prompt_tokens


def test_token_id_input_is_accepted(client):
    resp = embed(client, [[504, 2365, 6354, 16438, 27003], [504, 2365]])
    assert len(resp.data) == 2
    assert all(len(d.embedding) == DIM for d in resp.data)
    assert resp.usage.prompt_tokens >= 7


def test_base64_encoding_decodes_to_the_float_vector(client, http):
    text = "Encode me as base64."
    floats = embed(client, text).data[0].embedding
    # raw: the server sends a base64 string of little-endian float32
    r = http.post(
        "/v1/embeddings",
        json={"model": MODEL_NAME, "input": text, "encoding_format": "base64"},
    )
    assert r.status_code == 200
    raw = r.json()["data"][0]["embedding"]
    assert isinstance(raw, str)
    decoded = struct.unpack(f"<{DIM}f", base64.b64decode(raw))
    assert cosine(decoded, floats) > 0.99999
    # the openai client asks for base64 by default (no encoding_format) and decodes it
    via_client = client.embeddings.create(model=MODEL_NAME, input=text)
    assert len(via_client.data[0].embedding) == DIM
    assert cosine(via_client.data[0].embedding, floats) > 0.99999
