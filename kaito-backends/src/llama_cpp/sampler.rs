//! Sampler chains (OpenAI parameters → llama.cpp samplers) and log-probabilities.

use kaito_core::{Constraint, GenerateRequest, TokenLogprob};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use llama_cpp_2::token::LlamaToken;

use crate::error::{Error, Result};
use crate::logprobs::{top_logprobs, TopLogprobs};

/// Grammar for `response_format: json_object`: any JSON object.
const JSON_OBJECT_SCHEMA: &str = r#"{"type": "object"}"#;

/// The model's end-of-generation tokens (EOS, EOT, `<|im_end|>`…).
pub(super) fn eog_tokens(model: &LlamaModel) -> Vec<LlamaToken> {
    let vocab = model.vocab();
    (0..model.n_vocab())
        .map(LlamaToken)
        .filter(|&t| vocab.is_eog(t))
        .collect()
}

/// How one sequence picks its next token.
pub(super) enum TokenPicker {
    /// Greedy decoding with nothing else that reads or changes the logits (no penalties, no
    /// grammar): the highest logit, read where the context left it, never one of `banned`.
    /// llama.cpp's sampler chain first copies every candidate of the vocabulary into an array
    /// (~0.13 ms a token for SmolLM2's 49,152 on this machine's cores, ~1% of a decode step); the
    /// scan alone costs a fraction of that. The pick is the chain's: ties go to the lowest id.
    Argmax { banned: Vec<LlamaToken> },
    /// Everything else: llama.cpp's sampler chain.
    Chain(LlamaSampler),
}

impl TokenPicker {
    /// The next token from the logits of batch index `at`, accepted by the chain's samplers.
    pub(super) fn pick(&mut self, ctx: &LlamaContext<'_>, at: i32) -> LlamaToken {
        match self {
            TokenPicker::Argmax { banned } => argmax(ctx.get_logits_ith(at), banned),
            TokenPicker::Chain(chain) => chain.sample(ctx, at),
        }
    }
}

/// The index of the highest of `logits` (the lowest index among equals) that is not `banned`.
fn argmax(logits: &[f32], banned: &[LlamaToken]) -> LlamaToken {
    let mut best = None::<(usize, f32)>;
    for (i, &logit) in logits.iter().enumerate() {
        // A new best is rare after the first few entries, so the ban is checked only then.
        if best.is_none_or(|(_, b)| logit > b) && !banned.contains(&LlamaToken(i as i32)) {
            best = Some((i, logit));
        }
    }
    LlamaToken(best.map_or(0, |(i, _)| i as i32))
}

/// Builds the token picker for a request: [`TokenPicker::Argmax`] where it gives the chain's
/// answer, else the sampler chain: end-of-generation ban (`ignore_eos`), penalties, grammar, then
/// greedy or top-k/top-p/min-p/temperature/dist.
///
/// `ignore_eos` never samples an end-of-generation token (`eog`), as llama-server does, rather
/// than sampling one and going on: a chat model past its `<|im_end|>` writes invisible control
/// tokens and a new turn, and every invisible token is a gap in the text stream. (Not under a
/// grammar, which may allow nothing but the end once its text is complete.)
pub(super) fn build(
    model: &LlamaModel,
    request: &GenerateRequest,
    ctx_size: u32,
    eog: &[LlamaToken],
) -> Result<TokenPicker> {
    let p = &request.sampling;
    let penalties = p.presence_penalty != 0.0 || p.frequency_penalty != 0.0;
    if p.temperature <= 0.0 && !penalties && request.constraint.is_none() {
        let banned = if p.ignore_eos {
            eog.to_vec()
        } else {
            Vec::new()
        };
        return Ok(TokenPicker::Argmax { banned });
    }
    let mut chain = Vec::new();
    if p.ignore_eos && request.constraint.is_none() && !eog.is_empty() {
        let bans: Vec<LlamaLogitBias> = eog
            .iter()
            .map(|&t| LlamaLogitBias::new(t, f32::NEG_INFINITY))
            .collect();
        chain.push(LlamaSampler::logit_bias(model.n_vocab(), &bans));
    }
    if penalties {
        // OpenAI penalties count every token generated so far (only generated tokens are accepted by
        // the chain). llama.cpp clamps a negative window to 0, which disables the sampler, so the
        // window is the context size.
        let window = ctx_size.min(i32::MAX as u32) as i32;
        chain.push(LlamaSampler::penalties(
            model.n_vocab(),
            window,
            1.0,
            p.frequency_penalty,
            p.presence_penalty,
        ));
    }
    if let Some(grammar) = grammar_for(request.constraint.as_ref())? {
        let sampler = LlamaSampler::grammar(model, &grammar, "root")
            .map_err(|e| Error::Constraint(e.to_string()))?;
        chain.push(sampler);
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if p.top_k > 0 {
            chain.push(LlamaSampler::top_k(p.top_k as i32));
        }
        if p.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(p.top_p, 1));
        }
        if p.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(p.min_p, 1));
        }
        chain.push(LlamaSampler::temp(p.temperature));
        let seed = p.seed.unwrap_or_else(rand::random::<u64>);
        chain.push(LlamaSampler::dist((seed ^ (seed >> 32)) as u32));
    }
    Ok(TokenPicker::Chain(LlamaSampler::chain_simple(chain)))
}

