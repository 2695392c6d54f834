//! Runs the `n` choices of one request on the engine and turns engine events into text deltas:
//! incremental UTF-8, stop strings, logprobs, timing metrics. Shared by chat and text completions.

use std::time::Instant;

use futures::stream::{self, BoxStream, StreamExt};

use crate::api::params::{fit_context, Validated};
use crate::backend::{
    Constraint, FinishReason, GenerateRequest, GenerationEvent, GenerationStream, SamplingParams,
};
use crate::error::{Error, Result};
use crate::stop::StopMatcher;

use super::registry::{Admission, ModelHandle, ModelLease};

/// One sampled token as reported to clients.
#[derive(Debug, Clone)]
pub struct TokenOut {
    /// Token text (lossy UTF-8).
    pub text: String,
    /// Raw bytes.
    pub bytes: Vec<u8>,
    /// Log-probability.
    pub logprob: f32,
    /// Alternatives: (text, bytes, logprob).
    pub top: Vec<(String, Vec<u8>, f32)>,
}

/// What a choice produces.
#[derive(Debug)]
pub enum ChoiceEvent {
    /// New text (possibly empty when only logprobs advanced).
    Delta {
        /// Choice index.
        index: u32,
        /// Text.
        text: String,
        /// Logprobs of the tokens behind this delta.
        logprobs: Vec<TokenOut>,
    },
    /// The choice ended.
    Finished {
        /// Choice index.
        index: u32,
        /// Why.
        reason: FinishReason,
        /// Tokens generated.
        completion_tokens: u32,
        /// Prompt tokens from the prefix cache.
        cached_tokens: u32,
    },
    /// The engine failed.
    Failed(Error),
}

/// A prepared request: everything the engine needs for each choice.
#[derive(Debug, Clone)]
pub struct Job {
    /// Request id.
    pub id: String,
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// New-token limit.
    pub max_tokens: u32,
    /// Sampling.
    pub sampling: SamplingParams,
    /// Stop strings.
    pub stops: Vec<String>,
    /// Choices.
    pub n: u32,
    /// Logprobs with this many alternatives.
    pub logprobs: Option<u32>,
    /// Output constraint.
    pub constraint: Option<Constraint>,
}

struct ChoiceRunner {
    index: u32,
    matcher: StopMatcher,
    generated: u32,
    cached: u32,
    started: Instant,
    last_token: Option<Instant>,
    model: ModelLease,
    done: bool,
}

impl ChoiceRunner {
    fn on_event(&mut self, event: GenerationEvent) -> Vec<ChoiceEvent> {
        match event {
            GenerationEvent::Started {
                queue_time,
                cached_prompt_tokens,
            } => {
                self.cached = cached_prompt_tokens;
                self.model.metrics().observe_queue(queue_time);
                Vec::new()
            }
            GenerationEvent::Token(token) => {
                let now = Instant::now();
                match self.last_token {
                    None if self.index == 0 => {
                        self.model.metrics().observe_ttft(now - self.started)
                    }
                    Some(prev) => self.model.metrics().observe_itl(now - prev),
                    None => {}
                }
                self.last_token = Some(now);
                self.generated += 1;
                self.model.metrics().add_generation_tokens(1);
                let logprobs = token
                    .logprob
                    .map(|lp| {
                        vec![TokenOut {
                            text: String::from_utf8_lossy(&token.bytes).into_owned(),
                            bytes: token.bytes.clone(),
                            logprob: lp.logprob,
                            top: lp
                                .top
                                .into_iter()
                                .map(|(_, b, l)| (String::from_utf8_lossy(&b).into_owned(), b, l))
                                .collect(),
                        }]
                    })
                    .unwrap_or_default();
                let out = self.matcher.push(&token.bytes);
                let mut events = vec![ChoiceEvent::Delta {
                    index: self.index,
                    text: out.text,
                    logprobs,
                }];
                if out.stopped {
                    events.push(self.finish(FinishReason::Stop));
                }
                events
            }
            GenerationEvent::Finished { reason } => {
                let tail = self.matcher.finish();
                let mut events = Vec::new();
                if !tail.is_empty() {
                    events.push(ChoiceEvent::Delta {
                        index: self.index,
                        text: tail,
                        logprobs: Vec::new(),
                    });
                }
                events.push(self.finish(reason));
                events
            }
        }
    }

    fn finish(&mut self, reason: FinishReason) -> ChoiceEvent {
        self.done = true;
        ChoiceEvent::Finished {
            index: self.index,
            reason,
            completion_tokens: self.generated,
            cached_tokens: self.cached,
        }
    }
}

