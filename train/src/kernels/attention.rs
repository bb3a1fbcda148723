//! Causal self-attention with rotary positions and grouped key/value heads,
//! as one autodiff op on the projections' outputs (`[batch, seq, heads ·
//! head_dim]`, row-major): no copies to head-major layout, no repeated
//! key/value heads, no `[batch, heads, seq, seq]` tensors kept for the
//! backward pass. Each (batch row, head) multiplies strided views of the
//! projections in place, block of queries by block of queries, over the keys
//! the causal mask lets them see; the backward pass recomputes the
//! probabilities from the saved log-sum-exp, as FlashAttention does.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::gemm::{View, gemm};
use super::simd::{self, vectorized};
use super::{AdTensor, flex_tensor, values};

/// Queries per block: the keys of a block are those of its last query.
const BLOCK: usize = 64;

/// The shape of one attention call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl Shape {
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

/// What else hides a key from a query, besides the causal rule.
#[derive(Clone, Debug)]
pub(crate) struct Mask {
    /// `[rows, seq, seq]` with rows 1 (shared) or the batch; true hides.
    pub hidden: Vec<bool>,
    pub rows: usize,
}

impl Mask {
    fn sees(mask: &Option<Mask>, shape: &Shape, b: usize, q: usize, k: usize) -> bool {
        k <= q
            && mask.as_ref().is_none_or(|m| {
                let row = if m.rows == 1 { 0 } else { b };
                !m.hidden[(row * shape.seq + q) * shape.seq + k]
            })
    }
}

/// Rotary tables `[rows, seq · head_dim]` (rows 1 or the batch): the rotated
/// `x` is `x · cos + swap_halves(x) · sin`, with the first half of `sin`
/// negated.
#[derive(Clone, Debug)]
pub(crate) struct Rotary {
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    pub rows: usize,
}

impl Rotary {
    /// `x` `[batch, seq, n, head_dim]` rotated (`inverse`: by the opposite
    /// angles, which is the rotation's transpose, for gradients).
    fn apply(&self, x: &[f32], shape: &Shape, n: usize, inverse: bool) -> Vec<f32> {
        let (seq, d) = (shape.seq, shape.head_dim);
        let half = d / 2;
        let mut out = vec![0.0f32; x.len()];
        out.par_chunks_mut(n * d)
            .zip(x.par_chunks(n * d))
            .enumerate()
            .for_each(|(token, (out, x))| {
                let (b, p) = (token / seq, token % seq);
                let row = if self.rows == 1 { 0 } else { b };
                let at = (row * seq + p) * d;
                let (cos, sin) = (&self.cos[at..at + d], &self.sin[at..at + d]);
                for (out, x) in out.chunks_mut(d).zip(x.chunks(d)) {
                    for i in 0..d {
                        let partner = if i < half { i + half } else { i - half };
                        out[i] = if inverse {
                            x[i] * cos[i] + x[partner] * sin[partner]
                        } else {
                            x[i] * cos[i] + x[partner] * sin[i]
                        };
                    }
                }
            });
        out
    }
}

/// A pointer to a buffer that parallel tasks write in disjoint places.
#[derive(Clone, Copy)]
struct Shared(*mut f32, usize);

// SAFETY: tasks given a `Shared` write only the ranges assigned to them
// (distinct (row, head) or (row, key/value head) pairs).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn new(buffer: &mut [f32]) -> Self {
        Self(buffer.as_mut_ptr(), buffer.len())
    }

    /// # Safety
    /// No other task may touch the elements this task's views reach.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.0, self.1) }
    }
}

/// Rows `rows` of head `h`'s columns in a `[batch, seq, n, head_dim]`
/// buffer, for batch row `b`, as a matrix view.
fn head_view<'a>(
    data: &'a [f32],
    shape: &Shape,
    n: usize,
    b: usize,
    h: usize,
    rows: std::ops::Range<usize>,
) -> View<'a> {
    let (seq, d) = (shape.seq, shape.head_dim);
    let start = (b * seq + rows.start) * n * d + h * d;
    let end = start + (rows.len().max(1) - 1) * n * d + d;
    View {
        data: &data[start..end.min(data.len())],
        rows: rows.len(),
        cols: d,
        row_stride: n * d,
        col_stride: 1,
    }
}

