//! PyTorch checkpoints: `pytorch_model.bin`, `*.pt`/`*.pth` and Lightning `*.ckpt`, in the zip format
//! `torch.save` has written since torch 1.6 (`<archive>/data.pkl`, `<archive>/data/<storage key>`,
//! `<archive>/byteorder`), read without running pickled code ([`pickle`]).
//!
//! Tensors are views into storages: a contiguous view (every state dict tensor torch saves from a module)
//! borrows its bytes from the mapped file; a strided one (a transposed or sliced tensor saved as is) is
//! gathered into a copy. Storage entries must be stored uncompressed (torch never compresses them).
//! The legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`: a bare pickle followed by raw
//! storages) is refused with a message saying how to re-save.

pub mod pickle;

use std::borrow::Cow;
use std::collections::BTreeMap;

use mxrt_format::{Encoding, RawDtype};
use pickle::{StorageDtype, TensorRef, Value};

/// The first bytes of a zip archive (a local file header).
pub const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Whether `bytes` start like a legacy (pre-zip) torch file: the pickle of its magic number, protocol 2.
pub fn is_legacy(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x80, 0x02, 0x8a, 0x0a])
}

/// Module prefixes that wrap a whole model and are dropped when every tensor carries one: Lightning's
/// `model.` (MASE and most LightningModules keep the network there), DDP's `module.`, torch.compile's
/// `_orig_mod.`.
const WRAPPER_PREFIXES: [&str; 3] = ["model.", "module.", "_orig_mod."];

/// One tensor read from a torch archive.
pub struct TorchTensor<'a> {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: Encoding,
    pub data: Cow<'a, [u8]>,
}

/// The tensors of a torch zip archive mapped at `bytes`, with notes on what was interpreted (a Lightning
/// `state_dict`, a dropped wrapper prefix). Errors are sentences naming the part at fault.
pub fn read(bytes: &[u8]) -> Result<(Vec<TorchTensor<'_>>, Vec<String>), String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable zip archive (a PyTorch checkpoint is one): {e}"))?;
    // Entry name -> (data start, length) for every stored entry.
    let mut entries: BTreeMap<String, (usize, usize, bool)> = BTreeMap::new();
    for i in 0..archive.len() {
        let f = archive
            .by_index_raw(i)
            .map_err(|e| format!("zip entry {i} cannot be read: {e}"))?;
        let name = f
            .name()
            .map_err(|e| format!("zip entry {i} has an unreadable name: {e}"))?
            .into_owned();
        let stored = f.compression() == zip::CompressionMethod::Stored;
        let start = f
            .data_start()
            .ok_or_else(|| format!("zip entry {name:?}: its data offset is unknown"))?;
        let (start, len) = (usize::try_from(start), usize::try_from(f.compressed_size()));
        let (Ok(start), Ok(len)) = (start, len) else {
            return Err(format!(
                "zip entry {name:?} lies beyond this machine's address space"
            ));
        };
        if start.checked_add(len).is_none_or(|end| end > bytes.len()) {
            return Err(format!(
                "zip entry {name:?} ({len} bytes at {start}) runs past the end of the file (truncated?)"
            ));
        }
        entries.insert(name, (start, len, stored));
    }
    let pickle_name = entries
        .keys()
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .cloned()
        .ok_or("the zip archive has no <name>/data.pkl: not a PyTorch checkpoint")?;
    let root = pickle_name.trim_end_matches("data.pkl").to_string();
    let entry = |name: &str| -> Result<&[u8], String> {
        let Some(&(start, len, stored)) = entries.get(name) else {
            return Err(format!("the archive has no entry {name:?}"));
        };
        if !stored {
            return Err(format!(
                "entry {name:?} is compressed; torch writes checkpoints uncompressed (re-save it with torch.save)"
            ));
        }
        Ok(&bytes[start..start + len])
    };
    if let Ok(order) = entry(&format!("{root}byteorder")) {
        if order != b"little" {
            return Err(format!(
                "the checkpoint's byte order is {:?}; only little-endian checkpoints are read",
                String::from_utf8_lossy(order)
            ));
        }
    }
    let value = pickle::load(entry(&pickle_name)?).map_err(|e| format!("{pickle_name}: {e}"))?;
    let mut notes = Vec::new();
    let dict = state_dict(&value, &mut notes)?;
    let mut tensors = Vec::new();
    for (key, v) in dict {
        let Value::Str(name) = key else {
            return Err("the state dict has a key that is not a string".into());
        };
        match v {
            Value::Tensor(t) => {
                let storage = entry(&format!("{root}data/{}", t.storage.key))
                    .map_err(|e| format!("tensor {name:?}: {e}"))?;
                let (dtype, data) =
                    view(t, storage).map_err(|e| format!("tensor {name:?}: {e}"))?;
                tensors.push(TorchTensor {
                    name: name.clone(),
                    shape: t.shape.clone(),
                    dtype,
                    data,
                });
            }
            // Lightning and torch keep a few non-tensors in state dicts (`_metadata`, extra state).
            _ => notes.push(format!("{name:?} is not a tensor: skipped")),
        }
    }
    strip_wrapper_prefix(&mut tensors, &mut notes);
    Ok((tensors, notes))
}

