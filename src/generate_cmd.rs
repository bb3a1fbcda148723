//! `decant generate`: greedy text generation from a prompt, optionally rendered
//! as a chat turn through the model's own template.

use std::time::Duration;

use anyhow::{Context, Result};
use datasets::{ChatTemplate, EncodeOptions, Message, Role, Tokenizer};
use decant::model_arg::{self, ModelSource};
use decant::tokenize;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use train::CpuBackend;
use train::generate::{Generation, StopReason, generate_greedy};

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// A .gguf file, a Hugging Face model directory, or hf://ORG/REPO[@REV].
    #[arg(long)]
    model: String,
    /// The text to continue; with --chat, the user's message.
    #[arg(long)]
    prompt: String,
    /// Render the prompt as a user message through the model's chat template,
    /// followed by the header of the assistant's reply.
    #[arg(long)]
    chat: bool,
    /// Generate at most N tokens; generation also stops at an end-of-generation token.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_tokens: usize,
    /// Print one JSON object: prompt and generated tokens, text, stop reason, speed.
    #[arg(long)]
    json: bool,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let source = model_arg::resolve(&args.model)?;
    let tokenizer = tokenize::load_tokenizer(&source)?;
    let prompt_text = if args.chat {
        chat_template(&source)?
            .render(&[Message::new(Role::User, args.prompt.as_str())], true)
            .with_context(|| format!("cannot render the chat template of {source}"))?
    } else {
        args.prompt.clone()
    };
    let prompt = prompt_tokens(&tokenizer, &prompt_text)
        .with_context(|| format!("cannot tokenize the prompt with the tokenizer of {source}"))?;
    let model = train::load_model::<CpuBackend>(source.path(), &Default::default())
        .with_context(|| format!("cannot load {source}"))?;

    let bar = progress_bar(args.max_tokens);
    let generation = generate_greedy(
        &model,
        &prompt,
        args.max_tokens,
        |id| tokenizer.is_eog(id),
        |_| bar.inc(1),
    )
    .with_context(|| format!("cannot generate from {source}"))?;
    bar.finish_and_clear();
    let text = tokenizer
        .decode(&generation.tokens, false)
        .context("cannot decode the generated tokens")?;
    let speed = Speed::of(prompt.len(), &generation);
    eprintln!(
        "prompt: {} tokens, {:.1} tokens/s; generated: {} tokens, {:.1} tokens/s; stop: {}",
        prompt.len(),
        speed.prompt,
        generation.tokens.len(),
        speed.decode,
        generation.stop.name()
    );
    if args.json {
        let stop_token = match generation.stop {
            StopReason::EndOfGeneration(id) => Some(id),
            StopReason::MaxTokens | StopReason::ContextFull => None,
        };
        let report = json!({
            "model": source.path(),
            "prompt": args.prompt,
            "chat": args.chat,
            "prompt_text": prompt_text,
            "prompt_tokens": prompt,
            "tokens": generation.tokens,
            "text": text,
            "stop_reason": generation.stop.name(),
            "stop_token": stop_token,
            "prompt_tokens_per_second": speed.prompt,
            "tokens_per_second": speed.decode,
        });
        println!("{report}");
    } else {
        println!("{text}");
    }
    Ok(())
}

fn chat_template(source: &ModelSource) -> Result<ChatTemplate> {
    decant::stage::source::chat_template(source)?
        .with_context(|| format!("--chat needs the chat template of {source}, which has none"))
}

/// The prompt's ids as llama.cpp tokenizes a prompt: special-token texts read as
/// those tokens, BOS added where the vocabulary asks for it, but not a second
/// time after one the chat template already wrote (llama.cpp strips the
/// template's; the result is the same).
fn prompt_tokens(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, datasets::DatasetError> {
    let options = EncodeOptions {
        add_special: true,
        parse_special: true,
    };
    let mut ids = tokenizer.encode(text, options)?;
    let bos = tokenizer.special_tokens().bos;
    if bos.is_some() && ids.len() >= 2 && ids[0] == ids[1] && Some(ids[0]) == bos {
        ids.remove(0);
    }
    Ok(ids)
}

/// Tokens per second of the prompt pass and of the one-token passes after it.
struct Speed {
    prompt: f64,
    decode: f64,
}

impl Speed {
    fn of(prompt_len: usize, generation: &Generation) -> Self {
        let rate = |tokens: usize, time: Duration| {
            if time.is_zero() {
                0.0
            } else {
                tokens as f64 / time.as_secs_f64()
            }
        };
        Self {
            prompt: rate(prompt_len, generation.prompt_time),
            decode: rate(generation.decode_steps, generation.decode_time),
        }
    }
}

/// Generated tokens against --max-tokens on stderr; drawn only on a terminal.
fn progress_bar(max_tokens: usize) -> ProgressBar {
    let bar = ProgressBar::new(max_tokens as u64);
    bar.set_style(
        ProgressStyle::with_template("generating {bar:30} {pos}/{len} tokens {per_sec}")
            .expect("the template is valid"),
    );
    bar
}