/// Writes `rows × head_dim` values of `src` (row-major) into head `h` of a
/// `[batch, seq, n, head_dim]` buffer, adding when `accumulate`.
fn scatter(
    dst: &mut [f32],
    src: &[f32],
    shape: &Shape,
    n: usize,
    b: usize,
    h: usize,
    rows: std::ops::Range<usize>,
    accumulate: bool,
) {
    let d = shape.head_dim;
    for (i, row) in rows.enumerate() {
        let at = ((b * shape.seq + row) * n + h) * d;
        let (dst, src) = (&mut dst[at..at + d], &src[i * d..(i + 1) * d]);
        if accumulate {
            dst.iter_mut().zip(src).for_each(|(a, s)| *a += s);
        } else {
            dst.copy_from_slice(src);
        }
    }
}

/// Softmax probabilities of one query block's scores in place: `scores`
/// `[len, keys]` for queries `q0..q0 + len`; hidden keys get 0. Returns or
/// uses each row's log-sum-exp.
fn probabilities(
    scores: &mut [f32],
    keys: usize,
    q0: usize,
    lse: &mut [f32],
    known: bool,
    sees: impl Fn(usize, usize) -> bool,
) {
    for (i, row) in scores.chunks_mut(keys).enumerate() {
        let q = q0 + i;
        for (k, s) in row.iter_mut().enumerate() {
            if !sees(q, k) {
                *s = f32::NEG_INFINITY;
            }
        }
        vectorized(|| {
            if !known {
                let max = simd::max(row);
                row.iter_mut().for_each(|s| *s = simd::exp(*s - max));
                let sum = simd::sum(row);
                lse[i] = max + sum.ln();
                let inverse = 1.0 / sum;
                row.iter_mut().for_each(|s| *s *= inverse);
            } else {
                let l = lse[i];
                row.iter_mut().for_each(|s| *s = simd::exp(*s - l));
            }
            // Hidden keys: exp clamps −∞ to the smallest normal, not 0.
            for (k, s) in row.iter_mut().enumerate() {
                if !sees(q, k) {
                    *s = 0.0;
                }
            }
        })
    }
}

/// What the backward pass needs.
#[derive(Clone, Debug)]
struct Saved {
    shape: Shape,
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    out: FlexTensor,
    /// `[batch, heads, seq]`.
    lse: FlexTensor,
    rotary: Rotary,
    mask: Option<Mask>,
}

/// The forward pass on rotated queries and keys: the output and the
/// log-sum-exp of every (row, head, query).
fn forward(
    shape: &Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &Option<Mask>,
) -> (Vec<f32>, Vec<f32>) {
    let (seq, heads, kv, d) = (shape.seq, shape.heads, shape.kv_heads, shape.head_dim);
    let mut out = vec![0.0f32; q.len()];
    let mut lse = vec![0.0f32; shape.batch * heads * seq];
    let (out_ptr, lse_ptr) = (Shared::new(&mut out), Shared::new(&mut lse));
    (0..shape.batch * heads).into_par_iter().for_each(|task| {
        let (b, h) = (task / heads, task % heads);
        let g = h / shape.group();
        let mut scores = Vec::new();
        let mut o = Vec::new();
        for q0 in (0..seq).step_by(BLOCK) {
            let len = BLOCK.min(seq - q0);
            let keys = q0 + len;
            scores.resize(len * keys, 0.0);
            gemm(
                &mut scores,
                head_view(q, shape, heads, b, h, q0..q0 + len),
                head_view(k, shape, kv, b, g, 0..keys).t(),
                false,
            );
            let scale = shape.scale();
            scores.iter_mut().for_each(|s| *s *= scale);
            // SAFETY: task (b, h) alone writes its lse entries and output columns.
            let lse = unsafe { lse_ptr.slice() };
            let at = (b * heads + h) * seq + q0;
            probabilities(
                &mut scores,
                keys,
                q0,
                &mut lse[at..at + len],
                false,
                |q, key| Mask::sees(mask, shape, b, q, key),
            );
            o.resize(len * d, 0.0);
            gemm(
                &mut o,
                View::new(&scores, len, keys),
                head_view(v, shape, kv, b, g, 0..keys),
                false,
            );
            scatter(
                unsafe { out_ptr.slice() },
                &o,
                shape,
                heads,
                b,
                h,
                q0..q0 + len,
                false,
            );
        }
    });
    (out, lse)
}

