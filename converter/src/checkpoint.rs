//! Locating and opening a checkpoint: a directory (config.json + model.safetensors, pytorch_model.bin, or
//! a sharded index of either), or the same files named one by one (any PyTorch file: `.ckpt`, `.pt`, …).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ConvertError;
use crate::input::{SourceFile, SourceTensor};

/// An opened checkpoint: its config and its weight files (mapped).
pub struct Checkpoint {
    /// The directory holding config.json (side files such as the tokenizer are looked up here).
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub config: Value,
    files: Vec<SourceFile>,
    /// For sharded checkpoints: the index, and tensor name -> shard file name from it.
    weight_map: Option<(PathBuf, BTreeMap<String, String>)>,
}

/// True when `inputs` describe a model (a directory, a config.json or a sharded index) rather than bare
/// safetensors files.
pub fn is_model_input(inputs: &[PathBuf]) -> bool {
    inputs.iter().any(|p| {
        p.is_dir()
            || p.file_name()
                .is_some_and(|n| n == "config.json" || n.to_string_lossy().ends_with(".index.json"))
    })
}

/// Reads and parses a JSON file; errors name the file.
pub fn read_json(path: &Path) -> Result<Value, ConvertError> {
    use std::io::Read;
    let io = |source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    };
    // A regular file (a FIFO would block), read up to a bound far above any config or index.
    const MAX_JSON_BYTES: u64 = 256 << 20;
    let mut text = String::new();
    mxrt_format::open_regular_file(path)
        .map_err(io)?
        .take(MAX_JSON_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_JSON_BYTES {
        return Err(ConvertError::Json {
            path: path.to_path_buf(),
            reason: format!(
                "larger than {} MiB: not a config file",
                MAX_JSON_BYTES >> 20
            ),
        });
    }
    serde_json::from_str(&text).map_err(|e| ConvertError::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl Checkpoint {
    pub fn open(inputs: &[PathBuf]) -> Result<Checkpoint, ConvertError> {
        let (config_path, weights) = locate(inputs)?;
        let config = read_json(&config_path)?;
        let dir = config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut files = Vec::new();
        let mut weight_map = None;
        for w in weights {
            if w.to_string_lossy().ends_with(".index.json") {
                let index = read_json(&w)?;
                let map = index
                    .get("weight_map")
                    .and_then(Value::as_object)
                    .ok_or_else(|| ConvertError::Json {
                        path: w.clone(),
                        reason: "no \"weight_map\" object".into(),
                    })?;
                let mut names = BTreeMap::new();
                for (tensor, shard) in map {
                    let shard = shard.as_str().ok_or_else(|| ConvertError::Json {
                        path: w.clone(),
                        reason: format!("weight_map[{tensor:?}] is not a file name"),
                    })?;
                    names.insert(tensor.clone(), shard.to_string());
                }
                let shard_dir = w.parent().unwrap_or(Path::new("."));
                for shard in names.values().collect::<BTreeSet<_>>() {
                    files.push(SourceFile::open(&confined_shard(&w, shard_dir, shard)?)?);
                }
                weight_map = Some((w.clone(), names));
            } else {
                files.push(SourceFile::open(&w)?);
            }
        }
        Ok(Checkpoint {
            dir,
            config_path,
            config,
            files,
            weight_map,
        })
    }

    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// Every tensor of every file by name, and notes on how the files were read. A name in two files, or a
    /// sharded index that disagrees with its shards, is an error.
    #[allow(clippy::type_complexity)]
    pub fn tensors(
        &self,
    ) -> Result<(BTreeMap<String, SourceTensor<'_>>, Vec<String>), ConvertError> {
        let mut all: BTreeMap<String, SourceTensor<'_>> = BTreeMap::new();
        let mut origin: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut notes = Vec::new();
        for f in &self.files {
            let (tensors, file_notes) = f.read()?;
            notes.extend(file_notes);
            for t in tensors {
                if let Some(first) = origin.insert(t.name.clone(), f.path.clone()) {
                    return Err(ConvertError::DuplicateTensor {
                        name: t.name,
                        first,
                        second: f.path.clone(),
                    });
                }
                all.insert(t.name.clone(), t);
            }
        }
        if let Some((index, map)) = &self.weight_map {
            for (name, shard) in map {
                let found = origin
                    .get(name)
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned());
                if found.as_deref() != Some(shard.as_str()) {
                    return Err(ConvertError::Json {
                        path: index.clone(),
                        reason: format!("index puts {name:?} in {shard}, but it is not there"),
                    });
                }
            }
            if let Some(stray) = origin.keys().find(|n| !map.contains_key(*n)) {
                return Err(ConvertError::Json {
                    path: index.clone(),
                    reason: format!("tensor {stray:?} is in a shard but not in the index"),
                });
            }
        }
        Ok((all, notes))
    }

    /// A side file of the checkpoint directory, if present.
    pub fn side_file(&self, relative: &str) -> Option<PathBuf> {
        let p = self.dir.join(relative);
        p.is_file().then_some(p)
    }
}

/// The path of shard `name` of `index`: a plain file name inside the checkpoint directory, checked before
/// anything is opened (an index naming `../other/model.safetensors`, an absolute path, or a symbolic link
/// leading out of the directory is refused).
fn confined_shard(index: &Path, dir: &Path, name: &str) -> Result<PathBuf, ConvertError> {
    let refuse = |why: &str| {
        ConvertError::Json {
        path: index.to_path_buf(),
        reason: format!(
            "shard {name:?} {why}: shards must be files in the checkpoint directory, named without a path"
        ),
    }
    };
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(_)), None) => {}
        _ => return Err(refuse("is not a plain file name")),
    }
    let path = dir.join(name);
    let inside = match (dir.canonicalize(), path.canonicalize()) {
        (Ok(d), Ok(p)) => p.parent() == Some(d.as_path()),
        // A missing shard is reported by the open, with its path.
        _ => true,
    };
    if !inside {
        return Err(refuse(
            "leads out of the checkpoint directory (a symbolic link)",
        ));
    }
    Ok(path)
}

