//! The checks, written once: each takes the engine under test and asserts what a user of the
//! engine (or of the OpenAI server in front of it) would notice. None measures time.

use std::time::Duration;

use axum::http::StatusCode;
use futures::StreamExt;
use kaito_core::{Constraint, FinishReason, GenerationEvent, Health, SamplingParams};
use serde_json::{json, Value};

use crate::harness::{
    chat_body, drain, drain_rest, greedy_to_the_end, openai_error, post, refusal, request, seeded,
    Subject, CAPITAL_QUESTION, SYSTEM,
};

/// SmolLM2-135M's shape: the same weights behind every engine.
const VOCAB: u32 = 49152;
const HIDDEN: usize = 576;
const LAYERS: u32 = 30;
const CONTEXT: u32 = 1024;

/// Loads and reports what it serves: architecture, sizes, context, health, and a chat template
/// that renders ChatML; text survives a tokenize → detokenize round trip.
pub async fn reports_model_info(s: &Subject) {
    let b = s.engine();
    assert_eq!(b.name(), s.expect.engine);
    assert_eq!(b.health(), Health::Healthy);
    assert_eq!(b.context_size(), CONTEXT, "the configured ctx_size");
    let info = b.model();
    assert_eq!(info.id, crate::harness::SERVED_NAME);
    assert_eq!(info.architecture, "llama", "{info:?}");
    assert_eq!(info.vocab_size, Some(VOCAB), "{info:?}");
    assert_eq!(info.embedding_length, Some(HIDDEN as u32), "{info:?}");
    assert_eq!(info.layers, Some(LAYERS), "{info:?}");
    assert_eq!(info.heads, Some(9), "{info:?}");
    assert_eq!(info.kv_heads, Some(3), "{info:?}");
    assert!(
        info.context_length.is_some_and(|c| c >= 2048),
        "training context: {info:?}"
    );
    assert!(
        (100_000_000..200_000_000).contains(&info.parameters),
        "135M parameters: {}",
        info.parameters
    );
    assert!(
        info.quantization
            .as_deref()
            .is_some_and(|q| q.eq_ignore_ascii_case(s.expect.quantization)),
        "quantization {:?}, expected {}",
        info.quantization,
        s.expect.quantization
    );
    let caps = b.capabilities();
    assert!(caps.embeddings && caps.logprobs, "{caps:?}");
    assert_eq!(
        caps.constrained_decoding, s.expect.constrained_decoding,
        "{caps:?}"
    );
    assert_eq!(
        s.chat_text(CAPITAL_QUESTION),
        format!("<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{CAPITAL_QUESTION}<|im_end|>\n<|im_start|>assistant\n"),
        "the model's chat template renders ChatML"
    );
    let prompt = s.chat_prompt(CAPITAL_QUESTION);
    assert_eq!(
        prompt[0], 1,
        "<|im_start|> is one special token: {prompt:?}"
    );
    let text = "The quick brown fox jumps over the lazy dog. Ünïcödé ✓";
    let ids = b.tokenize(text, false, false).unwrap();
    assert!(ids.len() > 5 && ids.iter().all(|&t| t < VOCAB), "{ids:?}");
    assert_eq!(b.detokenize(&ids).unwrap(), text);
}

/// The same prompt twice under greedy decoding gives the same tokens.
pub async fn greedy_is_deterministic(s: &Subject) {
    let prompt = s.chat_prompt("Write a long story about a dragon.");
    let first = s
        .complete(request(prompt.clone(), 24, greedy_to_the_end()))
        .await;
    let second = s.complete(request(prompt, 24, greedy_to_the_end())).await;
    assert_eq!(first.tokens.len(), 24);
    assert_eq!(first, second);
    assert!(
        first.text.split_whitespace().count() >= 5,
        "looks like text: {:?}",
        first.text
    );
}

/// The chat answer to the capital of France names Paris, and the model ends it by itself.
pub async fn greedy_answers_the_capital_of_france(s: &Subject) {
    let answer = s
        .complete(request(
            s.chat_prompt(CAPITAL_QUESTION),
            32,
            SamplingParams::greedy(),
        ))
        .await;
    assert!(answer.text.contains("Paris"), "{:?}", answer.text);
    assert_eq!(
        answer.reason,
        FinishReason::Stop,
        "the model ends its short answer itself: {:?}",
        answer.text
    );
}

/// Sampling with a seed is reproducible; another seed takes another path.
pub async fn seeded_sampling_is_reproducible(s: &Subject) {
    let prompt = s.chat_prompt("Invent a name for a cat and tell its story.");
    let a = s.complete(request(prompt.clone(), 48, seeded(42))).await;
    let again = s.complete(request(prompt.clone(), 48, seeded(42))).await;
    let other = s.complete(request(prompt, 48, seeded(4242))).await;
    assert_eq!(a.tokens.len(), 48);
    assert_eq!(a, again, "same seed, same tokens");
    assert_ne!(
        a.tokens, other.tokens,
        "seeds 42 and 4242 gave the same 48 tokens: {:?}",
        a.text
    );
}

