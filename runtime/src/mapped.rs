//! A read-only memory map of an `.mxrt` file: the weights are used where they lie, never copied.

use std::path::{Path, PathBuf};

use memmap2::Mmap;
use mxrt_format::{MxrtFile, ReadOptions};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Invalid {
        path: PathBuf,
        source: mxrt_format::Error,
    },
}

/// A mapped file. [`MappedFile::validate`] gives the validated, zero-copy view of its tensors.
pub struct MappedFile {
    path: PathBuf,
    map: Mmap,
}

impl MappedFile {
    pub fn open(path: &Path) -> Result<MappedFile, OpenError> {
        let io = |source| OpenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = mxrt_format::open_regular_file(path).map_err(io)?;
        // SAFETY: read-only private mapping. The file must not be modified in place while mapped; mxrt's own
        // writers never do that (they write a temporary file and rename it over the target), and the reader
        // validates everything it reads from the mapping, so no byte pattern can cause undefined behaviour.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Validates the whole file (structure always, tensor checksums when `options` ask).
    pub fn validate(&self, options: ReadOptions) -> Result<MxrtFile<'_>, OpenError> {
        MxrtFile::parse(&self.map, options).map_err(|source| OpenError::Invalid {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_path() {
        let err = MappedFile::open(Path::new("/no/such/file.mxrt"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/no/such/file.mxrt"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk.mxrt");
        std::fs::write(&p, b"not an mxrt file at all").unwrap();
        let err = MappedFile::open(&p)
            .unwrap()
            .validate(ReadOptions::default())
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("junk.mxrt") && err.to_string().contains("truncated"),
            "{err}"
        );
    }
}
