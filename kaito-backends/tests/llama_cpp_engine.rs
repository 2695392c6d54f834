//! The llama.cpp engine on the real SmolLM2-135M-Instruct model: behaviour a user of the engine relies on.
//! Model: `$KAITO_TEST_MODEL`, else the bundled preset, fetched into the cache (see `test_models`).
#![cfg(feature = "llama-cpp")]

mod test_models;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use kaito_core::{
    Backend, Constraint, EngineConfig, FinishReason, GenerateRequest, GenerationEvent,
    GenerationStream, SamplingParams,
};

fn model_path() -> PathBuf {
    test_models::gguf()
}

/// One thread (as every test here), a context of `ctx_size` tokens per sequence, `parallel` sequences.
fn config(ctx_size: u32, parallel: u32) -> EngineConfig {
    EngineConfig::default()
        .with_threads(1)
        .with_ctx_size(ctx_size)
        .with_parallel(parallel)
}

/// Loads an engine; tests whose assertions other tests' requests would disturb load their own.
fn load_engine(config: &EngineConfig) -> Arc<dyn Backend> {
    kaito_backends::load(&model_path(), "smollm2", config).expect("load model")
}

/// Two engines for the whole file (loading takes a moment), one thread each, as every test here.
fn shared_engine(deterministic: bool) -> Arc<dyn Backend> {
    static ENGINES: [OnceLock<Arc<dyn Backend>>; 2] = [OnceLock::new(), OnceLock::new()];
    ENGINES[usize::from(deterministic)]
        .get_or_init(|| load_engine(&config(1024, 4).with_deterministic(deterministic)))
        .clone()
}

fn backend() -> Arc<dyn Backend> {
    shared_engine(false)
}

/// A batch-invariant engine (`deterministic`): the tests that compare exact texts across runs use
/// it, since the default engine's text may depend on what runs beside it and on which prefix was
/// cached (the tests in this file run concurrently on the shared engines).
fn deterministic_backend() -> Arc<dyn Backend> {
    shared_engine(true)
}

fn chat_prompt(b: &dyn Backend, user: &str) -> Vec<u32> {
    let text = format!("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n");
    b.tokenize(&text, true, true).unwrap()
}

fn request(prompt: Vec<u32>, max_tokens: u32, sampling: SamplingParams) -> GenerateRequest {
    GenerateRequest::new("t", prompt, max_tokens).with_sampling(sampling)
}

/// Runs a stream to its end: (text, tokens, finish reason).
async fn drain(b: &dyn Backend, mut s: GenerationStream) -> (String, Vec<u32>, FinishReason) {
    let mut ids = Vec::new();
    loop {
        match s
            .next()
            .await
            .expect("stream ends with Finished")
            .expect("no engine error")
        {
            GenerationEvent::Token(t) => ids.push(t.id),
            GenerationEvent::Finished { reason } => {
                return (b.detokenize(&ids).unwrap(), ids, reason)
            }
            GenerationEvent::Started { .. } => {}
        }
    }
}

#[tokio::test]
async fn greedy_answers_the_capital_of_france() {
    let b = backend();
    let s = b
        .generate(request(
            chat_prompt(&*b, "What is the capital of France?"),
            24,
            SamplingParams::greedy(),
        ))
        .unwrap();
    let (text, _, reason) = drain(&*b, s).await;
    assert!(text.contains("Paris"), "{text:?}");
    assert_eq!(
        reason,
        FinishReason::Stop,
        "the model ends its short answer itself: {text:?}"
    );
}

#[tokio::test]
async fn ignore_eos_writes_on_past_the_answer_without_sampling_end_of_generation() {
    // The short answer above ends with <|im_end|>; with `ignore_eos` the engine never samples it
    // (as llama-server): every token past the answer is text, not an invisible control token.
    let b = backend();
    let im_end = b.tokenize("<|im_end|>", false, true).unwrap();
    assert_eq!(im_end.len(), 1);
    let greedy_to_the_end = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy()
    };
    let s = b
        .generate(request(
            chat_prompt(&*b, "What is the capital of France?"),
            24,
            greedy_to_the_end,
        ))
        .unwrap();
    let (text, ids, reason) = drain(&*b, s).await;
    assert!(text.contains("Paris"), "{text:?}");
    assert_eq!(ids.len(), 24);
    assert_eq!(reason, FinishReason::Length);
    assert!(!ids.contains(&im_end[0]), "{ids:?} {text:?}");
}

