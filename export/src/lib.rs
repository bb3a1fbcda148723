//! Export to GGUF with full metadata and to Hugging Face directories.
