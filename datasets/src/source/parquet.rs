//! Parquet, read one row group at a time and, within it, one record batch at a
//! time, decoding only the columns a record spec may read.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::file::metadata::ParquetMetaData;

use super::cells::Projection;
use super::{Location, RawRecord};
use crate::caught::caught;
use crate::error::{DatasetError, Result};

/// Rows decoded at a time: large enough to amortise decoding, small enough that
/// a row group of long documents does not have to fit in memory at once.
const BATCH_ROWS: usize = 1024;

pub(super) struct ParquetRows {
    path: Arc<Path>,
    file: File,
    metadata: ArrowReaderMetadata,
    projection: Projection,
    row_groups: usize,
    row_group: usize,
    reader: Option<ParquetRecordBatchReader>,
    batch: Option<RecordBatch>,
    row_in_batch: usize,
    row: u64,
}

impl ParquetRows {
    pub fn open(path: &Path, columns: &[&str]) -> Result<Self> {
        let file = File::open(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let metadata = ArrowReaderMetadata::load(&file, Default::default()).map_err(|error| {
            DatasetError::Decode {
                origin: path.display().to_string(),
                message: format!("not a readable Parquet file: {error}"),
            }
        })?;
        let file_len = file
            .metadata()
            .map_err(|source| DatasetError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        check_chunks(metadata.metadata(), file_len).map_err(|message| DatasetError::Decode {
            origin: path.display().to_string(),
            message: format!("not a readable Parquet file: {message}"),
        })?;
        let projection = Projection::new(metadata.schema(), columns);
        let row_groups = metadata.metadata().num_row_groups();
        Ok(Self {
            path: path.into(),
            file,
            metadata,
            projection,
            row_groups,
            row_group: 0,
            reader: None,
            batch: None,
            row_in_batch: 0,
            row: 0,
        })
    }

    fn decode_error(&self, error: impl std::fmt::Display) -> DatasetError {
        DatasetError::Decode {
            origin: format!("{}: row group {}", self.path.display(), self.row_group),
            message: error.to_string(),
        }
    }

    fn open_row_group(&self) -> Result<ParquetRecordBatchReader> {
        let file = self.file.try_clone().map_err(|source| DatasetError::Io {
            path: self.path.to_path_buf(),
            source,
        })?;
        let mask = ProjectionMask::roots(self.metadata.parquet_schema(), self.projection.indices());
        let build = || {
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_row_groups(vec![self.row_group])
                .with_projection(mask)
                .with_batch_size(BATCH_ROWS)
                .build()
        };
        match caught(build) {
            Ok(built) => built.map_err(|error| self.decode_error(error)),
            Err(panic) => Err(self.decode_error(format!("the Parquet reader panicked: {panic}"))),
        }
    }
}

/// `parquet` panics on a column chunk with a negative offset or size, and reads
/// a chunk by its recorded size; so every chunk must lie inside the file.
fn check_chunks(metadata: &ParquetMetaData, file_len: u64) -> std::result::Result<(), String> {
    for (index, group) in metadata.row_groups().iter().enumerate() {
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let len = column.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(start, len)| start.checked_add(len));
            if end.is_none_or(|end| end > file_len) {
                return Err(format!(
                    "row group {index}: column '{}' claims [offset {start}, {len} bytes), \
                     outside the file's {file_len} bytes",
                    column.column_path()
                ));
            }
        }
    }
    Ok(())
}

impl Iterator for ParquetRows {
    type Item = Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(batch) = &self.batch
                && self.row_in_batch < batch.num_rows()
            {
                let location = Location::ParquetRow {
                    path: self.path.clone(),
                    row: self.row,
                    row_group: self.row_group,
                };
                let record = self
                    .projection
                    .record(batch, true, self.row_in_batch, location);
                self.row_in_batch += 1;
                self.row += 1;
                return Some(record);
            }
            self.batch = None;
            if let Some(reader) = &mut self.reader {
                let next = caught(|| reader.next()).unwrap_or_else(|panic| {
                    Some(Err(ArrowError::ParquetError(format!(
                        "the Parquet reader panicked: {panic}"
                    ))))
                });
                match next {
                    Some(Ok(batch)) => {
                        self.batch = Some(batch);
                        self.row_in_batch = 0;
                        continue;
                    }
                    Some(Err(error)) => {
                        // A reader that failed, or panicked, is not read again.
                        self.reader = None;
                        self.row_group = self.row_groups;
                        return Some(Err(self.decode_error(error)));
                    }
                    None => {
                        self.reader = None;
                        self.row_group += 1;
                    }
                }
            }
            if self.row_group == self.row_groups {
                return None;
            }
            match self.open_row_group() {
                Ok(reader) => self.reader = Some(reader),
                Err(error) => return Some(Err(error)),
            }
        }
    }
}
