//! `kaito bench`: a concurrency sweep of streaming chat requests against OpenAI-compatible servers.
//!
//! Several targets are measured alternately, level by level, so that a noisy machine affects them alike;
//! the target that goes first changes from level to level (and with `--rotate`, from run to run).
//! Per level it reports output tok/s, requests/s, TTFT p50/p99, TPOT p50/p99, ITL p99, errors and
//! the machine's steal time.

mod client;
mod report;
mod steal;
mod workload;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

pub use report::LevelReport;
use workload::Workload;

/// Which prompts to send.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Every request a different short prompt.
    Distinct,
    /// Every request shares one long system prompt, then asks its own question.
    SharedPrefix,
}

/// `kaito bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Targets as NAME=URL (the server's base URL, e.g. kaito=http://127.0.0.1:8080). Repeatable; measured alternately.
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    pub concurrency: Vec<usize>,
    /// Requests per level: max(this, 2 × concurrency).
    #[arg(long, default_value_t = 8)]
    pub requests: usize,
    /// New tokens per request (sent with `ignore_eos`, so every request generates exactly this many).
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    /// Prompt set.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Distinct)]
    pub workload: WorkloadKind,
    /// Model name sent in requests.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Index of the run's first prompt: sweeps repeated against the same servers pass different
    /// offsets, so that no prompt comes back (servers keep finished prompts cached).
    #[arg(long, default_value_t = 0)]
    pub prompt_offset: usize,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Which target goes first at the first level (an index into the --target list); each later
    /// level starts one target further on. Repeated runs pass 0, 1, … so that every target goes
    /// first at every level equally often.
    #[arg(long, default_value_t = 0)]
    pub rotate: usize,
}

/// Runs the sweep and prints the table.
pub async fn run(args: BenchArgs) -> Result<()> {
    let targets: Vec<(String, String)> = args
        .targets
        .iter()
        .map(|t| match t.split_once('=') {
            Some((name, url)) if !name.is_empty() && url.starts_with("http") => Ok((
                name.to_owned(),
                url.trim_end_matches('/').trim_end_matches("/v1").to_owned(),
            )),
            _ => bail!("--target: `{t}` is not NAME=http://HOST:PORT"),
        })
        .collect::<Result<_>>()?;
    for (i, (name, _)) in targets.iter().enumerate() {
        if targets[..i].iter().any(|(other, _)| other == name) {
            bail!("--target: the name `{name}` is given twice; each target needs its own name");
        }
    }
    if args.concurrency.contains(&0) {
        bail!("--concurrency: levels must be at least 1");
    }
    let args = Arc::new(args);
    let handle = tokio::task::spawn_blocking(move || sweep(&args, &targets));
    let reports = handle.await??;
    println!("{}", report::table(&reports));
    Ok(())
}

fn sweep(args: &BenchArgs, targets: &[(String, String)]) -> Result<Vec<LevelReport>> {
    let workload = Workload::new(args.workload);
    let mut reports = Vec::new();
    // Every target gets the same prompts at a level, and no prompt comes back at a later level:
    // servers keep finished prompts cached, so repeating them would measure cache hits on the
    // previous level's requests rather than serving.
    let mut first = args.prompt_offset;
    for (step, &concurrency) in args.concurrency.iter().enumerate() {
        let n = args.requests.max(2 * concurrency);
        // Indexed as the targets were given, so that they are reported in that order whoever went first.
        let mut measured: Vec<Option<LevelReport>> = vec![None; targets.len()];
        for position in 0..targets.len() {
            let index = (args.rotate + step + position) % targets.len();
            let (name, url) = &targets[index];
            eprintln!("bench: {name} concurrency {concurrency}, {n} requests");
            let steal_before = steal::total_ms();
            let mut report = level(args, &workload, name, url, concurrency, first..first + n);
            report.steal_ms = steal_before.zip(steal::total_ms()).map(|(a, b)| b - a);
            report.position = position;
            eprintln!("  {}", report.one_line());
            measured[index] = Some(report);
        }
        reports.extend(measured.into_iter().flatten());
        first += n;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)?;
    }
    Ok(reports)
}

fn level(
    args: &BenchArgs,
    workload: &Workload,
    name: &str,
    url: &str,
    concurrency: usize,
    prompts: std::ops::Range<usize>,
) -> LevelReport {
    let (n, end) = (prompts.len(), prompts.end);
    let next = Arc::new(Mutex::new(prompts.start));
    let results = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            let next = next.clone();
            let results = results.clone();
            scope.spawn(move || loop {
                let i = {
                    let mut g = next.lock().expect("counter");
                    if *g >= end {
                        break;
                    }
                    *g += 1;
                    *g - 1
                };
                let messages = workload.messages(i);
                let outcome = client::stream_chat(
                    url,
                    &args.model,
                    &messages,
                    args.max_tokens,
                    Duration::from_secs(args.timeout),
                );
                results.lock().expect("results").push(outcome);
            });
        }
    });
    let elapsed = started.elapsed();
    let results = std::mem::take(&mut *results.lock().expect("results"));
    report::summarize(name, args.workload, concurrency, elapsed, &results)
}
