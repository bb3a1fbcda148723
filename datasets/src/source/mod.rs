//! Data files in, records out: JSON Lines, Parquet and Arrow IPC files, named
//! one by one, as directories or as globs, read as a stream (a record batch or
//! a line at a time, never a whole file) and interpreted through a
//! [`RecordSpec`].

mod arrow;
mod cells;
mod files;
mod ipc_check;
mod jsonl;
mod parquet;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::Result;
use crate::record::{Example, RecordSpec};

pub use files::{FileType, resolve_files};

/// Where a record comes from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A 1-based line of a JSON Lines file.
    Line { path: Arc<Path>, line: u64 },
    /// A 0-based row of a Parquet file, numbered as pandas numbers them, and
    /// the row group that holds it.
    ParquetRow {
        path: Arc<Path>,
        row: u64,
        row_group: usize,
    },
    /// A 0-based row of an Arrow IPC file and the record batch that holds it.
    ArrowRow {
        path: Arc<Path>,
        row: u64,
        batch: usize,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line { path, line } => write!(f, "{}:{line}", path.display()),
            Location::ParquetRow {
                path,
                row,
                row_group,
            } => write!(f, "{}: row {row} (row group {row_group})", path.display()),
            Location::ArrowRow { path, row, batch } => {
                write!(f, "{}: row {row} (record batch {batch})", path.display())
            }
        }
    }
}

/// One record as read, before it is interpreted: its fields as JSON values.
pub(crate) struct RawRecord {
    pub location: Location,
    pub fields: Map<String, Value>,
    /// The column names of a columnar file, all of them, where `fields` holds
    /// only the columns a [`RecordSpec`] may read.
    pub columns: Option<Arc<[String]>>,
}

impl RawRecord {
    /// The names of the record's fields, quoted, for error messages.
    pub fn field_names(&self) -> String {
        let quoted: Vec<String> = match &self.columns {
            Some(columns) => columns.iter().map(|name| format!("'{name}'")).collect(),
            None => self.fields.keys().map(|name| format!("'{name}'")).collect(),
        };
        match quoted.len() {
            0 => "no fields".to_owned(),
            1 => format!("only the field {}", quoted[0]),
            _ => format!("the fields {}", quoted.join(", ")),
        }
    }
}

/// One example and where it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub location: Location,
    pub example: Example,
}

/// A dataset on disk: its files in reading order and how to read a record.
#[derive(Clone, Debug)]
pub struct DataSource {
    files: Vec<PathBuf>,
    spec: RecordSpec,
}

impl DataSource {
    /// The files that `patterns` name (see [`resolve_files`]), read with `spec`.
    pub fn open(patterns: &[impl AsRef<str>], spec: RecordSpec) -> Result<Self> {
        Ok(Self::from_files(resolve_files(patterns)?, spec))
    }

    /// These files, in this order, read with `spec`.
    pub fn from_files(files: Vec<PathBuf>, spec: RecordSpec) -> Self {
        Self { files, spec }
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    pub fn spec(&self) -> &RecordSpec {
        &self.spec
    }

    /// The files for messages: the one file, or the first and how many more.
    pub fn origin(&self) -> String {
        match self.files.as_slice() {
            [] => "no data files".to_owned(),
            [one] => one.display().to_string(),
            [first, rest @ ..] => format!("{} and {} more file(s)", first.display(), rest.len()),
        }
    }

    /// Every record of every file, in order. Reading stops at the first error.
    pub fn records(&self) -> Records<'_> {
        Records {
            spec: &self.spec,
            files: self.files.iter(),
            rows: None,
            failed: false,
        }
    }
}

type Rows = Box<dyn Iterator<Item = Result<RawRecord>> + Send>;

/// The records of a [`DataSource`], file after file.
pub struct Records<'a> {
    spec: &'a RecordSpec,
    files: std::slice::Iter<'a, PathBuf>,
    rows: Option<Rows>,
    failed: bool,
}

impl Records<'_> {
    fn open(&self, path: &Path) -> Result<Rows> {
        let columns = self.spec.columns_read();
        Ok(match FileType::of(path)? {
            FileType::JsonLines => Box::new(jsonl::JsonlRows::open(path)?),
            FileType::Parquet => Box::new(parquet::ParquetRows::open(path, &columns)?),
            FileType::ArrowIpc => Box::new(arrow::ArrowRows::open(path, &columns)?),
        })
    }

    fn next_record(&mut self) -> Option<Result<Record>> {
        loop {
            if let Some(rows) = &mut self.rows {
                match rows.next() {
                    Some(Ok(raw)) => {
                        return Some(self.spec.example(&raw).map(|example| Record {
                            location: raw.location,
                            example,
                        }));
                    }
                    Some(Err(error)) => return Some(Err(error)),
                    None => self.rows = None,
                }
            }
            let path = self.files.next()?;
            match self.open(path) {
                Ok(rows) => self.rows = Some(rows),
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_record();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}
