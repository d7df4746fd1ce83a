//! Files on disk: opening inputs (regular files only) and writing outputs atomically, through a temporary file
//! in the target directory renamed over the target only once complete, so an error never leaves a partial file.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Opens `path` for reading, refusing directories and other non-regular files with a clear error (mapping a
/// directory would otherwise fail with an obscure "No such device").
pub fn open_regular_file(path: &Path) -> std::io::Result<File> {
    let file = File::open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

/// Writes `path` through a temporary file in the same directory, synced and renamed over `path` only when
/// `fill` succeeded. On any error the temporary file is removed and an existing `path` is left untouched.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        let missing = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("directory {} does not exist", dir.display()),
        );
        return Err(io(missing));
    }
    // tempfile's own message names the random temporary file; the kind of failure is what a user needs.
    let mut tmp = tempfile::Builder::new()
        .prefix(".mxrt-partial-")
        .tempfile_in(dir)
        .map_err(|e| {
            io(std::io::Error::new(
                e.kind(),
                format!(
                    "cannot create a temporary file in {}: {}",
                    dir.display(),
                    e.kind()
                ),
            ))
        })?;
    {
        let mut buffered = std::io::BufWriter::new(tmp.as_file_mut());
        fill(&mut buffered).map_err(io)?;
        buffered.flush().map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    let permissions = final_permissions(path, tmp.as_file()).map_err(io)?;
    tmp.as_file().set_permissions(permissions).map_err(io)?;
    tmp.persist(path).map_err(|e| {
        io(e.error
            .raw_os_error()
            .map_or(e.error, std::io::Error::from_raw_os_error))
    })?;
    Ok(())
}

/// The temporary file is created private (0600); the result gets the permissions of the file it replaces, or
/// the usual 0644 for a new file (elsewhere than Unix: the temporary file's own, which are the defaults there).
fn final_permissions(path: &Path, tmp: &std::fs::File) -> std::io::Result<std::fs::Permissions> {
    if let Ok(meta) = std::fs::metadata(path) {
        return Ok(meta.permissions());
    }
    #[cfg(unix)]
    {
        let _ = tmp;
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::Permissions::from_mode(0o644))
    }
    #[cfg(not(unix))]
    {
        tmp.metadata().map(|m| m.permissions())
    }
}
