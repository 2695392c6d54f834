"""POST /v1/chat/completions through the official openai client."""

import json

import jsonschema
import pytest

import helpers
from helpers import MODEL_NAME, sse_events

# The contract's example question. With no system message, SmolLM2's own chat template inserts its default
# system prompt, under which greedy decoding nearly ties between "L" and "The" and starts "L'Étoile..." (the same
# as plain llama.cpp on the identical prompt); with a plain system message it answers "The capital of France is Paris."
FRANCE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
# A paraphrase that this model answers with "Paris" under plain llama.cpp greedy decoding.
WHICH_CITY = [{"role": "user", "content": "Which city is the capital of France?"}]
COUNT = [{"role": "user", "content": "Count from 1 to 30, separated by commas."}]
STORY = [{"role": "user", "content": "Write a long story about a dragon and a knight."}]


def chat(client, messages=FRANCE, **kw):
    if "max_completion_tokens" not in kw:
        kw.setdefault("max_tokens", 32)
    return client.chat.completions.create(model=MODEL_NAME, messages=messages, **kw)


def stream_text(client, messages, **kw):
    """Stream a chat completion; return (text, chunks)."""
    kw.setdefault("max_tokens", 32)
    chunks = list(
        client.chat.completions.create(
            model=MODEL_NAME, messages=messages, stream=True, **kw
        )
    )
    text = "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices
    )
    return text, chunks


# ---------------------------------------------------------------- basics


def test_greedy_answer_to_capital_of_france_mentions_paris(client):
    resp = chat(client, temperature=0)
    assert "Paris" in resp.choices[0].message.content


def test_response_has_openai_chat_completion_shape(client):
    resp = chat(client, temperature=0, max_tokens=8)
    assert resp.object == "chat.completion"
    assert isinstance(resp.id, str) and resp.id
    assert isinstance(resp.created, int) and resp.created > 1_600_000_000
    assert resp.model == MODEL_NAME
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in ("stop", "length")


def test_usage_total_is_prompt_plus_completion(client):
    resp = chat(client, temperature=0, max_tokens=16)
    u = resp.usage
    assert u.prompt_tokens > 0
    assert 0 < u.completion_tokens <= 16
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_finish_reason_length_generates_exactly_max_tokens(client):
    resp = chat(client, messages=STORY, temperature=0, max_tokens=5)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 5


def test_max_completion_tokens_is_honoured(client):
    resp = chat(client, messages=STORY, temperature=0, max_completion_tokens=3)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 3


def test_natural_end_reports_finish_reason_stop(client):
    resp = chat(
        client,
        messages=[{"role": "user", "content": "Reply with just the word: yes"}],
        temperature=0,
        max_tokens=48,
    )
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens < 48


def test_greedy_output_is_deterministic(client):
    a = chat(client, messages=COUNT, temperature=0).choices[0].message.content
    b = chat(client, messages=COUNT, temperature=0).choices[0].message.content
    assert a == b


# ---------------------------------------------------------------- message forms


def test_content_as_list_of_text_parts_equals_plain_string(client):
    plain = chat(client, temperature=0).choices[0].message.content
    parts = chat(
        client,
        messages=[
            FRANCE[0],
            {
                "role": "user",
                "content": [{"type": "text", "text": "What is the capital of France?"}],
            },
        ],
        temperature=0,
    ).choices[0].message.content
    assert parts == plain


def test_system_message_is_part_of_the_prompt(client):
    def prompt_tokens(system):
        msgs = [{"role": "system", "content": system}, FRANCE[-1]]
        return chat(client, messages=msgs, temperature=0, max_tokens=1).usage.prompt_tokens

    short = prompt_tokens("Be terse.")
    long = prompt_tokens(
        "You are a terse geography tutor. Answer every question in one word, "
        "and never add any explanation, greeting or punctuation."
    )
    assert long > short + 10


def test_multi_turn_conversation_with_assistant_turn(client):
    single = chat(client, temperature=0, max_tokens=1).usage.prompt_tokens
    resp = chat(
        client,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
            {"role": "user", "content": "And what country is Berlin the capital of?"},
        ],
        temperature=0,
    )
    assert resp.choices[0].message.content
    # every turn is in the prompt, not just the last user message
    assert resp.usage.prompt_tokens > single + 15


def test_tool_result_message_is_accepted(client):
    resp = chat(
        client,
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature_c": 21, "sky": "sunny"}'},
        ],
        temperature=0,
    )
    assert resp.choices[0].message.content
    assert resp.choices[0].finish_reason in ("stop", "length")


# ---------------------------------------------------------------- sampling


def test_same_seed_gives_same_text(client):
    kw = dict(messages=STORY, temperature=1.0, seed=1234, max_tokens=24)
    a = chat(client, **kw).choices[0].message.content
    b = chat(client, **kw).choices[0].message.content
    assert a == b


