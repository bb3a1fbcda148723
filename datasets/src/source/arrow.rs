//! Arrow IPC, read one record batch at a time: the file format (`ARROW1`
//! magic, Feather v2) and the stream format Hugging Face `datasets` writes.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_ipc::reader::{FileReader, StreamReader};
use arrow_schema::ArrowError;

use super::cells::Projection;
use super::ipc_check;
use super::{Location, RawRecord};
use crate::caught::caught;
use crate::error::{DatasetError, Result};

const FILE_MAGIC: &[u8; 6] = b"ARROW1";

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

pub(super) struct ArrowRows {
    path: Arc<Path>,
    batches: Batches,
    projection: Projection,
    batch: Option<RecordBatch>,
    batch_index: usize,
    row_in_batch: usize,
    row: u64,
}

impl ArrowRows {
    pub fn open(path: &Path, columns: &[&str]) -> Result<Self> {
        let io = |source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        };
        let decode = |error: ArrowError| DatasetError::Decode {
            origin: path.display().to_string(),
            message: format!("not a readable Arrow IPC file: {error}"),
        };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut magic = [0u8; 6];
        let is_file_format = file.read_exact(&mut magic).is_ok() && &magic == FILE_MAGIC;
        let checked = if is_file_format {
            ipc_check::check_file(&mut file, len)
        } else {
            ipc_check::check_stream(&mut file, len)
        };
        checked.map_err(|message| DatasetError::Decode {
            origin: path.display().to_string(),
            message: format!("not a readable Arrow IPC file: {message}"),
        })?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let reader = BufReader::new(file);
        let (schema, batches): (_, Batches) = if is_file_format {
            let reader = FileReader::try_new(reader, None).map_err(decode)?;
            (reader.schema(), Box::new(reader))
        } else {
            let reader = StreamReader::try_new(reader, None).map_err(decode)?;
            (reader.schema(), Box::new(reader))
        };
        Ok(Self {
            path: path.into(),
            batches,
            projection: Projection::new(&schema, columns),
            batch: None,
            batch_index: 0,
            row_in_batch: 0,
            row: 0,
        })
    }
}

impl Iterator for ArrowRows {
    type Item = Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(batch) = &self.batch {
                if self.row_in_batch < batch.num_rows() {
                    let location = Location::ArrowRow {
                        path: self.path.clone(),
                        row: self.row,
                        batch: self.batch_index,
                    };
                    let record = self
                        .projection
                        .record(batch, false, self.row_in_batch, location);
                    self.row_in_batch += 1;
                    self.row += 1;
                    return Some(record);
                }
                self.batch = None;
                self.batch_index += 1;
            }
            let next = caught(|| self.batches.next()).unwrap_or_else(|panic| {
                // A reader that panicked is not read again.
                self.batches = Box::new(std::iter::empty());
                Some(Err(ArrowError::IpcError(format!(
                    "the Arrow reader panicked: {panic}"
                ))))
            });
            match next? {
                Ok(batch) => {
                    self.batch = Some(batch);
                    self.row_in_batch = 0;
                }
                Err(error) => {
                    return Some(Err(DatasetError::Decode {
                        origin: format!(
                            "{}: record batch {}",
                            self.path.display(),
                            self.batch_index
                        ),
                        message: error.to_string(),
                    }));
                }
            }
        }
    }
}
