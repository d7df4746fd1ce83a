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
    /// The mapped file was written in place after it was opened (`what` says how it differs): results computed
    /// from it cannot be trusted. Files replaced by a rename (what mxrt's writers do) never cause this.
    #[error(
        "{path} was modified in place while in use ({what}); its results are not trustworthy. Replace model \
         files atomically (write a new file and rename it over the old one, as mxrt's writers do)"
    )]
    Changed { path: PathBuf, what: String },
}

/// A mapped file (or an in-memory image). [`MappedFile::validate`] gives the validated, zero-copy view of its
/// tensors.
pub struct MappedFile {
    path: PathBuf,
    bytes: Backing,
}

enum Backing {
    /// The map, the open file and its length and modification time when mapped.
    Mapped(Mmap, std::fs::File, Stamp),
    InMemory(Vec<u8>),
}

/// What an in-place write changes: the length or the modification time of the open file.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Stamp {
    fn of(file: &std::fs::File) -> std::io::Result<Stamp> {
        let m = file.metadata()?;
        Ok(Stamp {
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}

impl MappedFile {
    pub fn open(path: &Path) -> Result<MappedFile, OpenError> {
        let io = |source| OpenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = mxrt_format::open_regular_file(path).map_err(io)?;
        let stamp = Stamp::of(&file).map_err(io)?;
        // SAFETY: read-only private mapping. The file must not be modified in place while mapped; mxrt's own
        // writers never do that (they write a temporary file and rename it over the target), and the reader
        // validates everything it reads from the mapping, so no byte pattern can cause undefined behaviour.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            bytes: Backing::Mapped(map, file, stamp),
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

    /// The image of [`MappedFile::from_bytes`], given back; `None` for a mapped file.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self.bytes {
            Backing::InMemory(bytes) => Some(bytes),
            Backing::Mapped(..) => None,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Backing::Mapped(map, ..) => map,
            Backing::InMemory(bytes) => bytes,
        }
    }

    /// An error when the mapped file was written in place since it was opened (its length or modification
    /// time changed). One `fstat`: callers check once per command or per large batch, not per small call.
    /// (A write that truncates the file under the map can still end the process with SIGBUS first: no
    /// check can prevent that; replacing files by rename avoids both.)
    pub fn check_unchanged(&self) -> Result<(), OpenError> {
        let Backing::Mapped(_, file, stamp) = &self.bytes else {
            return Ok(());
        };
        let now = Stamp::of(file).map_err(|source| OpenError::Io {
            path: self.path.clone(),
            source,
        })?;
        if now == *stamp {
            return Ok(());
        }
        let what = if now.len != stamp.len {
            format!("its length went from {} to {} bytes", stamp.len, now.len)
        } else {
            "its modification time changed".to_string()
        };
        Err(OpenError::Changed {
            path: self.path.clone(),
            what,
        })
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
    fn an_in_place_write_is_detected_and_a_rename_is_not() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        std::fs::write(&path, [1u8; 64]).unwrap();
        let mapped = MappedFile::open(&path).unwrap();
        mapped.check_unchanged().unwrap();
        // Replaced by a rename: the map still reads the old file, which did not change.
        let other = dir.path().join("new.bin");
        std::fs::write(&other, [2u8; 64]).unwrap();
        std::fs::rename(&other, &path).unwrap();
        mapped.check_unchanged().unwrap();
        assert_eq!(mapped.bytes()[0], 1);
        // Written in place (appending, as `cp` over a shorter file would grow it).
        let mapped = MappedFile::open(&path).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[3])
            .unwrap();
        let e = mapped.check_unchanged().unwrap_err().to_string();
        assert!(
            e.contains("modified in place") && e.contains("from 64 to 65 bytes"),
            "{e}"
        );
    }

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