def test_different_seeds_give_different_texts(client):
    texts = {
        chat(client, messages=STORY, temperature=1.5, seed=s, max_tokens=16)
        .choices[0].message.content
        for s in (1, 2, 3, 4)
    }
    assert len(texts) >= 2, f"4 seeds at temperature 1.5 all gave {texts}"


@pytest.mark.parametrize(
    "sampler",
    [
        {"extra_body": {"top_k": 1}},
        {"extra_body": {"min_p": 1.0}},
        {"top_p": 0.001},
    ],
    ids=["top_k=1", "min_p=1", "top_p=0.001"],
)
def test_sampler_that_keeps_one_token_equals_greedy(client, sampler):
    greedy = chat(client, messages=STORY, temperature=0, max_tokens=24).choices[0].message.content
    kw = dict(messages=STORY, temperature=1.5, seed=7, max_tokens=24)
    # control: the same seeded sampling without the restriction is not greedy
    assert chat(client, **kw).choices[0].message.content != greedy
    sampled = chat(client, **kw, **sampler).choices[0].message.content
    assert sampled == greedy


# Greedy counting repeats the same separator tokens over and over; a penalty of
# 2 on already generated tokens changes it (llama.cpp's own penalties sampler
# turns "1. 1\n2. 2\n3. 3..." into something else within a few tokens).
@pytest.mark.parametrize("penalty", ["frequency_penalty", "presence_penalty"])
def test_penalty_changes_repetitive_greedy_output(client, penalty):
    plain = chat(client, messages=COUNT, temperature=0).choices[0].message.content
    penalised = chat(client, messages=COUNT, temperature=0, **{penalty: 2.0}).choices[0].message.content
    assert penalised != plain, f"{penalty}=2 had no effect on {plain!r}"


def test_n_returns_n_indexed_choices(client):
    resp = chat(client, messages=STORY, temperature=1.0, n=3, max_tokens=8)
    assert sorted(c.index for c in resp.choices) == [0, 1, 2]
    for c in resp.choices:
        assert c.message.role == "assistant"
        assert c.message.content
        assert c.finish_reason in ("stop", "length")


# ---------------------------------------------------------------- stop


def _stop_candidate(text):
    """A short substring from the middle of `text`, and the text before its first occurrence."""
    assert len(text) > 12, f"need a longer greedy text to pick a stop string: {text!r}"
    k = len(text) // 2
    stop = text[k : k + 3]
    return stop, text[: text.index(stop)]


def test_stop_string_cuts_text_before_the_stop(client):
    full = chat(client, messages=COUNT, temperature=0).choices[0].message.content
    stop, expected = _stop_candidate(full)
    resp = chat(client, messages=COUNT, temperature=0, stop=stop)
    assert resp.choices[0].message.content == expected
    assert stop not in resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop"


def test_stop_list_uses_the_first_matching_string(client):
    full = chat(client, messages=COUNT, temperature=0).choices[0].message.content
    stop, expected = _stop_candidate(full)
    resp = chat(
        client,
        messages=COUNT,
        temperature=0,
        stop=["ZZZ-never-generated", stop, "QQQ-never", "@@@@"],
    )
    assert resp.choices[0].message.content == expected
    assert resp.choices[0].finish_reason == "stop"


def test_stop_string_in_stream_matches_non_stream(client):
    full = chat(client, messages=COUNT, temperature=0).choices[0].message.content
    stop, expected = _stop_candidate(full)
    text, chunks = stream_text(client, COUNT, temperature=0, stop=[stop])
    assert text == expected
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]


# ---------------------------------------------------------------- logprobs


def test_logprobs_describe_each_generated_token(client):
    resp = chat(client, temperature=0, max_tokens=10, logprobs=True, top_logprobs=3)
    choice = resp.choices[0]
    items = choice.logprobs.content
    assert len(items) == resp.usage.completion_tokens
    for it in items:
        assert isinstance(it.token, str)
        assert it.logprob <= 0.0
        assert isinstance(it.bytes, list) and all(0 <= b < 256 for b in it.bytes)
        assert len(it.top_logprobs) == 3
        lps = [t.logprob for t in it.top_logprobs]
        assert lps == sorted(lps, reverse=True)
        assert all(lp <= 0.0 for lp in lps)
        # greedy: the chosen token is the most likely one
        assert it.top_logprobs[0].token == it.token
        assert it.top_logprobs[0].logprob == pytest.approx(it.logprob, abs=1e-4)
    joined = b"".join(bytes(it.bytes) for it in items).decode("utf-8", errors="replace")
    assert joined == choice.message.content


def test_top_logprobs_zero_gives_empty_alternatives(client):
    resp = chat(client, temperature=0, max_tokens=4, logprobs=True, top_logprobs=0)
    items = resp.choices[0].logprobs.content
    assert len(items) == resp.usage.completion_tokens
    assert all(it.top_logprobs == [] for it in items)


def test_no_logprobs_unless_requested(client):
    resp = chat(client, temperature=0, max_tokens=4)
    assert resp.choices[0].logprobs is None


# ---------------------------------------------------------------- structured output

