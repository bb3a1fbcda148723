//! What a record holds: plain text, a prompt and its completion, or an
//! OpenAI-style list of messages; and which fields (columns) hold it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat_template::{Message, Role};
use crate::error::{DatasetError, Result};
use crate::source::RawRecord;

/// How a record is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordFormat {
    /// Each record by the first format whose fields it has: messages, then
    /// prompt-completion, then text.
    #[default]
    Auto,
    /// A `text` field: trained on every token.
    Text,
    /// `prompt` and `completion` fields, and an optional `system` field: a
    /// user turn and the assistant's reply, trained on the reply.
    PromptCompletion,
    /// A `messages` list of `{role, content}` objects, roles `system`, `user`
    /// and `assistant`: trained on the assistant turns.
    Messages,
}

const FORMATS: [RecordFormat; 3] = [
    RecordFormat::Messages,
    RecordFormat::PromptCompletion,
    RecordFormat::Text,
];

impl RecordFormat {
    pub fn name(self) -> &'static str {
        match self {
            RecordFormat::Auto => "auto",
            RecordFormat::Text => "text",
            RecordFormat::PromptCompletion => "prompt-completion",
            RecordFormat::Messages => "messages",
        }
    }
}

impl fmt::Display for RecordFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RecordFormat {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        [RecordFormat::Auto]
            .into_iter()
            .chain(FORMATS)
            .find(|format| format.name() == name)
            .ok_or_else(|| {
                format!("unknown record format '{name}' (expected auto, text, prompt-completion or messages)")
            })
    }
}

/// The field (column) names each format reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Columns {
    pub text: String,
    pub prompt: String,
    pub completion: String,
    /// Optional beside `prompt` and `completion`: the system message.
    pub system: String,
    pub messages: String,
}

impl Columns {
    /// The fields a name can be given for, as [`Columns::set`] takes them.
    pub const FIELDS: [&str; 5] = ["text", "prompt", "completion", "system", "messages"];

    /// Reads `field` (one of [`Columns::FIELDS`]) from the column `name`.
    pub fn set(&mut self, field: &str, name: impl Into<String>) -> Result<(), String> {
        let slot = match field {
            "text" => &mut self.text,
            "prompt" => &mut self.prompt,
            "completion" => &mut self.completion,
            "system" => &mut self.system,
            "messages" => &mut self.messages,
            _ => {
                return Err(format!(
                    "unknown field '{field}' (expected {})",
                    Self::FIELDS.join(", ")
                ));
            }
        };
        *slot = name.into();
        Ok(())
    }
}

impl Default for Columns {
    fn default() -> Self {
        Self {
            text: "text".to_owned(),
            prompt: "prompt".to_owned(),
            completion: "completion".to_owned(),
            system: "system".to_owned(),
            messages: "messages".to_owned(),
        }
    }
}

/// How to read a record: the format and the field names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordSpec {
    pub format: RecordFormat,
    pub columns: Columns,
}

/// One training example, as the record spec read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Example {
    Text(String),
    /// A conversation; a prompt and completion become a user and an assistant
    /// message, after the system message if the record has one.
    Chat(Vec<Message>),
}

impl RecordSpec {
    /// The fields the format needs.
    fn required(&self, format: RecordFormat) -> Vec<&str> {
        let columns = &self.columns;
        match format {
            RecordFormat::Auto => Vec::new(),
            RecordFormat::Text => vec![&columns.text],
            RecordFormat::PromptCompletion => vec![&columns.prompt, &columns.completion],
            RecordFormat::Messages => vec![&columns.messages],
        }
    }

    /// Every field this spec may read, so that columnar readers decode no other.
    pub(crate) fn columns_read(&self) -> Vec<&str> {
        let formats = match self.format {
            RecordFormat::Auto => FORMATS.to_vec(),
            format => vec![format],
        };
        let mut columns: Vec<&str> = formats
            .iter()
            .flat_map(|&format| self.required(format))
            .collect();
        if formats.contains(&RecordFormat::PromptCompletion) {
            columns.push(&self.columns.system);
        }
        columns
    }

    fn reads(&self, format: RecordFormat) -> String {
        let quoted: Vec<String> = self
            .required(format)
            .iter()
            .map(|field| format!("'{field}'"))
            .collect();
        quoted.join(" and ")
    }

    /// The example `record` holds; errors name the record's location.
    pub(crate) fn example(&self, record: &RawRecord) -> Result<Example> {
        self.interpret(record)
            .map_err(|error| error.at(&record.location))
    }