#[tokio::test]
async fn greedy_is_deterministic_and_max_tokens_is_exact() {
    let b = deterministic_backend();
    let prompt = chat_prompt(&*b, "Write a long story about a dragon.");
    let (a, ids_a, ra) = drain(
        &*b,
        b.generate(request(prompt.clone(), 12, SamplingParams::greedy()))
            .unwrap(),
    )
    .await;
    let (c, ids_c, _) = drain(
        &*b,
        b.generate(request(prompt, 12, SamplingParams::greedy()))
            .unwrap(),
    )
    .await;
    assert_eq!(a, c);
    assert_eq!(ids_a.len(), 12);
    assert_eq!(ids_a, ids_c);
    assert_eq!(ra, FinishReason::Length);
}

#[tokio::test]
async fn same_seed_same_text_other_seed_other_text() {
    let b = deterministic_backend();
    let prompt = chat_prompt(&*b, "Invent a name for a cat.");
    let sampled = |seed| SamplingParams {
        temperature: 1.2,
        seed: Some(seed),
        ..SamplingParams::default()
    };
    let mut texts = Vec::new();
    for seed in [7, 7, 8, 9, 10] {
        texts.push(
            drain(
                &*b,
                b.generate(request(prompt.clone(), 16, sampled(seed)))
                    .unwrap(),
            )
            .await
            .0,
        );
    }
    assert_eq!(texts[0], texts[1], "same seed");
    assert!(
        texts[2..].iter().any(|t| t != &texts[0]),
        "three other seeds all gave {:?}",
        texts[0]
    );
}

#[tokio::test]
async fn concurrent_requests_match_their_sequential_answers() {
    let b = deterministic_backend();
    let questions = [
        "What is the capital of France?",
        "Name a color.",
        "What is 2+2?",
        "Say hello.",
    ];
    let mut sequential = Vec::new();
    for q in questions {
        sequential.push(
            drain(
                &*b,
                b.generate(request(chat_prompt(&*b, q), 10, SamplingParams::greedy()))
                    .unwrap(),
            )
            .await
            .0,
        );
    }
    let streams: Vec<_> = questions
        .iter()
        .map(|q| {
            b.generate(request(chat_prompt(&*b, q), 10, SamplingParams::greedy()))
                .unwrap()
        })
        .collect();
    let mut concurrent = Vec::new();
    for s in futures::future::join_all(streams.into_iter().map(|s| drain(&*b, s))).await {
        concurrent.push(s.0);
    }
    assert_eq!(sequential, concurrent);
}

#[tokio::test]
async fn dropping_a_stream_frees_its_sequence() {
    let b = backend();
    let mut s = b
        .generate(request(
            chat_prompt(&*b, "Write a long essay about the sea."),
            500,
            SamplingParams::greedy(),
        ))
        .unwrap();
    // Wait for the first token, then walk away.
    loop {
        if let GenerationEvent::Token(_) = s.next().await.unwrap().unwrap() {
            break;
        }
    }
    drop(s);
    let mut freed = false;
    for _ in 0..100 {
        if b.stats().running == 0 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "still running: {:?}", b.stats());
}

#[tokio::test]
async fn json_schema_constraint_yields_matching_json() {
    let b = backend();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"]
    });
    let mut req = request(
        chat_prompt(&*b, "Describe Paris as JSON."),
        64,
        SamplingParams::greedy(),
    );
    req.constraint = Some(Constraint::JsonSchema(schema));
    let (text, _, reason) = drain(&*b, b.generate(req).unwrap()).await;
    assert_eq!(reason, FinishReason::Stop, "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(v["city"].is_string() && v["population"].is_i64(), "{v}");
}

#[tokio::test]
async fn logprobs_are_normalised_and_sorted() {
    let b = backend();
    let mut req = request(chat_prompt(&*b, "Say yes."), 3, SamplingParams::greedy());
    req.logprobs = Some(5);
    let mut s = b.generate(req).unwrap();
    let mut seen = 0;
    while let Some(Ok(ev)) = s.next().await {
        if let GenerationEvent::Token(t) = ev {
            let lp = t.logprob.expect("asked for logprobs");
            assert!(lp.logprob <= 0.0);
            assert_eq!(lp.top.len(), 5);
            assert!(lp.top.windows(2).all(|w| w[0].2 >= w[1].2));
            // Greedy: the sampled token is the most likely one.
            assert_eq!(lp.top[0].0, t.id);
            assert!((lp.top[0].2 - lp.logprob).abs() < 1e-4);
            seen += 1;
        }
    }
    assert!(seen > 0);
}

