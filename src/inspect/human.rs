//! The text form of `inspect`, for people.

use std::fmt::Write;

use quantize::gguf::GgufFile;

use super::Summary;

pub fn render_text(file: &GgufFile, summary: &Summary) -> String {
    let unknown = "(not set)";
    let mut out = String::new();
    let line = |out: &mut String, label: &str, value: &str| {
        let _ = writeln!(out, "{label:<16}{value}");
    };
    line(&mut out, "file", &file.path().display().to_string());
    line(&mut out, "format", &format!("GGUF v{}", file.version()));
    line(&mut out, "name", summary.name.as_deref().unwrap_or(unknown));
    line(
        &mut out,
        "architecture",
        summary.architecture.as_deref().unwrap_or(unknown),
    );
    line(
        &mut out,
        "parameters",
        &format!(
            "{} ({})",
            summary.parameters,
            human_count(summary.parameters)
        ),
    );
    line(
        &mut out,
        "context length",
        &summary
            .context_length
            .map_or(unknown.to_string(), |n| n.to_string()),
    );
    let tokenizer = match (&summary.tokenizer_model, &summary.tokenizer_pre) {
        (Some(model), Some(pre)) => format!("{model} (pre-tokenizer {pre})"),
        (Some(model), None) => model.clone(),
        (None, _) => unknown.to_string(),
    };
    line(&mut out, "tokenizer", &tokenizer);
    line(
        &mut out,
        "vocabulary",
        &summary
            .vocab_size
            .map_or(unknown.to_string(), |n| n.to_string()),
    );
    line(
        &mut out,
        "chat template",
        if summary.has_chat_template {
            "present"
        } else {
            "absent"
        },
    );
    line(
        &mut out,
        "metadata keys",
        &file.metadata().len().to_string(),
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<10}{:>8}{:>16}", "type", "tensors", "bytes");
    for t in &summary.types {
        let _ = writeln!(
            out,
            "{:<10}{:>8}{:>16}",
            t.ggml_type.name(),
            t.tensors,
            t.bytes
        );
    }
    let _ = writeln!(
        out,
        "{:<10}{:>8}{:>16}",
        "total",
        summary.tensor_count(),
        summary.tensor_bytes()
    );
    out
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}
