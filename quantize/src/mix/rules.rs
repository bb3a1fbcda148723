//! The per-tensor rules of the K-quant mixes (`llama_tensor_get_type_impl`) and the
//! fallbacks for rows a type cannot hold (`tensor_type_fallback`), branch for branch
//! as in llama.cpp's llama-quant.cpp, restricted to the mixes of [`Mix`]. Branches
//! that only other mixes (IQ1–IQ3, MXFP4, ternary) reach are left out.

use crate::GgmlType;

use super::error::MixError;
use super::ftype::Mix;
use super::hparams::ModelParams;
use super::tensor_kind::{Category, layer_of};

/// The rules' state while walking a model's tensors in llama.cpp's order: the
/// layer counters that spread extra bits over `attn_v` and `ffn_down`.
pub(super) struct Rules<'a> {
    pub(super) params: &'a ModelParams,
    pub(super) mix: Mix,
    pub(super) has_imatrix: bool,
    /// The output rule also covers `token_embd` when no `output.weight` exists.
    pub(super) tied_embeddings: bool,
    /// `--output-tensor-type`, which the output rule honours for tied embeddings.
    pub(super) output_type: Option<GgmlType>,
    pub(super) n_attention_wv: i32,
    pub(super) i_attention_wv: i32,
    pub(super) i_ffn_down: i32,
}

/// llama.cpp's layer pattern for extra bits: the first and last eighth of the
/// layers and every third one in between.
fn use_more_bits(i_layer: i32, n_layers: i32) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

impl Rules<'_> {
    /// The mix's type for one quantizable tensor whose default is `base`.
    pub(super) fn choose(
        &mut self,
        name: &str,
        row_len: u64,
        category: Category,
        base: GgmlType,
    ) -> Result<GgmlType, MixError> {
        use GgmlType as T;
        let (mix, params) = (self.mix, self.params);
        let n_gqa = params.n_gqa();
        let falcon = params.is_falcon();
        let mut ty = base;
        match category {
            Category::Output | Category::TokenEmbd
                if category == Category::Output || self.tied_embeddings =>
            {
                if let Some(output_type) = self.output_type {
                    ty = output_type;
                } else if falcon || !row_len.is_multiple_of(base.block_size() as u64) {
                    ty = T::Q8_0;
                } else if base != T::Q8_0 {
                    ty = T::Q6K;
                }
            }
            Category::AttnV => {
                let more_bits = use_more_bits(self.i_attention_wv, self.n_attention_wv);
                match mix {
                    Mix::Q2K => ty = if n_gqa >= 4 { T::Q4K } else { T::Q3K },
                    Mix::Q2KS if n_gqa >= 4 => ty = T::Q4K,
                    Mix::Q3KM => {
                        ty = if self.i_attention_wv < 2 {
                            T::Q5K
                        } else {
                            T::Q4K
                        }
                    }
                    Mix::Q3KL => ty = T::Q5K,
                    Mix::Iq4Nl | Mix::Iq4Xs if n_gqa >= 4 => ty = T::Q5K,
                    Mix::Q4KM | Mix::Q5KM if more_bits => ty = T::Q6K,
                    Mix::Q4KS if self.i_attention_wv < 4 => ty = T::Q5K,
                    _ => {}
                }
                // 70B models share attn_v across 8 heads, so it is 8x smaller than
                // attn_q: more bits cost little there.
                if params.is_70b() && matches!(ty, T::Q3K | T::Q4K) {
                    ty = T::Q5K;
                }
                if params.n_expert == 8 {
                    ty = T::Q8_0;
                }
                self.i_attention_wv += 1;
            }
            Category::AttnK if params.n_expert == 8 => ty = T::Q8_0,
            Category::FfnDown => {
                let (i_layer, n_layer) = self.layer(name, self.i_ffn_down)?;
                let more_bits = use_more_bits(i_layer, n_layer);
                match mix {
                    Mix::Q2K => ty = T::Q3K,
                    Mix::Q2KS if i_layer < n_layer / 8 => ty = T::Q4K,
                    Mix::Q3KM => {
                        ty = if i_layer < n_layer / 16 {
                            T::Q5K
                        } else if !falcon || more_bits {
                            T::Q4K
                        } else {
                            T::Q3K
                        };
                    }
                    Mix::Q3KL => ty = if falcon { T::Q4K } else { T::Q5K },
                    Mix::Q4KM => {
                        if falcon {
                            ty = if i_layer < n_layer / 16 {
                                T::Q6K
                            } else if more_bits {
                                T::Q5K
                            } else {
                                T::Q4K
                            };
                        } else if more_bits {
                            ty = T::Q6K;
                        }
                    }
                    Mix::Iq4Nl | Mix::Iq4Xs if i_layer < n_layer / 8 && !self.has_imatrix => {
                        ty = T::Q5K
                    }
                    Mix::Q5KM if more_bits => ty = T::Q6K,
                    Mix::Q4KS if !falcon && i_layer < n_layer / 8 => ty = T::Q5K,
                    // With an imatrix only, so that quantizing without one stays as it
                    // always was; the first ffn_down layers misbehave in Q4_0/Q5_0.
                    Mix::Q4_0 if self.has_imatrix && i_layer < n_layer / 8 => ty = T::Q4_1,
                    Mix::Q5_0 if self.has_imatrix && i_layer < n_layer / 8 => ty = T::Q5_1,
                    _ => {}
                }
                self.i_ffn_down += 1;
            }
            Category::AttnOutput => {
                if !falcon {
                    if params.n_expert == 8 {
                        if matches!(
                            mix,
                            Mix::Q2K
                                | Mix::Q3KS
                                | Mix::Q3KM
                                | Mix::Iq4Nl
                                | Mix::Q4KS
                                | Mix::Q4KM
                                | Mix::Iq4Xs
                        ) {
                            ty = T::Q5K;
                        }
                    } else {
                        match mix {
                            Mix::Q2K => ty = T::Q3K,
                            Mix::Q3KM => ty = T::Q4K,
                            Mix::Q3KL => ty = T::Q5K,
                            _ => {}
                        }
                    }
                } else if mix == Mix::Q3KL {
                    ty = T::Q4K;
                }
            }
            // No mix here changes these, but llama.cpp still insists on a readable
            // layer in expert tensors' names.
            Category::FfnGate | Category::FfnUp => {
                self.layer(name, 0)?;
            }
            _ => {}
        }
        Ok(ty)
    }

    /// The layer of an `ffn_*` tensor and the layer count. Dense models count the
    /// tensors as they come; with experts the tensors of a layer are not
    /// consecutive, so the layer is read from the name.
    fn layer(&self, name: &str, counter: i32) -> Result<(i32, i32), MixError> {
        let n_layer = self.params.n_layer as i32;
        if self.params.n_expert <= 1 {
            return Ok((counter, n_layer));
        }
        match layer_of(name) {
            Some(i) if (0..i64::from(n_layer)).contains(&i) => Ok((i as i32, n_layer)),
            _ => Err(MixError::BadLayer {
                tensor: name.to_owned(),
                n_layer: self.params.n_layer,
            }),
        }
    }
}

