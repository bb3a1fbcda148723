//! Which tokens of a rendered conversation are trained, token by token, for
//! ChatML (the reference teacher, SmolLM2) and Llama 3, over the renderings
//! `transformers` produced (goldens/chat_template_transformers.json).

mod common;

use std::path::Path;

use datasets::{
    AssistantTurns, ChatTemplate, DatasetError, Example, Message, Renderer, Role, Tokenized,
    Tokenizer,
};
use quantize::gguf::GgufFile;
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    templates: Vec<TemplateGolden>,
}

#[derive(Deserialize)]
struct TemplateGolden {
    file: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    messages: Vec<Message>,
    add_generation_prompt: bool,
    rendered: String,
}

fn goldens_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/goldens"))
}

fn golden_template(file: &str) -> TemplateGolden {
    let text =
        std::fs::read_to_string(goldens_dir().join("chat_template_transformers.json")).unwrap();
    let golden: Golden = serde_json::from_str(&text).unwrap();
    golden
        .templates
        .into_iter()
        .find(|template| template.file == file)
        .unwrap()
}

/// A model's tokenizer and one of the golden templates.
struct Model {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    golden: TemplateGolden,
}

impl Model {
    fn new(vocab: &Path, template_file: &str) -> Self {
        let golden = golden_template(template_file);
        let source =
            std::fs::read_to_string(goldens_dir().join("chat_templates").join(template_file))
                .unwrap();
        let template = ChatTemplate::new(source, template_file)
            .unwrap()
            .with_special_tokens(golden.bos_token.clone(), golden.eos_token.clone());
        let tokenizer = Tokenizer::from_gguf(&GgufFile::open(vocab).unwrap()).unwrap();
        Self {
            tokenizer,
            template,
            golden,
        }
    }

    fn smollm2() -> Self {
        Self::new(&common::reference_model(), "smollm2.jinja")
    }

    fn llama3() -> Self {
        Self::new(
            &common::llamacpp_vocab("ggml-vocab-llama-bpe.gguf"),
            "llama-3.1.jinja",
        )
    }

    fn qwen2() -> Self {
        Self::new(
            &common::llamacpp_vocab("ggml-vocab-qwen2.gguf"),
            "qwen2.5.jinja",
        )
    }

    fn tokenize(
        &self,
        messages: &[Message],
        turns: AssistantTurns,
    ) -> Result<Tokenized, DatasetError> {
        Renderer::new(&self.tokenizer, Some(&self.template), turns)
            .tokenize(&Example::Chat(messages.to_vec()))
    }

    /// One line per token: `T` for trained, `.` for not, and the token's text.
    fn table(&self, tokenized: &Tokenized) -> String {
        tokenized
            .tokens
            .iter()
            .zip(&tokenized.trained)
            .map(|(&id, &trained)| {
                let piece =
                    String::from_utf8_lossy(&self.tokenizer.token_to_piece(id, true).unwrap())
                        .into_owned();
                format!("{} {piece:?}\n", if trained { 'T' } else { '.' })
            })
            .collect()
    }

    /// The text of the trained tokens, each run of them on a line of its own.
    fn trained_text(&self, tokenized: &Tokenized) -> Vec<String> {
        let mut runs = Vec::new();
        let mut run = Vec::new();
        for (&id, &trained) in tokenized.tokens.iter().zip(&tokenized.trained) {
            if trained {
                run.push(id);
            } else if !run.is_empty() {
                runs.push(
                    self.tokenizer
                        .decode(&std::mem::take(&mut run), true)
                        .unwrap(),
                );
            }
        }
        if !run.is_empty() {
            runs.push(self.tokenizer.decode(&run, true).unwrap());
        }
        runs
    }

    /// The golden conversation with two assistant turns, one starting with a newline.
    fn two_turns(&self) -> &Case {
        self.golden
            .cases
            .iter()
            .find(|case| {
                !case.add_generation_prompt
                    && case.messages.len() == 4
                    && case.messages[3].content == "done"
            })
            .unwrap()
    }
}

