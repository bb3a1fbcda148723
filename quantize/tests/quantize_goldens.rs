//! Quantization against goldens from llama.cpp's own `ggml_quantize_chunk`
//! (`tools/goldens/quantize_ggml.py`): every byte must be the same, with and
//! without importance weights, and the result must dequantize cleanly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use quantize::{GgmlType, dequantize_to_vec, quantize_chunk, quantize_to_vec};
use serde_json::Value;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/quantize")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_f32(path: &Path) -> Vec<f32> {
    read(path)
        .as_chunks()
        .0
        .iter()
        .map(|b| f32::from_le_bytes(*b))
        .collect()
}

struct Case {
    name: String,
    n_per_row: usize,
    rows: Vec<f32>,
    imatrix: Vec<f32>,
}

struct Golden {
    ty: GgmlType,
    case: usize,
    imatrix: bool,
    bytes: Vec<u8>,
}

struct Goldens {
    cases: Vec<Case>,
    goldens: Vec<Golden>,
}

static GOLDENS: LazyLock<Goldens> = LazyLock::new(|| {
    let dir = golden_dir();
    let manifest: Value = serde_json::from_slice(&read(&dir.join("manifest.json"))).unwrap();
    let field = |entry: &Value, key: &str| {
        let value = entry[key].as_u64();
        value.unwrap_or_else(|| panic!("manifest: {key} of {entry}")) as usize
    };
    let inputs = read_f32(&dir.join("inputs.f32"));
    let imatrices = read_f32(&dir.join("imatrix.f32"));
    let cases: Vec<Case> = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let n_per_row = field(c, "n_per_row");
            let values = field(c, "nrows") * n_per_row;
            let (at, imatrix_at) = (field(c, "values_at"), field(c, "imatrix_at"));
            Case {
                name: c["name"].as_str().unwrap().to_owned(),
                n_per_row,
                rows: inputs[at..at + values].to_vec(),
                imatrix: imatrices[imatrix_at..imatrix_at + n_per_row].to_vec(),
            }
        })
        .collect();
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let goldens = manifest["goldens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let ty = g["type"].as_str().unwrap();
            let case = g["case"].as_str().unwrap();
            let file = g["file"].as_str().unwrap();
            let bytes = files
                .entry(file.to_owned())
                .or_insert_with(|| read(&dir.join(file)));
            let at = field(g, "at");
            Golden {
                ty: GgmlType::from_name(ty).unwrap_or_else(|| panic!("unknown type {ty}")),
                case: cases.iter().position(|c| c.name == case).unwrap(),
                imatrix: g["imatrix"].as_bool().unwrap(),
                bytes: bytes[at..at + field(g, "len")].to_vec(),
            }
        })
        .collect();
    Goldens { cases, goldens }
});

/// Types whose output ggml computes without the importance matrix even when given one.
fn ignores_imatrix(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 | GgmlType::Q8_0
    )
}

fn first_difference(ty: GgmlType, ours: &[u8], expected: &[u8]) -> Option<String> {
    assert_eq!(ours.len(), expected.len(), "{ty}: byte count");
    let size = ty.type_size();
    let blocks = ours.chunks(size).zip(expected.chunks(size));
    let differing: Vec<usize> = blocks
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect();
    let &first = differing.first()?;
    let (ours_block, expected_block) = (
        &ours[first * size..][..size],
        &expected[first * size..][..size],
    );
    let byte = ours_block
        .iter()
        .zip(expected_block)
        .position(|(a, b)| a != b)
        .unwrap();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    Some(format!(
        "{} of {} blocks differ; first is block {first} (values {}..), from its byte {byte}:\n  ours   {}\n  ggml's {}",
        differing.len(),
        ours.len() / size,
        first * ty.block_size(),
        hex(ours_block),
        hex(expected_block),
    ))
}

/// Round-trips through the dequantizer: a value per input, all finite (inputs stay
/// within f16 range), and on the Gaussian rows an RMS error well below the signal.
fn check_round_trip(ty: GgmlType, case: &Case, bytes: &[u8]) {
    let values = dequantize_to_vec(ty, bytes).unwrap();
    assert_eq!(values.len(), case.rows.len(), "{ty} {}", case.name);
    assert!(
        values.iter().all(|v| v.is_finite()),
        "{ty} {}: non-finite values",
        case.name
    );
    if case.name.starts_with("normal-") {
        let sum_sq = |it: &mut dyn Iterator<Item = f32>| it.map(|v| v * v).sum::<f32>();
        let signal = sum_sq(&mut case.rows.iter().copied());
        let noise = sum_sq(&mut case.rows.iter().zip(&values).map(|(x, y)| x - y));
        let relative = (noise / signal).sqrt();
        assert!(
            relative < 0.5,
            "{ty} {}: relative RMS error {relative}",
            case.name
        );
    }
}

fn check(ty: GgmlType) {
    let goldens = &*GOLDENS;
    let mut failures = Vec::new();
    let mut checked = 0;
    for golden in goldens.goldens.iter().filter(|g| g.ty == ty) {
        let case = &goldens.cases[golden.case];
        let imatrix = golden.imatrix.then_some(&case.imatrix[..]);
        let ours = quantize_to_vec(ty, &case.rows, case.n_per_row, imatrix).unwrap();
        let label = format!(
            "{ty} {}{}",
            case.name,
            if golden.imatrix { " imatrix" } else { "" }
        );
        if let Some(difference) = first_difference(ty, &ours, &golden.bytes) {
            failures.push(format!("{label}: {difference}"));
            continue;
        }
        if ignores_imatrix(ty) {
            let weighted = quantize_to_vec(ty, &case.rows, case.n_per_row, Some(&case.imatrix));
            assert_eq!(weighted.unwrap(), golden.bytes, "{label}: with an imatrix");
        }

        // Two chunks, split after the first row, write the same bytes.
        let mut split = vec![0_u8; ours.len()];
        let (first, rest) = case.rows.split_at(case.n_per_row);
        let written = quantize_chunk(ty, first, case.n_per_row, imatrix, &mut split).unwrap();
        quantize_chunk(ty, rest, case.n_per_row, imatrix, &mut split[written..]).unwrap();
        assert_eq!(split, ours, "{label}: in two chunks");

        check_round_trip(ty, case, &ours);
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} golden(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 0, "{ty}: no goldens");
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
    q4_0: Q4_0,
    q4_1: Q4_1,
    q5_0: Q5_0,
    q5_1: Q5_1,
    q8_0: Q8_0,
    q2_k: Q2K,
    q3_k: Q3K,
    q4_k: Q4K,
    q5_k: Q5K,
    q6_k: Q6K,
    iq4_nl: Iq4Nl,
    iq4_xs: Iq4Xs,
}

/// The goldens cover exactly the tested types, each with and without importance
/// weights (where they matter) on every case its block size allows.
#[test]
fn goldens_cover_every_type_and_case() {
    let goldens = &*GOLDENS;
    for g in &goldens.goldens {
        assert!(TESTED.contains(&g.ty), "golden for untested type {}", g.ty);
    }
    for &ty in TESTED {
        for (i, case) in goldens.cases.iter().enumerate() {
            if case.n_per_row % ty.block_size() != 0 {
                continue;
            }
            for imatrix in [false, true] {
                let expected = !(imatrix && ignores_imatrix(ty));
                let present = goldens
                    .goldens
                    .iter()
                    .any(|g| g.ty == ty && g.case == i && g.imatrix == imatrix);
                assert_eq!(present, expected, "{ty} {} imatrix={imatrix}", case.name);
            }
        }
    }
}
