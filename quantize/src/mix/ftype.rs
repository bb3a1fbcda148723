//! The mixes by name: llama.cpp's `llama_ftype`s that decant can write.

use std::fmt;
use std::str::FromStr;

use crate::GgmlType;

use super::error::MixError;

/// A quantization mix (`llama_ftype`): the base type most weights get, plus the
/// per-tensor rules of [`super::plan`] for the K-quant mixes. Discriminants are the
/// ids llama.cpp stores in `general.file_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Mix {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q8_0 = 7,
    Q5_0 = 8,
    Q5_1 = 9,
    Q2K = 10,
    Q3KS = 11,
    Q3KM = 12,
    Q3KL = 13,
    Q4KS = 14,
    Q4KM = 15,
    Q5KS = 16,
    Q5KM = 17,
    Q6K = 18,
    Q2KS = 21,
    Iq4Nl = 25,
    Iq4Xs = 30,
    Bf16 = 32,
}

impl Mix {
    /// In the order `llama-quantize --help` lists them.
    pub const ALL: [Mix; 20] = [
        Mix::Q4_0,
        Mix::Q4_1,
        Mix::Q5_0,
        Mix::Q5_1,
        Mix::Q2K,
        Mix::Q2KS,
        Mix::Q3KS,
        Mix::Q3KM,
        Mix::Q3KL,
        Mix::Iq4Nl,
        Mix::Iq4Xs,
        Mix::Q4KS,
        Mix::Q4KM,
        Mix::Q5KS,
        Mix::Q5KM,
        Mix::Q6K,
        Mix::Q8_0,
        Mix::F16,
        Mix::Bf16,
        Mix::F32,
    ];

    /// llama-quantize's shorthands: a bare K-quant name means its `_M` mix.
    const ALIASES: [(&'static str, Mix); 3] = [
        ("q3_k", Mix::Q3KM),
        ("q4_k", Mix::Q4KM),
        ("q5_k", Mix::Q5KM),
    ];

    /// The `general.file_type` id.
    pub fn ftype(self) -> u32 {
        self as u32
    }

    /// The name `llama-quantize` takes, lower-cased (`q4_k_m`).
    pub fn name(self) -> &'static str {
        match self {
            Mix::F32 => "f32",
            Mix::F16 => "f16",
            Mix::Bf16 => "bf16",
            Mix::Q4_0 => "q4_0",
            Mix::Q4_1 => "q4_1",
            Mix::Q5_0 => "q5_0",
            Mix::Q5_1 => "q5_1",
            Mix::Q8_0 => "q8_0",
            Mix::Q2K => "q2_k",
            Mix::Q2KS => "q2_k_s",
            Mix::Q3KS => "q3_k_s",
            Mix::Q3KM => "q3_k_m",
            Mix::Q3KL => "q3_k_l",
            Mix::Q4KS => "q4_k_s",
            Mix::Q4KM => "q4_k_m",
            Mix::Q5KS => "q5_k_s",
            Mix::Q5KM => "q5_k_m",
            Mix::Q6K => "q6_k",
            Mix::Iq4Nl => "iq4_nl",
            Mix::Iq4Xs => "iq4_xs",
        }
    }

    /// The type a tensor gets unless a rule says otherwise
    /// (`llama_ftype_get_default_type`).
    pub fn base_type(self) -> GgmlType {
        match self {
            Mix::F32 => GgmlType::F32,
            Mix::F16 => GgmlType::F16,
            Mix::Bf16 => GgmlType::Bf16,
            Mix::Q4_0 => GgmlType::Q4_0,
            Mix::Q4_1 => GgmlType::Q4_1,
            Mix::Q5_0 => GgmlType::Q5_0,
            Mix::Q5_1 => GgmlType::Q5_1,
            Mix::Q8_0 => GgmlType::Q8_0,
            Mix::Q2K | Mix::Q2KS => GgmlType::Q2K,
            Mix::Q3KS | Mix::Q3KM | Mix::Q3KL => GgmlType::Q3K,
            Mix::Q4KS | Mix::Q4KM => GgmlType::Q4K,
            Mix::Q5KS | Mix::Q5KM => GgmlType::Q5K,
            Mix::Q6K => GgmlType::Q6K,
            Mix::Iq4Nl => GgmlType::Iq4Nl,
            Mix::Iq4Xs => GgmlType::Iq4Xs,
        }
    }

    /// Whether the base type is a block-quantized one: only then do the mix rules
    /// and the row-length fallbacks apply (`ggml_is_quantized`).
    pub fn is_quantized(self) -> bool {
        !matches!(self, Mix::F32 | Mix::F16 | Mix::Bf16)
    }

    /// Every accepted name, aliases included, for error messages.
    pub fn valid_names() -> String {
        let names = Mix::ALL.iter().map(|m| m.name());
        let aliases = Mix::ALIASES.iter().map(|(alias, _)| *alias);
        names.chain(aliases).collect::<Vec<_>>().join(", ")
    }
}

impl FromStr for Mix {
    type Err = MixError;

    /// Case-insensitive, as llama-quantize parses it.
    fn from_str(name: &str) -> Result<Mix, MixError> {
        Mix::ALL
            .iter()
            .map(|&m| (m.name(), m))
            .chain(Mix::ALIASES)
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, mix)| mix)
            .ok_or_else(|| MixError::UnknownMix {
                name: name.to_owned(),
                valid: Mix::valid_names(),
            })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_insensitively_with_aliases() {
        for mix in Mix::ALL {
            assert_eq!(mix.name().parse::<Mix>().unwrap(), mix);
            assert_eq!(mix.name().to_uppercase().parse::<Mix>().unwrap(), mix);
        }
        assert_eq!("Q4_K".parse::<Mix>().unwrap(), Mix::Q4KM);
        let err = "q4_k_x".parse::<Mix>().unwrap_err().to_string();
        assert!(
            err.contains("'q4_k_x'") && err.contains("q4_k_m") && err.contains("iq4_xs"),
            "{err}"
        );
    }
}