#[test]
fn chatml_trains_each_reply_and_its_im_end_but_not_the_newline_after() {
    let model = Model::smollm2();
    let case = model.two_turns();
    let tokenized = model.tokenize(&case.messages, AssistantTurns::All).unwrap();
    assert_eq!(
        model.tokenizer.decode(&tokenized.tokens, true).unwrap(),
        case.rendered
    );
    let expected = r#". "<|im_start|>"
. "system"
. "\n"
. "You"
. " are"
. " a"
. " helpful"
. " AI"
. " assistant"
. " named"
. " Sm"
. "ol"
. "LM"
. ","
. " trained"
. " by"
. " H"
. "ugging"
. " Face"
. "<|im_end|>"
. "\n"
. "<|im_start|>"
. "user"
. "\n "
. " leading"
. " and"
. " trailing"
. " spaces"
. "  "
. "<|im_end|>"
. "\n"
. "<|im_start|>"
. "ass"
. "istant"
. "\n"
T "\n"
T "newline"
T " first"
T "\n"
T "<|im_end|>"
. "\n"
. "<|im_start|>"
. "user"
. "\n"
. "ok"
. "<|im_end|>"
. "\n"
. "<|im_start|>"
. "ass"
. "istant"
. "\n"
T "done"
T "<|im_end|>"
. "\n"
"#;
    assert_eq!(model.table(&tokenized), expected);

    let last = model
        .tokenize(&case.messages, AssistantTurns::Last)
        .unwrap();
    assert_eq!(last.tokens, tokenized.tokens);
    assert_eq!(model.trained_text(&last), ["done<|im_end|>"]);
}

#[test]
fn llama3_trains_each_reply_and_its_eot_id() {
    let model = Model::llama3();
    let case = model.two_turns();
    let tokenized = model.tokenize(&case.messages, AssistantTurns::All).unwrap();
    assert_eq!(
        model.tokenizer.decode(&tokenized.tokens, true).unwrap(),
        case.rendered
    );
    let expected = r#". "<|begin_of_text|>"
. "<|start_header_id|>"
. "system"
. "<|end_header_id|>"
. "\n\n"
. "Cut"
. "ting"
. " Knowledge"
. " Date"
. ":"
. " December"
. " "
. "202"
. "3"
. "\n"
. "Today"
. " Date"
. ":"
. " "
. "26"
. " Jul"
. " "
. "202"
. "4"
. "\n\n"
. "<|eot_id|>"
. "<|start_header_id|>"
. "user"
. "<|end_header_id|>"
. "\n\n"
. "leading"
. " and"
. " trailing"
. " spaces"
. "<|eot_id|>"
. "<|start_header_id|>"
. "assistant"
. "<|end_header_id|>"
. "\n\n"
T "newline"
T " first"
T "<|eot_id|>"
. "<|start_header_id|>"
. "user"
. "<|end_header_id|>"
. "\n\n"
. "ok"
. "<|eot_id|>"
. "<|start_header_id|>"
. "assistant"
. "<|end_header_id|>"
. "\n\n"
T "done"
T "<|eot_id|>"
"#;
    assert_eq!(model.table(&tokenized), expected);
}

/// The text of each trained span, as the template writes an assistant turn.
fn expected_replies(messages: &[Message], reply: impl Fn(&str) -> String) -> Vec<String> {
    messages
        .iter()
        .filter(|message| message.role == Role::Assistant)
        .map(|message| reply(&message.content))
        .collect()
}