/// What is at `path`, for the error when it is not the regular file a checkpoint needs.
fn not_a_file(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => None,
        Ok(m) if m.is_dir() => Some(format!("{} is a directory, not a file", path.display())),
        Ok(_) => Some(format!(
            "{} is not a regular file (a device, FIFO or socket)",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(format!("cannot read {}: {e}", path.display())),
    }
}

/// Finds config.json and the weight files among the inputs.
fn locate(inputs: &[PathBuf]) -> Result<(PathBuf, Vec<PathBuf>), ConvertError> {
    let mut config = None;
    let mut weights = Vec::new();
    for p in inputs {
        // A missing input, one we may not read, or a symbolic-link loop: say so, not "no config.json".
        let meta = std::fs::metadata(p).map_err(|source| ConvertError::Io {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            let c = p.join("config.json");
            if let Some(problem) = not_a_file(&c) {
                return Err(ConvertError::Options(problem));
            }
            if !c.is_file() {
                return Err(ConvertError::Options(format!(
                    "{} has no config.json: not a checkpoint directory",
                    p.display()
                )));
            }
            config = Some(c);
            // Safetensors first (what the hub prefers when both exist), then PyTorch's own files.
            let candidates = [
                "model.safetensors.index.json",
                "model.safetensors",
                "pytorch_model.bin.index.json",
                "pytorch_model.bin",
            ];
            let mut found = None;
            for name in candidates {
                let path = p.join(name);
                if let Some(problem) = not_a_file(&path) {
                    return Err(ConvertError::Options(problem));
                }
                if path.is_file() {
                    found = Some(path);
                    break;
                }
            }
            match found {
                Some(path) => weights.push(path),
                None => {
                    return Err(ConvertError::Options(format!(
                        "{} has no weights: none of {} (a Lightning .ckpt or another .pt file: name it \
                         after the directory, e.g. `mxrt convert {} best.ckpt`)",
                        p.display(),
                        candidates.join(", "),
                        p.join("config.json").display()
                    )))
                }
            }
        } else if p.file_name().is_some_and(|n| n == "config.json") {
            config = Some(p.clone());
        } else {
            weights.push(p.clone());
        }
    }
    let config =
        config.ok_or_else(|| ConvertError::Options("no config.json among the inputs".into()))?;
    if weights.is_empty() {
        return Err(ConvertError::Options(
            "no weight file (safetensors or PyTorch) among the inputs".into(),
        ));
    }
    Ok((config, weights))
}
