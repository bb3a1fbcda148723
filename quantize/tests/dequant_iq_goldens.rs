//! IQ dequantization against goldens from gguf-py, cross-checked against
//! llama.cpp's own kernels (`tools/goldens/dequant_iq.py`): every value must have
//! the same bits.

use std::path::PathBuf;

use quantize::{GgmlType, dequantize, dequantize_to_vec};

fn read(ty: GgmlType, extension: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/goldens/dequant_iq")
        .join(format!("{}.{extension}", ty.name()));
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
    iq1_s: Iq1S,
    iq1_m: Iq1M,
    iq2_xxs: Iq2Xxs,
    iq2_xs: Iq2Xs,
    iq2_s: Iq2S,
    iq3_xxs: Iq3Xxs,
    iq3_s: Iq3S,
    iq4_nl: Iq4Nl,
    iq4_xs: Iq4Xs,
}

#[test]
fn every_iq_type_is_tested() {
    for ty in GgmlType::ALL {
        assert!(
            !ty.name().starts_with("iq") || TESTED.contains(&ty),
            "{ty} has no golden test"
        );
    }
}
