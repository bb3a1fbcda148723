//! Chat templates: the Jinja a model ships to turn a conversation into the text
//! it was trained on, rendered as `transformers`' `apply_chat_template(...,
//! tokenize=False)` renders it.

mod python;

use std::path::Path;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, Value};
use quantize::gguf::GgufFile;
use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Result};
use crate::tokenizer::{Metadata, read_json, token_content};

const NAME: &str = "chat_template";

/// Who speaks a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A compiled chat template with the special-token texts it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    origin: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl ChatTemplate {
    /// Compiles `source` in a Jinja environment set up as `transformers` sets up
    /// its own: blocks trimmed and left-stripped, loop controls, Python string
    /// and dict methods, `raise_exception`, `strftime_now` and `tojson`, and
    /// None and booleans printed the Python way.
    /// `origin` names where the template came from in errors.
    pub fn new(source: impl Into<String>, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        let mut env = Environment::new();
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        // Jinja2's default: printing or testing an undefined value is fine,
        // reading an attribute of one is an error.
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python::format_value);
        env.add_function("raise_exception", python::raise_exception);
        env.add_function("strftime_now", python::strftime_now);
        env.add_filter("tojson", python::tojson);
        env.add_template_owned(NAME, source.into())
            .map_err(|error| DatasetError::TemplateSyntax {
                origin: origin.clone(),
                message: error.to_string(),
            })?;
        Ok(Self {
            env,
            origin,
            bos_token: None,
            eos_token: None,
        })
    }

    /// Sets the `bos_token` and `eos_token` texts the template can use.
    pub fn with_special_tokens(mut self, bos: Option<String>, eos: Option<String>) -> Self {
        self.bos_token = bos;
        self.eos_token = eos;
        self
    }

    /// A GGUF model's `tokenizer.chat_template`, with its BOS and EOS texts.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let meta = Metadata::new(file);
        let source =
            meta.string("tokenizer.chat_template")?
                .ok_or_else(|| DatasetError::MissingKey {
                    origin: meta.origin().to_owned(),
                    key: "tokenizer.chat_template",
                    expected: "the model's Jinja chat template",
                })?;
        let tokens = meta.strings("tokenizer.ggml.tokens")?.unwrap_or_default();
        let text = |key| -> Result<Option<String>> {
            Ok(meta
                .token_id(key)?
                .and_then(|id| tokens.get(id as usize))
                .cloned())
        };
        let bos = text("tokenizer.ggml.bos_token_id")?;
        let eos = text("tokenizer.ggml.eos_token_id")?;
        Ok(Self::new(
            source,
            format!("tokenizer.chat_template in {}", meta.origin()),
        )?
        .with_special_tokens(bos, eos))
    }

    /// A Hugging Face model directory's template: `chat_template.jinja`, or
    /// `chat_template` in `tokenizer_config.json` (a string, or a list of named
    /// templates of which the one named `default`), with the BOS and EOS texts
    /// `tokenizer_config.json` gives.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = dir.join("tokenizer_config.json");
        let config = read_json(&config_path)?;
        let jinja_path = dir.join("chat_template.jinja");
        let (source, origin) = match std::fs::read_to_string(&jinja_path) {
            Ok(source) => (source, jinja_path.display().to_string()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let source = config
                    .as_ref()
                    .and_then(|config| match config.get("chat_template")? {
                        serde_json::Value::String(source) => Some(source.clone()),
                        serde_json::Value::Array(named) => named
                            .iter()
                            .find(|entry| entry.get("name").and_then(|name| name.as_str()) == Some("default"))
                            .and_then(|entry| entry.get("template")?.as_str().map(str::to_owned)),
                        _ => None,
                    })
                    .ok_or_else(|| DatasetError::MissingKey {
                        origin: config_path.display().to_string(),
                        key: "chat_template",
                        expected: "the model's Jinja chat template: a string, or a list with one named \"default\"; or a chat_template.jinja file beside it",
                    })?;
                (source, config_path.display().to_string())
            }
            Err(source) => {
                return Err(DatasetError::Io {
                    path: jinja_path,
                    source,
                });
            }
        };
        let text = |name| {
            config
                .as_ref()
                .and_then(|config| token_content(config.get(name)?))
                .map(str::to_owned)
        };
        Ok(Self::new(source, origin)?.with_special_tokens(text("bos_token"), text("eos_token")))
    }

    /// Where the template came from, as errors name it.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The text of `messages`; with `add_generation_prompt`, followed by the
    /// header that opens the assistant's reply.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let messages: Value = messages
            .iter()
            .map(|message| {
                Value::from_pairs([
                    ("role", Value::from(message.role.as_str())),
                    ("content", Value::from(message.content.as_str())),
                ])
            })
            .collect();
        // transformers passes `tools` and `documents` as None, so templates
        // see them defined.
        let mut context = vec![
            ("messages", messages),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
            ("tools", Value::from(())),
            ("documents", Value::from(())),
        ];
        for (name, token) in [
            ("bos_token", &self.bos_token),
            ("eos_token", &self.eos_token),
        ] {
            if let Some(token) = token {
                context.push((name, Value::from(token.as_str())));
            }
        }
        self.env
            .get_template(NAME)
            .and_then(|template| template.render(Value::from_pairs(context)))
            .map_err(|error| DatasetError::TemplateRender {
                origin: self.origin.clone(),
                message: error.to_string(),
            })
    }
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}
