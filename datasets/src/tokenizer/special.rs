//! Special tokens: the ids a vocabulary names, the token attributes llama.cpp
//! derives from GGUF token types, and splitting text around special tokens.

/// Ids of the tokens with a role, as `tokenizer.ggml.<role>_token_id` names
/// them; `None` where the vocabulary has no such token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// End of turn (`<|im_end|>`, `<|eot_id|>`): where a chat reply stops.
    pub eot: Option<u32>,
    /// End of message (Llama 3.1 tool calls).
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// Token texts llama.cpp takes for end of turn when the metadata names none.
pub(super) const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// Token texts llama.cpp recognises as end of message and the fill-in-the-middle
/// roles when the metadata does not name them.
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

/// Token texts llama.cpp treats as ending generation.
pub(super) const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Where a role's id lives in [`SpecialTokens`].
pub(super) type RoleSlot = fn(&mut SpecialTokens) -> &mut Option<u32>;

/// The roles llama.cpp fills from token texts when the metadata leaves them out,
/// each with its candidate texts in llama.cpp's order.
pub(super) const ROLE_TEXTS: [(RoleSlot, &[&str]); 8] = [
    (|s| &mut s.eot, EOT_TEXTS),
    (|s| &mut s.eom, EOM_TEXTS),
    (|s| &mut s.fim_pre, FIM_PRE_TEXTS),
    (|s| &mut s.fim_suf, FIM_SUF_TEXTS),
    (|s| &mut s.fim_mid, FIM_MID_TEXTS),
    (|s| &mut s.fim_pad, FIM_PAD_TEXTS),
    (|s| &mut s.fim_rep, FIM_REP_TEXTS),
    (|s| &mut s.fim_sep, FIM_SEP_TEXTS),
];

/// A token's attributes (llama.cpp's `llama_token_attr` bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Attr(u16);

impl Attr {
    pub(super) const UNKNOWN: Self = Self(1 << 0);
    pub(super) const UNUSED: Self = Self(1 << 1);
    pub(super) const NORMAL: Self = Self(1 << 2);
    pub(super) const CONTROL: Self = Self(1 << 3);
    pub(super) const USER_DEFINED: Self = Self(1 << 4);
    pub(super) const BYTE: Self = Self(1 << 5);

    /// From a `tokenizer.ggml.token_type` entry; unknown types have no bits.
    pub(super) fn from_token_type(token_type: i32) -> Self {
        match token_type {
            1 => Self::NORMAL,
            2 => Self::UNKNOWN,
            3 => Self::CONTROL,
            4 => Self::USER_DEFINED,
            5 => Self::UNUSED,
            6 => Self::BYTE,
            _ => Self::default(),
        }
    }

    /// Whether any of `other`'s bits are set.
    pub(super) fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    pub(super) fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

impl std::ops::BitOr for Attr {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// A stretch of input: text still to tokenize, or a special token found in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// llama.cpp's `tokenizer_st_partition`: for each special token in turn
/// (longest first), cut every remaining text fragment at each occurrence.
pub(super) fn partition<'a, 's>(
    text: &'a str,
    specials: impl IntoIterator<Item = (u32, &'s str)>,
) -> Vec<Fragment<'a>> {
    let mut fragments = Vec::new();
    if !text.is_empty() {
        fragments.push(Fragment::Text(text));
    }
    for (id, needle) in specials {
        if !fragments
            .iter()
            .any(|fragment| matches!(fragment, Fragment::Text(text) if text.contains(needle)))
        {
            continue;
        }
        let mut cut = Vec::with_capacity(fragments.len() + 2);
        for fragment in fragments {
            let Fragment::Text(text) = fragment else {
                cut.push(fragment);
                continue;
            };
            let mut rest = text;
            while let Some(at) = rest.find(needle) {
                if at > 0 {
                    cut.push(Fragment::Text(&rest[..at]));
                }
                cut.push(Fragment::Token(id));
                rest = &rest[at + needle.len()..];
            }
            if !rest.is_empty() {
                cut.push(Fragment::Text(rest));
            }
        }
        fragments = cut;
    }
    fragments
}

#[cfg(test)]
mod tests {
    use super::*;
    use Fragment::{Text, Token};

    #[test]
    fn partition_cuts_at_every_occurrence() {
        let specials = [(1, "<|im_start|>"), (2, "<|im_end|>")];
        assert_eq!(
            partition("<|im_start|>user\nhi<|im_end|>\n<|im_end|>", specials),
            [Token(1), Text("user\nhi"), Token(2), Text("\n"), Token(2)]
        );
        assert_eq!(partition("", specials), []);
        assert_eq!(partition("plain", specials), [Text("plain")]);
    }

    #[test]
    fn longer_specials_are_cut_first() {
        let specials = [(7, "<ab>"), (8, "ab")];
        assert_eq!(
            partition("x<ab>ab", specials),
            [Text("x"), Token(7), Token(8)]
        );
    }
}
