//! Chat templates: the Jinja template stored in the model (`tokenizer.chat_template`), rendered with minijinja.

use minijinja::{Environment, ErrorKind, Value as JinjaValue};
use serde_json::Value;

use crate::error::{Error, Result};

/// ChatML, used when the model carries no template.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles the template a model carries (ChatML when it carries none), with its BOS and EOS.
    pub fn for_model(info: &crate::model::ModelInfo) -> Result<Self> {
        Self::new(
            info.chat_template.as_deref(),
            info.bos_token.as_deref(),
            info.eos_token.as_deref(),
        )
    }

    /// Compiles `source` (or ChatML when `None`).
    pub fn new(
        source: Option<&str>,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Self> {
        let source = source.unwrap_or(CHATML_TEMPLATE).to_owned();
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<JinjaValue, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_function("strftime_now", |format: String| -> String {
            let _ = format;
            String::new()
        });
        env.add_template_owned("chat", source.clone())
            .map_err(|e| Error::Template(e.to_string()))?;
        Ok(Self {
            env,
            source,
            bos_token: bos_token.unwrap_or_default().to_owned(),
            eos_token: eos_token.unwrap_or_default().to_owned(),
        })
    }

    /// Whether the template itself renders `tools` (otherwise callers describe tools in a system message).
    pub fn supports_tools(&self) -> bool {
        self.source.contains("tools")
    }

    /// Renders `messages` (OpenAI message objects with string content) into a prompt.
    pub fn render(
        &self,
        messages: &[Value],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| Error::Template(e.to_string()))?;
        template
            .render(minijinja::context! {
                messages => JinjaValue::from_serialize(messages),
                tools => tools.map(JinjaValue::from_serialize),
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token.clone(),
                eos_token => self.eos_token.clone(),
            })
            .map_err(|e| Error::Template(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_smollm2_template_with_default_system_prompt() {
        let t = ChatTemplate::new(Some(SMOLLM2), None, None).unwrap();
        let out = t
            .render(&[json!({"role": "user", "content": "Hi"})], None, true)
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn template_errors_are_reported() {
        let t = ChatTemplate::new(
            Some("{{ raise_exception('roles must alternate') }}"),
            None,
            None,
        )
        .unwrap();
        let err = t.render(&[], None, true).unwrap_err();
        assert!(err.to_string().contains("roles must alternate"), "{err}");
        assert!(ChatTemplate::new(Some("{% for %}"), None, None).is_err());
    }
}
