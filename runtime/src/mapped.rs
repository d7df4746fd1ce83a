//! A read-only memory map of an `.mxrt` file: the weights are used where they lie, never copied. (A file image
//! already in memory, as `mxrt sweep` builds them, is used the same way.)

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

/// A mapped file (or an in-memory image). [`MappedFile::validate`] gives the validated, zero-copy view of its
/// tensors.
pub struct MappedFile {
    path: PathBuf,
    bytes: Backing,
}

enum Backing {
    Mapped(Mmap),
    InMemory(Vec<u8>),
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
            bytes: Backing::Mapped(map),
        })
    }

    /// A file image built in memory; `name` stands for the path in messages.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> MappedFile {
        MappedFile {
            path: PathBuf::from(name),
            bytes: Backing::InMemory(bytes),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Backing::Mapped(map) => map,
            Backing::InMemory(bytes) => bytes,
        }
    }

    /// Validates the whole file (structure always, tensor checksums when `options` ask).
    pub fn validate(&self, options: ReadOptions) -> Result<MxrtFile<'_>, OpenError> {
        MxrtFile::parse(self.bytes(), options).map_err(|source| OpenError::Invalid {
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

    #[test]
    fn an_in_memory_image_is_validated_like_a_file() {
        let err = MappedFile::from_bytes("point-007.mxrt", b"MXRT but far too short".to_vec())
            .validate(ReadOptions::default())
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("point-007.mxrt") && err.to_string().contains("truncated"),
            "{err}"
        );
        let err = crate::Model::from_bytes("empty.mxrt", Vec::new(), ReadOptions::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("empty.mxrt"), "{err}");
    }
}