#[tokio::test]
async fn embeddings_are_unit_vectors_that_separate_meanings() {
    let b = backend();
    let inputs = [
        "The cat sat on the mat.",
        "A cat is sitting on a mat.",
        "Quarterly revenue grew by 4%.",
    ]
    .iter()
    .map(|s| b.tokenize(s, true, false).unwrap())
    .collect();
    let v = b.embed(inputs).await.unwrap();
    assert_eq!(v.len(), 3);
    assert!(v.iter().all(|e| e.len() == 576));
    let dot = |a: &[f32], c: &[f32]| a.iter().zip(c).map(|(x, y)| x * y).sum::<f32>();
    for e in &v {
        assert!((dot(e, e) - 1.0).abs() < 1e-3);
    }
    assert!(
        dot(&v[0], &v[1]) > dot(&v[0], &v[2]),
        "similar sentences should be closer"
    );
}

#[tokio::test]
async fn bad_input_is_rejected_and_the_engine_keeps_serving() {
    let b = backend();
    assert!(b
        .generate(request(vec![10_000_000], 4, SamplingParams::greedy()))
        .is_err());
    assert!(b
        .generate(request(vec![], 4, SamplingParams::greedy()))
        .is_err());
    assert!(b.embed(vec![vec![]]).await.is_err());
    let mut req = request(chat_prompt(&*b, "Hi"), 4, SamplingParams::greedy());
    req.constraint = Some(Constraint::Grammar("root ::= (".into()));
    let mut s = b.generate(req).unwrap();
    assert!(
        matches!(s.next().await, Some(Err(_))),
        "a broken grammar is an error on the stream"
    );
    let (text, _, _) = drain(
        &*b,
        b.generate(request(
            chat_prompt(&*b, "What is the capital of France?"),
            24,
            SamplingParams::greedy(),
        ))
        .unwrap(),
    )
    .await;
    assert!(text.contains("Paris"));
}

/// Runs a request and returns (text, cached prompt tokens reported by `Started`).
async fn run_counting_cache(b: &dyn Backend, prompt: Vec<u32>) -> (String, u32) {
    let mut s = b
        .generate(request(prompt, 16, SamplingParams::greedy()))
        .unwrap();
    let (mut ids, mut cached) = (Vec::new(), 0);
    while let Some(ev) = s.next().await {
        match ev.unwrap() {
            GenerationEvent::Started {
                cached_prompt_tokens,
                ..
            } => cached = cached_prompt_tokens,
            GenerationEvent::Token(t) => ids.push(t.id),
            GenerationEvent::Finished { .. } => break,
        }
    }
    (b.detokenize(&ids).unwrap(), cached)
}

#[tokio::test]
async fn prefix_cache_reuses_a_shared_system_prompt() {
    // A private engine, so other tests' requests do not take over its slots.
    let b = load_engine(&config(1024, 2));
    let system =
        "You are Kaito, a concise assistant for a railway company. Answer in one sentence. \
                  Never invent timetables; when unsure, say so and point to the station desk.";
    let prompt = |q: &str| {
        let text = format!("<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n");
        b.tokenize(&text, true, true).unwrap()
    };
    let shared = common_len(
        &prompt("What is the capital of France?"),
        &prompt("Can I bring a bicycle?"),
    );
    assert!(
        shared > 30,
        "the prompts share the system prompt ({shared} tokens)"
    );

    let france = prompt("What is the capital of France?");
    let (_, cached_first) = run_counting_cache(&*b, france.clone()).await;
    assert_eq!(cached_first, 0, "nothing cached yet");
    let (_, cached_other) = run_counting_cache(&*b, prompt("Can I bring a bicycle?")).await;
    assert!(
        cached_other as usize >= shared - 1,
        "system prompt reused: {cached_other} of {shared}"
    );
    // Two runs that both reuse the cache compute the same thing and answer the same. (A cached
    // prefix is not bit-identical to a recomputed one: llama.cpp picks other kernels per batch size.)
    let (again, cached_again) = run_counting_cache(&*b, france.clone()).await;
    let (third, cached_third) = run_counting_cache(&*b, france.clone()).await;
    assert!(cached_again as usize >= shared - 1);
    assert_eq!(
        cached_third as usize,
        france.len() - 1,
        "all of the prompt but its last token"
    );
    assert_eq!(again, third);
    assert!(!again.is_empty());
    assert!(b.stats().cached_prompt_tokens >= u64::from(cached_other + cached_again));
}