/// The GBNF grammar a constraint compiles to.
pub(super) fn grammar_for(constraint: Option<&Constraint>) -> Result<Option<String>> {
    let schema = match constraint {
        None => return Ok(None),
        Some(Constraint::Grammar(g)) => return Ok(Some(g.clone())),
        Some(Constraint::JsonObject) => JSON_OBJECT_SCHEMA.to_owned(),
        Some(Constraint::JsonSchema(s)) => s.to_string(),
    };
    llama_cpp_2::json_schema_to_grammar(&schema)
        .map(Some)
        .map_err(|e| Error::Constraint(format!("unsupported JSON schema: {e}")))
}

/// Log-softmax of one position's logits, kept until the sampled token is known.
pub(super) struct StepLogprobs {
    logits: Vec<f32>,
    top: TopLogprobs,
    top_bytes: Vec<Vec<u8>>,
}

impl StepLogprobs {
    /// The sampled token's logprob and the alternatives.
    pub(super) fn for_token(self, token: LlamaToken) -> TokenLogprob {
        let logprob = self.top.of(&self.logits, token.0 as u32);
        let top = self
            .top
            .top
            .into_iter()
            .zip(self.top_bytes)
            .map(|((id, lp), bytes)| (id, bytes, lp))
            .collect();
        TokenLogprob { logprob, top }
    }
}

/// Reads the logits at batch index `at` and prepares logprobs with the `k` best alternatives.
pub(super) fn logprobs_at(
    model: &LlamaModel,
    ctx: &LlamaContext<'_>,
    at: i32,
    k: usize,
) -> StepLogprobs {
    let logits = ctx.get_logits_ith(at).to_vec();
    let top = top_logprobs(&logits, k);
    let vocab = model.vocab();
    let top_bytes = top
        .top
        .iter()
        .map(|(t, _)| vocab.token_to_piece(LlamaToken(*t as i32), false, None))
        .collect();
    StepLogprobs {
        logits,
        top,
        top_bytes,
    }
}

#[cfg(test)]
mod tests {
    use llama_cpp_2::token::data::LlamaTokenData;
    use llama_cpp_2::token::data_array::LlamaTokenDataArray;

    use super::*;

    /// What llama.cpp's own chain (the end-of-generation ban, then greedy) picks from `logits`.
    fn chain_pick(logits: &[f32], banned: &[LlamaToken]) -> LlamaToken {
        let bans: Vec<LlamaLogitBias> = banned
            .iter()
            .map(|&t| LlamaLogitBias::new(t, f32::NEG_INFINITY))
            .collect();
        let mut chain = LlamaSampler::chain_simple([
            LlamaSampler::logit_bias(logits.len() as i32, &bans),
            LlamaSampler::greedy(),
        ]);
        let data = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| LlamaTokenData::new(LlamaToken(i as i32), l, 0.0));
        let mut array = LlamaTokenDataArray::from_iter(data, false);
        array.apply_sampler(&mut chain);
        array.selected_token().expect("greedy selects a token")
    }

    #[test]
    fn argmax_picks_what_the_greedy_chain_picks() {
        // Few distinct values, so that many rows have ties for the best; the ban often hits it.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500 {
            let logits: Vec<f32> = (0..64).map(|_| (next() % 6) as f32 - 2.0).collect();
            let banned: Vec<LlamaToken> = (0..(next() % 4))
                .map(|_| LlamaToken((next() % 64) as i32))
                .collect();
            assert_eq!(
                argmax(&logits, &banned),
                chain_pick(&logits, &banned),
                "logits {logits:?}, banned {banned:?}"
            );
        }
    }

    #[test]
    fn argmax_takes_the_lowest_of_equal_logits_and_skips_the_banned() {
        let logits = [1.0, 3.0, 2.0, 3.0, 3.0];
        assert_eq!(argmax(&logits, &[]), LlamaToken(1));
        assert_eq!(argmax(&logits, &[LlamaToken(1)]), LlamaToken(3));
        assert_eq!(
            argmax(&logits, &[LlamaToken(1), LlamaToken(3), LlamaToken(4)]),
            LlamaToken(2)
        );
    }
}
