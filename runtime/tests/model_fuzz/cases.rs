//! Model-layer fuzz cases, shared by the CI test (`tests/model_fuzz.rs`, choices from a seeded generator) and
//! the cargo-fuzz target (`fuzz/fuzz_targets/model.rs`, choices from the fuzzer's bytes); its helpers that
//! take a model apart and add channel scales also serve `tests/channel_scales.rs`.
//!
//! A case starts from a real, valid model file (a tiny BERT with its tokenizer, or a JSC-shaped MLP), takes
//! it apart into its metadata and tensors, mutates the model description (any value anywhere in the
//! metadata: sizes, head, ops, recipe, tokenizer entry) and the tensor table (tensors dropped, renamed,
//! duplicated, reshaped, re-encoded, poisoned with NaN), and writes the file again with `FileBuilder`, so
//! every checksum is valid and the mutation reaches the model layer. The file is then verified, opened and
//! run once; anything but a value or an error (a panic, an abort, an allocation of terabytes) is a bug.

use mxrt_format::{
    encode_f32, encode_raw, Encoding, FileBuilder, MxElem, MxrtFile, RawDtype, ReadOptions,
    Rounding, SparsePolicy,
};
use mxrt_runtime::{Graph, Model, TextEncoder, TokenBatch};
use serde_json::{json, Map, Value};

/// Where a case's decisions come from.
pub trait Choices {
    /// A number in `0..n` (`n` ≥ 1).
    fn below(&mut self, n: usize) -> usize;
}

/// SplitMix64: the CI test's reproducible source of choices.
pub struct SplitMix(pub u64);

impl Choices for SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// The fuzzer's bytes as choices (zeros once they run out).
pub struct FromBytes<'a>(pub &'a [u8]);

impl Choices for FromBytes<'_> {
    fn below(&mut self, n: usize) -> usize {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        let v = if n > 256 {
            let Some((&c, rest)) = self.0.split_first() else {
                return b as usize % n;
            };
            self.0 = rest;
            (b as usize) << 8 | c as usize
        } else {
            b as usize
        };
        v % n
    }
}

/// One tensor of a case, before encoding.
#[derive(Clone)]
pub enum Contents {
    Values {
        values: Vec<f32>,
        encoding: Encoding,
        sparse: bool,
    },
    Raw {
        dtype: RawDtype,
        bytes: Vec<u8>,
    },
}

#[derive(Clone)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<u64>,
    pub contents: Contents,
}

/// A model file taken apart.
#[derive(Clone)]
pub struct Parts {
    pub metadata: Map<String, Value>,
    pub tensors: Vec<TensorSpec>,
}

/// Takes a valid model file apart (values decoded to f32; raw tensors as bytes).
pub fn parts_of(file: &[u8]) -> Parts {
    let f = MxrtFile::parse(file, ReadOptions::default()).expect("a valid base file");
    let tensors = f
        .tensors()
        .iter()
        .map(|t| TensorSpec {
            name: t.name.to_string(),
            shape: t.shape.clone(),
            contents: match t.encoding {
                Encoding::Raw(dtype) => Contents::Raw {
                    dtype,
                    bytes: t.plane(0).to_vec(),
                },
                encoding => Contents::Values {
                    values: t.dequantize().expect("base tensors decode"),
                    encoding,
                    sparse: t.sparse,
                },
            },
        })
        .collect();
    Parts {
        metadata: f.metadata().clone(),
        tensors,
    }
}

/// Writes the parts as a file; `None` when the writer itself refuses them (a duplicate name, values the
/// encoding cannot hold): such a case never reaches a model.
pub fn build(parts: &Parts) -> Option<Vec<u8>> {
    let mut b = FileBuilder::new(parts.metadata.clone()).ok()?;
    for t in &parts.tensors {
        let encoded = match &t.contents {
            Contents::Values {
                values,
                encoding,
                sparse,
            } => encode_f32(
                &t.name,
                &t.shape,
                values,
                *encoding,
                Rounding::Nearest,
                if *sparse {
                    SparsePolicy::Always
                } else {
                    SparsePolicy::Never
                },
            ),
            Contents::Raw { dtype, bytes } => encode_raw(&t.name, &t.shape, *dtype, bytes.clone()),
        };
        b.push(encoded.ok()?).ok()?;
    }
    b.to_bytes().ok()
}

