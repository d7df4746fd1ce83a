//! Output paths, checked before anything is written: never an input (or a file of an input directory), never
//! an existing device, FIFO or directory, each in an existing directory, no two outputs the same; and a
//! SIGINT/SIGTERM handler that removes the temporary file of a write in progress before exiting.

use std::path::Path;

use anyhow::{bail, Result};

/// Checks every output of a command against its inputs and each other, before the command writes any of them
/// (so a bad `--report` path cannot fail after the model file was already replaced).
pub fn check_outputs(outputs: &[&Path], inputs: &[&Path]) -> Result<()> {
    for (i, out) in outputs.iter().enumerate() {
        mxrt_format::check_output(out, inputs)?;
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            bail!(
                "cannot write {}: directory {} does not exist",
                out.display(),
                dir.display()
            );
        }
        if let Some(other) = outputs[..i].iter().find(|o| same_path(o, out)) {
            bail!(
                "{} is given as two outputs ({} and {})",
                out.display(),
                other.display(),
                out.display()
            );
        }
    }
    Ok(())
}

/// The same place on disk: equal after resolving the directory (the file itself may not exist yet).
fn same_path(a: &Path, b: &Path) -> bool {
    let resolve = |p: &Path| {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        dir.canonicalize()
            .ok()
            .map(|d| d.join(p.file_name().unwrap_or_default()))
    };
    a == b || (resolve(a).is_some() && resolve(a) == resolve(b))
}

/// On SIGINT, SIGTERM or SIGHUP: remove the temporary files of writes in progress (the targets are untouched:
/// they are replaced only by a rename once complete) and exit with status 130.
pub fn remove_partial_files_on_signals() {
    // If a handler cannot be installed the default action (exit) still applies, and the next write into that
    // directory removes what it left behind: nothing to report.
    let _ = ctrlc::set_handler(|| {
        let removed = mxrt_format::remove_partial_files();
        if removed > 0 {
            eprintln!("mxrt: interrupted; removed {removed} unfinished output file(s)");
        }
        std::process::exit(130);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_checked_against_inputs_directories_and_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("model.safetensors");
        std::fs::write(&input, b"x").unwrap();
        let err = |outs: &[&Path], ins: &[&Path]| check_outputs(outs, ins).unwrap_err().to_string();
        // The input itself, through another spelling, and as a file of an input directory.
        let dotted = dir.path().join(".").join("model.safetensors");
        assert!(err(&[&dotted], &[&input]).contains("it is also an input"));
        assert!(err(&[&input], &[dir.path()]).contains("a file of the input"));
        // A hard link is the same file under another name.
        let link = dir.path().join("link.safetensors");
        std::fs::hard_link(&input, &link).unwrap();
        assert!(err(&[&link], &[&input]).contains("it is also an input"));
        // A directory, a missing directory, and one path given twice.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(err(&[&sub], &[]).contains("not a regular file (a directory)"));
        let missing = dir.path().join("nope/out.mxrt");
        assert!(err(&[&missing], &[]).contains("does not exist"));
        let out = dir.path().join("out.mxrt");
        assert!(err(&[&out, &dotted.with_file_name("out.mxrt")], &[]).contains("two outputs"));
        // A new file next to the input is fine.
        check_outputs(&[&out], &[&input, dir.path()]).unwrap();
    }
}
