//! ggml's `make_qkx2_quants` for the sub-blocks of a K-quant super-block
//! together, one sub-block per vector lane.
//!
//! Within one group, ggml's candidates form a serial chain: a winner moves the
//! `min` that every later candidate is measured from. The single-group search
//! ([`super::scale_fit::make_qkx_quants`]) fills its vector with candidates and
//! refits the ones after each winner, which costs several passes per winner.
//! The sub-blocks of a super-block use the same candidates and are
//! independent, so here each lane walks ggml's chain for its own sub-block,
//! candidate after candidate, with ggml's sums in ggml's order: the same bits,
//! and no refits.

use super::round::nearest_int;
use super::scale_fit::ScaleSearch;

/// Sub-blocks searched together.
const LANES: usize = 8;

/// `make_qkx_quants` for each of `G` groups (`G` a multiple of 8): levels in
/// `0..=nmax` for `x ≈ scale·l - offset`. Returns each group's
/// `(scale, offset)`, the offset being at least 0.
pub(super) fn make_qkx_quants_each<const N: usize, const G: usize>(
    nmax: i32,
    x: &[[f32; N]; G],
    weights: &[[f32; N]; G],
    levels: &mut [[u8; N]; G],
    search: &ScaleSearch,
) -> [(f32, f32); G] {
    let mut fits = [(0.0, 0.0); G];
    let chunks = x
        .as_chunks::<LANES>()
        .0
        .iter()
        .zip(weights.as_chunks::<LANES>().0)
        .zip(levels.as_chunks_mut::<LANES>().0)
        .zip(fits.as_chunks_mut::<LANES>().0);
    for (((x, weights), levels), fits) in chunks {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just found to have AVX2.
            *fits = unsafe { avx2::search(nmax, x, weights, levels, search) };
            continue;
        }
        *fits = search_lanes(nmax, x, weights, levels, search);
    }
    fits
}

/// `x` as `G` consecutive groups of `N`.
pub(super) fn groups<const N: usize, const G: usize>(x: &[f32]) -> [[f32; N]; G] {
    *<&[[f32; N]; G]>::try_from(x.as_chunks::<N>().0).expect("G groups of N values")
}

/// Values of one position across the lanes' groups.
type Lanes = [f32; LANES];

fn transposed<const N: usize>(groups: &[[f32; N]; LANES]) -> [Lanes; N] {
    std::array::from_fn(|i| std::array::from_fn(|g| groups[g][i]))
}

#[inline(always)]
fn level(nmax: i32, iscale: f32, shifted: f32) -> f32 {
    nearest_int(iscale * shifted).clamp(0, nmax) as f32
}

/// The lanes' groups and where each lane's walk along the candidates stands.
struct Walk<const N: usize> {
    xt: [Lanes; N],
    wt: [Lanes; N],
    max: Lanes,
    sum_w: Lanes,
    sum_x: Lanes,
    /// The `min` later candidates are measured from (the last winner's).
    min: Lanes,
    /// The best fit so far: its levels as the inverse scale and `min` that
    /// made them, its scale and its error.
    level_iscale: Lanes,
    level_min: Lanes,
    scale: Lanes,
    best_error: Lanes,
}

/// Each group's range and sums, and ggml's first fit, from `nmax / (max − min)`.
#[inline(always)]
fn start<const N: usize>(
    nmax: i32,
    x: &[[f32; N]; LANES],
    weights: &[[f32; N]; LANES],
    use_mad: bool,
) -> Walk<N> {
    let (xt, wt) = (transposed(x), transposed(weights));
    let (mut min, mut max) = (xt[0], xt[0]);
    let mut sum_w = wt[0];
    let mut sum_x: Lanes = std::array::from_fn(|g| sum_w[g] * xt[0][g]);
    for (v, w) in xt.iter().zip(&wt).skip(1) {
        for g in 0..LANES {
            if v[g] < min[g] {
                min[g] = v[g];
            }
            if v[g] > max[g] {
                max[g] = v[g];
            }
            sum_w[g] += w[g];
            sum_x[g] += w[g] * v[g];
        }
    }
    let min = min.map(|m| if m > 0.0 { 0.0 } else { m });
    let level_iscale: Lanes = std::array::from_fn(|g| nmax as f32 / (max[g] - min[g]));
    let scale = level_iscale.map(|i| 1.0 / i);
    let mut best_error = [0.0_f32; LANES];
    for (v, w) in xt.iter().zip(&wt) {
        for g in 0..LANES {
            let l = level(nmax, level_iscale[g], v[g] - min[g]);
            let diff = scale[g] * l + min[g] - v[g];
            best_error[g] += w[g] * if use_mad { diff.abs() } else { diff * diff };
        }
    }
    Walk {
        xt,
        wt,
        max,
        sum_w,
        sum_x,
        min,
        level_iscale,
        level_min: min,
        scale,
        best_error,
    }
}

