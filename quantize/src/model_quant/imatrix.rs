//! Importance matrices as llama-quantize reads them: the GGUF format llama-imatrix
//! writes (`<weight>.in_sum2` and `<weight>.counts` tensors, `imatrix.*` keys) and
//! the legacy `.dat` format, both turned into one weight per column and matrix.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::GgmlType;
use crate::gguf::{GgufFile, TensorInfo, Value};

use super::error::ImatrixError;

pub(super) const SUMS_SUFFIX: &str = ".in_sum2";
pub(super) const COUNTS_SUFFIX: &str = ".counts";
pub(super) const DATASETS_KEY: &str = "imatrix.datasets";
pub(super) const CHUNK_COUNT_KEY: &str = "imatrix.chunk_count";
pub(super) const CHUNK_SIZE_KEY: &str = "imatrix.chunk_size";

/// Per-column importance weights for the weights of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Imatrix {
    /// The file as the user named it; llama-quantize records that string.
    pub source: String,
    /// Weight name → `ne0 × n_matrices` weights (experts one after another).
    pub weights: HashMap<String, Vec<f32>>,
    /// The texts it was computed on.
    pub datasets: Vec<String>,
    /// Chunks of text it was computed on (0 when the file does not say).
    pub chunk_count: u32,
}

impl Imatrix {
    /// Reads a GGUF imatrix, or a legacy `.dat` one when the file is not GGUF.
    pub fn load(path: &Path) -> Result<Imatrix, ImatrixError> {
        let bytes = std::fs::read(path).map_err(|source| ImatrixError::Io {
            path: path.to_owned(),
            source,
        })?;
        let imatrix = if bytes.starts_with(crate::gguf::MAGIC) {
            let file = GgufFile::from_bytes(bytes, path)?;
            from_gguf(&file, path)?
        } else {
            from_legacy(&bytes, path)?
        };
        if let Some((name, _)) = imatrix
            .weights
            .iter()
            .find(|(_, w)| w.iter().any(|v| !v.is_finite()))
        {
            return Err(ImatrixError::NonFinite {
                path: path.to_owned(),
                entry: name.clone(),
            });
        }
        Ok(imatrix)
    }

    /// The metadata llama-quantize adds to a file quantized with this imatrix, in
    /// its order. Strings are cut to the 127 bytes its fixed buffers hold.
    pub fn metadata(&self) -> Vec<(&'static str, Value)> {
        let mut kv = vec![(
            "quantize.imatrix.file",
            Value::from(truncated(&self.source)),
        )];
        if let Some(dataset) = self.datasets.first() {
            kv.push(("quantize.imatrix.dataset", Value::from(truncated(dataset))));
        }
        kv.push((
            "quantize.imatrix.entries_count",
            Value::U32(self.weights.len() as u32),
        ));
        if self.chunk_count > 0 {
            kv.push((
                "quantize.imatrix.chunks_count",
                Value::U32(self.chunk_count),
            ));
        }
        kv
    }
}

