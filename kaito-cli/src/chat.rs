//! `kaito chat` (interactive) and `kaito generate` (one shot), in-process without HTTP.

use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::Result;
use futures::StreamExt;
use kaito_core::api::params::Validated;
use kaito_core::infer::generation::{self, ChoiceEvent};
use kaito_core::infer::{ModelHandle, ModelLease, ModelLoader};
use kaito_core::SamplingParams;
use serde_json::{json, Value};

use crate::args::{GenerateArgs, ModelArgs};
use crate::runtime;

async fn start(args: &ModelArgs) -> Result<ModelLease> {
    let plan = runtime::plan(&args.load_options(None)?)?;
    let loaded = runtime::PlanLoader(&plan).load(&plan.served_name).await?;
    let model = ModelHandle::new(plan.served_name.clone(), loaded.backend, loaded.limits)?;
    Ok(Arc::new(model).lease())
}

/// Streams one answer to stdout; returns its text.
async fn answer(
    model: &ModelLease,
    prompt_text: &str,
    max_tokens: u32,
    sampling: SamplingParams,
) -> Result<String> {
    let backend = model.backend();
    let prompt = backend.tokenize(prompt_text, true, true)?;
    // At most what is left of the context after the prompt (a long chat may not fit `max_tokens`).
    let room = backend
        .context_size()
        .saturating_sub(prompt.len() as u32)
        .max(1);
    let params = Validated {
        sampling,
        max_tokens: None,
        stops: Vec::new(),
        n: 1,
        stream: true,
        include_usage: false,
    };
    let (job, admission) = generation::prepare(
        model,
        "cli".into(),
        prompt,
        Some(max_tokens.min(room)),
        &params,
        None,
        None,
    )?;
    let mut events = generation::start(model, job, admission)?;
    let mut text = String::new();
    let mut out = std::io::stdout();
    while let Some(event) = events.next().await {
        match event {
            ChoiceEvent::Delta { text: t, .. } => {
                print!("{t}");
                out.flush()?;
                text.push_str(&t);
            }
            ChoiceEvent::Finished { .. } => break,
            ChoiceEvent::Failed(e) => return Err(e.into()),
        }
    }
    println!();
    Ok(text)
}

/// `kaito generate "prompt"`.
pub async fn run_generate(args: GenerateArgs) -> Result<()> {
    if args.prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty");
    }
    let model = start(&args.model).await?;
    let prompt = if args.raw {
        args.prompt.clone()
    } else {
        model.template().render(
            &[json!({"role": "user", "content": args.prompt})],
            None,
            true,
        )?
    };
    let sampling = SamplingParams {
        temperature: args.temperature,
        seed: args.seed,
        ..SamplingParams::default()
    };
    answer(&model, &prompt, args.max_tokens, sampling).await?;
    Ok(())
}

/// `kaito chat`: reads lines from stdin, keeps the conversation, streams answers. `/reset` clears, `/exit` quits.
pub async fn run_chat(args: ModelArgs) -> Result<()> {
    let model = start(&args).await?;
    eprintln!("kaito chat with `{}` — type a message; /reset clears the conversation, /exit or Ctrl-D quits.", model.name());
    let mut history: Vec<Value> = Vec::new();
    let stdin = std::io::stdin();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.clear();
                continue;
            }
            _ => {}
        }
        history.push(json!({"role": "user", "content": line}));
        let prompt = model.template().render(&history, None, true)?;
        let reply = answer(
            &model,
            &prompt,
            512,
            SamplingParams {
                temperature: 0.7,
                ..SamplingParams::default()
            },
        )
        .await?;
        history.push(json!({"role": "assistant", "content": reply}));
    }
    Ok(())
}
