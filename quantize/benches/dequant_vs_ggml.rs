//! Single-thread dequantization throughput of decant's kernels against llama.cpp's
//! `dequantize_row_*`, both called in this process on the same input; the outputs must
//! be bit-identical, or the bench fails. Linux only.
//!
//!   cargo bench -p quantize --bench dequant_vs_ggml [-- TYPE...]
//!
//! llama.cpp's kernels come from `libggml-base.so`: `$DECANT_LIBGGML`, or the one in
//! the llama-cpp-python of `~/.cache/decant/venv` (`bash tools/setup-python.sh
//! --with-llama`). `DECANT_BENCH_ELEMENTS` sets the row length (default 16M) and
//! `DECANT_BENCH_REPS` the repetitions (default 15). Each row reports the median
//! thread CPU time and `ours/ggml`, ggml's time over ours: above 1 we are faster.

use std::ffi::c_void;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use quantize::{GgmlType, dequantize};

/// ggml's `ggml_to_float_t`.
type ToFloat = unsafe extern "C" fn(*const c_void, *mut f32, i64);

struct Case {
    ty: GgmlType,
    /// The exported ggml function, the one its type traits name as `to_float`.
    symbol: &'static str,
    /// Byte offsets of half-precision scales in a block, set to ordinary values so
    /// neither side runs into NaN or subnormal arithmetic that real weights never have.
    f16_scales: &'static [usize],
}

const fn case(ty: GgmlType, symbol: &'static str, f16_scales: &'static [usize]) -> Case {
    Case {
        ty,
        symbol,
        f16_scales,
    }
}

const CASES: &[Case] = &[
    case(GgmlType::Q4_0, "dequantize_row_q4_0", &[0]),
    case(GgmlType::Q4_1, "dequantize_row_q4_1", &[0, 2]),
    case(GgmlType::Q5_0, "dequantize_row_q5_0", &[0]),
    case(GgmlType::Q5_1, "dequantize_row_q5_1", &[0, 2]),
    case(GgmlType::Q8_0, "dequantize_row_q8_0", &[0]),
    case(GgmlType::Q2K, "dequantize_row_q2_K", &[80, 82]),
    case(GgmlType::Q3K, "dequantize_row_q3_K", &[108]),
    case(GgmlType::Q4K, "dequantize_row_q4_K", &[0, 2]),
    case(GgmlType::Q5K, "dequantize_row_q5_K", &[0, 2]),
    case(GgmlType::Q6K, "dequantize_row_q6_K", &[208]),
    case(GgmlType::Tq1_0, "dequantize_row_tq1_0", &[52]),
    case(GgmlType::Tq2_0, "dequantize_row_tq2_0", &[64]),
    case(GgmlType::Mxfp4, "dequantize_row_mxfp4", &[]),
    case(GgmlType::F16, "ggml_fp16_to_fp32_row", &[0]),
    case(GgmlType::Bf16, "ggml_bf16_to_fp32_row", &[]),
];

fn find_libggml() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DECANT_LIBGGML") {
        return Some(PathBuf::from(path));
    }
    let cache = std::env::var_os("DECANT_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/decant"))
        })?;
    let lib = cache.join("venv/lib");
    std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .map(|python| {
            python
                .path()
                .join("site-packages/llama_cpp/lib/libggml-base.so")
        })
        .find(|path| path.exists())
}

