"""POST /v1/completions (legacy text completions) through the openai client."""

import json

from helpers import MODEL_NAME, sse_events

PROMPT = "The capital of France is"
COUNTING = "1, 2, 3, 4, 5,"


def complete(client, prompt=PROMPT, **kw):
    kw.setdefault("max_tokens", 16)
    return client.completions.create(model=MODEL_NAME, prompt=prompt, **kw)


def test_greedy_completion_continues_the_prompt(client):
    resp = complete(client, temperature=0, max_tokens=8)
    assert "Paris" in resp.choices[0].text


def test_completion_has_openai_text_completion_shape(client):
    resp = complete(client, temperature=0, max_tokens=6)
    assert resp.object == "text_completion"
    assert isinstance(resp.id, str) and resp.id
    assert isinstance(resp.created, int)
    assert resp.model == MODEL_NAME
    assert len(resp.choices) == 1
    assert resp.choices[0].index == 0
    assert isinstance(resp.choices[0].text, str) and resp.choices[0].text
    assert resp.choices[0].finish_reason in ("stop", "length")
    u = resp.usage
    assert u.prompt_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_completion_does_not_echo_the_prompt(client):
    resp = complete(client, temperature=0, max_tokens=6)
    assert not resp.choices[0].text.startswith(PROMPT)


def test_finish_reason_length_generates_exactly_max_tokens(client):
    resp = complete(client, prompt=COUNTING, temperature=0, max_tokens=4)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 4


def test_same_seed_gives_same_completion(client):
    kw = dict(prompt="Once upon a time", temperature=1.0, seed=99, max_tokens=16)
    assert complete(client, **kw).choices[0].text == complete(client, **kw).choices[0].text


def test_stop_string_cuts_completion_before_the_stop(client):
    full = complete(client, prompt=COUNTING, temperature=0, max_tokens=16).choices[0].text
    assert " 8," in full, f"greedy counting did not reach 8: {full!r}"
    resp = complete(client, prompt=COUNTING, temperature=0, max_tokens=16, stop=[" 8,"])
    assert resp.choices[0].text == full[: full.index(" 8,")]
    assert resp.choices[0].finish_reason == "stop"


def test_n_returns_n_indexed_choices(client):
    resp = complete(client, prompt="Once upon a time", temperature=1.0, n=2, max_tokens=6)
    assert sorted(c.index for c in resp.choices) == [0, 1]
    assert all(c.text for c in resp.choices)


def test_logprobs_list_tokens_offsets_and_alternatives(client):
    resp = complete(client, temperature=0, max_tokens=6, logprobs=2)
    choice = resp.choices[0]
    lp = choice.logprobs
    n = resp.usage.completion_tokens
    assert len(lp.tokens) == n
    assert len(lp.token_logprobs) == n
    assert len(lp.top_logprobs) == n
    assert len(lp.text_offset) == n
    assert "".join(lp.tokens) == choice.text
    assert all(x <= 0.0 for x in lp.token_logprobs)
    for tok, alts in zip(lp.tokens, lp.top_logprobs):
        assert len(alts) == 2
        # greedy: the generated token is the best alternative
        assert max(alts, key=alts.get) == tok
    for i in range(n - 1):
        assert lp.text_offset[i + 1] - lp.text_offset[i] == len(lp.tokens[i])


def test_stream_text_equals_non_stream_text(client):
    plain = complete(client, prompt=COUNTING, temperature=0, max_tokens=12)
    chunks = list(
        client.completions.create(
            model=MODEL_NAME, prompt=COUNTING, temperature=0, max_tokens=12, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text
    assert all(c.object == "text_completion" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == plain.choices[0].finish_reason


def test_stream_is_server_sent_events_ending_with_done(http):
    body = {"model": MODEL_NAME, "prompt": PROMPT, "max_tokens": 4, "stream": True}
    with http.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(r))
    assert events[-1] == "[DONE]"
    for e in events[:-1]:
        assert json.loads(e)["object"] == "text_completion"


def test_concurrent_completions_each_continue_their_own_prompt(client):
    """Four sequences decoded together (--parallel 4) must not mix their contexts."""
    import concurrent.futures as cf

    cases = {
        "1, 2, 3, 4, 5,": " 6",
        "a, b, c, d, e,": " f",
        "10, 20, 30, 40,": " 50",
        "A, B, C, D, E,": " F",
    }

    def one(prompt):
        return complete(client, prompt=prompt, temperature=0, max_tokens=8).choices[0].text

    for _ in range(2):
        with cf.ThreadPoolExecutor(4) as ex:
            texts = dict(zip(cases, ex.map(one, cases)))
        for prompt, want in cases.items():
            assert texts[prompt].startswith(want), f"{prompt!r} continued as {texts[prompt]!r}"