fn interesting_value(c: &mut dyn Choices) -> Value {
    let values = [
        json!(0),
        json!(1),
        json!(2),
        json!(3),
        json!(-1),
        json!(7),
        json!(1u64 << 31),
        json!((1u64 << 32) + 1),
        json!(1u64 << 40),
        json!(1u64 << 53),
        json!(1u64 << 63),
        json!(u64::MAX),
        json!(1e300),
        json!(-1e-12),
        json!(0.5),
        json!(""),
        json!("x"),
        json!("mean"),
        json!("relu"),
        json!("linear"),
        json!("gelu"),
        json!("tokenizer.json"),
        json!("mxint8"),
        json!("fixed:8.4"),
        Value::Null,
        json!(true),
        json!([]),
        json!({}),
        json!([1, 2]),
    ];
    values[c.below(values.len())].clone()
}

/// Every place in a JSON tree, as a path of keys and indices.
fn paths(v: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(Step::Key(k.clone()));
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(Step::Index(i));
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn get_mut<'v>(v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(v, |v, s| match s {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// One change somewhere in the metadata. Returns what it did, for the failure message.
fn mutate_metadata(m: &mut Map<String, Value>, c: &mut dyn Choices) -> String {
    let mut root = Value::Object(std::mem::take(m));
    let mut all = Vec::new();
    // Most of the interest is in the hyperparameters: weigh them three to one.
    let start = if c.below(4) > 0 && root.get("hyperparameters").is_some() {
        vec![Step::Key("hyperparameters".into())]
    } else {
        Vec::new()
    };
    let base = get_mut(&mut root, &start).cloned().unwrap_or(Value::Null);
    paths(&base, &mut start.clone(), &mut all);
    let path = all[c.below(all.len())].clone();
    let what;
    let (parent_path, last) = match path.split_last() {
        Some((last, parent)) => (parent.to_vec(), Some(last.clone())),
        None => (Vec::new(), None),
    };
    let target = get_mut(&mut root, &path).expect("the path exists");
    match c.below(6) {
        0 => {
            // delete
            what = format!("delete {path:?}");
            if let (Some(parent), Some(last)) = (get_mut(&mut root, &parent_path), last) {
                match (parent, last) {
                    (Value::Object(o), Step::Key(k)) => {
                        o.remove(&k);
                    }
                    (Value::Array(a), Step::Index(i)) => {
                        a.remove(i);
                    }
                    _ => {}
                }
            }
        }
        1 => {
            // arithmetic on a number: off by one, doubled, halved
            what = format!("nudge {path:?}");
            if let Some(n) = target.as_u64() {
                *target = json!(match c.below(4) {
                    0 => n.saturating_add(1),
                    1 => n.saturating_sub(1),
                    2 => n.saturating_mul(2),
                    _ => n / 2,
                });
            } else if let Some(x) = target.as_f64() {
                *target = json!(-x);
            } else {
                *target = interesting_value(c);
            }
        }
        2 => {
            // arrays: duplicate, drop or reverse an element
            what = format!("reorder {path:?}");
            if let Value::Array(a) = target {
                if !a.is_empty() {
                    let i = c.below(a.len());
                    match c.below(3) {
                        0 => {
                            let e = a[i].clone();
                            a.insert(i, e)
                        }
                        1 => {
                            a.remove(i);
                        }
                        _ => a.reverse(),
                    }
                }
            } else {
                *target = interesting_value(c);
            }
        }
        _ => {
            let v = interesting_value(c);
            what = format!("set {path:?} = {v}");
            *target = v;
        }
    }
    if let Value::Object(o) = root {
        *m = o;
    }
    what
}

/// Values for `numel` elements, cycling the old ones (a shape change keeps realistic magnitudes).
fn resize(values: &[f32], numel: usize) -> Vec<f32> {
    if values.is_empty() {
        return vec![0.25; numel];
    }
    values.iter().copied().cycle().take(numel).collect()
}

const MAX_FUZZ_NUMEL: u64 = 1 << 18;

fn reshape(t: &mut TensorSpec, c: &mut dyn Choices) -> Option<String> {
    let mut shape = t.shape.clone();
    match c.below(6) {
        0 if shape.len() >= 2 => shape.swap(0, 1),
        1 if !shape.is_empty() => {
            let i = c.below(shape.len());
            shape[i] = shape[i].saturating_add(1);
        }
        2 if !shape.is_empty() => {
            let i = c.below(shape.len());
            shape[i] = shape[i].saturating_sub(1);
        }
        3 => shape.push(1),
        4 if !shape.is_empty() => {
            shape.pop();
        }
        _ if !shape.is_empty() => {
            // an empty tensor claiming an enormous other dimension
            let i = c.below(shape.len());
            shape[i] = 0;
            let j = c.below(shape.len());
            if j != i {
                shape[j] = 1 << 40;
            }
        }
        _ => return None,
    }
    let numel = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_FUZZ_NUMEL)?;
    let what = format!("reshape {} {:?} -> {shape:?}", t.name, t.shape);
    t.contents = match &t.contents {
        Contents::Values {
            values,
            encoding,
            sparse,
        } => Contents::Values {
            values: resize(values, numel as usize),
            encoding: *encoding,
            sparse: *sparse,
        },
        Contents::Raw { dtype, bytes } => {
            let size = dtype.size_bytes() as usize;
            Contents::Raw {
                dtype: *dtype,
                bytes: bytes
                    .iter()
                    .copied()
                    .cycle()
                    .take(numel as usize * size)
                    .collect(),
            }
        }
    };
    if let Contents::Raw { bytes, .. } = &t.contents {
        if bytes.is_empty() && numel > 0 {
            return None;
        }
    }
    t.shape = shape;
    Some(what)
}