/// splitmix64: reproducible input without a dependency.
fn random_bytes(len: usize, mut state: u64) -> Vec<u8> {
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&next().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

fn input(case: &Case, elements: usize) -> Vec<u8> {
    let ty = case.ty;
    let mut src = random_bytes(elements / ty.block_size() * ty.type_size(), ty.id().into());
    for (i, block) in src.chunks_exact_mut(ty.type_size()).enumerate() {
        for &offset in case.f16_scales {
            // Exponents 2^-10 .. 2^-3 with a varying mantissa: typical weight scales.
            let bits = 0x1800 + ((i as u16).wrapping_mul(0x9E5) % 0x1C00);
            block[offset..offset + 2].copy_from_slice(&bits.to_le_bytes());
        }
        if ty == GgmlType::Mxfp4 {
            block[0] = 118 + (i % 8) as u8;
        }
    }
    src
}

/// CPU time of this thread: other processes on a busy machine then only slow the
/// kernels through shared caches and memory, not by preempting them.
fn thread_cpu_time() -> Duration {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid `struct timespec` (64-bit Linux layout) to write.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const HOW_TO_GET_LIBGGML: &str = "set DECANT_LIBGGML to a libggml-base.so, or build \
    llama-cpp-python into ~/.cache/decant/venv with `bash tools/setup-python.sh --with-llama`";

fn main() -> ExitCode {
    let Some(path) = find_libggml() else {
        eprintln!("libggml-base.so not found: {HOW_TO_GET_LIBGGML}");
        return ExitCode::from(2);
    };
    // SAFETY: loading runs ggml's initialisers, which have no preconditions.
    let lib = match unsafe { libloading::Library::new(&path) } {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!("cannot load {}: {e}; {HOW_TO_GET_LIBGGML}", path.display());
            return ExitCode::from(2);
        }
    };
    // `cargo bench` passes `--bench`; other arguments pick types by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let elements = env_usize("DECANT_BENCH_ELEMENTS", 16 << 20).next_multiple_of(256);
    let reps = env_usize("DECANT_BENCH_REPS", 15).max(1);

    println!("libggml: {}", path.display());
    println!("{elements} elements, median thread CPU time of {reps} runs; GB/s of f32 output");
    println!(
        "{:<7} {:>10} {:>10} {:>9} {:>9} {:>10}",
        "type", "ours ms", "ggml ms", "ours GB/s", "ggml GB/s", "ours/ggml"
    );
    let mut mismatches = 0;
    // Both sides write the same buffer, so page placement (huge pages or not) cannot
    // favour one of them.
    let mut dst = vec![0.0_f32; elements];
    let mut reference = vec![0.0_f32; elements];
    for case in CASES {
        if !filter.is_empty()
            && !filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(case.ty.name()))
        {
            continue;
        }
        // SAFETY: the symbol is a `ggml_to_float_t` (ggml-quants.h, ggml.h).
        let ggml: ToFloat = match unsafe { lib.get::<ToFloat>(case.symbol.as_bytes()) } {
            Ok(f) => *f,
            Err(e) => {
                eprintln!("{}: {e}", case.symbol);
                mismatches += 1;
                continue;
            }
        };
        let src = input(case, elements);
        let run_ours = |dst: &mut [f32]| {
            let start = thread_cpu_time();
            dequantize(case.ty, black_box(&src), dst).expect("whole blocks");
            black_box(dst);
            thread_cpu_time() - start
        };
        let run_ggml = |dst: &mut [f32]| {
            let start = thread_cpu_time();
            // SAFETY: `src` holds `elements / block_size` whole blocks and `dst` has
            // room for `elements` values, which is what ggml reads and writes.
            unsafe {
                ggml(
                    black_box(src.as_ptr()).cast(),
                    dst.as_mut_ptr(),
                    elements as i64,
                )
            };
            black_box(dst);
            thread_cpu_time() - start
        };
        run_ggml(&mut reference);
        run_ours(&mut dst);
        let differ = dst
            .iter()
            .zip(&reference)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        if differ != 0 {
            eprintln!(
                "{}: {differ} of {elements} values differ from ggml",
                case.ty
            );
            mismatches += 1;
        }
        // Alternate the two so that frequency or cache drift hits both alike.
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            ours.push(run_ours(&mut dst));
            theirs.push(run_ggml(&mut dst));
        }
        let (ours, theirs) = (median(ours), median(theirs));
        let gbps = |t: Duration| (elements * 4) as f64 / t.as_secs_f64() / 1e9;
        println!(
            "{:<7} {:>10.2} {:>10.2} {:>9.2} {:>9.2} {:>10.2}",
            case.ty.name(),
            ours.as_secs_f64() * 1e3,
            theirs.as_secs_f64() * 1e3,
            gbps(ours),
            gbps(theirs),
            theirs.as_secs_f64() / ours.as_secs_f64(),
        );
    }
    if mismatches != 0 {
        eprintln!("{mismatches} type(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
