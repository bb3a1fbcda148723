//! The float stage shared by the block kernels: sixteen small integers widened to
//! `f32` and scaled.
//!
//! Kernels first unpack their quants to bytes with plain Rust (that bit work
//! vectorises 16 lanes wide on its own), then finish here. Left to itself the
//! compiler fuses the two stages and runs the byte work 4 lanes wide at the width of
//! the floats, or vectorises across sub-blocks and scatters the stores, so on
//! x86_64 this stage is written with SSE2, which every x86_64 CPU has. Elsewhere it
//! is the plain loop. Both compute each value with exactly the operations named,
//! in that order, so results are bit-identical.
//!
//! Kernels fill their byte arrays with loops rather than array `map`, which is not
//! reliably inlined and then costs a call per 16 values.

/// `q - offset` as signed bytes; with offset 0, bytes that hold `i8`s.
#[inline(always)]
pub(super) fn signed(q: &[u8; 16], offset: i8) -> [i8; 16] {
    let mut s = [0; 16];
    for (s, &q) in s.iter_mut().zip(q) {
        *s = (q as i8).wrapping_sub(offset);
    }
    s
}

/// `y = q * d`.
#[inline(always)]
pub(super) fn mul(q: &[i8; 16], d: f32, y: &mut [f32; 16]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86_64 baseline.
    unsafe {
        sse2::mul(q, d, y);
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable::mul(q, d, y);
}

/// `y = d * q - m`.
#[inline(always)]
pub(super) fn mul_sub(q: &[u8; 16], d: f32, m: f32, y: &mut [f32; 16]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86_64 baseline.
    unsafe {
        sse2::mul_sub(q, d, m, y);
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable::mul_sub(q, d, m, y);
}

/// `y = q * d + m`.
#[inline(always)]
pub(super) fn mul_add(q: &[u8; 16], d: f32, m: f32, y: &mut [f32; 16]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86_64 baseline.
    unsafe {
        sse2::mul_add(q, d, m, y);
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable::mul_add(q, d, m, y);
}

#[cfg(any(not(target_arch = "x86_64"), test))]
mod portable {
    pub(super) fn mul(q: &[i8; 16], d: f32, y: &mut [f32; 16]) {
        for (y, &q) in y.iter_mut().zip(q) {
            *y = f32::from(q) * d;
        }
    }

    pub(super) fn mul_sub(q: &[u8; 16], d: f32, m: f32, y: &mut [f32; 16]) {
        for (y, &q) in y.iter_mut().zip(q) {
            *y = d * f32::from(q) - m;
        }
    }

    pub(super) fn mul_add(q: &[u8; 16], d: f32, m: f32, y: &mut [f32; 16]) {
        for (y, &q) in y.iter_mut().zip(q) {
            *y = f32::from(q) * d + m;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128, __m128i, _mm_add_ps, _mm_cmpgt_epi8, _mm_cmpgt_epi16, _mm_cvtepi32_ps,
        _mm_loadu_si128, _mm_mul_ps, _mm_set1_ps, _mm_setzero_si128, _mm_storeu_ps, _mm_sub_ps,
        _mm_unpackhi_epi8, _mm_unpackhi_epi16, _mm_unpacklo_epi8, _mm_unpacklo_epi16,
    };

    #[inline(always)]
    fn load<T>(q: &[T; 16]) -> __m128i {
        const { assert!(size_of::<T>() == 1) };
        // SAFETY: reads the 16 bytes of `q`; `loadu` has no alignment requirement.
        unsafe { _mm_loadu_si128(q.as_ptr().cast()) }
    }

    #[inline(always)]
    fn store([a, b, c, d]: [__m128; 4], y: &mut [f32; 16]) {
        let p = y.as_mut_ptr();
        // SAFETY: writes the 16 floats of `y`; `storeu` has no alignment requirement.
        unsafe {
            _mm_storeu_ps(p, a);
            _mm_storeu_ps(p.add(4), b);
            _mm_storeu_ps(p.add(8), c);
            _mm_storeu_ps(p.add(12), d);
        }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn widen_u8(q: &[u8; 16]) -> [__m128; 4] {
        let (v, zero) = (load(q), _mm_setzero_si128());
        let (lo, hi) = (_mm_unpacklo_epi8(v, zero), _mm_unpackhi_epi8(v, zero));
        [
            _mm_cvtepi32_ps(_mm_unpacklo_epi16(lo, zero)),
            _mm_cvtepi32_ps(_mm_unpackhi_epi16(lo, zero)),
            _mm_cvtepi32_ps(_mm_unpacklo_epi16(hi, zero)),
            _mm_cvtepi32_ps(_mm_unpackhi_epi16(hi, zero)),
        ]
    }

    /// Sign extension without SSE4.1: interleave each value with its sign mask.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn widen_i8(q: &[i8; 16]) -> [__m128; 4] {
        let (v, zero) = (load(q), _mm_setzero_si128());
        let sign = _mm_cmpgt_epi8(zero, v);
        let (lo, hi) = (_mm_unpacklo_epi8(v, sign), _mm_unpackhi_epi8(v, sign));
        let (slo, shi) = (_mm_cmpgt_epi16(zero, lo), _mm_cmpgt_epi16(zero, hi));
        [
            _mm_cvtepi32_ps(_mm_unpacklo_epi16(lo, slo)),
            _mm_cvtepi32_ps(_mm_unpackhi_epi16(lo, slo)),
            _mm_cvtepi32_ps(_mm_unpacklo_epi16(hi, shi)),
            _mm_cvtepi32_ps(_mm_unpackhi_epi16(hi, shi)),
        ]
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    pub(super) fn mul(q: &[i8; 16], d: f32, y: &mut [f32; 16]) {
        let d = _mm_set1_ps(d);
        let [a, b, c, e] = widen_i8(q);
        store(
            [
                _mm_mul_ps(a, d),
                _mm_mul_ps(b, d),
                _mm_mul_ps(c, d),
                _mm_mul_ps(e, d),
            ],
            y,
        );
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    pub(super) fn mul_sub(q: &[u8; 16], d: f32, m: f32, y: &mut [f32; 16]) {
        let (d, m) = (_mm_set1_ps(d), _mm_set1_ps(m));
        let f = |q| _mm_sub_ps(_mm_mul_ps(d, q), m);
        let [a, b, c, e] = widen_u8(q);
        store([f(a), f(b), f(c), f(e)], y);
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    pub(super) fn mul_add(q: &[u8; 16], d: f32, m: f32, y: &mut [f32; 16]) {
        let (d, m) = (_mm_set1_ps(d), _mm_set1_ps(m));
        let f = |q| _mm_add_ps(_mm_mul_ps(q, d), m);
        let [a, b, c, e] = widen_u8(q);
        store([f(a), f(b), f(c), f(e)], y);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Every byte value under scales of every kind, SSE2 against the plain loops.
    #[test]
    fn sse2_matches_portable() {
        let scales = [
            1.0,
            -0.37,
            6.0e4,
            5.96e-8,
            1.0e-40,
            0.0,
            -0.0,
            f32::MAX,
            f32::INFINITY,
        ];
        for chunk in 0..16_u8 {
            let q: [u8; 16] = std::array::from_fn(|i| chunk * 16 + i as u8);
            let signed = q.map(|b| b as i8);
            for d in scales {
                for m in scales {
                    let (mut ours, mut plain) = ([0.0; 16], [0.0; 16]);
                    let bits = |y: [f32; 16]| y.map(f32::to_bits);
                    mul(&signed, d, &mut ours);
                    portable::mul(&signed, d, &mut plain);
                    assert_eq!(bits(ours), bits(plain), "mul {d}");
                    mul_sub(&q, d, m, &mut ours);
                    portable::mul_sub(&q, d, m, &mut plain);
                    assert_eq!(bits(ours), bits(plain), "mul_sub {d} {m}");
                    mul_add(&q, d, m, &mut ours);
                    portable::mul_add(&q, d, m, &mut plain);
                    assert_eq!(bits(ours), bits(plain), "mul_add {d} {m}");
                }
            }
        }
    }
}
