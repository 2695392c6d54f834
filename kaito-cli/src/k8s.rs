//! `kaito crd`, `kaito render`, `kaito estimate`: the cluster side, without a cluster.

use std::path::Path;

use anyhow::{bail, Result};

/// Prints the CRDs.
pub fn crd() -> Result<()> {
    print!("{}", kaito_k8s::cli::crd_yaml()?);
    Ok(())
}

/// Prints the rendered objects; on invalid input prints one line per problem and fails, printing nothing to stdout.
pub fn render(file: &Path) -> Result<()> {
    match kaito_k8s::cli::render_file(file) {
        Ok(yaml) => {
            print!("{yaml}");
            Ok(())
        }
        Err(problems) => fail(problems),
    }
}

/// Prints the sizing.
pub fn estimate(file: &Path) -> Result<()> {
    match kaito_k8s::cli::estimate_file(file) {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(problems) => fail(problems),
    }
}

fn fail(problems: Vec<String>) -> Result<()> {
    let n = problems.len();
    for p in &problems[..n.saturating_sub(1)] {
        eprintln!("error: {p}");
    }
    bail!(
        "{}",
        problems
            .last()
            .cloned()
            .unwrap_or_else(|| "invalid input".into())
    )
}
