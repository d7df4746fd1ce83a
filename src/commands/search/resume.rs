//! `mxrt search --resume`: trials already measured by an earlier run into the same `--out` are taken from
//! it instead of being evaluated again. Every trial is appended to `OUT/trials.partial.jsonl` as it finishes
//! (so an interrupted run leaves its work behind); a finished run leaves `OUT/trials.json`. Both start with
//! the run's fingerprint (checkpoint, data and its SHA-256, split, space, groups, calibration): trials are
//! reused only under the same fingerprint, matched by their choice, so a resumed run with the same seed
//! retraces its steps and goes on past them, and one with another budget re-judges the same measurements.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::Trial;

/// What a trial measured: weight bytes, metric, its standard error, seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub weight_bytes: u64,
    pub metric: Option<f64>,
    pub se_points: Option<f64>,
    pub seconds: f64,
}

pub(crate) const JOURNAL: &str = "trials.partial.jsonl";

/// The measurements of the trials of `trial_list` entries (JSON objects of [`Trial`]), by choice.
fn read_trials<'v>(
    list: impl Iterator<Item = &'v Value>,
    into: &mut HashMap<Vec<String>, Measured>,
) {
    for t in list {
        let choice: Option<Vec<String>> = t["choice"].as_array().map(|c| {
            c.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        });
        if let (Some(choice), Some(weight_bytes)) = (choice, t["weight_bytes"].as_u64()) {
            into.insert(
                choice,
                Measured {
                    weight_bytes,
                    metric: t["metric"].as_f64(),
                    se_points: t["se_points"].as_f64(),
                    seconds: t["seconds"].as_f64().unwrap_or(0.0),
                },
            );
        }
    }
}

/// The keys of the fingerprint that differ between `old` and `new`.
fn differences(old: &Value, new: &Value) -> Vec<String> {
    let keys = new
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>());
    keys.unwrap_or_default()
        .into_iter()
        .filter(|k| old.get(k) != new.get(k))
        .collect()
}

fn check(fingerprint_found: &Value, fingerprint: &Value, file: &Path) -> Result<()> {
    let diff = differences(fingerprint_found, fingerprint);
    if !diff.is_empty() {
        bail!(
            "--resume: {} comes from a different search ({} differ); use another --out or run without --resume",
            file.display(),
            diff.join(", ")
        );
    }
    Ok(())
}

/// The trials measured by earlier runs into `out` under this `fingerprint`.
pub(crate) fn load(out: &Path, fingerprint: &Value) -> Result<HashMap<Vec<String>, Measured>> {
    let mut found = HashMap::new();
    let (finished, journal) = (out.join("trials.json"), out.join(JOURNAL));
    if !finished.exists() && !journal.exists() {
        bail!(
            "--resume: {} holds no trials.json and no {JOURNAL} of an earlier search",
            out.display()
        );
    }
    if finished.exists() {
        let text = std::fs::read_to_string(&finished)
            .with_context(|| format!("reading {}", finished.display()))?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("--resume: {} is not JSON", finished.display()))?;
        check(&v["fingerprint"], fingerprint, &finished)?;
        read_trials(v["trial_list"].as_array().into_iter().flatten(), &mut found);
    }
    if journal.exists() {
        let file =
            File::open(&journal).with_context(|| format!("reading {}", journal.display()))?;
        let mut lines = BufReader::new(file).lines();
        let header: Option<Value> = lines
            .next()
            .and_then(|line| line.ok())
            .and_then(|line| serde_json::from_str(&line).ok());
        let Some(stamp) = header.as_ref().and_then(|h| h.get("fingerprint")) else {
            bail!(
                "--resume: {} does not start with a search's fingerprint (damaged or not ours): remove it or use another --out",
                journal.display()
            );
        };
        check(stamp, fingerprint, &journal)?;
        // A line cut short by an interruption is skipped: every whole line is a trial.
        let trials: Vec<Value> = lines
            .map_while(std::result::Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        read_trials(trials.iter(), &mut found);
    }
    Ok(found)
}

/// The journal this run appends its trials to.
pub(crate) struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    /// Starts `out/trials.partial.jsonl` afresh (read first by [`load`] when resuming) with the fingerprint.
    pub(crate) fn create(out: &Path, fingerprint: &Value) -> Result<Journal> {
        std::fs::create_dir_all(out)
            .with_context(|| format!("creating the output directory {}", out.display()))?;
        let path = out.join(JOURNAL);
        let mut file =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        writeln!(file, "{}", json!({ "fingerprint": fingerprint }))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Journal {
            path,
            file: Mutex::new(file),
        })
    }

    pub(crate) fn append(&self, trial: &Trial) -> Result<()> {
        let line = serde_json::to_string(trial)?;
        let mut file = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("the trial journal's lock was poisoned"))?;
        writeln!(file, "{line}").with_context(|| format!("writing {}", self.path.display()))
    }

    /// The run finished and trials.json holds everything: the journal goes.
    pub(crate) fn finish(self) -> Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path)
            .with_context(|| format!("removing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_differences_are_named() {
        let a = json!({"checkpoint": "m", "space": "mxint8,mxint4", "examples": 10});
        let b = json!({"checkpoint": "m", "space": "mxint8,mxfp4", "examples": 11});
        assert_eq!(differences(&a, &b), vec!["examples", "space"]);
        assert!(differences(&a, &a).is_empty());
    }
}
