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
pub(super) fn make_qx_quants<const N: usize>(
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
    let store = |levels: &mut [i8; N], signed: &[i32; N]| {
        for (l, &s) in levels.iter_mut().zip(signed) {
            *l = (nmax + s) as i8;
        }
    };

    let mut candidate = [0; N];
    let (sumlx, suml2) = symmetric_fit(nmax, -(nmax as f32) / max, x, &weights, &mut candidate);
    store(levels, &candidate);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = symmetric_fit(nmax, iscale, x, &weights, &mut candidate);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(levels, &candidate);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
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
    // `min` is an argument because the search moves it: once a candidate wins,
    // ggml measures later candidates from that candidate's min.
    let quantize = |iscale: f32, min: f32| {
        let mut levels = [0_u8; N];
        for (l, &v) in levels.iter_mut().zip(x) {
            *l = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
        }
        levels
    };
    let error = |scale: f32, min: f32, levels: &[u8; N]| {
        let mut error = 0.0_f32;
        for ((&l, &v), &w) in levels.iter().zip(x).zip(weights) {
            let diff = scale * f32::from(l) + min - v;
            error += w * if search.use_mad {
                diff.abs()
            } else {
                diff * diff
            };
        }
        error
    };

    let iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    *levels = quantize(iscale, min);
    let mut best_error = error(scale, min, levels);
    for is in 0..=search.nstep {
        let iscale = (search.rmin + search.rdelta * is as f32 + nmax as f32) / (max - min);
        let candidate = quantize(iscale, min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0_f32, 0.0_f32, 0.0_f32);
        for ((&l, &v), &w) in candidate.iter().zip(x).zip(weights) {
            let l = f32::from(l);
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * v;
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = error(this_scale, this_min, &candidate);
            if cur_error < best_error {
                *levels = candidate;
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
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
