//! Writes small JSON Lines, Parquet and Arrow IPC files for the reader tests.
//! Each test binary uses part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, StructBuilder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Fields};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

pub fn write_jsonl(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    path
}

/// A batch of the given columns.
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

pub fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(values.iter().copied().collect::<StringArray>())
}

/// A `list<struct<role: string, content: string>>` column, as Hugging Face
/// `datasets` stores OpenAI-style messages.
pub fn messages(conversations: &[&[(&str, &str)]]) -> ArrayRef {
    let fields = Fields::from(vec![
        Field::new("role", DataType::Utf8, true),
        Field::new("content", DataType::Utf8, true),
    ]);
    let mut list = ListBuilder::new(StructBuilder::from_fields(fields, 0));
    for conversation in conversations {
        for (role, content) in *conversation {
            let message = list.values();
            message
                .field_builder::<StringBuilder>(0)
                .unwrap()
                .append_value(role);
            message
                .field_builder::<StringBuilder>(1)
                .unwrap()
                .append_value(content);
            message.append(true);
        }
        list.append(true);
    }
    Arc::new(list.finish())
}

/// A Parquet file of `batch` in row groups of `row_group_rows` rows.
pub fn write_parquet(path: &Path, batch: &RecordBatch, row_group_rows: usize) -> PathBuf {
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut writer = ArrowWriter::try_new(
        File::create(path).unwrap(),
        batch.schema(),
        Some(properties),
    )
    .unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    path.to_path_buf()
}

/// An Arrow IPC file (`ARROW1` magic) of `batch`, in record batches of
/// `batch_rows` rows.
pub fn write_arrow_file(path: &Path, batch: &RecordBatch, batch_rows: usize) -> PathBuf {
    let mut writer =
        arrow_ipc::writer::FileWriter::try_new(File::create(path).unwrap(), &batch.schema())
            .unwrap();
    for part in split(batch, batch_rows) {
        writer.write(&part).unwrap();
    }
    writer.finish().unwrap();
    path.to_path_buf()
}

/// An Arrow IPC stream, as Hugging Face `datasets` caches a dataset.
pub fn write_arrow_stream(path: &Path, batch: &RecordBatch, batch_rows: usize) -> PathBuf {
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(File::create(path).unwrap(), &batch.schema())
            .unwrap();
    for part in split(batch, batch_rows) {
        writer.write(&part).unwrap();
    }
    writer.finish().unwrap();
    path.to_path_buf()
}

fn split(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(rows)
        .map(|start| batch.slice(start, rows.min(batch.num_rows() - start)))
        .collect()
}