/// Through the server, `stop: ["Paris"]` ends the answer just before it, with finish "stop".
pub async fn stop_strings_end_the_answer(s: &Subject) {
    let router = s.router();
    let (status, full) = post(
        &router,
        "/v1/chat/completions",
        chat_body(CAPITAL_QUESTION, json!({"max_tokens": 32})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{full}");
    let full_text = full["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    let at = full_text
        .find("Paris")
        .unwrap_or_else(|| panic!("the answer has no Paris to stop at: {full_text:?}"));
    let (status, stopped) = post(
        &router,
        "/v1/chat/completions",
        chat_body(
            CAPITAL_QUESTION,
            json!({"max_tokens": 32, "stop": ["Paris"]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    let choice = &stopped["choices"][0];
    assert_eq!(choice["finish_reason"], "stop", "{stopped}");
    assert_eq!(
        choice["message"]["content"].as_str(),
        Some(&full_text[..at]),
        "cut just before the stop string (full answer {full_text:?})"
    );
}

/// `max_tokens` with `ignore_eos` yields exactly that many tokens and finish "length", from the
/// engine and through the server.
pub async fn max_tokens_is_exact(s: &Subject) {
    let prompt = s.chat_prompt("Say hi.");
    for n in [1, 7] {
        let c = s
            .complete(request(prompt.clone(), n, greedy_to_the_end()))
            .await;
        assert_eq!(c.tokens.len(), n as usize, "{c:?}");
        assert_eq!(c.reason, FinishReason::Length);
    }
    let (status, body) = post(
        &s.router(),
        "/v1/chat/completions",
        chat_body("Say hi.", json!({"max_tokens": 5, "ignore_eos": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "length", "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 5, "{body}");
}

/// Dropping a stream mid-generation frees its sequence; the next request is served.
pub async fn dropping_a_stream_cancels_it(s: &Subject) {
    let b = s.engine();
    let mut stream = s.start(request(
        s.chat_prompt("Write a long essay about the sea."),
        500,
        greedy_to_the_end(),
    ));
    let mut tokens = 0;
    while tokens < 2 {
        match stream.next().await.expect("stream open").expect("no error") {
            GenerationEvent::Token(_) => tokens += 1,
            GenerationEvent::Started { .. } => {}
            GenerationEvent::Finished { reason } => panic!("finished early: {reason:?}"),
        }
    }
    assert_eq!(b.stats().running, 1, "{:?}", b.stats());
    drop(stream);
    let mut stats = b.stats();
    for _ in 0..600 {
        if stats.running == 0 && stats.waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats = b.stats();
    }
    assert_eq!(
        (stats.running, stats.waiting),
        (0, 0),
        "the dropped sequence still runs: {stats:?}"
    );
    let next = s
        .complete(request(s.chat_prompt("Say hi."), 4, greedy_to_the_end()))
        .await;
    assert_eq!(next.tokens.len(), 4);
}

/// Embeddings: one vector of the hidden size per input, unit length, closer for similar texts.
pub async fn embeddings_have_the_model_shape(s: &Subject) {
    let b = s.engine();
    let inputs = [
        "The cat sat on the mat.",
        "A cat is sitting on a mat.",
        "Quarterly revenue grew by 4%.",
    ]
    .iter()
    .map(|t| b.tokenize(t, true, false).unwrap())
    .collect();
    let v = b.embed(inputs).await.expect("embed");
    assert_eq!(v.len(), 3);
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
    for e in &v {
        assert_eq!(e.len(), HIDDEN);
        assert!(e.iter().all(|x| x.is_finite()));
        assert!(
            (dot(e, e).sqrt() - 1.0).abs() < 1e-3,
            "L2 norm {}",
            dot(e, e)
        );
    }
    let (similar, unrelated) = (dot(&v[0], &v[1]), dot(&v[0], &v[2]));
    assert!(
        similar > unrelated,
        "cosine similar {similar} vs unrelated {unrelated}"
    );
}

/// Four requests at once each finish with their own answer: the one it gets alone.
pub async fn concurrent_requests_get_their_own_answers(s: &Subject) {
    let b = s.engine();
    let questions = [
        CAPITAL_QUESTION,
        "Name a color.",
        "What is 2+2?",
        "Write a poem about rain.",
    ];
    let mut alone = Vec::new();
    for q in questions {
        alone.push(
            s.complete(request(s.chat_prompt(q), 12, greedy_to_the_end()))
                .await,
        );
    }
    let streams: Vec<_> = questions
        .iter()
        .map(|q| s.start(request(s.chat_prompt(q), 12, greedy_to_the_end())))
        .collect();
    let together = futures::future::join_all(streams.into_iter().map(|st| drain(b, st))).await;
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(t.tokens.len(), 12);
        assert_eq!(
            a, t,
            "question {i} ({:?}) answered differently beside three others",
            questions[i]
        );
    }
    assert!(
        alone.windows(2).any(|w| w[0].tokens != w[1].tokens),
        "different questions, different answers"
    );
}

/// Bad input gets a clear error, a request running beside it is undisturbed, and the engine
/// keeps serving.
pub async fn bad_input_is_refused_and_the_engine_keeps_serving(s: &Subject) {
    let b = s.engine();
    let bystander_prompt = s.chat_prompt("Write a poem about rain.");
    let bystander_alone = s
        .complete(request(bystander_prompt.clone(), 32, greedy_to_the_end()))
        .await;
    let mut bystander = s.start(request(bystander_prompt, 32, greedy_to_the_end()));
    while !matches!(
        bystander.next().await.expect("open").expect("no error"),
        GenerationEvent::Token(_)
    ) {}

    let e = refusal(b, request(vec![], 4, SamplingParams::greedy())).await;
    assert!(e.to_string().contains("empty"), "empty prompt: {e}");

    let mut out_of_vocab = s.chat_prompt("Hi");
    out_of_vocab.push(VOCAB);
    let e = refusal(b, request(out_of_vocab, 4, SamplingParams::greedy())).await;
    assert!(
        e.to_string().contains("vocabulary"),
        "token id {VOCAB}: {e}"
    );

    let word = b.tokenize(" hello", false, false).unwrap();
    let too_long: Vec<u32> = word.iter().copied().cycle().take(1100).collect();
    let e = refusal(b, request(too_long.clone(), 4, SamplingParams::greedy())).await;
    assert!(
        e.to_string().contains("context"),
        "a 1100-token prompt with a 1024-token context: {e}"
    );

    assert!(
        b.embed(vec![vec![]]).await.is_err(),
        "empty embedding input"
    );
    assert!(
        b.embed(vec![vec![VOCAB]]).await.is_err(),
        "out-of-vocabulary embedding input"
    );
    assert!(
        b.embed(vec![too_long]).await.is_err(),
        "embedding input over the context"
    );
    assert!(b.detokenize(&[VOCAB]).is_err(), "detokenize token {VOCAB}");

    let rest = drain_rest(b, bystander).await;
    assert_eq!(
        rest.tokens[..],
        bystander_alone.tokens[1..],
        "the request running beside the bad ones finishes as it would alone"
    );
    assert_eq!(b.health(), Health::Healthy);
    let after = s
        .complete(request(s.chat_prompt("Say hi."), 6, greedy_to_the_end()))
        .await;
    assert_eq!(after.tokens.len(), 6);
    assert_eq!(b.stats().running, 0, "{:?}", b.stats());
}

/// Through the server, bad requests get a 400 with an OpenAI error body; good ones still work.
pub async fn bad_requests_get_openai_errors(s: &Subject) {
    let router = s.router();
    let (status, body) = post(
        &router,
        "/v1/chat/completions",
        chat_body("Hi", json!({"temperature": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = openai_error(&body);
    assert_eq!(error["type"], "invalid_request_error", "{body}");
    assert_eq!(error["param"], "temperature", "{body}");

    let long = "hello ".repeat(1100);
    let (status, body) = post(&router, "/v1/chat/completions", chat_body(&long, json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        openai_error(&body)["code"],
        "context_length_exceeded",
        "{body}"
    );

    let (status, body) = post(
        &router,
        "/v1/completions",
        json!({"model": crate::harness::SERVED_NAME, "prompt": "Hi", "max_tokens": 2000}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    openai_error(&body);

    let (status, body) = post(
        &router,
        "/v1/chat/completions",
        chat_body("Say hi.", json!({"max_tokens": 4})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["choices"][0]["message"]["content"].is_string());
}

/// `response_format: json_object`: valid JSON where the engine constrains decoding; otherwise a
/// 400 naming `response_format` (never unconstrained text passed off as JSON).
pub async fn json_response_format_is_honoured_or_refused(s: &Subject) {
    let (status, body) = post(
        &s.router(),
        "/v1/chat/completions",
        chat_body(
            "What is the capital of France? Answer with a JSON object with the keys city and country.",
            json!({"max_tokens": 128, "response_format": {"type": "json_object"}}),
        ),
    )
    .await;
    if s.expect.constrained_decoding {
        assert_eq!(status, StatusCode::OK, "{body}");
        let content = body["choices"][0]["message"]["content"]
            .as_str()
            .expect("content");
        let value: Value =
            serde_json::from_str(content).unwrap_or_else(|e| panic!("not JSON ({e}): {content:?}"));
        assert!(value.is_object(), "{value}");
    } else {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error = openai_error(&body);
        assert!(
            error["param"] == "response_format"
                || error["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("response_format")),
            "the error names response_format: {body}"
        );
        // The engine refuses the constraint itself too, not only the server.
        let mut req = request(s.chat_prompt("Hi"), 4, SamplingParams::greedy());
        req.constraint = Some(Constraint::JsonObject);
        let e = refusal(s.engine(), req).await;
        assert!(
            matches!(e, kaito_core::Error::InvalidRequest { .. }),
            "an invalid-request error: {e:?}"
        );
    }
}
