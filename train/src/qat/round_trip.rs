//! `dequantize(quantize(rows))` on the host, rows spread over threads.

use quantize::GgmlType;

use crate::error::TrainError;

/// One tensor after the round trip.
pub struct RoundTrip {
    /// The values the exported file dequantizes to.
    pub values: Vec<f32>,
    /// Per value: whether its block could represent it (it was rounded, not
    /// clipped). Only computed when asked for.
    pub inside: Option<Vec<bool>>,
}

/// `values`, rows of `row` values, through `ty`'s quantize and dequantize
/// kernels. `tensor` names the weight in errors.
pub fn round_trip(
    tensor: &str,
    ty: GgmlType,
    values: &[f32],
    row: usize,
    with_range: bool,
    threads: usize,
) -> Result<RoundTrip, TrainError> {
    let fail = |message: String| TrainError::FakeQuant {
        tensor: tensor.to_owned(),
        ty,
        message,
    };
    let row_bytes = quantize::quant::row_size(ty, row).map_err(|e| fail(e.to_string()))?;
    if row == 0 || !values.len().is_multiple_of(row) {
        return Err(fail(format!(
            "holds {} values, not whole rows of {row}",
            values.len()
        )));
    }
    let n_rows = values.len() / row;
    let rows_per_part = n_rows.div_ceil(threads.max(1)).max(1);
    let mut out = vec![0f32; values.len()];
    let mut inside = with_range.then(|| vec![false; values.len()]);
    let mut inside_parts: Vec<Option<&mut [bool]>> = match inside.as_mut() {
        Some(mask) => mask.chunks_mut(rows_per_part * row).map(Some).collect(),
        None => (0..n_rows.div_ceil(rows_per_part)).map(|_| None).collect(),
    };
    std::thread::scope(|scope| {
        let parts: Vec<_> = values
            .chunks(rows_per_part * row)
            .zip(out.chunks_mut(rows_per_part * row))
            .zip(inside_parts.iter_mut())
            .map(|((src, dst), mask)| {
                scope.spawn(move || -> Result<(), String> {
                    let mut bytes = vec![0u8; src.len() / row * row_bytes];
                    quantize::quantize_chunk(ty, src, row, None, &mut bytes)
                        .map_err(|e| e.to_string())?;
                    quantize::dequantize(ty, &bytes, dst).map_err(|e| e.to_string())?;
                    if let Some(mask) = mask {
                        let flags = quantize::inside_range(ty, src, row, &bytes)
                            .map_err(|e| e.to_string())?;
                        mask.copy_from_slice(&flags);
                    }
                    Ok(())
                })
            })
            .collect();
        parts
            .into_iter()
            .map(|p| p.join().expect("the quantization kernels do not panic"))
            .try_for_each(|r| r.map_err(fail))
    })?;
    Ok(RoundTrip {
        values: out,
        inside,
    })
}
