//! Changing a GGUF file's metadata after it was written (decant's eval stage
//! records its findings in the files it evaluated): the file is written again
//! with the entries set, each existing key keeping its place and new keys
//! following, and the tensor data copied byte for byte. The new file replaces
//! the old by rename, so readers see one or the other, never a mix.

use std::path::Path;

use super::{GgufError, GgufFile, GgufWriter, Value};

/// Sets `entries` in the metadata of the GGUF file at `path`.
pub fn set_metadata(path: &Path, entries: &[(String, Value)]) -> Result<(), GgufError> {
    let file = GgufFile::open(path)?;
    let unchanged = entries.iter().all(|(key, value)| file.get(key) == Some(value));
    if unchanged {
        return Ok(());
    }
    let mut writer = GgufWriter::new();
    for (key, value) in file.metadata() {
        let value = entries.iter().find(|(k, _)| k == key).map_or(value, |(_, v)| v);
        writer.metadata(key.clone(), value.clone())?;
    }
    for (key, value) in entries.iter().filter(|(key, _)| file.get(key).is_none()) {
        writer.metadata(key.clone(), value.clone())?;
    }
    let mut infos = writer.finish_metadata();
    for tensor in file.tensors() {
        infos.tensor_info(tensor.name.clone(), &tensor.shape, tensor.ggml_type)?;
    }
    let mut data = infos.write_file(path)?;
    for tensor in file.tensors() {
        data.write_tensor(&tensor.name, file.tensor_data(tensor))?;
    }
    data.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GgmlType;

    #[test]
    fn entries_are_replaced_in_place_or_appended_and_tensors_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let mut w = GgufWriter::new();
        w.metadata("general.architecture", "llama").unwrap().metadata("general.name", "old").unwrap();
        let mut infos = w.finish_metadata();
        infos.tensor_info("a", &[4], GgmlType::F32).unwrap().tensor_info("b", &[3], GgmlType::F32).unwrap();
        let mut data = infos.write_file(&path).unwrap();
        data.write_tensor("a", &[1; 16]).unwrap();
        data.write_tensor("b", &[2; 12]).unwrap();
        data.finish().unwrap();

        let entries = [
            ("general.name".to_owned(), Value::from("new")),
            ("decant.cascade.threshold".to_owned(), Value::F32(-0.25)),
        ];
        set_metadata(&path, &entries).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let keys: Vec<&str> = file.metadata().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["general.architecture", "general.name", "decant.cascade.threshold"]);
        assert_eq!(file.get("general.name").and_then(Value::as_str), Some("new"));
        assert_eq!(file.get("decant.cascade.threshold"), Some(&Value::F32(-0.25)));
        assert_eq!(file.tensor_data(file.tensor("a").unwrap()), [1; 16]);
        assert_eq!(file.tensor_data(file.tensor("b").unwrap()), [2; 12]);

        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        set_metadata(&path, &entries).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), before, "unchanged entries rewrite nothing");
    }
}
