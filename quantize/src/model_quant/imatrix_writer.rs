//! Writing importance matrices in the GGUF format llama-imatrix writes: the key
//! `general.type = "imatrix"`, the datasets, chunk count and chunk size, then per
//! weight (names sorted) its raw per-column sums of squared activations
//! `<weight>.in_sum2` (`[ne0, n_mat]`, F32) and the rows summed per matrix
//! `<weight>.counts` (`[1, n_mat]`, F32), as `save_imatrix` lays them out.

use std::path::Path;

use crate::GgmlType;
use crate::gguf::{GgufError, GgufWriter, Value};

use super::imatrix::{CHUNK_COUNT_KEY, CHUNK_SIZE_KEY, COUNTS_SUFFIX, DATASETS_KEY, SUMS_SUFFIX};

/// One weight's statistics: `sums` holds `counts.len()` matrices of columns one
/// after another (several only for stacked experts).
#[derive(Clone, Copy, Debug)]
pub struct ImatrixEntry<'a> {
    pub name: &'a str,
    pub sums: &'a [f32],
    pub counts: &'a [f32],
}

/// What the file says about how it was computed.
#[derive(Clone, Debug)]
pub struct ImatrixMeta<'a> {
    /// The texts it was computed on, as the user named them.
    pub datasets: &'a [String],
    pub chunk_count: u32,
    /// Tokens per chunk.
    pub chunk_size: u32,
}

/// Writes `entries` to `path`, which is replaced only once the file is complete.
/// Entries are written in name order whatever order they come in.
pub fn write_imatrix(
    path: &Path,
    entries: &[ImatrixEntry<'_>],
    meta: &ImatrixMeta<'_>,
) -> Result<(), GgufError> {
    let mut sorted: Vec<&ImatrixEntry<'_>> = entries.iter().collect();
    sorted.sort_by_key(|e| e.name);
    let mut writer = GgufWriter::new();
    writer.metadata("general.type", "imatrix")?;
    let datasets: Vec<&str> = meta.datasets.iter().map(String::as_str).collect();
    writer.metadata(DATASETS_KEY, datasets)?;
    writer.metadata(CHUNK_COUNT_KEY, Value::U32(meta.chunk_count))?;
    writer.metadata(CHUNK_SIZE_KEY, Value::U32(meta.chunk_size))?;
    let mut infos = writer.finish_metadata();
    for entry in &sorted {
        let n_mat = entry.counts.len() as u64;
        assert!(
            n_mat > 0 && entry.sums.len() as u64 % n_mat == 0,
            "'{}': {} sums do not split into {n_mat} matrices",
            entry.name,
            entry.sums.len()
        );
        let ne0 = entry.sums.len() as u64 / n_mat;
        // ggml drops trailing dimensions of 1, as gguf_add_tensor writes them.
        let shape = |ne0: u64| if n_mat == 1 { vec![ne0] } else { vec![ne0, n_mat] };
        infos.tensor_info(format!("{}{SUMS_SUFFIX}", entry.name), &shape(ne0), GgmlType::F32)?;
        infos.tensor_info(format!("{}{COUNTS_SUFFIX}", entry.name), &shape(1), GgmlType::F32)?;
    }
    let mut data = infos.write_file(path)?;
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for entry in &sorted {
        data.write_tensor(&format!("{}{SUMS_SUFFIX}", entry.name), &bytes(entry.sums))?;
        data.write_tensor(&format!("{}{COUNTS_SUFFIX}", entry.name), &bytes(entry.counts))?;
    }
    data.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;
    use crate::model_quant::Imatrix;

    #[test]
    fn written_files_read_back_as_llama_quantize_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imatrix.gguf");
        std::fs::write(&path, "old").unwrap();
        let datasets = vec!["calibration.txt".to_owned()];
        let entries = [
            ImatrixEntry {
                name: "blk.1.ffn_down.weight",
                sums: &[8.0, 4.0, 12.0],
                counts: &[4.0],
            },
            ImatrixEntry {
                name: "blk.0.attn_q.weight",
                sums: &[1.0, 2.0, 3.0, 4.0],
                counts: &[2.0, 1.0],
            },
        ];
        let meta = ImatrixMeta {
            datasets: &datasets,
            chunk_count: 2,
            chunk_size: 512,
        };
        write_imatrix(&path, &entries, &meta).unwrap();

        let file = GgufFile::open(&path).unwrap();
        let names: Vec<(&str, &[u64])> = file
            .tensors()
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice()))
            .collect();
        assert_eq!(
            names,
            [
                ("blk.0.attn_q.weight.in_sum2", &[2u64, 2][..]),
                ("blk.0.attn_q.weight.counts", &[1u64, 2][..]),
                ("blk.1.ffn_down.weight.in_sum2", &[3u64][..]),
                ("blk.1.ffn_down.weight.counts", &[1u64][..]),
            ]
        );
        let keys: Vec<&str> = file.metadata().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["general.type", DATASETS_KEY, CHUNK_COUNT_KEY, CHUNK_SIZE_KEY]
        );
        drop(file);
        let imatrix = Imatrix::load(&path).unwrap();
        assert_eq!(imatrix.weights["blk.1.ffn_down.weight"], [2.0, 1.0, 3.0]);
        assert_eq!(imatrix.weights["blk.0.attn_q.weight"], [0.5, 1.0, 3.0, 4.0]);
        assert_eq!((imatrix.chunk_count, imatrix.datasets), (2, datasets));
    }
}
