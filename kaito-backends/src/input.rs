//! Checks every engine applies to what it is asked before it queues the work, so that bad input
//! gets the same clear error whatever the engine (and never reaches a batch it could spoil).

use kaito_core::{Error, GenerateRequest, Result};

/// A prompt must be non-empty, inside the vocabulary and shorter than one sequence's context.
pub fn check_prompt(prompt: &[u32], vocab_size: u32, ctx_size: u32) -> Result<()> {
    if prompt.is_empty() {
        return Err(Error::request("prompt", "prompt is empty"));
    }
    check_vocabulary("prompt", "prompt", prompt, vocab_size)?;
    if prompt.len() as u32 >= ctx_size {
        return Err(Error::request(
            "prompt",
            format!(
                "the prompt has {} tokens; a sequence's context holds {ctx_size}",
                prompt.len()
            ),
        ));
    }
    Ok(())
}

/// What every engine checks of a request before queueing it: the prompt ([`check_prompt`]) and
/// the adapter, which no engine serves yet.
pub fn check_request(request: &GenerateRequest, vocab_size: u32, ctx_size: u32) -> Result<()> {
    check_prompt(&request.prompt, vocab_size, ctx_size)?;
    if let Some(adapter) = &request.adapter {
        return Err(Error::request(
            "model",
            format!(
                "this engine serves no LoRA adapter `{adapter}` (it serves the base model only)"
            ),
        ));
    }
    Ok(())
}

/// Each embedding input must be non-empty, inside the vocabulary and fit the context.
pub fn check_embed_inputs(inputs: &[Vec<u32>], vocab_size: u32, ctx_size: u32) -> Result<()> {
    for (i, input) in inputs.iter().enumerate() {
        let what = format!("input[{i}]");
        if input.is_empty() {
            return Err(Error::request("input", format!("{what} is empty")));
        }
        if input.len() as u32 > ctx_size {
            return Err(Error::request(
                "input",
                format!(
                    "{what} has {} tokens, more than the context length {ctx_size}",
                    input.len()
                ),
            ));
        }
        check_vocabulary("input", &what, input, vocab_size)?;
    }
    Ok(())
}

/// Every id of `tokens` (named `what` in the message) must be below `vocab_size`.
pub fn check_vocabulary(param: &str, what: &str, tokens: &[u32], vocab_size: u32) -> Result<()> {
    match tokens.iter().find(|t| **t >= vocab_size) {
        Some(bad) => Err(Error::request(
            param,
            format!("{what} has token id {bad}, outside the vocabulary (size {vocab_size})"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_is_named() {
        let message = |r: Result<()>| r.unwrap_err().to_string();
        assert!(message(check_prompt(&[], 10, 8)).contains("prompt is empty"));
        assert!(message(check_prompt(&[1, 10], 10, 8)).contains("token id 10"));
        assert!(message(check_prompt(&[1; 8], 10, 8)).contains("context holds 8"));
        assert!(check_prompt(&[1; 7], 10, 8).is_ok());
        let on_adapter = GenerateRequest::new("a", vec![1], 4).with_adapter(Some("sql".into()));
        let err = check_request(&on_adapter, 10, 8).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidRequest { param: Some(p), .. } if p == "model")
                && err.to_string().contains("`sql`"),
            "{err}"
        );
        assert!(check_request(&GenerateRequest::new("b", vec![1], 4), 10, 8).is_ok());
        assert!(
            message(check_embed_inputs(&[vec![1], vec![]], 10, 8)).contains("input[1] is empty")
        );
        assert!(message(check_embed_inputs(&[vec![1; 9]], 10, 8)).contains("context length 8"));
        assert!(
            message(check_embed_inputs(&[vec![11]], 10, 8)).contains("input[0] has token id 11")
        );
        assert!(check_embed_inputs(&[vec![1; 8]], 10, 8).is_ok());
    }
}