fn reencode(t: &mut TensorSpec, c: &mut dyn Choices) -> String {
    let values = match &t.contents {
        Contents::Values { values, .. } => values.clone(),
        Contents::Raw { bytes, .. } => bytes.iter().map(|&b| b as f32).collect(),
    };
    let encodings = [
        Encoding::F32,
        Encoding::F16,
        Encoding::Bf16,
        Encoding::Mx(MxElem::Int8),
        Encoding::Mx(MxElem::Fp4),
        Encoding::Fixed { width: 8, frac: 4 },
        Encoding::Fixed { width: 2, frac: 0 },
    ];
    let pick = c.below(encodings.len() + 3);
    if pick >= encodings.len() {
        let dtype = [RawDtype::U8, RawDtype::Bool, RawDtype::F64][pick - encodings.len()];
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| match dtype {
                RawDtype::F64 => (v as f64).to_le_bytes().to_vec(),
                _ => vec![v as u8],
            })
            .collect();
        t.contents = Contents::Raw { dtype, bytes };
        return format!("{} as raw {dtype:?}", t.name);
    }
    let encoding = encodings[pick];
    let sparse = c.below(3) == 0;
    t.contents = Contents::Values {
        values,
        encoding,
        sparse,
    };
    format!("{} as {encoding} (sparse {sparse})", t.name)
}

