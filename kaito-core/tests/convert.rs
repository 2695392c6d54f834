//! GGUF → Hugging Face conversion of the real SmolLM2-135M-Instruct model.
//! Model: `$KAITO_TEST_MODEL`, else the bundled preset is fetched into the cache (never skipped).
//! Reference values were computed independently with `gguf-py` (`gguf.quants.dequantize`) and numpy.
#![cfg(feature = "fetch")]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kaito_core::model::convert::{
    convert_gguf_to_hf, ConvertOptions, ConvertReport, OutputDType, OUTPUT_FILES,
};
use kaito_core::model::{catalogue, fetch};
use kaito_core::Error;
use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};

fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KAITO_TEST_MODEL") {
        return PathBuf::from(p);
    }
    fetch::fetch_preset(catalogue::default_preset(), &fetch::FetchOptions::default())
        .expect("fetch the bundled model")
}

/// One f32 conversion for the whole file (it writes ~540 MB).
fn converted() -> &'static (tempfile::TempDir, ConvertReport) {
    static CONVERTED: OnceLock<(tempfile::TempDir, ConvertReport)> = OnceLock::new();
    CONVERTED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("smollm2-hf");
        let report =
            convert_gguf_to_hf(&model_path(), &out, &ConvertOptions::default()).expect("convert");
        (dir, report)
    })
}

