//! Destinations for the writer: memory, or a file that appears atomically.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Where a [`super::TensorDataWriter`] sends its bytes.
pub trait Sink: Write {
    /// What the sink yields once complete.
    type Output;

    /// Names the destination in error messages.
    fn path(&self) -> &Path;

    /// Called once, after the last byte: make the output durable and visible.
    fn complete(self) -> io::Result<Self::Output>;
}

impl Sink for Vec<u8> {
    type Output = Vec<u8>;

    fn path(&self) -> &Path {
        Path::new("<memory>")
    }

    fn complete(self) -> io::Result<Vec<u8>> {
        Ok(self)
    }
}

/// A file written under a temporary name (`<name>.XXXXXX.tmp`) in its final
/// directory and renamed into place only when complete, so nobody sees a partial
/// file at the final path: a failed or abandoned write deletes the temporary file
/// and leaves whatever was at the path before untouched.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    file: BufWriter<NamedTempFile>,
}

impl AtomicFile {
    pub fn create(path: impl AsRef<Path>) -> io::Result<AtomicFile> {
        let path = path.as_ref().to_owned();
        let Some(name) = path.file_name() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"));
        };
        let mut prefix = name.to_owned();
        prefix.push(".");
        // The same directory, so the final rename never crosses file systems; the
        // random part keeps concurrent writers and leftovers of crashed ones apart.
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // A temporary file is private (0600) by default; the finished file gets
        // the mode `File::create` would give it, the umask applied.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let tmp = builder.tempfile_in(parent_dir(&path))?;
        Ok(AtomicFile { path, file: BufWriter::with_capacity(1 << 20, tmp) })
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sink for AtomicFile {
    type Output = PathBuf;

    fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs the data, renames over the final path and syncs the directory
    /// so the rename itself survives a crash. Should only that last sync fail, the
    /// file at the final path is already complete.
    fn complete(self) -> io::Result<PathBuf> {
        let tmp = self.file.into_inner().map_err(io::IntoInnerError::into_error)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        #[cfg(unix)]
        std::fs::File::open(parent_dir(&self.path))?.sync_all()?;
        Ok(self.path)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn finished_files_get_the_mode_of_a_created_file() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let mut atomic = AtomicFile::create(dir.path().join("atomic.gguf")).unwrap();
        atomic.write_all(b"GGUF").unwrap();
        let done = atomic.complete().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&done), mode(&plain));
    }
}