/// One to three mutations of `parts`; returns what was done.
pub fn mutate(parts: &mut Parts, c: &mut dyn Choices) -> Vec<String> {
    let mut done = Vec::new();
    for _ in 0..1 + c.below(3) {
        let n = parts.tensors.len();
        let what = match c.below(10) {
            0..=3 => mutate_metadata(&mut parts.metadata, c),
            4 if n > 0 => {
                let t = parts.tensors.remove(c.below(n));
                format!("drop {}", t.name)
            }
            5 if n > 1 => {
                let (i, j) = (c.below(n), c.below(n));
                let a = parts.tensors[i].name.clone();
                parts.tensors[i].name = parts.tensors[j].name.clone();
                parts.tensors[j].name = a.clone();
                format!("swap names {a} <-> {}", parts.tensors[i].name)
            }
            6 if n > 0 => {
                let i = c.below(n);
                match reshape(&mut parts.tensors[i], c) {
                    Some(w) => w,
                    None => continue,
                }
            }
            7 if n > 0 => {
                let i = c.below(n);
                reencode(&mut parts.tensors[i], c)
            }
            8 if n > 0 => {
                let i = c.below(n);
                let t = &mut parts.tensors[i];
                let poison = [f32::NAN, f32::INFINITY, -f32::INFINITY, 3e38, 0.0][c.below(5)];
                match &mut t.contents {
                    Contents::Values { values, .. } if !values.is_empty() => {
                        let at = c.below(values.len());
                        values[at] = poison;
                        format!("{}[{at}] = {poison}", t.name)
                    }
                    Contents::Raw { bytes, .. } if !bytes.is_empty() => {
                        let at = c.below(bytes.len());
                        bytes[at] = [2, 255, 0x80][c.below(3)];
                        format!("{} byte {at} = {}", t.name, bytes[at])
                    }
                    _ => continue,
                }
            }
            9 if n > 0 => {
                let mut t = parts.tensors[c.below(n)].clone();
                t.name = format!("{}.copy", t.name);
                let what = format!("duplicate as {}", t.name);
                parts.tensors.push(t);
                what
            }
            _ => continue,
        };
        done.push(what);
    }
    done
}

/// What one case came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Verified, opened and run.
    Ran,
    /// `verify` or the model's open refused it, with this message.
    Refused(String),
    /// Opened, but the inference returned this error.
    RunError(String),
}

/// Largest working memory a fuzz case may use for its inference (a case above it is an error, to be
/// refused by the model's own check below).
const MAX_CASE_MEMORY: u64 = 256 << 20;

/// Verifies `bytes`, opens them as a model and runs one inference on the CPU.
pub fn run_case(bytes: Vec<u8>) -> Outcome {
    let verify = ReadOptions {
        verify_checksums: true,
    };
    if let Err(e) = MxrtFile::parse(&bytes, verify) {
        return Outcome::Refused(e.to_string());
    }
    let model = match Model::from_bytes("fuzz.mxrt", bytes, verify) {
        Ok(m) => m,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let result = match model.graph() {
        Graph::Bert(_) => {
            let batch = match TextEncoder::from_model(&model, Some(16)) {
                Ok(encoder) => encoder.batch(&["the cat sat", "a"]),
                Err(_) => Ok(TokenBatch {
                    batch: 1,
                    seq: 4,
                    ids: vec![1, 5, 7, 2],
                    type_ids: vec![0; 4],
                    mask: vec![1; 4],
                }),
            };
            batch.and_then(|b| {
                model.check_working_memory("fuzz batch", b.batch, b.seq)?;
                assert!(
                    model
                        .working_memory(b.batch, b.seq)
                        .is_some_and(|m| m <= MAX_CASE_MEMORY),
                    "an opened tiny model claims {:?} bytes of working memory",
                    model.working_memory(b.batch, b.seq)
                );
                model.run_bert(&b, false).map(|_| ())
            })
        }
        Graph::Mlp(m) => {
            let inputs = m.inputs;
            model
                .check_working_memory("fuzz rows", 2, 0)
                .and_then(|()| {
                    assert!(
                        model
                            .working_memory(2, 0)
                            .is_some_and(|m| m <= MAX_CASE_MEMORY),
                        "an opened tiny model claims {:?} bytes of working memory",
                        model.working_memory(2, 0)
                    );
                    let x: Vec<f32> = (0..2 * inputs)
                        .map(|i| (i % 7) as f32 * 0.3 - 1.0)
                        .collect();
                    model.run_mlp(&x, 2).map(|_| ())
                })
        }
    };
    match result {
        Ok(()) => Outcome::Ran,
        Err(e) => Outcome::RunError(e.to_string()),
    }
}

// Channel scales (description 2.2) on a model taken apart: shared by tests/channel_scales.rs and the fuzz
// cases that start from a channel-scaled base.

pub fn layers_mut(p: &mut Parts) -> &mut Vec<Value> {
    p.metadata
        .get_mut("recipe")
        .and_then(|r| r.get_mut("layers"))
        .and_then(Value::as_array_mut)
        .expect("a converted model has recipe layers")
}

/// The linear layers: recipe layers with an input setting and a `[rows, cols]` weight `<name>.weight`.
pub fn linears(p: &Parts) -> Vec<(String, usize, usize)> {
    let layers = p.metadata["recipe"]["layers"].as_array().unwrap();
    layers
        .iter()
        .filter(|l| !l["activations"].is_null())
        .filter_map(|l| {
            let name = l["name"].as_str()?;
            let w = p
                .tensors
                .iter()
                .find(|t| t.name == format!("{name}.weight"))?;
            (w.shape.len() == 2)
                .then(|| (name.to_string(), w.shape[0] as usize, w.shape[1] as usize))
        })
        .collect()
}

pub fn values_mut<'a>(p: &'a mut Parts, name: &str) -> &'a mut Vec<f32> {
    let t = p.tensors.iter_mut().find(|t| t.name == name).unwrap();
    match &mut t.contents {
        Contents::Values { values, .. } => values,
        Contents::Raw { .. } => unreachable!("weights are values"),
    }
}

