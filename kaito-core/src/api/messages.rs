//! Chat messages as a client sends them → the input of the chat template: content parts joined
//! into text, roles checked (`developer` read as `system`), an assistant turn that only called
//! tools rendered as its `<tool_call>` text. The one implementation: the chat handler, the Python
//! `LLM.chat` and the CLI's chat use it. Every error names the message and field at fault.

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The roles a message may have.
pub const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

/// Checks `messages` and returns them ready for the chat template.
pub fn normalize(messages: &[Value]) -> Result<Vec<Value>> {
    if messages.is_empty() {
        return Err(Error::request(
            "messages",
            "`messages` is empty: it must contain at least one message",
        ));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| normalize_one(i, m))
        .collect()
}

fn normalize_one(i: usize, m: &Value) -> Result<Value> {
    let obj = m.as_object().ok_or_else(|| {
        Error::request(
            format!("messages[{i}]"),
            format!("messages[{i}] must be an object with `role` and `content`"),
        )
    })?;
    let role = obj.get("role").and_then(Value::as_str).ok_or_else(|| {
        Error::request(
            format!("messages[{i}].role"),
            format!("messages[{i}].role is missing or not a string"),
        )
    })?;
    if !ROLES.contains(&role) {
        return Err(Error::request(
            format!("messages[{i}].role"),
            format!(
                "messages[{i}].role `{role}` is not one of {}",
                ROLES.join(", ")
            ),
        ));
    }
    let content = match obj.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (k, part) in parts.iter().enumerate() {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(Error::request(
                            format!("messages[{i}].content[{k}]"),
                            format!(
                                "messages[{i}].content[{k}]: only text parts (`{{\"type\": \"text\", \"text\": ...}}`) are supported"
                            ),
                        ))
                    }
                }
            }
            text
        }
        Some(_) => {
            return Err(Error::request(
                format!("messages[{i}].content"),
                format!("messages[{i}].content must be a string or a list of text parts"),
            ))
        }
    };
    if content.is_empty() && role == "user" {
        return Err(Error::request(
            format!("messages[{i}].content"),
            format!("messages[{i}].content is empty (a user message needs text)"),
        ));
    }
    let mut out = m.clone();
    out["role"] = json!(if role == "developer" { "system" } else { role });
    out["content"] = json!(content);
    if role == "assistant" && content.is_empty() {
        if let Some(calls) = obj.get("tool_calls") {
            out["content"] = json!(format!("<tool_call>{calls}</tool_call>"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(messages: Value) -> String {
        match normalize(messages.as_array().unwrap()) {
            Err(Error::InvalidRequest {
                param: Some(p),
                message,
            }) => {
                assert!(message.starts_with(&p) || p == "messages", "{message}");
                p
            }
            other => panic!("{messages}: {other:?}"),
        }
    }

    #[test]
    fn parts_are_joined_and_developer_is_system() {
        let ok = normalize(&[
            json!({"role": "developer", "content": "Be brief."}),
            json!({"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}),
        ])
        .unwrap();
        assert_eq!(ok[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(ok[1]["content"], "Hi there");
    }

    #[test]
    fn an_assistant_turn_that_called_tools_keeps_its_calls() {
        let calls = json!([{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]);
        let ok = normalize(&[
            json!({"role": "user", "content": "call f"}),
            json!({"role": "assistant", "content": null, "tool_calls": calls}),
            json!({"role": "tool", "tool_call_id": "call_1", "content": "42"}),
        ])
        .unwrap();
        assert_eq!(ok[1]["content"], format!("<tool_call>{calls}</tool_call>"));
        assert_eq!(ok[1]["tool_calls"], calls);
        assert_eq!(ok[2]["tool_call_id"], "call_1");
    }

    #[test]
    fn every_error_names_the_message_and_field() {
        assert_eq!(param_of(json!([])), "messages");
        assert_eq!(param_of(json!(["hi"])), "messages[0]");
        assert_eq!(param_of(json!([{"content": "x"}])), "messages[0].role");
        assert_eq!(
            param_of(json!([{"role": "wizard", "content": "x"}])),
            "messages[0].role"
        );
        assert_eq!(
            param_of(json!([{"role": "user", "content": "x"}, {"role": "user", "content": 1}])),
            "messages[1].content"
        );
        assert_eq!(
            param_of(
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
            ),
            "messages[0].content[0]"
        );
        assert_eq!(
            param_of(json!([{"role": "user", "content": [{"text": "untyped"}]}])),
            "messages[0].content[0]"
        );
        assert_eq!(
            param_of(json!([{"role": "user", "content": ""}])),
            "messages[0].content"
        );
    }
}
