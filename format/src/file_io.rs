//! Files on disk: opening inputs (regular files only) and writing outputs atomically, through a temporary file
//! in the target directory renamed over the target only once complete, so an error never leaves a partial file.
//! Outputs are checked before anything is replaced: never one of the inputs, never a device, FIFO or directory.
//! Temporary files carry the writer's process id in their name (`.mxrt-partial-<pid>-…`): a signal handler can
//! remove those of a running write ([`remove_partial_files`]), and the next write into a directory removes those
//! a killed process left behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Name prefix of every temporary file this crate writes.
pub const PARTIAL_PREFIX: &str = ".mxrt-partial-";

/// Temporary files of writes in progress in this process (for [`remove_partial_files`]).
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes the temporary files of every write in progress in this process and returns how many it removed: for
/// a SIGINT/SIGTERM handler that then exits (the targets themselves are untouched).
pub fn remove_partial_files() -> usize {
    let paths = match IN_PROGRESS.lock() {
        Ok(mut list) => std::mem::take(&mut *list),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    paths.iter().filter(|p| remove_any(p)).count()
}

/// Removes a partial file, or a staging directory with what is in it.
fn remove_any(path: &Path) -> bool {
    if path.is_dir() {
        std::fs::remove_dir_all(path).is_ok()
    } else {
        std::fs::remove_file(path).is_ok()
    }
}

/// Several outputs that belong together (a sweep's results, charts and models): they are written into a
/// private staging directory beside `target`, named like our partial files (so the signal handler and the
/// stale-partial cleanup remove it), and [`StagedDir::commit`] moves them into `target`: by one rename of the
/// whole directory when `target` does not exist yet, else file by file (each replacement atomic). Dropped
/// without a commit (an error, a panic), the staging directory is removed: the outputs are complete or absent.
pub struct StagedDir {
    stage: Option<PathBuf>,
    target: PathBuf,
    _in_progress: InProgress,
}

impl StagedDir {
    pub fn new(target: &Path) -> Result<StagedDir> {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let io = |source| Error::Io {
            path: target.to_path_buf(),
            source,
        };
        if target.exists() && !target.is_dir() {
            return Err(Error::UnsafeOutput {
                path: target.to_path_buf(),
                reason: "it exists and is not a directory".into(),
            });
        }
        std::fs::create_dir_all(parent).map_err(io)?;
        remove_stale_partials(parent);
        let stage = tempfile::Builder::new()
            .prefix(&format!("{PARTIAL_PREFIX}{}-", std::process::id()))
            .tempdir_in(parent)
            .map_err(io)?
            .keep();
        Ok(StagedDir {
            _in_progress: InProgress::new(&stage),
            stage: Some(stage),
            target: target.to_path_buf(),
        })
    }

    /// Where to write the outputs meanwhile.
    pub fn path(&self) -> &Path {
        self.stage.as_deref().unwrap_or(&self.target)
    }

    /// Moves everything written into `target`.
    pub fn commit(mut self) -> Result<()> {
        let Some(stage) = self.stage.take() else {
            return Ok(());
        };
        let io = |path: &Path, source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        if !self.target.exists() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&stage, std::fs::Permissions::from_mode(0o755));
            }
            return std::fs::rename(&stage, &self.target).map_err(|e| io(&self.target, e));
        }
        let result = move_into(&stage, &self.target);
        let _ = std::fs::remove_dir_all(&stage);
        result.map_err(|e| io(&self.target, e))
    }
}

/// Renames every file under `from` to the same place under `to`, creating directories as needed.
fn move_into(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            move_into(&entry.path(), &dest)?;
        } else {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644))?;
            }
            std::fs::rename(entry.path(), dest)?;
        }
    }
    Ok(())
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if let Some(stage) = self.stage.take() {
            let _ = std::fs::remove_dir_all(stage);
        }
    }
}

/// Registers a temporary file while its write is in progress.
struct InProgress(PathBuf);

impl InProgress {
    fn new(path: &Path) -> InProgress {
        if let Ok(mut list) = IN_PROGRESS.lock() {
            list.push(path.to_path_buf());
        }
        InProgress(path.to_path_buf())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        if let Ok(mut list) = IN_PROGRESS.lock() {
            list.retain(|p| p != &self.0);
        }
    }
}