/// The type a tensor gets when its rows (`row_len` elements) are not whole blocks
/// of `ty`: the next type of similar size with 32-element blocks, or F16 when even
/// that does not fit or no such type is defined (the llama.cpp build decant is
/// checked against goes to F16 for Q8_0 and the legacy types, rather than failing).
pub(super) fn fallback(row_len: u64, ty: GgmlType) -> GgmlType {
    use GgmlType as T;
    let fits = |ty: GgmlType| row_len.is_multiple_of(ty.block_size() as u64);
    if fits(ty) {
        return ty;
    }
    let fallback = match ty {
        T::Iq1S | T::Iq1M | T::Iq2Xxs | T::Iq2Xs | T::Iq2S | T::Iq3Xxs | T::Iq3S | T::Iq4Xs => {
            T::Iq4Nl
        }
        T::Q2K | T::Q3K | T::Tq1_0 | T::Tq2_0 => T::Q4_0,
        T::Q4K => T::Q5_0,
        T::Q5K => T::Q5_1,
        T::Q6K => T::Q8_0,
        _ => T::F16,
    };
    if fits(fallback) { fallback } else { T::F16 }
}

/// Whether a tensor of type `ty` is garbage without an importance matrix
/// (`tensor_requires_imatrix`). The embeddings and output never are.
pub(super) fn requires_imatrix(name: &str, ty: GgmlType, mix: Mix) -> bool {
    use GgmlType as T;
    if name == "output.weight" || super::tensor_kind::is_token_embd(name) {
        return false;
    }
    match ty {
        T::Iq3Xxs | T::Iq2Xxs | T::Iq2Xs | T::Iq2S | T::Iq1M | T::Iq1S => true,
        // K-quants need none, except Q2_K inside a Q2_K_S file.
        T::Q2K => mix == Mix::Q2KS,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_pattern_for_30_layers() {
        let picked: Vec<i32> = (0..30).filter(|&i| use_more_bits(i, 30)).collect();
        assert_eq!(picked, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
    }

    #[test]
    fn fallbacks() {
        assert_eq!(fallback(576, GgmlType::Q4K), GgmlType::Q5_0);
        assert_eq!(fallback(576, GgmlType::Q6K), GgmlType::Q8_0);
        assert_eq!(fallback(200, GgmlType::Q5K), GgmlType::F16);
        assert_eq!(fallback(200, GgmlType::Q8_0), GgmlType::F16);
        assert_eq!(fallback(512, GgmlType::Q5K), GgmlType::Q5K);
    }
}
