//! Examples to tokens, and which of them are trained.
//!
//! Text is tokenized as the model tokenizes a document (with the BOS/EOS its
//! vocabulary adds) and every token after the first is trained.
//!
//! A conversation is rendered through the model's chat template and trained on
//! its assistant turns only. The assistant spans are found by rendering
//! prefixes of the conversation: the messages before a reply with the
//! generation prompt, the same messages with the reply, and so on to the whole
//! conversation. Each rendering must begin with the one before (an error names
//! the template otherwise), and each piece between two renderings is tokenized
//! on its own, special-token texts parsed and no BOS added (the template writes
//! it), as `transformers` does. The prompt tokens are therefore exactly the
//! tokens a model is given at inference, when the prompt is rendered with the
//! generation prompt and tokenized; tokenizing the whole text at once could
//! merge a reply's leading newline into the header's and train on a token
//! sequence inference never produces.
//!
//! A reply is trained up to and including its last end-of-generation token
//! (`<|im_end|>`, `<|eot_id|>`, EOS): the model must learn to stop. What a
//! template writes after it (ChatML's newline) is not trained: generation has
//! stopped there.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::chat_template::{ChatTemplate, Message, Role};
use crate::error::{DatasetError, Result};
use crate::record::Example;
use crate::tokenizer::{EncodeOptions, Tokenizer};

/// Which assistant turns of a conversation are trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssistantTurns {
    #[default]
    All,
    /// Only the last: earlier replies are context.
    Last,
}

impl fmt::Display for AssistantTurns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AssistantTurns::All => "all",
            AssistantTurns::Last => "last",
        })
    }
}

impl FromStr for AssistantTurns {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "all" => Ok(AssistantTurns::All),
            "last" => Ok(AssistantTurns::Last),
            _ => Err(format!(
                "unknown assistant turns '{name}' (expected all or last)"
            )),
        }
    }
}

/// Token ids and, for each, whether it is a training target: predicted from
/// the tokens before it, with its loss counted. The first token never is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokenized {
    pub tokens: Vec<u32>,
    pub trained: Vec<bool>,
}

impl Tokenized {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn trained_count(&self) -> usize {
        self.trained.iter().filter(|&&trained| trained).count()
    }

    fn push(&mut self, tokens: Vec<u32>, trained: impl Fn(usize) -> bool) {
        let offset = self.tokens.len();
        self.trained
            .extend((0..tokens.len()).map(|index| offset + index > 0 && trained(index)));
        self.tokens.extend(tokens);
    }
}

/// Renders and tokenizes examples for one model.
#[derive(Clone, Copy, Debug)]
pub struct Renderer<'a> {
    tokenizer: &'a Tokenizer,
    template: Option<&'a ChatTemplate>,
    turns: AssistantTurns,
}

impl<'a> Renderer<'a> {
    /// `template` is needed for conversations only: a model without one can
    /// still be trained on text.
    pub fn new(
        tokenizer: &'a Tokenizer,
        template: Option<&'a ChatTemplate>,
        turns: AssistantTurns,
    ) -> Self {
        Self {
            tokenizer,
            template,
            turns,
        }
    }

    pub fn tokenize(&self, example: &Example) -> Result<Tokenized> {
        match example {
            Example::Text(text) => {
                let tokens = self.tokenizer.encode(
                    text,
                    EncodeOptions {
                        add_special: true,
                        parse_special: false,
                    },
                )?;
                let mut tokenized = Tokenized::default();
                tokenized.push(tokens, |_| true);
                Ok(tokenized)
            }
            Example::Chat(messages) => self.tokenize_chat(messages),
        }
    }

    fn tokenize_chat(&self, messages: &[Message]) -> Result<Tokenized> {
        let template = self.template.ok_or(DatasetError::NoChatTemplate)?;
        let replies: Vec<usize> = messages
            .iter()
            .enumerate()
            .filter(|(_, message)| message.role == Role::Assistant)
            .map(|(index, _)| index)
            .collect();
        let replies = match self.turns {
            AssistantTurns::All => &replies[..],
            AssistantTurns::Last => &replies[replies.len().saturating_sub(1)..],
        };
        if replies.is_empty() {
            return Err(DatasetError::NoAssistantTurn);
        }
        let mut pieces = Pieces {
            template,
            tokenizer: self.tokenizer,
            rendered: String::new(),
            tokenized: Tokenized::default(),
        };
        for &reply in replies {
            pieces.extend(&messages[..reply], Piece::Prompt)?;
            pieces.extend(&messages[..=reply], Piece::Reply)?;
        }
        pieces.extend(messages, Piece::Rest)?;
        Ok(pieces.tokenized)
    }
}

/// What a piece of a rendered conversation is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// Up to a trained reply, with the generation prompt.
    Prompt,
    /// The reply: trained.
    Reply,
    /// What follows the last trained reply.
    Rest,
}

/// A conversation rendered and tokenized piece by piece.
struct Pieces<'a> {
    template: &'a ChatTemplate,
    tokenizer: &'a Tokenizer,
    rendered: String,
    tokenized: Tokenized,
}

impl Pieces<'_> {
    /// Renders `messages`, which extend those rendered so far, and appends the
    /// tokens of the new text; a reply's are trained up to its last end of
    /// generation.
    fn extend(&mut self, messages: &[Message], piece: Piece) -> Result<()> {
        let generation_prompt = piece == Piece::Prompt;
        let text = self.template.render(messages, generation_prompt)?;
        let Some(new_text) = text.strip_prefix(self.rendered.as_str()) else {
            return Err(DatasetError::TemplateNotIncremental {
                origin: self.template.origin().to_owned(),
                messages: messages.len(),
                suffix: if generation_prompt {
                    " with the generation prompt"
                } else {
                    ""
                },
            });
        };
        let tokens = self.tokenizer.encode(
            new_text,
            EncodeOptions {
                add_special: false,
                parse_special: true,
            },
        )?;
        let trained_until = if piece == Piece::Reply {
            tokens
                .iter()
                .rposition(|&id| self.tokenizer.is_eog(id))
                .map_or(tokens.len(), |last| last + 1)
        } else {
            0
        };
        self.tokenized.push(tokens, |index| index < trained_until);
        self.rendered = text;
        Ok(())
    }
}
