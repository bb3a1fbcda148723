//! An Ollama `Modelfile` for a GGUF export: `FROM` the file, the chat template
//! in Ollama's Go template language for the formats it can be translated from
//! (ChatML, which Qwen and SmolLM use, and Llama 3's headers), the default system
//! prompt the Jinja template bakes in, and the stop sequences.

use std::fmt::Write;

/// The chat formats decant translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatFormat {
    ChatMl,
    Llama3,
}

impl ChatFormat {
    /// Recognises the format by the markers the Jinja template writes.
    pub fn of_template(template: &str) -> Option<ChatFormat> {
        if template.contains("<|im_start|>") {
            Some(ChatFormat::ChatMl)
        } else if template.contains("<|start_header_id|>") {
            Some(ChatFormat::Llama3)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ChatFormat::ChatMl => "chatml",
            ChatFormat::Llama3 => "llama3",
        }
    }

    fn go_template(self) -> &'static str {
        match self {
            ChatFormat::ChatMl => {
                "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}\
                 {{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}\
                 <|im_start|>assistant\n"
            }
            ChatFormat::Llama3 => {
                "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}\
                 {{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}\
                 <|start_header_id|>assistant<|end_header_id|>\n\n"
            }
        }
    }

    fn stops(self) -> &'static [&'static str] {
        match self {
            ChatFormat::ChatMl => &["<|im_start|>", "<|im_end|>"],
            ChatFormat::Llama3 => &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        }
    }

    /// The system message the template inserts when the conversation has none.
    fn default_system(self, template: &str) -> Option<&str> {
        let (open, close) = match self {
            ChatFormat::ChatMl => ("<|im_start|>system\n", "<|im_end|>"),
            ChatFormat::Llama3 => ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
        };
        let start = template.find(open)? + open.len();
        let text = &template[start..start + template[start..].find(close)?];
        // A literal only: a Jinja expression here is the user's system message.
        (!text.contains(['{', '}', '\'', '"']) && !text.is_empty()).then_some(text)
    }
}

/// What Ollama runs a GGUF with besides its weights: the chat template in
/// Go's template language, the default system prompt and the stop sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OllamaChat {
    pub format: ChatFormat,
    pub template: &'static str,
    pub system: Option<String>,
    pub stops: &'static [&'static str],
}

/// The Ollama chat settings for a Jinja chat template decant can translate.
pub fn ollama_chat(chat_template: &str) -> Option<OllamaChat> {
    let format = ChatFormat::of_template(chat_template)?;
    Some(OllamaChat {
        format,
        template: format.go_template(),
        system: format.default_system(chat_template).map(str::to_owned),
        stops: format.stops(),
    })
}

/// The Modelfile; without a recognised chat template it has `FROM` and the
/// stop parameters only, and `format` says so.
pub fn modelfile(gguf_name: &str, chat_template: Option<&str>) -> (String, Option<ChatFormat>) {
    let mut text = format!("FROM ./{gguf_name}\n");
    let chat = chat_template.and_then(ollama_chat);
    if let Some(chat) = &chat {
        let _ = writeln!(text, "TEMPLATE \"\"\"{}\"\"\"", chat.template);
        if let Some(system) = &chat.system {
            let _ = writeln!(text, "SYSTEM \"\"\"{system}\"\"\"");
        }
        for stop in chat.stops {
            let _ = writeln!(text, "PARAMETER stop \"{stop}\"");
        }
    }
    (text, chat.map(|c| c.format))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_with_its_default_system_prompt() {
        let (text, format) = modelfile("m.gguf", Some(SMOLLM2));
        assert_eq!(format, Some(ChatFormat::ChatMl));
        assert!(text.starts_with("FROM ./m.gguf\nTEMPLATE \"\"\"{{- if .System }}<|im_start|>system\n"));
        assert!(text.contains(
            "SYSTEM \"\"\"You are a helpful AI assistant named SmolLM, trained by Hugging Face\"\"\"\n"
        ));
        assert!(text.ends_with("PARAMETER stop \"<|im_start|>\"\nPARAMETER stop \"<|im_end|>\"\n"));
    }

    #[test]
    fn llama3_and_unknown_templates() {
        let llama3 = "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}";
        let (text, format) = modelfile("m.gguf", Some(llama3));
        assert_eq!(format, Some(ChatFormat::Llama3));
        assert!(text.contains("PARAMETER stop \"<|eot_id|>\"") && !text.contains("SYSTEM"));
        let (text, format) = modelfile("m.gguf", Some("[INST] {{ content }} [/INST]"));
        assert_eq!((text.as_str(), format), ("FROM ./m.gguf\n", None));
    }
}
