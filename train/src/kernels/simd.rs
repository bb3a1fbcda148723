//! What the kernels' elementwise loops share: an `exp` that compiles to
//! vector instructions (libm's `expf` is a call per value, which was 5% of a
//! training step in cross-entropy alone), and running a loop compiled for
//! AVX2 where the CPU has it. Both paths compute the same IEEE operations in
//! the same order, so they give the same bits.

/// e^x within 2 ulp of the correctly rounded value for x in [−87.3, 88]
/// (Cephes' `expf`: x = n·ln 2 + r, |r| ≤ ln 2 / 2, a degree-6 polynomial
/// for e^r, and 2^n put into the exponent bits). Below that range it returns
/// the smallest normal number rather than 0, above it e^88 (2^n must fit the
/// exponent bits); NaN stays NaN. Branch-free, so that loops over it
/// vectorize.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.336_55 { -87.336_55 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let y = p * (r * r) + r + 1.0;
    // 2^n as exponent bits; n lies in [-126, 127] after the clamps.
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    y * scale
}

/// The sum of `x` in eight lanes (a vector's worth), then across them.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    lane_sum(x, |v| v)
}

/// Σ x² in eight lanes.
#[inline(always)]
pub(crate) fn sum_of_squares(x: &[f32]) -> f32 {
    lane_sum(x, |v| v * v)
}

/// Σ f(x) in eight lanes, so that the compiler keeps one vector of partial sums.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += f(v);
    }
    lanes.iter().sum()
}

/// Σ a·b·c in eight lanes.
#[inline(always)]
pub(crate) fn sum_of_products3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let n = a.len().min(b.len()).min(c.len());
    let whole = n - n % 8;
    for at in (0..whole).step_by(8) {
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane += a[at + i] * b[at + i] * c[at + i];
        }
    }
    for (i, lane) in lanes.iter_mut().enumerate().take(n - whole) {
        *lane += a[whole + i] * b[whole + i] * c[whole + i];
    }
    lanes.iter().sum()
}

/// The largest of `x` (NaNs are passed over), in eight lanes.
#[inline(always)]
pub(crate) fn max(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane = if *v > *lane { *v } else { *lane };
        }
    }
    for (lane, v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane = if *v > *lane { *v } else { *lane };
    }
    lanes
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// Runs `f` compiled for AVX2 when the CPU has it, else as it is.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just found to have AVX2.
        return unsafe { avx2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_sum_and_max_every_value() {
        let x: Vec<f32> = (0..37).map(|i| ((i * 17) % 23) as f32 - 11.0).collect();
        assert_eq!(sum(&x), x.iter().sum::<f32>());
        assert_eq!(max(&x), 11.0);
        assert_eq!(
            max(&x[..3]),
            x[..3].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
        );
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let exact = f64::from(x).exp();
            let got = f64::from(exp(x));
            let ulp = f64::from(f32::EPSILON) * exact;
            worst = worst.max((got - exact).abs() / ulp);
            x += 0.000_731;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1000.0) <= f32::MIN_POSITIVE && exp(f32::NEG_INFINITY) <= f32::MIN_POSITIVE);
        assert!(exp(1000.0).is_finite());
    }
}
