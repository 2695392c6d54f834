//! Validation of OpenAI sampling parameters into engine parameters. Every error names its field.

use crate::backend::SamplingParams;
use crate::error::{Error, Result};

use super::openai::SamplingFields;

/// Validated, engine-ready sampling settings of one request.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Sampler settings.
    pub sampling: SamplingParams,
    /// Requested new-token limit (`None` = fill the context).
    pub max_tokens: Option<u32>,
    /// Stop strings.
    pub stops: Vec<String>,
    /// Choices.
    pub n: u32,
    /// SSE.
    pub stream: bool,
    /// Final usage chunk when streaming.
    pub include_usage: bool,
}

/// Most choices one request may ask for.
pub const MAX_N: i64 = 8;
/// Most stop strings.
pub const MAX_STOPS: usize = 4;

fn range_f32(
    param: &str,
    v: Option<f32>,
    lo: f32,
    hi: f32,
    lo_inclusive: bool,
) -> Result<Option<f32>> {
    match v {
        Some(x) if !x.is_finite() || x > hi || x < lo || (!lo_inclusive && x == lo) => {
            let open = if lo_inclusive { "[" } else { "(" };
            Err(Error::request(
                param,
                format!("`{param}` must be in {open}{lo}, {hi}], got {x}"),
            ))
        }
        other => Ok(other),
    }
}

/// Checks ranges and converts. `max_completion_tokens` overrides `max_tokens` when both are given.
pub fn validate(f: &SamplingFields, max_completion_tokens: Option<i64>) -> Result<Validated> {
    let (max_param, max_value) = match max_completion_tokens {
        Some(v) => ("max_completion_tokens", Some(v)),
        None => ("max_tokens", f.max_tokens),
    };
    let max_tokens = match max_value {
        None => None,
        Some(v) if v < 1 => {
            return Err(Error::request(
                max_param,
                format!("`{max_param}` must be at least 1, got {v}"),
            ))
        }
        Some(v) => Some(u32::try_from(v).unwrap_or(u32::MAX)),
    };
    let temperature = range_f32("temperature", f.temperature, 0.0, 2.0, true)?.unwrap_or(1.0);
    let top_p = range_f32("top_p", f.top_p, 0.0, 1.0, false)?.unwrap_or(1.0);
    let min_p = range_f32("min_p", f.min_p, 0.0, 1.0, true)?.unwrap_or(0.0);
    let presence_penalty =
        range_f32("presence_penalty", f.presence_penalty, -2.0, 2.0, true)?.unwrap_or(0.0);
    let frequency_penalty =
        range_f32("frequency_penalty", f.frequency_penalty, -2.0, 2.0, true)?.unwrap_or(0.0);
    let top_k = match f.top_k {
        None => 0,
        Some(k) if k < 0 => {
            return Err(Error::request(
                "top_k",
                format!("`top_k` must be ≥ 0, got {k}"),
            ))
        }
        Some(k) => u32::try_from(k).unwrap_or(u32::MAX),
    };
    let n = match f.n {
        None => 1,
        Some(n) if !(1..=MAX_N).contains(&n) => {
            return Err(Error::request(
                "n",
                format!("`n` must be between 1 and {MAX_N}, got {n}"),
            ))
        }
        Some(n) => n as u32,
    };
    let stops = f.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if stops.len() > MAX_STOPS {
        return Err(Error::request(
            "stop",
            format!("at most {MAX_STOPS} stop sequences, got {}", stops.len()),
        ));
    }
    Ok(Validated {
        sampling: SamplingParams {
            temperature,
            top_p,
            top_k,
            min_p,
            presence_penalty,
            frequency_penalty,
            seed: f.seed.map(|s| s as u64),
            ignore_eos: f.ignore_eos,
        },
        max_tokens,
        stops,
        n,
        stream: f.stream,
        include_usage: f.stream_options.as_ref().is_some_and(|o| o.include_usage),
    })
}

/// Resolves `max_tokens` against the context window: an explicit value must fit; none fills the context.
pub fn fit_context(prompt_tokens: usize, max_tokens: Option<u32>, context: u32) -> Result<u32> {
    let prompt = u32::try_from(prompt_tokens).unwrap_or(u32::MAX);
    match max_tokens {
        Some(m) if u64::from(prompt) + u64::from(m) > u64::from(context) => {
            Err(Error::ContextOverflow {
                context,
                requested: prompt.saturating_add(m),
                prompt,
                completion: m,
            })
        }
        Some(m) => Ok(m),
        None if prompt >= context => Err(Error::ContextOverflow {
            context,
            requested: prompt + 1,
            prompt,
            completion: 1,
        }),
        None => Ok(context - prompt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range_values_naming_the_field() {
        let bad = [
            SamplingFields {
                temperature: Some(3.0),
                ..Default::default()
            },
            SamplingFields {
                top_p: Some(0.0),
                ..Default::default()
            },
            SamplingFields {
                n: Some(0),
                ..Default::default()
            },
            SamplingFields {
                max_tokens: Some(0),
                ..Default::default()
            },
            SamplingFields {
                presence_penalty: Some(5.0),
                ..Default::default()
            },
        ];
        let params = [
            "temperature",
            "top_p",
            "n",
            "max_tokens",
            "presence_penalty",
        ];
        for (f, p) in bad.iter().zip(params) {
            match validate(f, None) {
                Err(Error::InvalidRequest {
                    param: Some(got), ..
                }) => assert_eq!(got, p),
                other => panic!("{p}: {other:?}"),
            }
        }
    }

    #[test]
    fn context_overflow_says_so() {
        assert_eq!(fit_context(10, None, 100).unwrap(), 90);
        let err = fit_context(90, Some(20), 100).unwrap_err();
        assert!(
            err.to_string().contains("maximum context length is 100"),
            "{err}"
        );
    }
}
