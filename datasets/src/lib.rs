//! Dataset readers, chat-template rendering, tokenization, loss masks, packing
//! and deterministic shards.

pub mod chat_template;
pub mod error;
pub mod tokenizer;

pub use chat_template::{ChatTemplate, Message, Role};
pub use error::{DatasetError, Result};
pub use tokenizer::{EncodeOptions, SpecialTokens, Tokenizer, VocabConfig};
