//! One conformance suite, run against every compiled engine on the same SmolLM2-135M-Instruct
//! weights: the checks are written once ([`checks`]) and [`conformance!`] stamps a module of
//! `#[test]`s per engine (`llama_cpp::…`, `torch::…`, `quant_int8::…`, `quant_int4::…`).
//!
//! ```text
//! cargo test --release -p kaito-backends --features quant --test conformance
//! ```
//!
//! The GGUF (llama-cpp) and the Hugging Face checkpoint (torch, quant) come from `test_models`:
//! `KAITO_TEST_MODEL` / `KAITO_TEST_HF_DIR` when set, else the bundled model fetched into the
//! cache and converted there once. Nothing is skipped.
//!
//! Each engine is loaded once per test binary with 1 thread, 4 parallel sequences, a 1024-token
//! context and batch-invariant decoding; checks on one engine run one at a time.
#![cfg(any(feature = "llama-cpp", feature = "torch"))]

#[path = "conformance/checks.rs"]
mod checks;
#[path = "conformance/harness.rs"]
mod harness;
mod test_models;

/// Stamps `mod $module { #[test] fn <check>() … }` running every check on `$subject()`.
macro_rules! conformance {
    ($module:ident, $subject:path) => {
        conformance!(@stamp $module, $subject;
            reports_model_info,
            greedy_is_deterministic,
            greedy_answers_the_capital_of_france,
            seeded_sampling_is_reproducible,
            stop_strings_end_the_answer,
            max_tokens_is_exact,
            dropping_a_stream_cancels_it,
            embeddings_have_the_model_shape,
            concurrent_requests_get_their_own_answers,
            bad_input_is_refused_and_the_engine_keeps_serving,
            bad_requests_get_openai_errors,
            json_response_format_is_honoured_or_refused,
        );
    };
    (@stamp $module:ident, $subject:path; $($check:ident,)*) => {
        mod $module {
            $(
                #[test]
                fn $check() {
                    crate::harness::run($subject(), crate::checks::$check);
                }
            )*
        }
    };
}

/// The engines under test, each loaded on first use.
mod subjects {
    #[allow(unused_imports)] // Which of these are used depends on the features.
    use std::sync::OnceLock;

    #[allow(unused_imports)]
    use crate::harness::{engine_config, Expect, Subject, SERVED_NAME};

    /// Where the torch and quant engines read SmolLM2 from.
    #[cfg(feature = "torch")]
    fn hf_dir() -> std::path::PathBuf {
        crate::test_models::hf_dir()
    }

    #[cfg(feature = "llama-cpp")]
    pub fn llama_cpp() -> &'static Subject {
        static SUBJECT: OnceLock<Subject> = OnceLock::new();
        SUBJECT.get_or_init(|| {
            let expect = Expect {
                engine: "llama-cpp",
                constrained_decoding: true,
                quantization: "Q4_1",
            };
            Subject::load("llama_cpp", expect, || {
                let gguf = crate::test_models::gguf();
                let backend = kaito_backends::llama_cpp::LlamaCppBackend::load(
                    &gguf,
                    SERVED_NAME,
                    &engine_config(),
                )?;
                Ok(std::sync::Arc::new(backend))
            })
        })
    }

    #[cfg(feature = "torch")]
    pub fn torch() -> &'static Subject {
        static SUBJECT: OnceLock<Subject> = OnceLock::new();
        SUBJECT.get_or_init(|| {
            let expect = Expect {
                engine: "torch",
                constrained_decoding: false,
                quantization: "F32",
            };
            Subject::load("torch", expect, || {
                let backend = kaito_backends::torch::TorchBackend::load(
                    &hf_dir(),
                    SERVED_NAME,
                    &engine_config(),
                )?;
                Ok(std::sync::Arc::new(backend))
            })
        })
    }

    /// The quant engine quantizing the f32 checkpoint to `scheme` at load.
    #[cfg(feature = "quant")]
    fn quant(label: &'static str, scheme: &'static str, expect: Expect) -> Subject {
        Subject::load(label, expect, || {
            let mut config = engine_config();
            config.backend = kaito_core::BackendKind::Quant;
            config.quantization = Some(scheme.to_owned());
            kaito_backends::load(&hf_dir(), SERVED_NAME, &config)
        })
    }

    #[cfg(feature = "quant")]
    pub fn quant_int8() -> &'static Subject {
        static SUBJECT: OnceLock<Subject> = OnceLock::new();
        SUBJECT.get_or_init(|| {
            let expect = Expect {
                engine: "quant",
                constrained_decoding: false,
                quantization: "int8",
            };
            quant("quant_int8", "int8", expect)
        })
    }

    #[cfg(feature = "quant")]
    pub fn quant_int4() -> &'static Subject {
        static SUBJECT: OnceLock<Subject> = OnceLock::new();
        SUBJECT.get_or_init(|| {
            let expect = Expect {
                engine: "quant",
                constrained_decoding: false,
                quantization: "int4",
            };
            quant("quant_int4", "int4", expect)
        })
    }
}

#[cfg(feature = "llama-cpp")]
conformance!(llama_cpp, crate::subjects::llama_cpp);
#[cfg(feature = "torch")]
conformance!(torch, crate::subjects::torch);
#[cfg(feature = "quant")]
conformance!(quant_int8, crate::subjects::quant_int8);
#[cfg(feature = "quant")]
conformance!(quant_int4, crate::subjects::quant_int4);
