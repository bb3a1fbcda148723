//! The `README.md` of a Hugging Face export: front matter the Hub reads (license,
//! base model, data sets, tags), then what the model is, its evaluation, and how
//! to run it with transformers, llama.cpp and Ollama.

use std::fmt::Write;

use crate::lineage::ExportMetadata;

pub fn model_card(metadata: &ExportMetadata, model_class: &str) -> String {
    let mut card = String::from("---\n");
    if let Some(license) = &metadata.license {
        let _ = writeln!(card, "license: {license}");
    }
    let list = |card: &mut String, key: &str, items: Vec<&str>| {
        if !items.is_empty() {
            let _ = writeln!(card, "{key}:");
            for item in items {
                let _ = writeln!(card, "- {}", yaml_string(item));
            }
        }
    };
    list(&mut card, "base_model", metadata.base_models.iter().map(|b| b.name.as_str()).collect());
    list(&mut card, "datasets", metadata.datasets.iter().map(|d| d.name.as_str()).collect());
    card.push_str("library_name: transformers\npipeline_tag: text-generation\ntags:\n- decant\n- gguf\n---\n\n");

    let _ = writeln!(card, "# {}\n", metadata.name);
    match metadata.base_models.as_slice() {
        [] => {}
        bases => {
            let names: Vec<String> = bases.iter().map(|b| format!("`{}`", b.name)).collect();
            let _ = writeln!(card, "Distilled with decant from {}.\n", names.join(", "));
        }
    }
    if !metadata.datasets.is_empty() {
        let names: Vec<String> = metadata.datasets.iter().map(|d| format!("`{}`", d.name)).collect();
        let _ = writeln!(card, "Training data: {}.\n", names.join(", "));
    }
    let lineage = [
        ("Recipe hash", &metadata.recipe_hash),
        ("Run", &metadata.run_id),
        ("Quantization-aware training", &metadata.qat_type),
        ("Importance matrix data", &metadata.imatrix_dataset),
    ];
    for (label, value) in lineage {
        if let Some(value) = value {
            let _ = writeln!(card, "- {label}: `{value}`");
        }
    }
    if lineage.iter().any(|(_, v)| v.is_some()) {
        card.push('\n');
    }

    if !metadata.eval.is_empty() {
        card.push_str("## Evaluation\n\n| Metric | Data set | Value |\n|---|---|---|\n");
        for row in &metadata.eval {
            let _ = writeln!(card, "| {} | {} | {:.4} |", row.metric, row.dataset, row.value);
        }
        card.push('\n');
    }

    let _ = write!(
        card,
        "## Usage\n\n\
         ### transformers\n\n\
         ```python\n\
         from transformers import AutoModelForCausalLM, AutoTokenizer\n\n\
         tokenizer = AutoTokenizer.from_pretrained(\"path/to/this/directory\")\n\
         model = AutoModelForCausalLM.from_pretrained(\"path/to/this/directory\")  # {model_class}\n\
         messages = [{{\"role\": \"user\", \"content\": \"Hello!\"}}]\n\
         inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\")\n\
         print(tokenizer.decode(model.generate(inputs, max_new_tokens=64)[0]))\n\
         ```\n\n\
         ### llama.cpp\n\n\
         Convert to GGUF with decant (or llama.cpp's `convert_hf_to_gguf.py`), then chat:\n\n\
         ```sh\n\
         decant export --model path/to/this/directory --format gguf --out model.gguf --type q8_0\n\
         llama-cli -m model.gguf -cnv\n\
         ```\n\n\
         ### Ollama\n\n\
         A GGUF export comes with a Modelfile beside it:\n\n\
         ```sh\n\
         ollama create my-model -f model.Modelfile\n\
         ollama run my-model\n\
         ```\n"
    );
    card
}

/// A YAML scalar that stays a string whatever it holds.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialize")
}
