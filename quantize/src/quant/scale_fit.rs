//! The searches ggml's K-quants (and the weighted legacy paths) use to choose a
//! group's scale, or scale and min, and its integer levels: `make_qx_quants`,
//! `make_q3_quants`, `make_qkx2_quants` / `make_qkx3_quants` and `make_qp_quants`
//! of `ggml-quants.c`.
//!
//! Each tries a small grid of candidate inverse scales and keeps the one whose
//! least-squares fit has the lowest (weighted) error. Sums run in ggml's order,
//! with ggml's operand order, and the ties and clamps are ggml's, because which
//! candidate wins depends on the last bit.

use super::round::nearest_int;

/// ggml's `GROUP_MAX_EPS`: below this magnitude a group counts as all zero.
pub(super) const GROUP_MAX_EPS: f32 = 1e-15;

/// The value of largest magnitude, the first on ties, and that magnitude.
#[inline(always)]
pub(super) fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0_f32, 0.0_f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// ggml's `make_qx_quants` with `rmse_type` 1, the only one its quantizers use:
/// symmetric levels in `-nmax..nmax`, stored offset by `nmax`, fitted to minimise
/// the error weighted by `weights` (or by `x²` without them). Returns the scale.
///
/// ggml tries its 19 candidate scales one after another; here they are lanes of
/// one pass over `x`. Each lane still sums in ggml's order, so every candidate's
/// sums, and which one wins, are bit for bit ggml's; only the serial chain of
/// dependent additions, which bounded this search, is gone.
pub(super) fn make_qx_quants<const N: usize>(
    nmax: i32,
    x: &[f32; N],
    levels: &mut [i8; N],
    weights: Option<&[f32; N]>,
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just found to have AVX2.
        return unsafe { avx2::make_qx_quants(nmax, x, levels, weights) };
    }
    qx_search(nmax, x, levels, weights)
}

#[inline(always)]
fn qx_search<const N: usize>(
    nmax: i32,
    x: &[f32; N],
    levels: &mut [i8; N],
    weights: Option<&[f32; N]>,
) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        *levels = [0; N];
        return 0.0;
    }
    let weights = weights.copied().unwrap_or_else(|| squares(x));
    let iscales = candidate_iscales(nmax, max);
    let (mut sumlx, mut suml2) = ([0.0_f32; LANES], [0.0_f32; LANES]);
    for (&v, &w) in x.iter().zip(&weights) {
        let wv = w * v;
        for ((sx, s2), &iscale) in sumlx.iter_mut().zip(&mut suml2).zip(&iscales) {
            let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1) as f32;
            *sx += wv * l;
            *s2 += w * l * l;
        }
    }

    let mut chosen = 0;
    let mut scale = if suml2[0] != 0.0 { sumlx[0] / suml2[0] } else { 0.0 };
    let mut best = scale * sumlx[0];
    for k in 1..CANDIDATES {
        if suml2[k] > 0.0 && sumlx[k] * sumlx[k] > best * suml2[k] {
            chosen = k;
            scale = sumlx[k] / suml2[k];
            best = scale * sumlx[k];
        }
    }
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = (nmax + nearest_int(iscales[chosen] * v).clamp(-nmax, nmax - 1)) as i8;
    }
    scale
}

/// `make_qx_quants`' candidates: `-nmax / max` first, then `is` in `-9..=9`
/// without 0, in ggml's order.
const CANDIDATES: usize = 19;
/// Lanes of the candidate search: the candidates padded to whole vectors. The
/// padding lanes repeat the first candidate and are never read.
const LANES: usize = 20;

#[inline(always)]
fn candidate_iscales(nmax: i32, max: f32) -> [f32; LANES] {
    let mut iscales = [-(nmax as f32) / max; LANES];
    for (iscale, is) in iscales[1..CANDIDATES].iter_mut().zip((-9..=9).filter(|&is| is != 0)) {
        *iscale = -(nmax as f32 + 0.1 * is as f32) / max;
    }
    iscales
}

/// `x²`, the weights the unweighted fits use.
#[inline(always)]
fn squares<const N: usize>(x: &[f32; N]) -> [f32; N] {
    let mut squares = [0.0; N];
    for (w, &v) in squares.iter_mut().zip(x) {
        *w = v * v;
    }
    squares
}