/// Gradients of the rotated queries, keys and of the values.
fn backward(saved: &Saved, d_out: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let shape = &saved.shape;
    let (seq, heads, kv, d) = (shape.seq, shape.heads, shape.kv_heads, shape.head_dim);
    let (q, k, v, out, lse) = (
        values(&saved.q),
        values(&saved.k),
        values(&saved.v),
        values(&saved.out),
        values(&saved.lse),
    );
    let mut dq = vec![0.0f32; q.len()];
    let mut dk = vec![0.0f32; k.len()];
    let mut dv = vec![0.0f32; v.len()];
    let (dq_ptr, dk_ptr, dv_ptr) = (
        Shared::new(&mut dq),
        Shared::new(&mut dk),
        Shared::new(&mut dv),
    );
    let scale = shape.scale();
    // A task per (row, key/value head): it alone accumulates that head's dK, dV.
    (0..shape.batch * kv).into_par_iter().for_each(|task| {
        let (b, g) = (task / kv, task % kv);
        let (mut p, mut dp, mut block) = (Vec::new(), Vec::new(), Vec::new());
        let mut lse_block = Vec::new();
        let mut dk_g = vec![0.0f32; seq * d];
        let mut dv_g = vec![0.0f32; seq * d];
        for h in g * shape.group()..(g + 1) * shape.group() {
            for q0 in (0..seq).step_by(BLOCK) {
                let len = BLOCK.min(seq - q0);
                let keys = q0 + len;
                let (qv, kv_view, vv) = (
                    head_view(&q, shape, heads, b, h, q0..q0 + len),
                    head_view(&k, shape, kv, b, g, 0..keys),
                    head_view(&v, shape, kv, b, g, 0..keys),
                );
                let do_view = head_view(d_out, shape, heads, b, h, q0..q0 + len);
                p.resize(len * keys, 0.0);
                gemm(&mut p, qv, kv_view.t(), false);
                p.iter_mut().for_each(|s| *s *= scale);
                let at = (b * heads + h) * seq + q0;
                lse_block.clear();
                lse_block.extend_from_slice(&lse[at..at + len]);
                probabilities(&mut p, keys, q0, &mut lse_block, true, |qi, key| {
                    Mask::sees(&saved.mask, shape, b, qi, key)
                });
                // dV += Pᵀ · dO
                gemm(
                    &mut dv_g[..keys * d],
                    View::new(&p, len, keys).t(),
                    do_view,
                    true,
                );
                // dP = dO · Vᵀ
                dp.resize(len * keys, 0.0);
                gemm(&mut dp, do_view, vv.t(), false);
                // dS = P ⊙ (dP − rowsum(dO ⊙ O)), scaled for the products below.
                let o_view = head_view(&out, shape, heads, b, h, q0..q0 + len);
                for i in 0..len {
                    let (o_row, do_row) = (
                        &o_view.data[i * o_view.row_stride..i * o_view.row_stride + d],
                        &do_view.data[i * do_view.row_stride..i * do_view.row_stride + d],
                    );
                    let delta: f32 = o_row.iter().zip(do_row).map(|(o, g)| o * g).sum();
                    let (p_row, dp_row) = (
                        &p[i * keys..(i + 1) * keys],
                        &mut dp[i * keys..(i + 1) * keys],
                    );
                    dp_row
                        .iter_mut()
                        .zip(p_row)
                        .for_each(|(ds, p)| *ds = p * (*ds - delta) * scale);
                }
                let ds = View::new(&dp, len, keys);
                // dQ = dS · K
                block.resize(len * d, 0.0);
                gemm(&mut block, ds, kv_view, false);
                // SAFETY: heads of group g belong to this task alone.
                scatter(
                    unsafe { dq_ptr.slice() },
                    &block,
                    shape,
                    heads,
                    b,
                    h,
                    q0..q0 + len,
                    false,
                );
                // dK += dSᵀ · Q
                gemm(&mut dk_g[..keys * d], ds.t(), qv, true);
            }
        }
        // SAFETY: key/value head g of row b belongs to this task alone.
        scatter(
            unsafe { dk_ptr.slice() },
            &dk_g,
            shape,
            kv,
            b,
            g,
            0..seq,
            false,
        );
        scatter(
            unsafe { dv_ptr.slice() },
            &dv_g,
            shape,
            kv,
            b,
            g,
            0..seq,
            false,
        );
    });
    (dq, dk, dv)
}

#[derive(Debug)]
struct Attention;

impl Backward<Flex, 3> for Attention {
    type State = Box<Saved>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let saved = ops.state;
        let d_out = grads.consume::<Flex>(&ops.node);
        let (dq, dk, dv) = backward(&saved, &values(&d_out));
        let shape = saved.shape;
        let [node_q, node_k, node_v] = ops.parents;
        let dims = |n: usize| [shape.batch, shape.seq, n * shape.head_dim];
        if let Some(node) = node_q {
            let dq = saved.rotary.apply(&dq, &shape, shape.heads, true);
            grads.register::<Flex>(node.id, flex_tensor(dq, dims(shape.heads)));
        }
        if let Some(node) = node_k {
            let dk = saved.rotary.apply(&dk, &shape, shape.kv_heads, true);
            grads.register::<Flex>(node.id, flex_tensor(dk, dims(shape.kv_heads)));
        }
        if let Some(node) = node_v {
            grads.register::<Flex>(node.id, flex_tensor(dv, dims(shape.kv_heads)));
        }
    }
}

