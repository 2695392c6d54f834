"""Invalid requests get OpenAI-shaped errors, and the server keeps serving afterwards."""

import openai
import pytest

from helpers import MODEL_NAME, assert_error_doc, error_doc

HELLO = [{"role": "user", "content": "Hello"}]


def assert_still_serving(client):
    resp = client.chat.completions.create(
        model=MODEL_NAME, messages=HELLO, max_tokens=1, temperature=0
    )
    assert resp.usage.completion_tokens == 1


def assert_json_error(r, status, param=None):
    assert r.status_code == status, f"HTTP {r.status_code}: {r.text[:300]}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    return assert_error_doc(r.json(), param=param)


# ---------------------------------------------------------------- raw bodies


def test_malformed_json_body_is_400(http, client):
    r = http.post(
        "/v1/chat/completions",
        content=b'{"model": "smollm2", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert_json_error(r, 400)
    assert_still_serving(client)


def test_missing_messages_is_400(http, client):
    r = http.post("/v1/chat/completions", json={"model": MODEL_NAME, "max_tokens": 4})
    assert_json_error(r, 400)
    assert_still_serving(client)


def test_wrong_type_for_max_tokens_is_400_naming_the_field(http, client):
    r = http.post(
        "/v1/chat/completions",
        json={"model": MODEL_NAME, "messages": HELLO, "max_tokens": "ten"},
    )
    err = assert_json_error(r, 400)
    assert err["param"] == "max_tokens" or "max_tokens" in err["message"], err
    assert_still_serving(client)


def test_completions_without_prompt_is_400(http, client):
    r = http.post("/v1/completions", json={"model": MODEL_NAME, "max_tokens": 4})
    assert_json_error(r, 400)
    assert_still_serving(client)


# ---------------------------------------------------------------- via the openai client


def test_empty_messages_list_is_400(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=MODEL_NAME, messages=[], max_tokens=4)
    assert ei.value.status_code == 400
    assert_error_doc(error_doc(ei.value))
    assert_still_serving(client)


BAD_PARAMS = [
    ("max_tokens", {"max_tokens": 0}),
    ("max_tokens", {"max_tokens": -5}),
    ("temperature", {"temperature": 3}),
    ("top_p", {"top_p": 0}),
    ("top_p", {"top_p": 1.5}),
    ("n", {"n": 0}),
    ("n", {"n": 100}),
    ("top_logprobs", {"logprobs": True, "top_logprobs": 50}),
    ("presence_penalty", {"presence_penalty": 5}),
    ("frequency_penalty", {"frequency_penalty": -5}),
    ("stop", {"stop": ["a", "b", "c", "d", "e"]}),
]


@pytest.mark.parametrize(
    "param,kwargs", BAD_PARAMS, ids=[f"{p}={list(k.values())[-1]}" for p, k in BAD_PARAMS]
)
def test_out_of_range_parameter_is_400_naming_it(client, param, kwargs):
    kwargs = dict(kwargs)
    kwargs.setdefault("max_tokens", 4)
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=MODEL_NAME, messages=HELLO, **kwargs)
    assert ei.value.status_code == 400
    assert_error_doc(error_doc(ei.value), param=param)
    assert_still_serving(client)


def test_invalid_parameter_on_a_stream_request_is_a_plain_400(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(
            model=MODEL_NAME, messages=HELLO, max_tokens=4, temperature=3, stream=True
        )
    assert ei.value.status_code == 400
    assert_error_doc(error_doc(ei.value), param="temperature")
    assert_still_serving(client)


def test_completions_logprobs_above_5_is_400(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=2, logprobs=6)
    assert_error_doc(error_doc(ei.value), param="logprobs")
    assert_still_serving(client)


@pytest.mark.parametrize("endpoint", ["chat", "completions", "embeddings"])
def test_unknown_model_is_404_model_not_found(client, endpoint):
    with pytest.raises(openai.NotFoundError) as ei:
        if endpoint == "chat":
            client.chat.completions.create(model="gpt-17", messages=HELLO, max_tokens=4)
        elif endpoint == "completions":
            client.completions.create(model="gpt-17", prompt="Hi", max_tokens=4)
        else:
            client.embeddings.create(model="gpt-17", input="Hi", encoding_format="float")
    assert ei.value.status_code == 404
    err = assert_error_doc(error_doc(ei.value))
    assert err["code"] == "model_not_found"
    assert_still_serving(client)


def test_prompt_longer_than_context_is_400_context_length(client):
    long_text = "hello " * 2500  # well over 2048 tokens
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": long_text}], max_tokens=4
        )
    err = assert_error_doc(error_doc(ei.value))
    assert "context length" in err["message"].lower(), err
    assert_still_serving(client)


def test_prompt_plus_max_tokens_beyond_context_is_400_context_length(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=MODEL_NAME, messages=HELLO, max_tokens=4000)
    err = assert_error_doc(error_doc(ei.value))
    assert "context length" in err["message"].lower(), err
    assert_still_serving(client)


def test_completions_prompt_longer_than_context_is_400(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.completions.create(model=MODEL_NAME, prompt="hello " * 2500, max_tokens=4)
    err = assert_error_doc(error_doc(ei.value))
    assert "context length" in err["message"].lower(), err
    assert_still_serving(client)