fn common_len(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[tokio::test]
async fn a_long_prompt_does_not_stall_a_running_stream() {
    // Small step budget: a 400-token prompt needs a dozen prefill chunks.
    let mut small_steps = config(1024, 2);
    small_steps.batch_size = 32;
    let b = load_engine(&small_steps);
    let greedy_to_the_end = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy()
    };
    let mut a = b
        .generate(request(
            chat_prompt(&*b, "Count to one hundred."),
            60,
            greedy_to_the_end.clone(),
        ))
        .unwrap();
    while !matches!(a.next().await.unwrap().unwrap(), GenerationEvent::Token(_)) {}
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(40);
    let long_prompt = chat_prompt(&*b, &long);
    assert!(long_prompt.len() > 350, "{}", long_prompt.len());
    let mut long_stream = b
        .generate(request(long_prompt, 4, greedy_to_the_end))
        .unwrap();
    // Count the running stream's tokens until the long prompt's first token appears.
    let mut a_tokens_meanwhile = 0;
    loop {
        tokio::select! {
            ev = a.next() => match ev.unwrap().unwrap() {
                GenerationEvent::Token(_) => a_tokens_meanwhile += 1,
                GenerationEvent::Finished { .. } => panic!("stream A ended before the long prompt was read"),
                GenerationEvent::Started { .. } => {}
            },
            ev = long_stream.next() => if let GenerationEvent::Token(_) = ev.unwrap().unwrap() { break },
        }
    }
    // Prefill takes ≥ 11 steps of ≤ 31 prompt tokens; stream A gets a token in each of them.
    assert!(
        a_tokens_meanwhile >= 10,
        "stream A got only {a_tokens_meanwhile} tokens while the long prompt was prefilled"
    );
}

#[tokio::test]
async fn concurrent_requests_share_a_cached_prefix_held_by_another_sequence() {
    let b = load_engine(&config(1024, 3));
    let system =
        "You answer questions about the solar system in one short sentence, for children aged ten.";
    let prompt = |q: &str| {
        let text = format!("<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n");
        b.tokenize(&text, true, true).unwrap()
    };
    let shared = common_len(&prompt("How hot is the Sun?"), &prompt("Why is Mars red?"));
    run_counting_cache(&*b, prompt("How big is Jupiter?")).await;
    // Two at once: one takes the slot holding the prefix, the other borrows it from that slot.
    let (a, c) = tokio::join!(
        run_counting_cache(&*b, prompt("How hot is the Sun?")),
        run_counting_cache(&*b, prompt("Why is Mars red?"))
    );
    assert!(
        a.1 as usize >= shared - 1 && c.1 as usize >= shared - 1,
        "cached {} and {} of {shared}",
        a.1,
        c.1
    );
}

#[tokio::test]
async fn a_finished_prompt_stays_cached_after_other_requests_took_its_sequence_id() {
    let b = load_engine(&config(512, 2));
    let questions = [
        "Name a planet.",
        "What colour is grass?",
        "Say a number.",
        "Name a fruit.",
        "What is ice?",
    ];
    for q in questions {
        run_counting_cache(&*b, chat_prompt(&*b, q)).await;
    }
    // Four requests ran on the two sequence ids since the first one finished.
    let first = chat_prompt(&*b, questions[0]);
    let (_, cached) = run_counting_cache(&*b, first.clone()).await;
    assert_eq!(
        cached as usize,
        first.len() - 1,
        "all of the first prompt but its last token"
    );
}

#[tokio::test]
async fn kept_prompts_leave_the_kv_cells_to_running_requests() {
    // 2 × 256 cells in all; each request below needs about 230 of them.
    let b = load_engine(&config(256, 2));
    let words = ["river", "stone", "cloud", "maple", "ember", "frost"];
    let long_prompt = |w: &str| {
        let text = format!("{w} ").repeat(200);
        let mut ids = b.tokenize(&text, true, false).unwrap();
        ids.truncate(200);
        ids
    };
    let to_the_end = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy()
    };
    for w in &words[..2] {
        let (_, ids, _) = drain(
            &*b,
            b.generate(request(long_prompt(w), 30, to_the_end.clone()))
                .unwrap(),
        )
        .await;
        assert_eq!(ids.len(), 30);
    }
    // Two new long requests need every cell at once, while two finished prompts are kept.
    let streams: Vec<_> = words[2..4]
        .iter()
        .map(|w| {
            b.generate(request(long_prompt(w), 50, to_the_end.clone()))
                .unwrap()
        })
        .collect();
    for (_, ids, reason) in
        futures::future::join_all(streams.into_iter().map(|s| drain(&*b, s))).await
    {
        assert_eq!((ids.len(), reason), (50, FinishReason::Length));
    }
    assert!(matches!(b.health(), kaito_core::Health::Healthy));
}

#[tokio::test]
async fn a_prefix_cache_of_zero_mib_keeps_no_finished_prompt() {
    let b = load_engine(&config(512, 2).with_prefix_cache_mib(0));
    let prompt = chat_prompt(&*b, "Name a planet.");
    run_counting_cache(&*b, prompt.clone()).await;
    let (_, cached) = run_counting_cache(&*b, prompt).await;
    assert_eq!(cached, 0, "nothing kept, nothing running: all recomputed");
}