#[test]
fn every_golden_conversation_renders_as_transformers_and_trains_exactly_the_replies() {
    // How each template writes a reply: ChatML verbatim, Llama 3 trimmed.
    type Reply = fn(&str) -> String;
    let models: [(Model, Reply); 3] = [
        (Model::smollm2(), |content| format!("{content}<|im_end|>")),
        (Model::llama3(), |content| {
            format!("{}<|eot_id|>", content.trim())
        }),
        (Model::qwen2(), |content| format!("{content}<|im_end|>")),
    ];
    let mut checked = 0;
    for (model, reply) in &models {
        for case in &model.golden.cases {
            let has_reply = case
                .messages
                .iter()
                .any(|message| message.role == Role::Assistant);
            if case.add_generation_prompt || !has_reply {
                continue;
            }
            let tokenized = model.tokenize(&case.messages, AssistantTurns::All).unwrap();
            assert_eq!(
                model.tokenizer.decode(&tokenized.tokens, true).unwrap(),
                case.rendered,
                "{}: {:?}",
                model.golden.file,
                case.messages
            );
            assert_eq!(
                model.trained_text(&tokenized),
                expected_replies(&case.messages, reply),
                "{}: {:?}",
                model.golden.file,
                case.messages
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 9,
        "three conversations with replies for each of three templates"
    );
}

#[test]
fn prompt_tokens_are_the_inference_prompt_tokens() {
    // What generation is given: the conversation before the reply, rendered
    // with the generation prompt and tokenized. Training must see the same ids.
    let model = Model::smollm2();
    let case = model.two_turns();
    let tokenized = model
        .tokenize(&case.messages, AssistantTurns::Last)
        .unwrap();
    let prompt = model.template.render(&case.messages[..3], true).unwrap();
    let prompt_ids = model
        .tokenizer
        .encode(
            &prompt,
            datasets::EncodeOptions {
                add_special: false,
                parse_special: true,
            },
        )
        .unwrap();
    assert_eq!(tokenized.tokens[..prompt_ids.len()], prompt_ids[..]);
    assert!(tokenized.trained[prompt_ids.len()]);
    assert!(!tokenized.trained[prompt_ids.len() - 1]);
}

#[test]
fn text_trains_every_token_but_the_first() {
    let model = Model::smollm2();
    let renderer = Renderer::new(&model.tokenizer, None, AssistantTurns::All);
    let tokenized = renderer
        .tokenize(&Example::Text("Hello world, <|im_end|> stays text".into()))
        .unwrap();
    assert_eq!(tokenized.trained.len(), tokenized.tokens.len());
    assert!(!tokenized.trained[0]);
    assert!(tokenized.trained[1..].iter().all(|&trained| trained));
    assert!(
        !tokenized.tokens.contains(&2),
        "special-token text in plain text is not the special token"
    );
}

#[test]
fn conversations_need_a_template_and_a_reply() {
    let model = Model::smollm2();
    let question = vec![Message::new(Role::User, "Anyone there?")];
    let error = Renderer::new(&model.tokenizer, None, AssistantTurns::All)
        .tokenize(&Example::Chat(question.clone()))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "a chat record needs the model's chat template, and the model has none"
    );
    let error = model.tokenize(&question, AssistantTurns::All).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the conversation has no assistant message: nothing to train on"
    );
}

#[test]
fn a_template_that_rewrites_earlier_turns_is_refused() {
    // Renders the last message differently from the others, as templates that
    // strip reasoning from all but the final turn do.
    let source = "{% for m in messages %}{% if loop.last %}[{{ m.content }}]{% else %}{{ m.content }}{% endif %}{% endfor %}";
    let template = ChatTemplate::new(source, "rewriting.jinja").unwrap();
    let model = Model::smollm2();
    let messages = vec![
        Message::new(Role::User, "q"),
        Message::new(Role::Assistant, "a"),
    ];
    let error = Renderer::new(&model.tokenizer, Some(&template), AssistantTurns::All)
        .tokenize(&Example::Chat(messages))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "chat template from rewriting.jinja is not incremental: rendering the first 2 message(s) \
         does not begin with the rendering of the messages before, so the assistant tokens cannot be located"
    );
}

#[test]
fn template_errors_pass_through() {
    let template =
        ChatTemplate::new("{{ raise_exception('no system role') }}", "strict.jinja").unwrap();
    let model = Model::smollm2();
    let messages = vec![
        Message::new(Role::User, "q"),
        Message::new(Role::Assistant, "a"),
    ];
    let error = Renderer::new(&model.tokenizer, Some(&template), AssistantTurns::All)
        .tokenize(&Example::Chat(messages))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("chat template from strict.jinja failed to render: "),
        "{error}"
    );
    assert!(error.to_string().contains("no system role"), "{error}");
}