fn truncated(s: &str) -> &str {
    let mut end = s.len().min(127);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Weights are `in_sum2 / count` per matrix, and 1 for a matrix that never saw
/// input during calibration (count 0).
fn from_gguf(file: &GgufFile, path: &Path) -> Result<Imatrix, ImatrixError> {
    let malformed = |problem: String| ImatrixError::Malformed {
        path: path.to_owned(),
        problem,
    };
    if file.tensors().is_empty() {
        return Err(malformed("it holds no tensors".into()));
    }
    let datasets = file
        .get(DATASETS_KEY)
        .and_then(Value::as_array)
        .and_then(|a| a.as_strings());
    let chunk_count = file.get(CHUNK_COUNT_KEY).and_then(Value::as_u64);
    let (Some(datasets), Some(chunk_count), Some(_)) =
        (datasets, chunk_count, file.get(CHUNK_SIZE_KEY))
    else {
        return Err(malformed(format!(
            "missing imatrix metadata ({DATASETS_KEY}, {CHUNK_COUNT_KEY}, {CHUNK_SIZE_KEY})"
        )));
    };

    let mut pairs: BTreeMap<&str, (Option<&TensorInfo>, Option<&TensorInfo>)> = BTreeMap::new();
    for info in file.tensors() {
        if let Some(name) = info.name.strip_suffix(SUMS_SUFFIX) {
            pairs.entry(name).or_default().0 = Some(info);
        } else if let Some(name) = info.name.strip_suffix(COUNTS_SUFFIX) {
            pairs.entry(name).or_default().1 = Some(info);
        }
    }
    let mut weights = HashMap::with_capacity(pairs.len());
    for (name, pair) in pairs {
        let (Some(sums), Some(counts)) = pair else {
            return Err(malformed(format!(
                "'{name}' lacks its {SUMS_SUFFIX} or {COUNTS_SUFFIX} tensor"
            )));
        };
        let sums_values =
            f32_data(file, sums).ok_or_else(|| malformed(format!("'{}' is not F32", sums.name)))?;
        let counts_values = f32_data(file, counts)
            .ok_or_else(|| malformed(format!("'{}' is not F32", counts.name)))?;
        let ne0 = sums.shape.first().copied().unwrap_or(1) as usize;
        if ne0 == 0 {
            return Err(malformed(format!("'{}' has rows of no values", sums.name)));
        }
        let n_mat = sums_values.len() / ne0;
        if counts_values.len() != n_mat {
            return Err(malformed(format!(
                "'{name}' has {n_mat} matrices of sums but {} counts",
                counts_values.len()
            )));
        }
        let mut entry = sums_values;
        for (row, &count) in entry.chunks_exact_mut(ne0).zip(&counts_values) {
            for v in row {
                *v = if count > 0.0 { *v / count } else { 1.0 };
            }
        }
        weights.insert(name.to_owned(), entry);
    }
    Ok(Imatrix {
        source: path.display().to_string(),
        weights,
        datasets: datasets.to_vec(),
        chunk_count: u32::try_from(chunk_count).unwrap_or(u32::MAX),
    })
}

fn f32_data(file: &GgufFile, info: &TensorInfo) -> Option<Vec<f32>> {
    (info.ggml_type == GgmlType::F32).then(|| {
        let bytes = file.tensor_data(info);
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect()
    })
}

/// The legacy format: `n_entries`, then per entry its name, the number of calls
/// and the values (sums already scaled to that many calls), then optionally the
/// chunk count and the dataset name. Weights are values / calls.
fn from_legacy(bytes: &[u8], path: &Path) -> Result<Imatrix, ImatrixError> {
    let mut reader = Legacy {
        bytes,
        pos: 0,
        path,
    };
    let n_entries = reader.i32("the entry count")?;
    if n_entries < 1 {
        return Err(reader.malformed("it holds no entries".into()));
    }
    let mut weights = HashMap::new();
    for index in 0..n_entries {
        let len = reader.i32("an entry's name length")?;
        let name = String::from_utf8_lossy(reader.take(len, "an entry's name")?).into_owned();
        let ncall = reader.i32("an entry's call count")?;
        let nval = reader.i32("an entry's value count")?;
        if nval < 1 {
            return Err(reader.malformed(format!("entry #{index} '{name}' has {nval} values")));
        }
        let raw = reader.take(nval.saturating_mul(4), "an entry's values")?;
        let values = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .map(|v| if ncall > 0 { v / ncall as f32 } else { v })
            .collect();
        weights.insert(name, values);
    }
    let mut chunk_count = 0;
    let mut datasets = Vec::new();
    if reader.pos < bytes.len() {
        chunk_count = reader.i32("the chunk count")?;
        let len = reader.i32("the dataset name length")?;
        datasets.push(String::from_utf8_lossy(reader.take(len, "the dataset name")?).into_owned());
    }
    Ok(Imatrix {
        source: path.display().to_string(),
        weights,
        datasets,
        chunk_count: u32::try_from(chunk_count).unwrap_or(0),
    })
}

struct Legacy<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Legacy<'a> {
    fn malformed(&self, problem: String) -> ImatrixError {
        ImatrixError::Malformed {
            path: self.path.to_owned(),
            problem,
        }
    }

    fn take(&mut self, len: i32, what: &str) -> Result<&'a [u8], ImatrixError> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len));
        match end.and_then(|end| self.bytes.get(self.pos..end)) {
            Some(taken) => {
                self.pos += taken.len();
                Ok(taken)
            }
            None => Err(self.malformed(format!(
                "not a GGUF file, and as a legacy imatrix it is truncated at byte {} reading {what}",
                self.pos
            ))),
        }
    }

    fn i32(&mut self, what: &str) -> Result<i32, ImatrixError> {
        let bytes = self.take(4, what)?;
        Ok(i32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufWriter;

    fn legacy_bytes(trailer: bool) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(2i32.to_le_bytes());
        for (name, ncall, values) in [
            ("a.weight", 4i32, [4.0f32, 8.0]),
            ("b.weight", 0, [3.0, 5.0]),
        ] {
            b.extend((name.len() as i32).to_le_bytes());
            b.extend(name.as_bytes());
            b.extend(ncall.to_le_bytes());
            b.extend((values.len() as i32).to_le_bytes());
            values.iter().for_each(|v| b.extend(v.to_le_bytes()));
        }
        if trailer {
            b.extend(7i32.to_le_bytes());
            b.extend(8i32.to_le_bytes());
            b.extend(b"data.txt");
        }
        b
    }

    fn load(bytes: &[u8]) -> Result<Imatrix, ImatrixError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.dat");
        std::fs::write(&path, bytes).unwrap();
        Imatrix::load(&path)
    }

    #[test]
    fn legacy_values_are_divided_by_the_calls() {
        let m = load(&legacy_bytes(true)).unwrap();
        assert_eq!(m.weights["a.weight"], [1.0, 2.0]);
        assert_eq!(m.weights["b.weight"], [3.0, 5.0]);
        assert_eq!(
            (m.chunk_count, m.datasets.as_slice()),
            (7, ["data.txt".to_owned()].as_slice())
        );
        let bare = load(&legacy_bytes(false)).unwrap();
        assert_eq!((bare.chunk_count, bare.datasets.len()), (0, 0));
        let bytes = legacy_bytes(false);
        let err = load(&bytes[..bytes.len() - 2]).unwrap_err().to_string();
        assert!(err.contains("m.dat") && err.contains("truncated"), "{err}");
    }

    #[test]
    fn gguf_weights_are_sums_over_counts_and_one_without_counts() {
        let mut w = GgufWriter::new();
        w.metadata(DATASETS_KEY, vec!["train.txt"]).unwrap();
        w.metadata(CHUNK_COUNT_KEY, 3u32).unwrap();
        w.metadata(CHUNK_SIZE_KEY, 512u32).unwrap();
        let mut infos = w.finish_metadata();
        infos
            .tensor_info("x.weight.in_sum2", &[2, 2], GgmlType::F32)
            .unwrap();
        infos
            .tensor_info("x.weight.counts", &[1, 2], GgmlType::F32)
            .unwrap();
        let mut data = infos.write_to(Vec::new()).unwrap();
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        data.write_tensor("x.weight.in_sum2", &f32s(&[2.0, 6.0, 9.0, 9.0]))
            .unwrap();
        data.write_tensor("x.weight.counts", &f32s(&[2.0, 0.0]))
            .unwrap();
        let m = load(&data.finish().unwrap()).unwrap();
        assert_eq!(m.weights["x.weight"], [1.0, 3.0, 1.0, 1.0]);
        assert_eq!((m.chunk_count, m.datasets[0].as_str()), (3, "train.txt"));
        let keys: Vec<&str> = m.metadata().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "quantize.imatrix.file",
                "quantize.imatrix.dataset",
                "quantize.imatrix.entries_count",
                "quantize.imatrix.chunks_count"
            ]
        );
    }

    #[test]
    fn long_names_are_cut_as_llama_quantize_cuts_them() {
        assert_eq!(truncated(&"é".repeat(100)).len(), 126);
        assert_eq!(truncated("short"), "short");
    }
}