/// The levels in `-nmax..nmax` that `iscale` gives `x`, and their weighted sums
/// Σ w·x·l and Σ w·l².
#[inline(always)]
fn symmetric_fit<const N: usize>(
    nmax: i32,
    iscale: f32,
    x: &[f32; N],
    weights: &[f32; N],
    levels: &mut [i32; N],
) -> (f32, f32) {
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    }
    let (mut sumlx, mut suml2) = (0.0_f32, 0.0_f32);
    for ((&l, &v), &w) in levels.iter().zip(x).zip(weights) {
        let l = l as f32;
        sumlx += w * v * l;
        suml2 += w * l * l;
    }
    (sumlx, suml2)
}

/// ggml's `make_q3_quants` with `do_rmse`, as Q3_K calls it: symmetric levels
/// weighted by `x²`, then up to five rounds of moving single levels while that
/// improves the fit. Levels are stored offset by `nmax`; returns the scale.
pub(super) fn make_q3_quants<const N: usize>(nmax: i32, x: &[f32; N], levels: &mut [i8; N]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        *levels = [0; N];
        return 0.0;
    }
    let weights = squares(x);
    let mut signed = [0; N];
    let (mut sumlx, mut suml2) =
        symmetric_fit(nmax, -(nmax as f32) / max, x, &weights, &mut signed);
    for _ in 0..5 {
        let mut changed = false;
        for ((l, &v), &w) in signed.iter_mut().zip(x).zip(&weights) {
            let old = *l as f32;
            let mut slx = sumlx - w * v * old;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * old * old;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *l {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for (l, &s) in levels.iter_mut().zip(&signed) {
        *l = (s + nmax) as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// The candidate inverse scales of [`make_qkx_quants`]:
/// `(nmax + rmin + rdelta·is) / (max - min)` for `is` in `0..=nstep`.
pub(super) struct ScaleSearch {
    pub rmin: f32,
    pub rdelta: f32,
    pub nstep: i32,
    /// Minimise the weighted absolute error rather than the squared one.
    pub use_mad: bool,
}

/// ggml's `make_qkx2_quants`, which with weights is also its `make_qkx3_quants`
/// (qkx3 only adds a default for missing weights, and tests `max <= min` where
/// qkx2 tests `max == min`, the same once `min` is clamped to at most 0): levels in
/// `0..=nmax` for `x ≈ scale·l - offset`, fitted with a scale and an offset.
/// Returns `(scale, offset)`, the offset being at least 0.
pub(super) fn make_qkx_quants<const N: usize>(
    nmax: i32,
    x: &[f32; N],
    weights: &[f32; N],
    levels: &mut [u8; N],
    search: &ScaleSearch,
) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just found to have AVX2.
        return unsafe { avx2::make_qkx_quants(nmax, x, weights, levels, search) };
    }
    qkx_search(nmax, x, weights, levels, search)
}

#[inline(always)]
fn qkx_search<const N: usize>(
    nmax: i32,
    x: &[f32; N],
    weights: &[f32; N],
    levels: &mut [u8; N],
    search: &ScaleSearch,
) -> (f32, f32) {
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&v, &w) in x.iter().zip(weights).skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        *levels = [0; N];
        return (0.0, -min);
    }
    let group = OffsetGroup { nmax, x, weights, sum_w, sum_x, max };
    let iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    *levels = offset_levels(nmax, iscale, min, x);
    let mut best_error = offset_fit_error(scale, min, x, weights, levels, search.use_mad);

    // ggml judges the candidates one after another, and a winner moves `min`,
    // which every later candidate is measured from. So the candidates are fitted
    // QKX_LANES at a time from the current `min`, judged in ggml's order, and
    // after a winner the ones past it are fitted again from the new `min`: each
    // judged candidate saw exactly the `min` it sees in ggml.
    let mut next = 0;
    while next <= search.nstep {
        let fits = OffsetFits::new(&group, next, min, search);
        let judged = (search.nstep - next + 1).min(QKX_LANES as i32) as usize;
        next += judged as i32;
        for j in (0..judged).filter(|&j| fits.d[j] > 0.0) {
            if fits.error[j] < best_error {
                *levels = offset_levels(nmax, fits.iscale[j], min, x);
                best_error = fits.error[j];
                scale = fits.scale[j];
                min = fits.min[j];
                next = fits.first + j as i32 + 1;
                break;
            }
        }
    }
    (scale, -min)
}

/// Candidates of [`make_qkx_quants`] fitted per pass.
const QKX_LANES: usize = 8;

/// Levels in `0..=nmax` for `x ≈ l / iscale + min`.
#[inline(always)]
fn offset_levels<const N: usize>(nmax: i32, iscale: f32, min: f32, x: &[f32; N]) -> [u8; N] {
    let mut levels = [0_u8; N];
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
    }
    levels
}

