//! Sequence-level distillation data: the teacher's own answers to prompts,
//! written as conversations to train a student on when no gold labels exist.

use burn::tensor::backend::Backend;
use datasets::{ChatTemplate, Example, Message, Record, Role, Tokenizer};
use serde_json::json;
use train::Transformer;
use train::generate::{Sampling, StopReason, generate};

use crate::task_eval::{TaskEvalError, chat_prompt};

/// One labelled conversation.
pub struct Labelled {
    /// The conversation with the teacher's answer as its last assistant turn.
    pub messages: Vec<Message>,
    pub tokens: usize,
    /// The answer ended at the token budget rather than at end of generation.
    pub cut: bool,
}

impl Labelled {
    /// The JSON Lines record: `{"messages": [{"role", "content"}, ...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let messages: Vec<serde_json::Value> = self
            .messages
            .iter()
            .map(|m| json!({ "role": m.role.as_str(), "content": m.content }))
            .collect();
        json!({ "messages": messages })
    }
}

/// The teacher's answer to `record`: the conversation up to its last turn
/// that is not an assistant's (a gold answer there is replaced), rendered with
/// the generation prompt.
pub fn label<B: Backend>(
    teacher: &Transformer<B>,
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    record: &Record,
    max_new_tokens: usize,
    sampling: Sampling,
) -> Result<Labelled, TaskEvalError> {
    let fail = |message: String| TaskEvalError::Example {
        location: record.location.to_string(),
        message,
    };
    let mut messages = match &record.example {
        Example::Chat(messages) => messages.clone(),
        Example::Text(text) => vec![Message::new(Role::User, text.as_str())],
    };
    if messages.last().is_some_and(|m| m.role == Role::Assistant) {
        messages.pop();
    }
    if !messages.iter().any(|m| m.role == Role::User) {
        return Err(fail("has no user turn to answer".to_owned()));
    }
    let prompt = chat_prompt(tokenizer, template, &messages)?;
    let generation = generate(
        teacher,
        &prompt,
        max_new_tokens,
        sampling,
        |id| tokenizer.is_eog(id),
        |_| {},
    )
    .map_err(|e| fail(e.to_string()))?;
    let answer = tokenizer.decode(&generation.tokens, false)?;
    messages.push(Message::new(Role::Assistant, answer));
    Ok(Labelled {
        messages,
        tokens: generation.tokens.len(),
        cut: !matches!(generation.stop, StopReason::EndOfGeneration(_)),
    })
}
