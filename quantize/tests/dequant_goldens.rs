//! Dequantization against goldens from gguf-py and llama.cpp's own kernels
//! (`tools/goldens/dequant.py`): every value must have the same bits.

use std::path::PathBuf;

use quantize::{GgmlType, dequantize, dequantize_to_vec};

fn golden_path(ty: GgmlType, extension: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/dequant");
    dir.join(format!("{}.{extension}", ty.name()))
}

fn read(ty: GgmlType, extension: &str) -> Vec<u8> {
    let path = golden_path(ty, extension);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(ty: GgmlType) {
    let src = read(ty, "bin");
    let expected: Vec<u32> = read(ty, "f32")
        .as_chunks()
        .0
        .iter()
        .map(|b| u32::from_le_bytes(*b))
        .collect();

    let ours = dequantize_to_vec(ty, &src).unwrap();
    assert_eq!(ours.len(), expected.len(), "{ty}: value count");
    let differ: Vec<usize> = (0..ours.len())
        .filter(|&i| ours[i].to_bits() != expected[i])
        .collect();
    if let Some(&i) = differ.first() {
        let want = f32::from_bits(expected[i]);
        panic!(
            "{ty}: {} of {} values differ; first at {i} (block {}): got {:e} ({:#010x}), want {want:e} ({:#010x})",
            differ.len(),
            ours.len(),
            i / ty.block_size(),
            ours[i],
            ours[i].to_bits(),
            expected[i],
        );
    }

    // The slice entry point writes the same values.
    let mut dst = vec![f32::NAN; ours.len()];
    dequantize(ty, &src, &mut dst).unwrap();
    assert!(
        dst.iter()
            .zip(&ours)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "{ty}"
    );
}

macro_rules! golden_tests {
    ($($test:ident: $ty:ident,)*) => {
        const TESTED: &[GgmlType] = &[$(GgmlType::$ty),*];
        $(
            #[test]
            fn $test() {
                check(GgmlType::$ty);
            }
        )*
    };
}

golden_tests! {
    f32: F32,
    f16: F16,
    bf16: Bf16,
    f64: F64,
    i8: I8,
    i16: I16,
    i32: I32,
    i64: I64,
    q4_0: Q4_0,
    q4_1: Q4_1,
    q5_0: Q5_0,
    q5_1: Q5_1,
    q8_0: Q8_0,
    q8_1: Q8_1,
    q2_k: Q2K,
    q3_k: Q3K,
    q4_k: Q4K,
    q5_k: Q5K,
    q6_k: Q6K,
    q8_k: Q8K,
    tq1_0: Tq1_0,
    tq2_0: Tq2_0,
    mxfp4: Mxfp4,
}

/// Every type outside the IQ family (tested with its own goldens) is in the list above.
#[test]
fn every_non_iq_type_is_tested() {
    for ty in GgmlType::ALL {
        assert!(
            ty.name().starts_with("iq") || TESTED.contains(&ty),
            "{ty} has no golden test"
        );
    }
}
