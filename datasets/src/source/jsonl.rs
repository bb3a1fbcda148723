//! JSON Lines: one JSON object per line, read a line at a time.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::{Location, RawRecord};
use crate::error::{DatasetError, Result};
use crate::record::json_kind;

pub(super) struct JsonlRows {
    path: Arc<Path>,
    reader: BufReader<File>,
    line: u64,
    buffer: Vec<u8>,
}

impl JsonlRows {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.into(),
            reader: BufReader::with_capacity(1 << 16, file),
            line: 0,
            buffer: Vec::new(),
        })
    }

    fn location(&self) -> Location {
        Location::Line {
            path: self.path.clone(),
            line: self.line,
        }
    }

    fn parse(&self) -> Result<RawRecord> {
        let location = self.location();
        // Without its line ending, so that an unterminated string reports
        // the end of the line rather than a control character.
        let line = self.buffer.strip_suffix(b"\n").unwrap_or(&self.buffer);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let value: Value = serde_json::from_slice(line).map_err(|error| {
            DatasetError::Json {
                message: error.to_string(),
            }
            .at(&location)
        })?;
        match value {
            Value::Object(fields) => Ok(RawRecord {
                location,
                fields,
                columns: None,
            }),
            other => Err(DatasetError::NotAnObject {
                found: json_kind(&other),
            }
            .at(&location)),
        }
    }
}

impl Iterator for JsonlRows {
    type Item = Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buffer.clear();
            self.line += 1;
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(DatasetError::Io {
                        path: self.path.to_path_buf(),
                        source,
                    }));
                }
            }
            // Blank lines, such as a trailing one, separate no records.
            if !self.buffer.iter().all(u8::is_ascii_whitespace) {
                return Some(self.parse());
            }
        }
    }
}