/// ggml's candidates `is = 0..=nstep`, in order, in every lane.
#[inline(always)]
fn candidates<const N: usize>(walk: &mut Walk<N>, nmax: i32, search: &ScaleSearch) {
    let mut candidate = [[0.0_f32; LANES]; N];
    for is in 0..=search.nstep {
        let iscale: Lanes = std::array::from_fn(|g| {
            (search.rmin + search.rdelta * is as f32 + nmax as f32) / (walk.max[g] - walk.min[g])
        });
        let (mut sum_l, mut sum_l2, mut sum_xl) =
            ([0.0_f32; LANES], [0.0_f32; LANES], [0.0_f32; LANES]);
        for ((v, w), l) in walk.xt.iter().zip(&walk.wt).zip(&mut candidate) {
            for g in 0..LANES {
                l[g] = level(nmax, iscale[g], v[g] - walk.min[g]);
                sum_l[g] += w[g] * l[g];
                sum_l2[g] += w[g] * l[g] * l[g];
                sum_xl[g] += w[g] * l[g] * v[g];
            }
        }
        let (sum_w, sum_x) = (walk.sum_w, walk.sum_x);
        let mut this_scale = [0.0_f32; LANES];
        let mut this_min = [0.0_f32; LANES];
        let mut fitted = [false; LANES];
        for g in 0..LANES {
            let d = sum_w[g] * sum_l2[g] - sum_l[g] * sum_l[g];
            fitted[g] = d > 0.0;
            this_scale[g] = (sum_w[g] * sum_xl[g] - sum_x[g] * sum_l[g]) / d;
            this_min[g] = (sum_l2[g] * sum_x[g] - sum_l[g] * sum_xl[g]) / d;
            if this_min[g] > 0.0 {
                this_min[g] = 0.0;
                this_scale[g] = sum_xl[g] / sum_l2[g];
            }
        }
        let mut error = [0.0_f32; LANES];
        for ((v, w), l) in walk.xt.iter().zip(&walk.wt).zip(&candidate) {
            for g in 0..LANES {
                let diff = this_scale[g] * l[g] + this_min[g] - v[g];
                error[g] += w[g]
                    * if search.use_mad {
                        diff.abs()
                    } else {
                        diff * diff
                    };
            }
        }
        for g in 0..LANES {
            if fitted[g] && error[g] < walk.best_error[g] {
                walk.level_iscale[g] = iscale[g];
                walk.level_min[g] = walk.min[g];
                walk.best_error[g] = error[g];
                walk.scale[g] = this_scale[g];
                walk.min[g] = this_min[g];
            }
        }
    }
}

/// Each group's levels and `(scale, offset)`; a flat group (`max == min`)
/// gets zero levels and scale, as ggml returns before its search.
#[inline(always)]
fn finish<const N: usize>(
    walk: &Walk<N>,
    start_min: &Lanes,
    nmax: i32,
    x: &[[f32; N]; LANES],
    levels: &mut [[u8; N]; LANES],
) -> [(f32, f32); LANES] {
    let flat: [bool; LANES] = std::array::from_fn(|g| walk.max[g] == start_min[g]);
    for (g, levels) in levels.iter_mut().enumerate() {
        for (l, &v) in levels.iter_mut().zip(&x[g]) {
            *l = if flat[g] {
                0
            } else {
                level(nmax, walk.level_iscale[g], v - walk.level_min[g]) as u8
            };
        }
    }
    std::array::from_fn(|g| {
        if flat[g] {
            (0.0, -start_min[g])
        } else {
            (walk.scale[g], -walk.min[g])
        }
    })
}