/// The state dict inside a loaded checkpoint: the top-level dict itself, or its `state_dict` (Lightning)
/// or `model_state_dict` / `model` entry when the top level is a training checkpoint.
fn state_dict<'v>(
    value: &'v Value,
    notes: &mut Vec<String>,
) -> Result<&'v [(Value, Value)], String> {
    let Value::Dict(top) = value else {
        return Err(
            "the checkpoint's top-level object is not a dict of tensors (save a state_dict)".into(),
        );
    };
    let has_tensor = |d: &[(Value, Value)]| d.iter().any(|(_, v)| matches!(v, Value::Tensor(_)));
    if has_tensor(top) {
        return Ok(top);
    }
    for key in ["state_dict", "model_state_dict", "model"] {
        if let Some((_, Value::Dict(inner))) =
            top.iter().find(|(k, _)| *k == Value::Str(key.into()))
        {
            if has_tensor(inner) {
                notes.push(format!(
                    "a training checkpoint: the weights are its {key:?} entry (optimizer state and \
                     other entries ignored)"
                ));
                return Ok(inner);
            }
        }
    }
    Err(
        "the checkpoint holds no tensors at its top level nor under \"state_dict\", \
         \"model_state_dict\" or \"model\""
            .into(),
    )
}

/// Drops a wrapper prefix carried by every tensor name (see [`WRAPPER_PREFIXES`]), with a note.
fn strip_wrapper_prefix(tensors: &mut [TorchTensor<'_>], notes: &mut Vec<String>) {
    for prefix in WRAPPER_PREFIXES {
        if !tensors.is_empty() && tensors.iter().all(|t| t.name.starts_with(prefix)) {
            for t in tensors.iter_mut() {
                t.name = t.name[prefix.len()..].to_string();
            }
            notes.push(format!(
                "every tensor name starts with {prefix:?} (a wrapping module): dropped"
            ));
            return;
        }
    }
}

fn encoding(dtype: StorageDtype) -> Encoding {
    match dtype {
        StorageDtype::F32 => Encoding::F32,
        StorageDtype::F16 => Encoding::F16,
        StorageDtype::Bf16 => Encoding::Bf16,
        StorageDtype::F64 => Encoding::Raw(RawDtype::F64),
        StorageDtype::I64 => Encoding::Raw(RawDtype::I64),
        StorageDtype::I32 => Encoding::Raw(RawDtype::I32),
        StorageDtype::I16 => Encoding::Raw(RawDtype::I16),
        StorageDtype::I8 => Encoding::Raw(RawDtype::I8),
        StorageDtype::U8 => Encoding::Raw(RawDtype::U8),
        StorageDtype::Bool => Encoding::Raw(RawDtype::Bool),
    }
}

/// The bytes of view `t` of `storage`, row-major: borrowed when contiguous, gathered otherwise. Every
/// element the view reaches must lie inside the storage.
fn view<'a>(t: &TensorRef, storage: &'a [u8]) -> Result<(Encoding, Cow<'a, [u8]>), String> {
    let size = t.storage.dtype.size();
    let overflow = || "its shape, strides and offset overflow 64-bit arithmetic".to_string();
    let numel = t
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(overflow)?;
    let elements = storage.len() as u64 / size;
    if numel == 0 {
        return Ok((encoding(t.storage.dtype), Cow::Borrowed(&[])));
    }
    // The furthest element: offset + Σ (size_i − 1) · stride_i.
    let last = t
        .shape
        .iter()
        .zip(&t.strides)
        .try_fold(t.offset, |a, (&d, &s)| {
            a.checked_add((d - 1).checked_mul(s)?)
        })
        .ok_or_else(overflow)?;
    if last >= elements {
        return Err(format!(
            "its view reaches element {last} of a storage of {elements} {:?} elements (the storage is \
             shorter than the tensor)",
            t.storage.dtype
        ));
    }
    let row_major: Vec<u64> = {
        let mut s = vec![1u64; t.shape.len()];
        for i in (0..t.shape.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * t.shape[i + 1];
        }
        s
    };
    let contiguous = t
        .shape
        .iter()
        .zip(t.strides.iter().zip(&row_major))
        .all(|(&d, (&s, &r))| d == 1 || s == r);
    let (size, offset) = (size as usize, t.offset as usize);
    if contiguous {
        let start = offset * size;
        return Ok((
            encoding(t.storage.dtype),
            Cow::Borrowed(&storage[start..start + numel as usize * size]),
        ));
    }
    if numel > elements {
        return Err(format!(
            "a strided view of {numel} elements over a storage of {elements} (an expanded tensor): save \
             tensor.contiguous() instead"
        ));
    }
    let mut out = Vec::with_capacity(numel as usize * size);
    let mut index = vec![0u64; t.shape.len()];
    for _ in 0..numel {
        let e = t.offset
            + index
                .iter()
                .zip(&t.strides)
                .map(|(i, s)| i * s)
                .sum::<u64>();
        let at = e as usize * size;
        out.extend_from_slice(&storage[at..at + size]);
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < t.shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok((encoding(t.storage.dtype), Cow::Owned(out)))
}

#[cfg(test)]
mod tests {
    use super::pickle::tests::Writer;
    use super::*;
    use std::io::Write;

    /// A torch-style archive: `archive/data.pkl`, `archive/byteorder` and the given `archive/data/<key>`
    /// entries, all stored.
    fn archive(pickle: &[u8], storages: &[(&str, Vec<u8>)], byteorder: &[u8]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", opts).unwrap();
        zip.write_all(pickle).unwrap();
        zip.start_file("archive/byteorder", opts).unwrap();
        zip.write_all(byteorder).unwrap();
        for (key, bytes) in storages {
            zip.start_file(format!("archive/data/{key}"), opts).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn one_tensor(numel: i32, offset: i32, shape: &[i32], strides: &[i32]) -> Vec<u8> {
        let mut w = Writer::new();
        w.op(b'}')
            .str("w")
            .tensor("FloatStorage", "0", numel, offset, shape, strides)
            .op(b's');
        w.stop()
    }

    fn error(bytes: &[u8]) -> String {
        match read(bytes) {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn views_are_borrowed_when_contiguous_and_gathered_when_strided() {
        let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let storage = vec![("0", f32_bytes(&values))];
        // Rows 1..3 of a [4, 3] tensor: offset 3, contiguous.
        let bytes = archive(&one_tensor(12, 3, &[2, 3], &[3, 1]), &storage, b"little");
        let (tensors, _) = read(&bytes).unwrap();
        assert!(matches!(tensors[0].data, Cow::Borrowed(_)));
        assert_eq!(
            tensors[0].data.as_ref(),
            f32_bytes(&values[3..9]).as_slice()
        );
        // The transpose of that [4, 3] tensor: shape [3, 4], strides [1, 3].
        let bytes = archive(&one_tensor(12, 0, &[3, 4], &[1, 3]), &storage, b"little");
        let (tensors, _) = read(&bytes).unwrap();
        let expected: Vec<f32> = (0..3)
            .flat_map(|c| (0..4).map(move |r| (r * 3 + c) as f32))
            .collect();
        assert!(matches!(tensors[0].data, Cow::Owned(_)));
        assert_eq!(tensors[0].data.as_ref(), f32_bytes(&expected).as_slice());
        assert_eq!(tensors[0].shape, vec![3, 4]);
    }

    #[test]
    fn a_storage_shorter_than_its_tensor_is_refused() {
        let storage = vec![("0", f32_bytes(&[1.0, 2.0, 3.0]))];
        let e = error(&archive(&one_tensor(4, 0, &[4], &[1]), &storage, b"little"));
        assert!(
            e.contains("tensor \"w\"") && e.contains("storage is shorter"),
            "{e}"
        );
        // An offset that pushes a short view past the end.
        let e = error(&archive(&one_tensor(3, 2, &[2], &[1]), &storage, b"little"));
        assert!(e.contains("storage is shorter"), "{e}");
        // An expanded view (stride 0) bigger than its storage.
        let e = error(&archive(
            &one_tensor(3, 0, &[1000], &[0]),
            &storage,
            b"little",
        ));
        assert!(e.contains("expanded tensor"), "{e}");
        // Strides so large that the extent overflows.
        let e = error(&archive(
            &one_tensor(3, 0, &[3, 3], &[i32::MAX, i32::MAX]),
            &storage,
            b"little",
        ));
        assert!(e.contains("storage is shorter"), "{e}");
    }

    #[test]
    fn archive_problems_are_named() {
        let storage = vec![("0", f32_bytes(&[1.0; 4]))];
        let good = archive(&one_tensor(4, 0, &[4], &[1]), &storage, b"little");
        assert!(read(&good).is_ok());
        // A missing storage entry.
        let e = error(&archive(&one_tensor(4, 0, &[4], &[1]), &[], b"little"));
        assert!(e.contains("no entry \"archive/data/0\""), "{e}");
        // Big-endian checkpoints.
        let e = error(&archive(&one_tensor(4, 0, &[4], &[1]), &storage, b"big"));
        assert!(e.contains("byte order"), "{e}");
        // Truncated anywhere: the zip's directory (at its end) is gone or an entry runs past the end.
        for cut in [10, good.len() / 2, good.len() - 10] {
            let e = error(&good[..cut]);
            assert!(!e.is_empty());
        }
        // Not torch: a zip without data.pkl.
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("readme.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        let e = error(&zip.finish().unwrap().into_inner());
        assert!(e.contains("no <name>/data.pkl"), "{e}");
        // A compressed entry (method 8 patched into both headers of the storage entry).
        let mut bad = good.clone();
        let name = b"archive/data/0";
        let mut patched = 0;
        for at in 0..bad.len() - name.len() {
            if &bad[at..at + name.len()] == name {
                // Local header: name at 30, method at 8; central header: name at 46, method at 10.
                if at >= 30 && bad[at - 30..at - 26] == *b"PK\x03\x04" {
                    bad[at - 22] = 8;
                    patched += 1;
                } else if at >= 46 && bad[at - 46..at - 42] == *b"PK\x01\x02" {
                    bad[at - 36] = 8;
                    patched += 1;
                }
            }
        }
        assert_eq!(patched, 2);
        let e = error(&bad);
        assert!(
            e.contains("compressed") || e.contains("not a readable zip"),
            "{e}"
        );
    }

    #[test]
    fn training_checkpoints_and_wrapper_prefixes() {
        // {"epoch": 3, "state_dict": {"model.fc.weight": t, "model.fc.bias": t}}
        let mut w = Writer::new();
        w.op(b'}')
            .str("epoch")
            .int(3)
            .op(b's')
            .str("state_dict")
            .op(b'}');
        w.str("model.fc.weight")
            .tensor("FloatStorage", "0", 4, 0, &[2, 2], &[2, 1])
            .op(b's');
        w.str("model.fc.bias")
            .tensor("FloatStorage", "1", 2, 0, &[2], &[1])
            .op(b's');
        w.op(b's');
        let bytes = archive(
            &w.stop(),
            &[("0", f32_bytes(&[1.0; 4])), ("1", f32_bytes(&[2.0; 2]))],
            b"little",
        );
        let (tensors, notes) = read(&bytes).unwrap();
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["fc.weight", "fc.bias"]);
        assert!(notes[0].contains("\"state_dict\""), "{notes:?}");
        assert!(notes[1].contains("\"model.\""), "{notes:?}");
        // No tensors anywhere.
        let mut w = Writer::new();
        w.op(b'}').str("epoch").int(3).op(b's');
        let e = error(&archive(&w.stop(), &[], b"little"));
        assert!(e.contains("holds no tensors"), "{e}");
    }
}