/// The weighted squared (or absolute) error of `scale·l + min` against `x`.
#[inline(always)]
fn offset_fit_error<const N: usize>(
    scale: f32,
    min: f32,
    x: &[f32; N],
    weights: &[f32; N],
    levels: &[u8; N],
    use_mad: bool,
) -> f32 {
    let mut error = 0.0_f32;
    for ((&l, &v), &w) in levels.iter().zip(x).zip(weights) {
        let diff = scale * f32::from(l) + min - v;
        error += w * if use_mad { diff.abs() } else { diff * diff };
    }
    error
}

/// What every candidate fit of one group shares.
struct OffsetGroup<'a, const N: usize> {
    nmax: i32,
    x: &'a [f32; N],
    weights: &'a [f32; N],
    sum_w: f32,
    sum_x: f32,
    max: f32,
}

/// The least-squares scale and offset for QKX_LANES consecutive candidates of a
/// [`ScaleSearch`], all from one `min`, and each fit's error. Lanes past
/// `nstep` are computed and never judged.
struct OffsetFits {
    first: i32,
    iscale: [f32; QKX_LANES],
    d: [f32; QKX_LANES],
    scale: [f32; QKX_LANES],
    min: [f32; QKX_LANES],
    error: [f32; QKX_LANES],
}

impl OffsetFits {
    #[inline(always)]
    fn new<const N: usize>(group: &OffsetGroup<N>, first: i32, min: f32, search: &ScaleSearch) -> Self {
        let OffsetGroup { nmax, x, weights, sum_w, sum_x, max } = *group;
        let mut iscale = [0.0_f32; QKX_LANES];
        for (j, iscale) in iscale.iter_mut().enumerate() {
            let is = first + j as i32;
            *iscale = (search.rmin + search.rdelta * is as f32 + nmax as f32) / (max - min);
        }
        let mut sum_l = [0.0_f32; QKX_LANES];
        let mut sum_l2 = [0.0_f32; QKX_LANES];
        let mut sum_xl = [0.0_f32; QKX_LANES];
        for (&v, &w) in x.iter().zip(weights) {
            let shifted = v - min;
            for j in 0..QKX_LANES {
                let l = nearest_int(iscale[j] * shifted).clamp(0, nmax) as f32;
                sum_l[j] += w * l;
                sum_l2[j] += w * l * l;
                sum_xl[j] += w * l * v;
            }
        }
        let mut d = [0.0_f32; QKX_LANES];
        let mut scale = [0.0_f32; QKX_LANES];
        let mut fit_min = [0.0_f32; QKX_LANES];
        for j in 0..QKX_LANES {
            d[j] = sum_w * sum_l2[j] - sum_l[j] * sum_l[j];
            scale[j] = (sum_w * sum_xl[j] - sum_x * sum_l[j]) / d[j];
            fit_min[j] = (sum_l2[j] * sum_x - sum_l[j] * sum_xl[j]) / d[j];
            if fit_min[j] > 0.0 {
                fit_min[j] = 0.0;
                scale[j] = sum_xl[j] / sum_l2[j];
            }
        }
        let error = if search.use_mad {
            Self::errors::<N, true>(nmax, min, &iscale, &scale, &fit_min, x, weights)
        } else {
            Self::errors::<N, false>(nmax, min, &iscale, &scale, &fit_min, x, weights)
        };
        OffsetFits { first, iscale, d, scale, min: fit_min, error }
    }

    #[inline(always)]
    fn errors<const N: usize, const MAD: bool>(
        nmax: i32,
        min: f32,
        iscale: &[f32; QKX_LANES],
        scale: &[f32; QKX_LANES],
        fit_min: &[f32; QKX_LANES],
        x: &[f32; N],
        weights: &[f32; N],
    ) -> [f32; QKX_LANES] {
        let mut error = [0.0_f32; QKX_LANES];
        for (&v, &w) in x.iter().zip(weights) {
            let shifted = v - min;
            for j in 0..QKX_LANES {
                let l = nearest_int(iscale[j] * shifted).clamp(0, nmax) as f32;
                let diff = scale[j] * l + fit_min[j] - v;
                error[j] += w * if MAD { diff.abs() } else { diff * diff };
            }
        }
        error
    }
}