/// Refuses an output path that is one of `inputs`, or a file directly inside an input directory (a
/// checkpoint's own files), compared by identity (device and inode on Unix), not by spelling; and an existing
/// output that is not a regular file. Call it for every output of a command before writing any of them.
pub fn check_output(path: &Path, inputs: &[&Path]) -> Result<()> {
    let refuse = |reason: String| {
        Err(Error::UnsafeOutput {
            path: path.to_path_buf(),
            reason,
        })
    };
    let Ok(target) = std::fs::metadata(path) else {
        return Ok(()); // a new file (a missing directory is reported when writing)
    };
    if !target.is_file() {
        return refuse(format!(
            "it exists and is not a regular file ({}); an output is only ever written as a regular file",
            kind_of(&target)
        ));
    }
    for input in inputs {
        let Ok(meta) = std::fs::metadata(input) else {
            continue;
        };
        if meta.is_dir() {
            let inside = std::fs::read_dir(input)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .find(|p| std::fs::metadata(p).is_ok_and(|m| same_file(&m, &target)));
            if let Some(p) = inside {
                return refuse(format!(
                    "it is also an input: {}, a file of the input {}",
                    p.display(),
                    input.display()
                ));
            }
        } else if same_file(&meta, &target) {
            return refuse(format!("it is also an input ({})", input.display()));
        }
    }
    Ok(())
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    // Without inode numbers: same length and modification time is the best cheap evidence; callers also
    // compare canonical paths where they have them.
    a.len() == b.len()
        && a.modified().ok() == b.modified().ok()
        && a.created().ok() == b.created().ok()
}

/// Removes temporary files in `dir` that a process which no longer runs left behind (killed mid-write). On
/// Linux a writer is alive while `/proc/<pid>` exists; elsewhere, partial files older than a day are stale.
fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PARTIAL_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue; // not ours (or written before the pid was part of the name)
        };
        if pid != me && writer_is_gone(pid, &entry) {
            remove_any(&entry.path());
        }
    }
}

fn writer_is_gone(pid: u32, entry: &std::fs::DirEntry) -> bool {
    if Path::new("/proc/self").exists() {
        return !Path::new(&format!("/proc/{pid}")).exists();
    }
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600))
}

/// Opens `path` for reading, refusing directories and other non-regular files with a clear error (mapping a
/// directory would otherwise fail with an obscure "No such device"). The type is checked before opening, so a
/// FIFO is refused instead of blocking in `open` until a writer appears; and again on the open file.
pub fn open_regular_file(path: &Path) -> std::io::Result<File> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
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
    check_output(path, &[])?;
    remove_stale_partials(dir);
    // tempfile's own message names the random temporary file; the kind of failure is what a user needs.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{PARTIAL_PREFIX}{}-", std::process::id()))
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
    let _in_progress = InProgress::new(tmp.path());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry of writes in progress is per process: these tests take turns so that one's
    /// `remove_partial_files` never sees another's write.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn a_signal_handler_can_remove_the_partial_file_of_a_write_in_progress() {
        let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.mxrt");
        std::fs::write(&target, b"old").unwrap();
        let partials = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX))
                .count()
        };
        let result = write_atomically(&target, |w| {
            w.write_all(b"new, half written")?;
            assert_eq!(partials(), 1);
            // What the CLI's SIGINT/SIGTERM handler does before exiting.
            assert_eq!(remove_partial_files(), 1);
            assert_eq!(partials(), 0);
            Err(std::io::Error::other("interrupted"))
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(remove_partial_files(), 0, "nothing stays registered");
    }

    #[test]
    fn partial_files_of_dead_writers_are_removed_by_the_next_write() {
        if !Path::new("/proc/self").exists() {
            return; // the liveness test needs /proc (elsewhere: age; not worth a day's wait here)
        }
        let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(format!("{PARTIAL_PREFIX}4000000000-abc")); // above any pid_max
        let alive = dir.path().join(format!("{PARTIAL_PREFIX}1-abc")); // init never exits
        let foreign = dir.path().join(format!("{PARTIAL_PREFIX}abc")); // not of our naming
        for p in [&dead, &alive, &foreign] {
            std::fs::write(p, b"x").unwrap();
        }
        write_atomically(&dir.path().join("out"), |w| w.write_all(b"ok")).unwrap();
        assert!(!dead.exists());
        assert!(alive.exists() && foreign.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no mkfifo here: nothing to test
        }
        // Opening a FIFO for reading blocks until a writer appears: this returning at all is the test.
        let e = open_regular_file(&fifo).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file");
    }

    #[test]
    fn existing_special_files_are_never_replaced() {
        let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let e = write_atomically(dir.path(), |w| w.write_all(b"x")).unwrap_err();
        assert!(matches!(e, Error::UnsafeOutput { .. }), "{e}");
        assert!(e.to_string().contains("(a directory)"), "{e}");
        #[cfg(unix)]
        {
            let e = write_atomically(Path::new("/dev/null"), |w| w.write_all(b"x")).unwrap_err();
            assert!(e.to_string().contains("(a device)"), "{e}");
            assert!(!Path::new("/dev/null").is_file());
        }
    }
}
