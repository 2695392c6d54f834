//! The HTTP server with a scripted engine (no model): admission control, cancellation on disconnect,
//! stop strings in streams, auth and error shapes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use kaito_core::infer::{self, AdmissionLimits, AppState, ModelHandle, ServerConfig};
use kaito_core::server;
use kaito_core::testing::ScriptedBackend;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Admission of `kaito serve`'s defaults: 4 decoding, 64 waiting.
const LIMITS: AdmissionLimits = AdmissionLimits {
    parallel: 4,
    max_queue: 64,
};

fn state(config: ServerConfig, reply: &str, delay_ms: u64) -> Arc<AppState> {
    state_with(config, LIMITS, reply, delay_ms)
}

fn state_with(
    config: ServerConfig,
    limits: AdmissionLimits,
    reply: &str,
    delay_ms: u64,
) -> Arc<AppState> {
    let state = AppState::new(config);
    let backend = ScriptedBackend::new("m", reply, Duration::from_millis(delay_ms));
    state
        .models
        .insert(ModelHandle::new("m", Arc::new(backend), limits).unwrap());
    state.set_ready();
    state
}

fn chat(body: Value) -> Request<Body> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn json_body(response: axum::response::Response) -> Value {
    serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap()
}

async fn metrics_text(router: axum::Router) -> String {
    let metrics = router
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = axum::body::to_bytes(metrics.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

fn hello(extra: Value) -> Value {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

#[tokio::test]
async fn requests_beyond_parallel_plus_queue_get_503_with_retry_after() {
    let limits = AdmissionLimits {
        parallel: 1,
        max_queue: 1,
    };
    let state = state_with(ServerConfig::default(), limits, "slow answer", 50);
    let router = server::router(state.clone());
    // Two streaming requests hold both admission slots while their bodies are open.
    let first = router
        .clone()
        .oneshot(chat(hello(json!({"stream": true}))))
        .await
        .unwrap();
    let second = router
        .clone()
        .oneshot(chat(hello(json!({"stream": true}))))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let third = router
        .clone()
        .oneshot(chat(hello(json!({}))))
        .await
        .unwrap();
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(third.headers()["retry-after"], "1");
    let body = json_body(third).await;
    assert_eq!(body["error"]["type"], "server_overloaded");
    // Finishing the streams frees the slots: the server serves again.
    drop(first);
    drop(second);
    let again = router
        .oneshot(chat(hello(json!({"max_tokens": 3}))))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn dropping_a_stream_cancels_its_generation() {
    let state = state(
        ServerConfig::default(),
        "a long answer that takes a while to stream",
        20,
    );
    let router = server::router(state.clone());
    let response = router
        .oneshot(chat(hello(json!({"stream": true}))))
        .await
        .unwrap();
    let mut body = response.into_body().into_data_stream();
    body.next().await.unwrap().unwrap();
    let model = state.models.ready().pop().unwrap();
    assert_eq!(model.backend().stats().running, 1);
    drop(body);
    for _ in 0..50 {
        if model.backend().stats().running == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("generation still running after the client went away");
}

#[tokio::test]
async fn streamed_text_is_cut_before_a_stop_string_split_across_tokens() {
    let state = state(ServerConfig::default(), "Paris.\n\nNext paragraph", 0);
    let response = server::router(state)
        .oneshot(chat(hello(json!({"stream": true, "stop": ["\n\n"]}))))
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut content = String::new();
    let mut finish = None;
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        content.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    assert_eq!(content, "Paris.");
    assert_eq!(finish.as_deref(), Some("stop"));
    assert!(text.trim_end().ends_with("data: [DONE]"));
}

#[tokio::test]
async fn api_keys_guard_v1_but_not_probes() {
    let config = ServerConfig {
        api_keys: vec!["s3cret".into()],
    };
    let router = server::router(state(config, "ok", 0));
    let denied = router
        .clone()
        .oneshot(chat(hello(json!({}))))
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(denied).await["error"]["code"], "invalid_api_key");
    let mut allowed = chat(hello(json!({})));
    allowed
        .headers_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert_eq!(
        router.clone().oneshot(allowed).await.unwrap().status(),
        StatusCode::OK
    );
    let health = router
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_get_openai_errors_naming_the_field() {
    let router = server::router(state(ServerConfig::default(), "ok", 0));
    let cases = [
        (
            Body::from("{not json"),
            StatusCode::BAD_REQUEST,
            Value::Null,
        ),
        (
            Body::from(hello(json!({"max_tokens": "ten"})).to_string()),
            StatusCode::BAD_REQUEST,
            json!("max_tokens"),
        ),
        (
            Body::from(hello(json!({"temperature": 9})).to_string()),
            StatusCode::BAD_REQUEST,
            json!("temperature"),
        ),
        (
            Body::from(json!({"model": "m"}).to_string()),
            StatusCode::BAD_REQUEST,
            json!("messages"),
        ),
        (
            Body::from(hello(json!({"model": "other"})).to_string()),
            StatusCode::NOT_FOUND,
            json!("model"),
        ),
    ];
    for (body, status, param) in cases {
        let request = Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), status);
        let v = json_body(response).await;
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert_eq!(v["error"]["param"], param, "{v}");
    }
}

#[tokio::test]
async fn readiness_waits_for_the_engine() {
    let state = AppState::new(ServerConfig::default());
    state.models.begin_loading("m");
    let router = server::router(state.clone());
    let ready = |r: axum::Router| async move {
        r.oneshot(Request::get("/ready").body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready(router.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
    let busy = router
        .clone()
        .oneshot(chat(hello(json!({}))))
        .await
        .unwrap();
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    let backend = Arc::new(ScriptedBackend::new("m", "ok", Duration::ZERO));
    state
        .models
        .insert(ModelHandle::new("m", backend, LIMITS).unwrap());
    infer::warm_up(&state).await.unwrap();
    assert_eq!(ready(router).await, StatusCode::OK);
}

#[tokio::test]
async fn every_error_answer_is_counted_by_status_and_reason() {
    let config = ServerConfig {
        api_keys: vec!["sk-right".into()],
    };
    let router = server::router(state(config, "ok", 0));
    let send = |body: Value, key: &'static str| {
        let router = router.clone();
        async move {
            let request = Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::from(body.to_string()))
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        }
    };
    for _ in 0..2 {
        let status = send(hello(json!({"temperature": 9})), "sk-right").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let status = send(hello(json!({"model": "other"})), "sk-right").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        send(hello(json!({})), "sk-wrong").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(hello(json!({})), "sk-right").await, StatusCode::OK);
    let missing = router
        .clone()
        .oneshot(Request::get("/v2/nothing").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let text = metrics_text(router).await;
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("kaito:request_errors_total{"))
        .collect();
    let expected = [
        r#"kaito:request_errors_total{model_name="m",status="400",reason="invalid_request_error"} 2"#,
        r#"kaito:request_errors_total{model_name="m",status="401",reason="invalid_api_key"} 1"#,
        r#"kaito:request_errors_total{model_name="m",status="404",reason="model_not_found"} 1"#,
        r#"kaito:request_errors_total{model_name="m",status="404",reason="not_found"} 1"#,
    ];
    assert_eq!(errors, expected, "{text}");
    assert!(
        text.contains(r#"vllm:request_success_total{model_name="m",finished_reason="stop"} 1"#)
            || text.contains(
                r#"vllm:request_success_total{model_name="m",finished_reason="length"} 1"#
            ),
        "{text}"
    );
}

#[tokio::test]
async fn each_request_reaches_the_model_it_names() {
    let state = AppState::new(ServerConfig::default());
    for (name, reply) in [("a", "from a"), ("b", "from b")] {
        let backend = ScriptedBackend::new(name, reply, Duration::ZERO);
        let model = ModelHandle::new(name, Arc::new(backend), LIMITS).unwrap();
        state.models.insert(model);
    }
    state.models.begin_loading("c");
    state.set_ready();
    let router = server::router(state.clone());
    let ask = |model: &'static str| {
        let router = router.clone();
        async move {
            let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
            let response = router.oneshot(chat(body)).await.unwrap();
            (response.status(), json_body(response).await)
        }
    };
    for (name, reply) in [("a", "from a"), ("b", "from b")] {
        let (status, v) = ask(name).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["model"], name);
        assert_eq!(v["choices"][0]["message"]["content"], reply);
    }
    // Still loading: 503, retry later.
    let (status, v) = ask("c").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    // Unknown: 404 naming what is served.
    let (status, v) = ask("d").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert_eq!(
        v["error"]["message"],
        "The model `d` does not exist. This server serves `a`, `b`, `c`."
    );

    let models = router
        .clone()
        .oneshot(Request::get("/v1/models").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let ids: Vec<Value> = json_body(models).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("a"), json!("b"), json!("c")]);

    // One family per metric, a series per model: each request counted under its own model.
    let text = metrics_text(router).await;
    assert_eq!(
        text.matches("# TYPE vllm:generation_tokens counter")
            .count(),
        1,
        "{text}"
    );
    for name in ["a", "b"] {
        let line = format!(
            "vllm:request_success_total{{model_name=\"{name}\",finished_reason=\"stop\"}} 1"
        );
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
    assert!(text.contains(r#"vllm:num_requests_running{model_name="c"} 0"#));
}
