//! What happens to an example longer than the maximum sequence length.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Result};
use crate::render::Tokenized;

/// The truncation policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Truncation {
    /// Stop with an error naming the example.
    Error,
    /// Keep the last tokens: the end of a reply survives, the start of the
    /// conversation does not.
    Left,
    /// Keep the first tokens.
    Right,
    /// Leave the example out.
    Drop,
}

impl Truncation {
    pub fn name(self) -> &'static str {
        match self {
            Truncation::Error => "error",
            Truncation::Left => "left",
            Truncation::Right => "right",
            Truncation::Drop => "drop",
        }
    }
}

impl fmt::Display for Truncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Truncation {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        [
            Truncation::Error,
            Truncation::Left,
            Truncation::Right,
            Truncation::Drop,
        ]
        .into_iter()
        .find(|policy| policy.name() == name)
        .ok_or_else(|| format!("unknown truncation '{name}' (expected error, left, right or drop)"))
    }
}

/// An example after the policy was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fitted {
    Whole(Tokenized),
    Truncated(Tokenized),
    Dropped,
}

/// Applies `policy` to `example` if it is longer than `max_length` tokens.
pub fn fit(mut example: Tokenized, max_length: usize, policy: Truncation) -> Result<Fitted> {
    let length = example.len();
    if length <= max_length {
        return Ok(Fitted::Whole(example));
    }
    match policy {
        Truncation::Error => Err(DatasetError::TooLong { length, max_length }),
        Truncation::Drop => Ok(Fitted::Dropped),
        Truncation::Right => {
            example.tokens.truncate(max_length);
            example.trained.truncate(max_length);
            Ok(Fitted::Truncated(example))
        }
        Truncation::Left => {
            let cut = length - max_length;
            example.tokens.drain(..cut);
            example.trained.drain(..cut);
            // The new first token has nothing before it to be predicted from.
            if let Some(first) = example.trained.first_mut() {
                *first = false;
            }
            Ok(Fitted::Truncated(example))
        }
    }
}