    fn interpret(&self, record: &RawRecord) -> Result<Example> {
        let format = match self.format {
            RecordFormat::Auto => self.detect(record)?,
            format => format,
        };
        if let Some(field) = self
            .required(format)
            .into_iter()
            .find(|field| !record.fields.contains_key(*field))
        {
            return Err(DatasetError::MissingField {
                field: field.to_owned(),
                format: format!("{format} reads {}", self.reads(format)),
                found: record.field_names(),
            });
        }
        let reader = FieldReader { record };
        let columns = &self.columns;
        Ok(match format {
            RecordFormat::Auto => unreachable!("detect chose a format"),
            RecordFormat::Text => Example::Text(reader.string(&columns.text)?.to_owned()),
            RecordFormat::PromptCompletion => {
                let mut messages = Vec::with_capacity(3);
                if let Some(system) = reader.optional_string(&columns.system)? {
                    messages.push(Message::new(Role::System, system));
                }
                messages.push(Message::new(Role::User, reader.string(&columns.prompt)?));
                messages.push(Message::new(
                    Role::Assistant,
                    reader.string(&columns.completion)?,
                ));
                Example::Chat(messages)
            }
            RecordFormat::Messages => Example::Chat(reader.messages(&columns.messages)?),
        })
    }

    fn detect(&self, record: &RawRecord) -> Result<RecordFormat> {
        let has_all = |format| {
            self.required(format)
                .iter()
                .all(|field| record.fields.contains_key(*field))
        };
        FORMATS
            .into_iter()
            .find(|&format| has_all(format))
            .ok_or_else(|| {
                let tried: Vec<String> = FORMATS
                    .iter()
                    .map(|&format| format!("{format} ({})", self.reads(format)))
                    .collect();
                DatasetError::UnknownRecord {
                    tried: tried.join(", "),
                    found: record.field_names(),
                }
            })
    }
}

/// Typed access to a record's fields, with errors that name the field.
struct FieldReader<'a> {
    record: &'a RawRecord,
}

impl<'a> FieldReader<'a> {
    fn string(&self, field: &str) -> Result<&'a str> {
        let value = &self.record.fields[field];
        value
            .as_str()
            .ok_or_else(|| type_error(field.to_owned(), "a string", describe(value)))
    }

    fn optional_string(&self, field: &str) -> Result<Option<&'a str>> {
        match self.record.fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.string(field).map(Some),
        }
    }

    fn messages(&self, field: &str) -> Result<Vec<Message>> {
        const EXPECTED: &str = "a non-empty list of {role, content} messages";
        let value = &self.record.fields[field];
        let list = match value.as_array() {
            Some(list) if !list.is_empty() => list,
            _ => return Err(type_error(field.to_owned(), EXPECTED, describe(value))),
        };
        list.iter()
            .enumerate()
            .map(|(index, message)| {
                let at = |key: &str| format!("{field}[{index}].{key}");
                let Some(object) = message.as_object() else {
                    return Err(type_error(
                        format!("{field}[{index}]"),
                        "a {role, content} object",
                        describe(message),
                    ));
                };
                let text = |key: &str| match object.get(key) {
                    Some(Value::String(text)) => Ok(text.as_str()),
                    Some(other) => Err(type_error(at(key), "a string", describe(other))),
                    None => Err(type_error(at(key), "a string", "no such key".to_owned())),
                };
                let role = match text("role")? {
                    "system" => Role::System,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    other => {
                        return Err(type_error(
                            at("role"),
                            "\"system\", \"user\" or \"assistant\"",
                            describe(&Value::from(other)),
                        ));
                    }
                };
                Ok(Message::new(role, text("content")?))
            })
            .collect()
    }
}

fn type_error(field: String, expected: &'static str, found: String) -> DatasetError {
    DatasetError::FieldType {
        field,
        expected,
        found,
    }
}

/// A JSON value's kind, for "expected …, found …" messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value's kind, and the value itself where it is short enough to quote.
fn describe(value: &Value) -> String {
    match value {
        Value::String(text) if text.is_empty() => "an empty string".to_owned(),
        Value::String(text) if text.chars().count() <= 40 => value.to_string(),
        Value::Array(list) if list.is_empty() => "an empty list".to_owned(),
        Value::Bool(_) | Value::Number(_) => format!("{} ({value})", json_kind(value)),
        _ => json_kind(value).to_owned(),
    }
}