fn choice_stream(
    generation: GenerationStream,
    runner: ChoiceRunner,
) -> BoxStream<'static, ChoiceEvent> {
    stream::unfold(Some((generation, runner)), |state| async move {
        let (mut generation, mut runner) = state?;
        loop {
            match generation.next().await {
                Some(Ok(event)) => {
                    let out = runner.on_event(event);
                    if runner.done {
                        // Dropping the generation stream cancels the sequence (a stop string matched).
                        drop(generation);
                        return Some((out, None));
                    }
                    if !out.is_empty() {
                        return Some((out, Some((generation, runner))));
                    }
                }
                Some(Err(e)) => return Some((vec![ChoiceEvent::Failed(e)], None)),
                None => {
                    return Some((
                        vec![ChoiceEvent::Failed(Error::Engine(
                            "engine ended the stream".into(),
                        ))],
                        None,
                    ))
                }
            }
        }
    })
    .flat_map(stream::iter)
    .boxed()
}

/// The one preparation of a request every front end runs once its prompt is tokens: fits
/// `max_tokens` to `model`'s context window (400 naming the lengths when prompt and `max_tokens` do
/// not fit; `None` fills what is left), takes the choices' admission slots (503 beyond the model's
/// limits), and builds the job with the validated sampling, stop strings and choice count.
pub fn prepare(
    model: &ModelHandle,
    id: String,
    prompt: Vec<u32>,
    max_tokens: Option<u32>,
    params: &Validated,
    logprobs: Option<u32>,
    constraint: Option<Constraint>,
) -> Result<(Job, Admission)> {
    let max_tokens = fit_context(prompt.len(), max_tokens, model.backend().context_size())?;
    let admission = model.admit(params.n as usize)?;
    let job = Job {
        id,
        prompt,
        max_tokens,
        sampling: params.sampling.clone(),
        stops: params.stops.clone(),
        n: params.n,
        logprobs,
        constraint,
    };
    Ok((job, admission))
}

/// Starts every choice of `job` on `model` and merges their events. The admission slot and the
/// lease are held until the stream ends.
pub fn start(
    model: &ModelLease,
    job: Job,
    admission: Admission,
) -> Result<BoxStream<'static, ChoiceEvent>> {
    let backend = model.backend();
    model
        .metrics()
        .add_prompt_tokens(job.prompt.len() as u64 * u64::from(job.n));
    let started = Instant::now();
    let mut streams = Vec::with_capacity(job.n as usize);
    for index in 0..job.n {
        let mut sampling = job.sampling.clone();
        if let Some(seed) = sampling.seed.as_mut() {
            *seed = seed.wrapping_add(u64::from(index));
        }
        let generation = backend.generate(
            GenerateRequest::new(
                format!("{}-{index}", job.id),
                job.prompt.clone(),
                job.max_tokens,
            )
            .with_sampling(sampling)
            .with_constraint(job.constraint.clone())
            .with_logprobs(job.logprobs),
        )?;
        let runner = ChoiceRunner {
            index,
            matcher: StopMatcher::new(job.stops.clone()),
            generated: 0,
            cached: 0,
            started,
            last_token: None,
            model: model.clone(),
            done: false,
        };
        streams.push(choice_stream(generation, runner));
    }
    let merged = stream::select_all(streams);
    // Keep the admission slot alive as long as the merged stream.
    Ok(merged
        .map(move |event| {
            let _hold = &admission;
            event
        })
        .boxed())
}

/// Result of one choice when not streaming.
#[derive(Debug, Default, Clone)]
pub struct Collected {
    /// Text.
    pub text: String,
    /// Logprobs per token.
    pub logprobs: Vec<TokenOut>,
    /// Why it ended.
    pub finish_reason: Option<FinishReason>,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Prompt tokens from the prefix cache.
    pub cached_tokens: u32,
}

/// Drains a merged stream into one result per choice.
pub async fn collect(
    mut events: BoxStream<'static, ChoiceEvent>,
    n: u32,
) -> Result<Vec<Collected>> {
    let mut out = vec![Collected::default(); n as usize];
    while let Some(event) = events.next().await {
        match event {
            ChoiceEvent::Delta {
                index,
                text,
                logprobs,
            } => {
                let c = &mut out[index as usize];
                c.text.push_str(&text);
                c.logprobs.extend(logprobs);
            }
            ChoiceEvent::Finished {
                index,
                reason,
                completion_tokens,
                cached_tokens,
            } => {
                let c = &mut out[index as usize];
                c.finish_reason = Some(reason);
                c.completion_tokens = completion_tokens;
                c.cached_tokens = cached_tokens;
            }
            ChoiceEvent::Failed(e) => return Err(e),
        }
    }
    Ok(out)
}