/// The candidate searches compiled for AVX2, where the CPU has it: their lanes
/// then fill 8-wide vectors and clamp with native integer min/max. The float
/// operations are the same IEEE operations in the same order (Rust never fuses a
/// multiply and an add), so the results are the same bits.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::ScaleSearch;

    #[target_feature(enable = "avx2")]
    pub(super) fn make_qx_quants<const N: usize>(
        nmax: i32,
        x: &[f32; N],
        levels: &mut [i8; N],
        weights: Option<&[f32; N]>,
    ) -> f32 {
        super::qx_search(nmax, x, levels, weights)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn make_qkx_quants<const N: usize>(
        nmax: i32,
        x: &[f32; N],
        weights: &[f32; N],
        levels: &mut [u8; N],
        search: &ScaleSearch,
    ) -> (f32, f32) {
        super::qkx_search(nmax, x, weights, levels, search)
    }
}

/// ggml's `make_qp_quants`: levels in `0..=nmax` for non-negative `x` (the
/// sub-block scales and mins of the weighted K-quants) with one scale, chosen from
/// nine candidates by weighted squared error and then refined a level at a time.
/// Returns the scale.
pub(super) fn make_qp_quants<const N: usize>(
    nmax: i32,
    x: &[f32; N],
    levels: &mut [u8; N],
    weights: &[f32; N],
) -> f32 {
    let mut max = 0.0_f32;
    for &v in x {
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        *levels = [0; N];
        return 0.0;
    }
    // Levels are stored as bytes, so the negative ones a negative `x` would give
    // wrap around, in the comparisons and the sums that read them back too.
    let mut iscale = nmax as f32 / max;
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = nearest_int(iscale * v) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0_f32;
    for ((&l, &v), &w) in levels.iter().zip(x).zip(weights) {
        let diff = v - scale * f32::from(l);
        best_mse += w * diff * diff;
    }
    for is in (-4..=4).filter(|&is| is != 0) {
        let iscale_is = (0.1 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0_f32;
        for (&v, &w) in x.iter().zip(weights) {
            let l = nearest_int(iscale_is * v).min(nmax);
            let diff = v - scale_is * l as f32;
            mse += w * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }

    let (mut sumlx, mut suml2) = (0.0_f32, 0.0_f32);
    for ((l, &v), &w) in levels.iter_mut().zip(x).zip(weights) {
        let q = nearest_int(iscale * v).min(nmax);
        *l = q as u8;
        sumlx += w * v * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for ((l, &v), &w) in levels.iter_mut().zip(x).zip(weights) {
            let old = f32::from(*l);
            let mut slx = sumlx - w * v * old;
            let mut sl2 = suml2 - w * old * old;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(v * sl2 / slx).min(nmax);
                if new_l != i32::from(*l) {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // The goldens run whichever path this CPU takes; these hold the other one to
    // the same bits.
    fn group() -> impl Strategy<Value = ([f32; 32], [f32; 32])> {
        let value = prop_oneof![-4.0_f32..4.0, Just(0.0), -1e-3_f32..1e-3];
        (prop::array::uniform32(value), prop::array::uniform32(0.0_f32..10.0))
    }

    proptest! {
        #[test]
        fn qx_search_paths_agree((x, w) in group(), nmax in prop::sample::select(vec![4, 8, 16, 32])) {
            prop_assume!(std::arch::is_x86_feature_detected!("avx2"));
            for weights in [None, Some(&w)] {
                let (mut base, mut wide) = ([0; 32], [0; 32]);
                let d_base = qx_search(nmax, &x, &mut base, weights);
                // SAFETY: the CPU has AVX2.
                let d_wide = unsafe { avx2::make_qx_quants(nmax, &x, &mut wide, weights) };
                prop_assert_eq!(d_base.to_bits(), d_wide.to_bits());
                prop_assert_eq!(base, wide);
            }
        }

        #[test]
        fn qkx_search_paths_agree((x, w) in group(), mad in any::<bool>()) {
            prop_assume!(std::arch::is_x86_feature_detected!("avx2"));
            for (nmax, rmin, rdelta, nstep) in [(15, -1.0, 0.1, 20), (3, -0.5, 0.1, 15), (31, -0.9, 0.05, 36)] {
                let search = ScaleSearch { rmin, rdelta, nstep, use_mad: mad };
                let (mut base, mut wide) = ([0; 32], [0; 32]);
                let (d_base, m_base) = qkx_search(nmax, &x, &w, &mut base, &search);
                // SAFETY: the CPU has AVX2.
                let (d_wide, m_wide) = unsafe { avx2::make_qkx_quants(nmax, &x, &w, &mut wide, &search) };
                prop_assert_eq!((d_base.to_bits(), m_base.to_bits()), (d_wide.to_bits(), m_wide.to_bits()));
                prop_assert_eq!(base, wide);
            }
        }
    }
}
