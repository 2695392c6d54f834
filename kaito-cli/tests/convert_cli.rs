//! `kaito convert` end to end on the real SmolLM2 model, and its answers to bad input.
//! Model: `$KAITO_TEST_MODEL`, else the bundled preset (`kaito convert` fetches it itself).

use std::path::Path;
use std::process::{Command, Output};

const KAITO: &str = env!("CARGO_BIN_EXE_kaito");

fn convert(args: &[&str], out: &Path) -> Output {
    let mut command = Command::new(KAITO);
    command.arg("convert").args(args).arg("--out").arg(out);
    if let Some(model) = std::env::var_os("KAITO_TEST_MODEL") {
        if !args.contains(&"--model") {
            command.arg("--model").arg(model);
        }
    }
    command.output().expect("run kaito convert")
}

/// The one `error:` line of a failed run.
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "succeeded unexpectedly");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_owned()
}

#[test]
fn converts_the_model_and_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smollm2-hf");

    let first = convert(&["--dtype", "bf16"], &out);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("272 tensors"), "{stdout}");
    for file in [
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");

    let again = error_line(&convert(&["--dtype", "bf16"], &out));
    assert!(again.contains("--force"), "{again}");

    let forced = convert(&["--dtype", "f16", "--force"], &out);
    assert!(forced.status.success());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "float16");
}

#[test]
fn bad_input_prints_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");

    let line = error_line(&convert(&["--model", "no-such-preset"], &out));
    assert!(line.contains("no-such-preset"), "{line}");

    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, "hello").unwrap();
    let line = error_line(&convert(&["--model", not_gguf.to_str().unwrap()], &out));
    assert!(line.contains("not a GGUF file"), "{line}");

    let line = error_line(&convert(&["--dtype", "int8"], &out));
    assert!(line.contains("int8"), "{line}");

    assert!(!out.exists());
}