/// `p` with channel scales on every linear layer: `input(layer, cols)` and `output(layer, rows)` give the
/// scales (`None`: that side unscaled); the weights are divided by `s_out[r] · s_in[i]`.
pub fn scaled(
    p: &Parts,
    input: &mut dyn FnMut(&str, usize) -> Option<Vec<f32>>,
    output: &mut dyn FnMut(&str, usize) -> Option<Vec<f32>>,
) -> Parts {
    let mut p = p.clone();
    for (name, rows, cols) in linears(&p) {
        let (s_in, s_out) = (input(&name, cols), output(&name, rows));
        let w = values_mut(&mut p, &format!("{name}.weight"));
        for (k, v) in w.iter_mut().enumerate() {
            let (r, i) = (k / cols, k % cols);
            *v /= s_out.as_ref().map_or(1.0, |s| s[r]) * s_in.as_ref().map_or(1.0, |s| s[i]);
        }
        for (field, scales) in [("input_scale", s_in), ("output_scale", s_out)] {
            let Some(values) = scales else { continue };
            let tensor = format!("{name}.{field}");
            let entry = layers_mut(&mut p)
                .iter_mut()
                .find(|l| l["name"] == name.as_str())
                .unwrap();
            entry[field] = json!(tensor);
            p.tensors.push(TensorSpec {
                name: tensor,
                shape: vec![values.len() as u64],
                contents: Contents::Values {
                    values,
                    encoding: Encoding::F32,
                    sparse: false,
                },
            });
        }
    }
    p.metadata
        .insert("requires".into(), json!(["channel_scales"]));
    p
}

/// Powers of two from 2^-3 to 2^3, drawn from `rng`.
pub fn powers_of_two(rng: &mut SplitMix, n: usize) -> Vec<f32> {
    (0..n).map(|_| 2f32.powi(rng.below(7) as i32 - 3)).collect()
}

/// `p` with power-of-two scales from 2^-3 to 2^3 on both sides of every linear layer (seeded).
pub fn with_channel_scales(p: &Parts, seed: u64) -> Parts {
    let (mut a, mut b) = (SplitMix(seed), SplitMix(seed ^ 0x5555));
    scaled(
        p,
        &mut |_, n| Some(powers_of_two(&mut a, n)),
        &mut |_, n| Some(powers_of_two(&mut b, n)),
    )
}
