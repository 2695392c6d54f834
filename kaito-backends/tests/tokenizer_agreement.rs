//! The `tokenizer.json` that `kaito convert` writes from a GGUF tokenizes exactly as llama.cpp does
//! with that GGUF, and decodes back to the text. Run:
//! `cargo test --release -p kaito-backends --features torch --test tokenizer_agreement`.
//! Model: `$KAITO_TEST_MODEL`, else the bundled preset, fetched into the cache (see `test_models`).
#![cfg(all(feature = "llama-cpp", feature = "torch"))]

mod test_models;

use std::path::PathBuf;
use std::sync::OnceLock;

use kaito_backends::llama_cpp::LlamaCppBackend;
use kaito_core::model::convert::{convert_gguf_to_hf, ConvertOptions, OutputDType};
use kaito_core::{Backend, EngineConfig};
use tokenizers::Tokenizer;

fn model_path() -> PathBuf {
    test_models::gguf()
}

/// The converted tokenizer and the llama.cpp engine on the same GGUF, once for the whole file.
struct Fixture {
    hf: Tokenizer,
    llama: LlamaCppBackend,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let model = model_path();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("hf");
        let options = ConvertOptions::default().with_dtype(OutputDType::BF16);
        convert_gguf_to_hf(&model, &out, &options).expect("convert");
        let hf = Tokenizer::from_file(out.join("tokenizer.json")).expect("tokenizers reads it");
        let config = EngineConfig::default().with_threads(1).with_ctx_size(256);
        let llama = LlamaCppBackend::load(&model, "smollm2", &config).expect("load the GGUF");
        Fixture { hf, llama }
    })
}

/// A ChatML prompt as the chat template renders it.
const CHATML: &str = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2? Answer in French.<|im_end|>\n<|im_start|>assistant\n";

/// Texts that exercise the pre-tokenizer: digits, code, whitespace runs, newlines, non-ASCII, specials.
const TEXTS: &[&str] = &[
    "",
    "Hello world! How are you doing today?",
    "12345",
    "Pi is 3.14159, a million is 1,000,000 and 2024-06-01 was a Saturday.",
    "abc123def4567 x1 2x",
    "fn main() {\n    let x: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", x);\n}\n",
    "def f(a, b):\n\treturn a ** 2 + b // 3  # comment\n",
    "a  b   c    d\t\te \t f",
    "   leading and trailing spaces   ",
    "\n",
    "line one\nline two\n\n\nline five\r\nwindows line\r\n",
    "  \n  \n\t\n",
    "I'm sure they'll say it's fine; we've done what you'd do.",
    "Où est la bibliothèque ? Ça coûte 12,50 € — très cher ! À bientôt, garçon.",
    "こんにちは世界 你好 안녕하세요 Привет мир",
    "Emoji: 🌍🚀🎉 family 👩‍👩‍👧 flag 🇫🇷 and ✓✗",
    "!!!???...,,,;;; --- *** ((( ))) [[ ]] {{ }}",
    "Ġ Ċ ĉ are not special characters in the input",
    CHATML,
    "<repo_name>kaito-rs<file_sep>src/main.rs\n<|endoftext|>",
    "text<|im_end|>glued<|im_start|>to specials",
];

#[test]
fn converted_tokenizer_matches_llama_cpp_and_round_trips() {
    let Fixture { hf, llama } = fixture();
    assert_eq!(hf.get_vocab_size(true), 49152);
    // Not vacuous: digits come one per token, and specials are single tokens.
    assert_eq!(llama.tokenize("12345", false, true).unwrap().len(), 5);
    let chat = llama.tokenize(CHATML, false, true).unwrap();
    assert_eq!((chat[0], chat.iter().filter(|&&t| t == 2).count()), (1, 2));

    for text in TEXTS {
        let expected = llama.tokenize(text, false, true).unwrap();
        let encoding = hf.encode(*text, false).unwrap();
        assert_eq!(encoding.get_ids(), &expected[..], "token ids of {text:?}");

        let decoded = hf.decode(&expected, false).unwrap();
        assert_eq!(&decoded, text, "tokenizers round trip of {text:?}");
        // llama.cpp leaves out control tokens when detokenizing, as decoding with
        // skip_special_tokens does.
        let without_specials = hf.decode(&expected, true).unwrap();
        assert_eq!(
            without_specials,
            llama.detokenize(&expected).unwrap(),
            "decoding of {text:?} without special tokens"
        );
    }
}

#[test]
fn every_special_token_is_one_token_in_both() {
    let Fixture { hf, llama } = fixture();

    let specials: Vec<_> = hf
        .get_added_tokens_decoder()
        .into_iter()
        .map(|(id, token)| (id, token.content))
        .collect();
    assert_eq!(specials.len(), 17);
    for (id, content) in specials {
        let text = format!("a{content}b");
        let ids = hf.encode(text.as_str(), false).unwrap().get_ids().to_vec();
        assert!(ids.contains(&id), "{content} is one token: {ids:?}");
        assert_eq!(ids, llama.tokenize(&text, false, true).unwrap(), "{text}");
    }
}
