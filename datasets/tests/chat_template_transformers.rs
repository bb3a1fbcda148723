//! Chat-template rendering against transformers' `apply_chat_template(...,
//! tokenize=False)` (goldens made by tools/goldens/chat_template_transformers.py).

mod common;

use std::path::Path;

use datasets::{ChatTemplate, DatasetError, EncodeOptions, Message, Tokenizer};
use quantize::gguf::GgufFile;
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    templates: Vec<TemplateGolden>,
    snippets: Vec<Snippet>,
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

#[derive(Deserialize)]
struct Snippet {
    template: String,
    messages: Vec<Message>,
    rendered: Option<String>,
    error: Option<String>,
}

fn goldens_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/goldens"))
}

fn golden() -> Golden {
    let text = std::fs::read_to_string(goldens_dir().join("chat_template_transformers.json"))
        .expect("the golden file is committed");
    serde_json::from_str(&text).expect("the golden file is valid JSON")
}

fn template_source(file: &str) -> String {
    std::fs::read_to_string(goldens_dir().join("chat_templates").join(file)).unwrap()
}

#[test]
fn model_templates_render_as_transformers_does() {
    let mut rendered = 0;
    for template in golden().templates {
        let chat = ChatTemplate::new(template_source(&template.file), template.file.as_str())
            .unwrap()
            .with_special_tokens(template.bos_token, template.eos_token);
        for case in template.cases {
            let actual = chat
                .render(&case.messages, case.add_generation_prompt)
                .unwrap();
            assert_eq!(
                actual, case.rendered,
                "{} with add_generation_prompt={} of {:?}",
                template.file, case.add_generation_prompt, case.messages
            );
            rendered += 1;
        }
    }
    println!("{rendered} renderings identical to transformers");
}

#[test]
fn python_behaviour_matches_jinja2() {
    for snippet in golden().snippets {
        let chat = ChatTemplate::new(snippet.template.as_str(), "snippet")
            .unwrap()
            .with_special_tokens(Some("<s>".into()), Some("</s>".into()));
        let result = chat.render(&snippet.messages, false);
        match (result, snippet.rendered, snippet.error) {
            (Ok(actual), Some(expected), None) => {
                assert_eq!(actual, expected, "template {:?}", snippet.template);
            }
            (Err(DatasetError::TemplateRender { origin, message }), None, Some(expected)) => {
                assert_eq!(origin, "snippet");
                assert!(
                    message.contains(&expected),
                    "{message:?} lacks {expected:?}"
                );
            }
            (result, rendered, error) => panic!(
                "template {:?}: decant gave {result:?}, transformers {rendered:?} / {error:?}",
                snippet.template
            ),
        }
    }
}

#[test]
fn reference_teacher_template_comes_from_its_gguf() {
    let file = GgufFile::open(common::reference_model()).unwrap();
    let chat = ChatTemplate::from_gguf(&file).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let golden = golden();
    let smollm2 = golden
        .templates
        .iter()
        .find(|template| template.file == "smollm2.jinja")
        .unwrap();
    for case in &smollm2.cases {
        let text = chat
            .render(&case.messages, case.add_generation_prompt)
            .unwrap();
        assert_eq!(text, case.rendered);
        // Rendered ChatML tokenizes with each marker as its one token.
        let ids = tokenizer
            .encode(
                &text,
                EncodeOptions {
                    add_special: false,
                    parse_special: true,
                },
            )
            .unwrap();
        let markers = ids.iter().filter(|&&id| id == 1 || id == 2).count();
        assert_eq!(
            markers,
            text.matches("<|im_start|>").count() + text.matches("<|im_end|>").count()
        );
        assert_eq!(tokenizer.decode(&ids, true).unwrap(), text);
    }
}

#[test]
fn strftime_now_is_todays_date() {
    let chat = ChatTemplate::new("{{ strftime_now('%Y-%m-%d') }}", "inline").unwrap();
    let rendered = chat.render(&[], false).unwrap();
    let (year, rest) = rendered.split_once('-').unwrap();
    assert_eq!(year.len(), 4, "{rendered}");
    assert_eq!(rest.len(), 5, "{rendered}");
}