/// Attention of `q` (`[batch, seq, heads · head_dim]`) over `k` and `v`
/// (`[batch, seq, kv_heads · head_dim]`), queries and keys rotated by
/// `rotary` first; returns the output, `[batch, seq, heads · head_dim]`, and
/// the rotated keys.
pub(crate) fn attention(
    q: &AdTensor,
    k: &AdTensor,
    v: &AdTensor,
    shape: Shape,
    rotary: Rotary,
    mask: Option<Mask>,
) -> (AdTensor, FlexTensor) {
    let q_rot = rotary.apply(&values(&q.primitive), &shape, shape.heads, false);
    let k_rot = rotary.apply(&values(&k.primitive), &shape, shape.kv_heads, false);
    let v_values = values(&v.primitive);
    let (out, lse) = forward(&shape, &q_rot, &k_rot, &v_values, &mask);
    let dims = |n: usize| [shape.batch, shape.seq, n * shape.head_dim];
    let out = flex_tensor(out, dims(shape.heads));
    let k_rot = flex_tensor(k_rot, dims(shape.kv_heads));
    let output = match Attention
        .prepare::<NoCheckpointing>([q.node.clone(), k.node.clone(), v.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                shape,
                q: flex_tensor(q_rot, dims(shape.heads)),
                k: k_rot.clone(),
                v: v.primitive.clone(),
                out: out.clone(),
                lse: flex_tensor(lse, [shape.batch, shape.heads, shape.seq]),
                rotary,
                mask,
            };
            prep.finish(Box::new(saved), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    (output, k_rot)
}

/// [`attention`] for tensors of backend `B` when it is Flex, under autodiff
/// (with its backward pass) or not (the forward pass alone): the output and
/// the rotated keys, both `[batch, seq, n · head_dim]`; otherwise `q`, `k`,
/// `v` back. `cos`, `sin` are the rotary tables and `mask` the hidden keys
/// beyond the causal rule, as the model holds them.
#[allow(clippy::type_complexity)]
pub(crate) fn attend<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    (cos, sin): (&Tensor<B, 2>, &Tensor<B, 2>),
    mask: Option<&Tensor<B, 4, Bool>>,
    shape: Shape,
) -> Result<(Tensor<B, 3>, Tensor<B, 3>), [Tensor<B, 3>; 3]> {
    let autodiff = super::is_flex_autodiff::<B>();
    let f32s = [&q, &k, &v]
        .iter()
        .all(|t| t.dtype() == burn::tensor::DType::F32);
    if !f32s || (!autodiff && !super::is_flex::<B>()) {
        return Err([q, k, v]);
    }
    let table = |t: &Tensor<B, 2>| t.to_data().to_vec::<f32>().expect("f32 rotary tables");
    let rotary = Rotary {
        cos: table(cos),
        sin: table(sin),
        rows: cos.dims()[0],
    };
    let mask = mask.map(|m| Mask {
        hidden: m.to_data().to_vec::<bool>().expect("a bool mask"),
        rows: m.dims()[0],
    });
    if autodiff {
        let ad =
            |t: Tensor<B, 3>| super::flex_autodiff(t).unwrap_or_else(|_| unreachable!("B is Ad"));
        let (out, k_rot) = attention(&ad(q), &ad(k), &ad(v), shape, rotary, mask);
        return Ok((
            super::from_flex_autodiff::<B, 3>(out),
            super::constant::<B, 3>(k_rot),
        ));
    }
    let flex = |t: &Tensor<B, 3>| super::flex_inner(t).expect("B is Flex");
    let q_rot = rotary.apply(&values(&flex(&q)), &shape, shape.heads, false);
    let k_rot = rotary.apply(&values(&flex(&k)), &shape, shape.kv_heads, false);
    let (out, _) = forward(&shape, &q_rot, &k_rot, &values(&flex(&v)), &mask);
    let dims = |n: usize| [shape.batch, shape.seq, n * shape.head_dim];
    Ok((
        super::flex_outer(flex_tensor(out, dims(shape.heads))),
        super::flex_outer(flex_tensor(k_rot, dims(shape.kv_heads))),
    ))
}