CITY_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "population": {"type": "integer"},
        "is_capital": {"type": "boolean"},
    },
    "required": ["city", "population", "is_capital"],
    "additionalProperties": False,
}


@helpers.constrained_decoding
def test_json_object_response_format_returns_parseable_json(client):
    resp = chat(
        client,
        messages=[
            {"role": "user", "content": "Describe Paris as a JSON object with keys name and country."}
        ],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=64,
    )
    content = resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop", f"JSON not finished in 64 tokens: {content!r}"
    assert isinstance(json.loads(content), dict)


@helpers.constrained_decoding
def test_json_schema_response_format_matches_schema(client):
    resp = chat(
        client,
        messages=[{"role": "user", "content": "Give facts about Paris as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True},
        },
        temperature=0,
        max_tokens=64,
    )
    content = resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop", f"JSON not finished in 64 tokens: {content!r}"
    jsonschema.validate(json.loads(content), CITY_SCHEMA)


@helpers.constrained_decoding
def test_json_schema_with_sampling_still_matches_schema(client):
    resp = chat(
        client,
        messages=[{"role": "user", "content": "Invent a city and describe it as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY_SCHEMA},
        },
        temperature=1.0,
        seed=3,
        max_tokens=64,
    )
    content = resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop", f"JSON not finished in 64 tokens: {content!r}"
    jsonschema.validate(json.loads(content), CITY_SCHEMA)


# ---------------------------------------------------------------- tools

WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": WEATHER_PARAMS,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Get the local time in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 24}},
                "required": ["city"],
            },
        },
    },
]
WEATHER_Q = [{"role": "user", "content": "What is the weather like in Paris today?"}]


@helpers.constrained_decoding
def test_named_tool_choice_returns_a_call_to_that_function(client):
    resp = chat(
        client,
        messages=WEATHER_Q,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=48,
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls and len(calls) >= 1
    assert calls[0].type == "function"
    assert isinstance(calls[0].id, str) and calls[0].id
    assert calls[0].function.name == "get_weather"
    args = json.loads(calls[0].function.arguments)
    assert isinstance(args, dict)
    jsonschema.validate(args, WEATHER_PARAMS)


@helpers.constrained_decoding
def test_required_tool_choice_returns_a_call_to_one_of_the_tools(client):
    resp = chat(
        client,
        messages=WEATHER_Q,
        tools=TOOLS,
        tool_choice="required",
        temperature=0,
        max_tokens=48,
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    by_name = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    assert call.function.name in by_name
    args = json.loads(call.function.arguments)
    assert isinstance(args, dict)
    jsonschema.validate(args, by_name[call.function.name])


# ---------------------------------------------------------------- streaming


def test_stream_chunks_have_role_first_and_finish_reason_last(client):
    text, chunks = stream_text(client, FRANCE, temperature=0)
    assert len(chunks) >= 2
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, "all chunks of one completion share an id"
    assert all(c.model == MODEL_NAME for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert "Paris" in text


def test_stream_text_equals_non_stream_text_at_temperature_zero(client):
    plain = chat(client, messages=COUNT, temperature=0).choices[0].message.content
    streamed, _ = stream_text(client, COUNT, temperature=0)
    assert streamed == plain


def test_stream_include_usage_sends_a_final_usage_chunk(client):
    plain = chat(client, messages=COUNT, temperature=0, max_tokens=12)
    _, chunks = stream_text(
        client, COUNT, temperature=0, max_tokens=12, stream_options={"include_usage": True}
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == plain.usage.prompt_tokens
    assert last.usage.completion_tokens == plain.usage.completion_tokens
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    # the usage chunk comes after the chunk carrying finish_reason
    assert chunks[-2].choices[0].finish_reason == "length"


def test_stream_is_server_sent_events_ending_with_done(http):
    body = {
        "model": MODEL_NAME,
        "messages": FRANCE,
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(r))
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1
    for e in events[:-1]:
        doc = json.loads(e)
        assert doc["object"] == "chat.completion.chunk"


def test_stream_logprobs_arrive_with_the_chunks(client):
    plain = chat(client, temperature=0, max_tokens=6, logprobs=True, top_logprobs=2)
    _, chunks = stream_text(client, FRANCE, temperature=0, max_tokens=6, logprobs=True, top_logprobs=2)
    streamed = [
        it.token
        for c in chunks
        if c.choices and c.choices[0].logprobs and c.choices[0].logprobs.content
        for it in c.choices[0].logprobs.content
    ]
    assert streamed == [it.token for it in plain.choices[0].logprobs.content]


def test_concurrent_requests_all_complete(client):
    import concurrent.futures as cf

    questions = [
        WHICH_CITY[0]["content"],
        "Name a fruit.",
        "What colour is the sky?",
        "Say hello.",
    ]

    def one(q):
        return chat(client, messages=[{"role": "user", "content": q}], temperature=0, max_tokens=16)

    with cf.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(one, questions))
    assert len({r.id for r in results}) == 4
    for r in results:
        assert r.choices[0].message.content
        assert r.usage.completion_tokens <= 16