fn read_json(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

/// Elements `range` of the f32 tensor `name`, row-major.
fn f32_values(st: &SafeTensors<'_>, name: &str, start: usize, count: usize) -> Vec<f32> {
    let view = st.tensor(name).unwrap();
    assert_eq!(view.dtype(), Dtype::F32);
    view.data()[start * 4..(start + count) * 4]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn writes_every_file_and_a_llama_config() {
    let (_, report) = converted();
    let out = &report.out_dir;
    for file in OUTPUT_FILES {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert!(!out.with_file_name("smollm2-hf.partial").exists());
    let config = read_json(out, "config.json");
    for (key, expected) in [
        ("architectures", json!(["LlamaForCausalLM"])),
        ("model_type", json!("llama")),
        ("hidden_size", json!(576)),
        ("intermediate_size", json!(1536)),
        ("num_hidden_layers", json!(30)),
        ("num_attention_heads", json!(9)),
        ("num_key_value_heads", json!(3)),
        ("head_dim", json!(64)),
        ("rms_norm_eps", json!(1e-5)),
        ("rope_theta", json!(100000.0)),
        ("rope_scaling", Value::Null),
        ("max_position_embeddings", json!(8192)),
        ("vocab_size", json!(49152)),
        ("tie_word_embeddings", json!(true)),
        ("bos_token_id", json!(1)),
        ("eos_token_id", json!(2)),
        ("torch_dtype", json!("float32")),
        ("hidden_act", json!("silu")),
        ("attention_bias", json!(false)),
    ] {
        assert_eq!(config[key], expected, "config.json {key}");
    }
    let generation = read_json(out, "generation_config.json");
    assert_eq!(generation["bos_token_id"], 1);
    assert_eq!(generation["eos_token_id"], 2);

    let tokenizer_config = read_json(out, "tokenizer_config.json");
    assert_eq!(tokenizer_config["bos_token"], "<|im_start|>");
    assert_eq!(tokenizer_config["eos_token"], "<|im_end|>");
    assert_eq!(tokenizer_config["add_bos_token"], false);
    assert_eq!(tokenizer_config["model_max_length"], 8192);
    assert!(tokenizer_config["chat_template"]
        .as_str()
        .unwrap()
        .contains("<|im_start|>"));

    let tokenizer = read_json(out, "tokenizer.json");
    assert_eq!(tokenizer["model"]["type"], "BPE");
    assert_eq!(
        tokenizer["model"]["vocab"].as_object().unwrap().len(),
        49152
    );
    assert_eq!(tokenizer["model"]["vocab"]["<|im_end|>"], 2);
    assert_eq!(
        tokenizer["model"]["merges"].as_array().unwrap().len(),
        48900
    );
    assert_eq!(tokenizer["model"]["merges"][0], json!(["Ġ", "t"]));
    let added = tokenizer["added_tokens"].as_array().unwrap();
    assert_eq!(added.len(), 17);
    assert!(added.iter().all(|t| t["special"] == true));
}

#[test]
fn weights_have_hf_names_shapes_and_values() {
    let (_, report) = converted();
    assert_eq!(report.tensors, 272);
    let bytes = std::fs::read(report.out_dir.join("model.safetensors")).unwrap();
    assert_eq!(bytes.len() as u64, report.weights_bytes);
    let st = SafeTensors::deserialize(&bytes).expect("a valid safetensors file");
    assert_eq!(st.len(), 272);
    let shape = |name: &str| st.tensor(name).unwrap().shape().to_vec();
    assert_eq!(shape("model.embed_tokens.weight"), [49152, 576]);
    assert_eq!(shape("model.norm.weight"), [576]);
    assert!(st.tensor("lm_head.weight").is_err(), "tied embeddings");
    for layer in [0, 29] {
        let p = format!("model.layers.{layer}");
        assert_eq!(shape(&format!("{p}.self_attn.q_proj.weight")), [576, 576]);
        assert_eq!(shape(&format!("{p}.self_attn.k_proj.weight")), [192, 576]);
        assert_eq!(shape(&format!("{p}.self_attn.v_proj.weight")), [192, 576]);
        assert_eq!(shape(&format!("{p}.self_attn.o_proj.weight")), [576, 576]);
        assert_eq!(shape(&format!("{p}.mlp.gate_proj.weight")), [1536, 576]);
        assert_eq!(shape(&format!("{p}.mlp.up_proj.weight")), [1536, 576]);
        assert_eq!(shape(&format!("{p}.mlp.down_proj.weight")), [576, 1536]);
        assert_eq!(shape(&format!("{p}.input_layernorm.weight")), [576]);
        assert_eq!(
            shape(&format!("{p}.post_attention_layernorm.weight")),
            [576]
        );
    }
    assert_eq!(report.parameters, 134_515_008);

    // Q8_0 embeddings, first and last rows.
    assert_eq!(
        f32_values(&st, "model.embed_tokens.weight", 0, 3),
        [-0.106_544_495, 0.032_978_058, 0.048_198_7]
    );
    assert_eq!(
        f32_values(&st, "model.embed_tokens.weight", 49152 * 576 - 2, 2),
        [-0.119_894_03, -0.041_702_27]
    );
    // Q4_1 queries: Hugging Face row 1 is GGUF row 2, row 32 (second half of head 0) is GGUF row 1.
    let q = "model.layers.0.self_attn.q_proj.weight";
    assert_eq!(
        f32_values(&st, q, 576, 3),
        [-0.159_179_69, 0.397_949_22, -0.019_897_461]
    );
    assert_eq!(
        f32_values(&st, q, 32 * 576, 3),
        [-0.117_309_57, -0.117_309_57, -0.192_810_06]
    );
    // Keys use the 3 KV heads.
    let k = "model.layers.29.self_attn.k_proj.weight";
    assert_eq!(
        f32_values(&st, k, 576, 3),
        [0.058_593_75, -0.027_343_75, 0.101_562_5]
    );
    assert_eq!(
        f32_values(&st, k, 192 * 576 - 3, 3),
        [-0.214_874_27, 0.081_939_7, 0.081_939_7]
    );
    assert_eq!(
        f32_values(
            &st,
            "model.layers.5.mlp.down_proj.weight",
            576 * 1536 - 3,
            3
        ),
        [0.173_095_7, 0.047_851_563, 0.173_095_7]
    );
    assert_eq!(
        f32_values(&st, "model.norm.weight", 0, 3),
        [1.757_812_5, 1.820_312_5, 1.781_25]
    );
}

#[test]
fn bf16_halves_the_weights_and_existing_output_needs_force() {
    let (_, f32_report) = converted();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bf16");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("stale.txt"), "old").unwrap();
    let options = ConvertOptions::default().with_dtype(OutputDType::BF16);

    let err = convert_gguf_to_hf(&model_path(), &out, &options).unwrap_err();
    match &err {
        Error::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists, "{err}")
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    assert!(out.join("stale.txt").exists(), "left alone without force");

    let report = convert_gguf_to_hf(&model_path(), &out, &options.with_force(true)).unwrap();
    assert!(!out.join("stale.txt").exists(), "replaced with force");
    assert_eq!(read_json(&out, "config.json")["torch_dtype"], "bfloat16");
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let embed = st.tensor("model.embed_tokens.weight").unwrap();
    assert_eq!(embed.dtype(), Dtype::BF16);
    assert_eq!(embed.data().len(), 49152 * 576 * 2);
    // Data plus a header of a few tens of KiB.
    for (r, size) in [(&report, 2), (f32_report, 4)] {
        let data = r.parameters * size;
        assert!((data..data + 64 * 1024).contains(&r.weights_bytes), "{r:?}");
    }
}

#[test]
fn a_file_that_is_not_gguf_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("model.gguf");
    std::fs::write(&bogus, b"not a model").unwrap();
    let err = convert_gguf_to_hf(&bogus, &dir.path().join("out"), &ConvertOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::ModelLoad { .. }), "{err}");
    assert!(!dir.path().join("out").exists());
    assert!(!dir.path().join("out.partial").exists());
}