/// The whole search, with the candidates walked by `candidates`.
#[inline(always)]
fn walk<const N: usize>(
    nmax: i32,
    x: &[[f32; N]; LANES],
    weights: &[[f32; N]; LANES],
    levels: &mut [[u8; N]; LANES],
    search: &ScaleSearch,
    candidates: impl FnOnce(&mut Walk<N>),
) -> [(f32, f32); LANES] {
    let mut walk = start(nmax, x, weights, search.use_mad);
    let start_min = walk.min;
    candidates(&mut walk);
    finish(&walk, &start_min, nmax, x, levels)
}

fn search_lanes<const N: usize>(
    nmax: i32,
    x: &[[f32; N]; LANES],
    weights: &[[f32; N]; LANES],
    levels: &mut [[u8; N]; LANES],
    search: &ScaleSearch,
) -> [(f32, f32); LANES] {
    walk(nmax, x, weights, levels, search, |w| {
        candidates(w, nmax, search)
    })
}

/// The candidates' loop in AVX2 vectors, one group per lane: the same IEEE
/// operations in the same order as [`candidates`] (a multiply and an add are
/// never fused), and the winners chosen by the same comparisons (ordered,
/// false on NaN).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{LANES, Lanes, ScaleSearch, Walk};

    #[target_feature(enable = "avx2")]
    pub(super) fn search<const N: usize>(
        nmax: i32,
        x: &[[f32; N]; LANES],
        weights: &[[f32; N]; LANES],
        levels: &mut [[u8; N]; LANES],
        search: &ScaleSearch,
    ) -> [(f32, f32); LANES] {
        super::walk(nmax, x, weights, levels, search, |w| {
            candidates(w, nmax, search)
        })
    }

    #[target_feature(enable = "avx2")]
    fn load(lanes: &Lanes) -> __m256 {
        // SAFETY: `lanes` is 8 floats.
        unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
    }

    #[target_feature(enable = "avx2")]
    fn store(v: __m256, lanes: &mut Lanes) {
        // SAFETY: `lanes` is 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) }
    }

    /// ggml's `nearest_int` clamped to `0..=nmax`, as floats.
    #[target_feature(enable = "avx2")]
    fn level(scaled: __m256, nmax: __m256i) -> __m256 {
        let bits = _mm256_castps_si256(_mm256_add_ps(scaled, _mm256_set1_ps(12_582_912.0)));
        let int = _mm256_sub_epi32(
            _mm256_and_si256(bits, _mm256_set1_epi32(0x007F_FFFF)),
            _mm256_set1_epi32(0x0040_0000),
        );
        _mm256_cvtepi32_ps(_mm256_min_epi32(
            _mm256_max_epi32(int, _mm256_setzero_si256()),
            nmax,
        ))
    }

    #[target_feature(enable = "avx2")]
    fn candidates<const N: usize>(walk: &mut Walk<N>, nmax: i32, search: &ScaleSearch) {
        let zero = _mm256_setzero_ps();
        let nmax_lanes = _mm256_set1_epi32(nmax);
        let (max, sum_w, sum_x) = (load(&walk.max), load(&walk.sum_w), load(&walk.sum_x));
        let mut min = load(&walk.min);
        let mut level_iscale = load(&walk.level_iscale);
        let mut level_min = load(&walk.level_min);
        let mut scale = load(&walk.scale);
        let mut best_error = load(&walk.best_error);
        let xt = walk.xt.map(|v| load(&v));
        let wt = walk.wt.map(|w| load(&w));
        let mut candidate = [zero; N];
        for is in 0..=search.nstep {
            let numerator = _mm256_set1_ps(search.rmin + search.rdelta * is as f32 + nmax as f32);
            let iscale = _mm256_div_ps(numerator, _mm256_sub_ps(max, min));
            let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
            for ((&v, &w), l) in xt.iter().zip(&wt).zip(&mut candidate) {
                *l = level(_mm256_mul_ps(iscale, _mm256_sub_ps(v, min)), nmax_lanes);
                let wl = _mm256_mul_ps(w, *l);
                sum_l = _mm256_add_ps(sum_l, wl);
                sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, *l));
                sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, v));
            }
            let d = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
            let fitted = _mm256_cmp_ps::<_CMP_GT_OQ>(d, zero);
            let fit_scale = _mm256_div_ps(
                _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)),
                d,
            );
            let fit_min = _mm256_div_ps(
                _mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)),
                d,
            );
            let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(fit_min, zero);
            let this_min = _mm256_blendv_ps(fit_min, zero, positive);
            let this_scale = _mm256_blendv_ps(fit_scale, _mm256_div_ps(sum_xl, sum_l2), positive);
            let mut error = zero;
            for ((&v, &w), &l) in xt.iter().zip(&wt).zip(&candidate) {
                let diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, l), this_min), v);
                let diff = if search.use_mad {
                    _mm256_andnot_ps(_mm256_set1_ps(-0.0), diff)
                } else {
                    _mm256_mul_ps(diff, diff)
                };
                error = _mm256_add_ps(error, _mm256_mul_ps(w, diff));
            }
            let take = _mm256_and_ps(fitted, _mm256_cmp_ps::<_CMP_LT_OQ>(error, best_error));
            level_iscale = _mm256_blendv_ps(level_iscale, iscale, take);
            level_min = _mm256_blendv_ps(level_min, min, take);
            best_error = _mm256_blendv_ps(best_error, error, take);
            scale = _mm256_blendv_ps(scale, this_scale, take);
            min = _mm256_blendv_ps(min, this_min, take);
        }
        store(min, &mut walk.min);
        store(level_iscale, &mut walk.level_iscale);
        store(level_min, &mut walk.level_min);
        store(scale, &mut walk.scale);
        store(best_error, &mut walk.best_error);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::scale_fit::make_qkx_quants;
    use super::*;

    /// Groups with flat and all-positive ones among them, as real rows have.
    fn groups() -> impl Strategy<Value = Vec<([f32; 32], [f32; 32])>> {
        let value = prop_oneof![-4.0_f32..4.0, Just(0.0), -1e-3_f32..1e-3, 0.5_f32..2.0];
        let group = prop_oneof![
            3 => prop::array::uniform32(value),
            1 => prop::array::uniform32(Just(0.25_f32)),
            1 => prop::array::uniform32(0.1_f32..1.0),
        ];
        prop::collection::vec((group, prop::array::uniform32(0.0_f32..10.0)), 16)
    }

    proptest! {
        #[test]
        fn lanes_give_each_group_the_single_group_search(groups in groups(), mad in any::<bool>()) {
            for (nmax, rmin, rdelta, nstep) in [(15, -1.0, 0.1, 20), (3, -0.5, 0.1, 15), (31, -0.9, 0.05, 36)] {
                let search = ScaleSearch { rmin, rdelta, nstep, use_mad: mad };
                let x: [[f32; 32]; 16] = std::array::from_fn(|g| groups[g].0);
                let w: [[f32; 32]; 16] = std::array::from_fn(|g| groups[g].1);
                let mut lanes = [[0_u8; 32]; 16];
                let fits = make_qkx_quants_each(nmax, &x, &w, &mut lanes, &search);
                let mut portable = [[0_u8; 32]; 16];
                let halves = portable.as_chunks_mut::<LANES>().0.iter_mut().zip(x.as_chunks::<LANES>().0.iter().zip(w.as_chunks::<LANES>().0));
                let portable_fits: Vec<(f32, f32)> = halves.flat_map(|(l, (x, w))| search_lanes(nmax, x, w, l, &search)).collect();
                for g in 0..16 {
                    prop_assert_eq!((portable_fits[g].0.to_bits(), portable_fits[g].1.to_bits()), (fits[g].0.to_bits(), fits[g].1.to_bits()), "portable, group {}", g);
                    prop_assert_eq!(portable[g], lanes[g], "portable, group {}", g);
                    let mut single = [0_u8; 32];
                    let (d, m) = make_qkx_quants(nmax, &x[g], &w[g], &mut single, &search);
                    prop_assert_eq!((fits[g].0.to_bits(), fits[g].1.to_bits()), (d.to_bits(), m.to_bits()), "group {}", g);
                    prop_assert_eq!(lanes[g], single, "group {}", g);
                }
            }
        }
    }
}
