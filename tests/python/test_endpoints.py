"""Plain HTTP endpoints: /health, /ready, /v1/models, /metrics."""

import httpx

from helpers import MODEL_NAME, get_metrics, metric_sum, parse_metrics


def test_health_returns_ok(http):
    r = http.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_ready_returns_200_once_loaded(http):
    r = http.get("/ready")
    assert r.status_code == 200


def test_models_lists_the_served_model_name(client):
    models = list(client.models.list())
    assert [m.id for m in models] == [MODEL_NAME]
    assert models[0].object == "model"
    assert models[0].owned_by == "kaito"


def test_models_raw_document_is_an_openai_list(http):
    r = http.get("/v1/models")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["object"] == "list"
    assert len(doc["data"]) == 1
    assert doc["data"][0]["id"] == MODEL_NAME
    assert isinstance(doc["data"][0]["created"], int)


EXPECTED_SERIES = [
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
]
EXPECTED_HISTOGRAMS = [
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_queue_time_seconds",
]


def test_metrics_exposes_vllm_series_labelled_with_model_name(client, server):
    # make sure at least one request has been served so every series has data
    client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=4,
        temperature=0,
    )
    r = httpx.get(f"{server.base_url}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = parse_metrics(r.text)
    missing = [
        name
        for name in EXPECTED_SERIES
        if metric_sum(samples, name, model_name=MODEL_NAME) is None
    ]
    for h in EXPECTED_HISTOGRAMS:
        for suffix in ("_bucket", "_sum", "_count"):
            if metric_sum(samples, h + suffix, model_name=MODEL_NAME) is None:
                missing.append(h + suffix)
    assert not missing, f"series missing or without model_name=\"{MODEL_NAME}\": {missing}"
    assert 'vllm:num_requests_running{model_name="smollm2"}' in r.text


def test_metrics_histogram_buckets_have_le_and_inf(server):
    samples = get_metrics(server.base_url)
    for h in EXPECTED_HISTOGRAMS:
        les = [lab.get("le") for n, lab, _ in samples if n == h + "_bucket"]
        assert "+Inf" in les, f"{h}_bucket has no le=\"+Inf\" bucket: {les}"
        inf = metric_sum(samples, h + "_bucket", model_name=MODEL_NAME, le="+Inf")
        count = metric_sum(samples, h + "_count", model_name=MODEL_NAME)
        assert inf == count, f"{h}: +Inf bucket {inf} != _count {count}"


def test_metrics_token_counters_grow_by_the_usage_of_a_request(client, server):
    before = get_metrics(server.base_url)
    resp = client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=12,
        temperature=0,
    )
    after = get_metrics(server.base_url)

    def delta(name):
        return metric_sum(after, name, model_name=MODEL_NAME) - metric_sum(
            before, name, model_name=MODEL_NAME
        )

    assert delta("vllm:prompt_tokens_total") == resp.usage.prompt_tokens
    assert delta("vllm:generation_tokens_total") == resp.usage.completion_tokens
    assert delta("vllm:request_success_total") == 1
    assert delta("vllm:e2e_request_latency_seconds_count") == 1
    assert delta("vllm:time_to_first_token_seconds_count") == 1
    assert delta("vllm:e2e_request_latency_seconds_sum") > 0


def test_metrics_show_no_running_requests_when_idle(server):
    samples = get_metrics(server.base_url)
    assert metric_sum(samples, "vllm:num_requests_running", model_name=MODEL_NAME) == 0
    assert metric_sum(samples, "vllm:num_requests_waiting", model_name=MODEL_NAME) == 0
    usage = metric_sum(samples, "vllm:kv_cache_usage_perc", model_name=MODEL_NAME)
    assert 0.0 <= usage <= 1.0
