//! Float-to-integer conversions exactly as ggml's quantizers perform them.

/// ggml's `nearest_int`: adding 1.5·2^23 leaves the rounded integer (ties to even)
/// in the low mantissa bits. Exact for |x| ≤ 2^22; beyond that ggml only asserts in
/// debug builds, and this gives the same bits it computes.
#[inline(always)]
pub(super) fn nearest_int(x: f32) -> i32 {
    let bits = (x + 12_582_912.0).to_bits() as i32;
    (bits & 0x007F_FFFF) - 0x0040_0000
}

/// A C cast of a float to a (narrow) integer type as GCC compiles it for x86-64:
/// `cvttss2si` truncates toward zero and gives `i32::MIN`, the "integer indefinite",
/// for NaN and out-of-range values, where Rust's `as` would saturate; the narrow
/// type then keeps the low bits. Scales that overflow `1/d` (subnormal rows) reach
/// this with infinities and NaNs.
#[inline(always)]
pub(super) fn c_cast(x: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        x as i32
    } else {
        i32::MIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        for (x, want) in [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (3.49, 3),
            (-7.6, -8),
        ] {
            assert_eq!(nearest_int(x), want, "{x}");
        }
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
        assert_eq!(nearest_int(-4_194_303.0), -4_194_303);
    }

    #[test]
    fn c_cast_truncates_and_is_indefinite_out_of_range() {
        assert_eq!(c_cast(8.99), 8);
        assert_eq!(c_cast(-8.99), -8);
        assert_eq!(c_cast(f32::NAN), i32::MIN);
        assert_eq!(c_cast(f32::INFINITY), i32::MIN);
        assert_eq!(c_cast(f32::NEG_INFINITY), i32::MIN);
        assert_eq!(c_cast(3e9), i32::MIN);
        assert_eq!(c_cast(-2_147_483_648.0), i32::MIN);
    }
}
