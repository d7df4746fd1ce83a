//! Recipes: how each layer's weights and input activations are encoded, rounded and pruned. A TOML file (or
//! the `--weights/--activations/--prune...` shortcut) gives a default and overrides matched by layer name glob
//! or layer kind; [`Recipe::resolve`] turns it into one setting per layer, which is stored in the file.
//!
//! ```toml
//! [default]
//! weights = "mxint8"          # any encoding of the format, e.g. fixed:8.4, mxfp4, sparse(mxint8)
//! activations = "mxint8"      # f32, an MX type (dynamic, per block of 32), or fixed:W.F
//! rounding = "nearest"        # or "even"
//! prune = { method = "l1", sparsity = 0.5, scope = "global", seed = 0 }
//!
//! [[layer]]                   # later overrides win; `name` is a glob (* and ?), `kind` a layer kind
//! kind = "embedding"
//! weights = "f32"
//! prune = false
//! ```
//!
//! Besides: `biases` (per layer: the encoding of linear layers' biases, default f32), `fold_batch_norm`
//! (top level, default true: a BatchNorm right after a Linear is folded into it), and a MASE quantization
//! pass config (`[passes.quantize]`, see [`mase`]) read as the recipe it describes.

use mxrt_format::{Encoding, EncodingSpec, Rounding};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ConvertError;
use crate::model::{Layer, LayerKind};
use crate::prune::{Method, Prune, Scope};

pub mod mase;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub weights: Option<String>,
    pub activations: Option<String>,
    /// Encoding of the biases of linear-like layers (`f32`, `fixed:W.F` or an MX type).
    pub biases: Option<String>,
    pub rounding: Option<String>,
    pub prune: Option<PruneSetting>,
}

/// `prune = false` or `prune = { method, sparsity, scope, seed }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PruneSetting {
    Off(bool),
    On {
        method: String,
        sparsity: f64,
        #[serde(default = "default_scope")]
        scope: String,
        #[serde(default)]
        seed: u64,
    },
}

fn default_scope() -> String {
    "local".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub name: Option<String>,
    pub kind: Option<String>,
    #[serde(flatten)]
    pub settings: Settings,
    /// Written by an import (one override per layer kind a MASE section covers): matching no layer is
    /// expected, not worth a warning.
    #[serde(skip)]
    pub may_match_nothing: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Fold a BatchNorm that follows a Linear into it (default) or keep it as a per-channel affine op after
    /// the (quantized) linear, as MASE computes a QAT-trained model.
    pub fold_batch_norm: Option<bool>,
    #[serde(default)]
    pub default: Settings,
    #[serde(default, rename = "layer")]
    pub overrides: Vec<Override>,
    /// Warnings from reading an imported configuration (MASE sections mxrt does not apply), reported with
    /// the resolved recipe's.
    #[serde(skip)]
    pub imported_warnings: Vec<String>,
}

/// The settings of one layer after resolution.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerRecipe {
    pub name: String,
    pub kind: LayerKind,
    /// Encoding of the layer's weight matrix or table (`None`: the layer has none).
    #[serde(serialize_with = "ser_spec")]
    pub weights: Option<EncodingSpec>,
    /// Encoding of the layer's input activations (`None`: not applicable, e.g. embeddings).
    #[serde(serialize_with = "ser_encoding")]
    pub activations: Option<Encoding>,
    /// Encoding of the layer's bias (`None`: f32, or no bias). Stored only when set (description 2.1).
    #[serde(
        serialize_with = "ser_encoding",
        skip_serializing_if = "Option::is_none"
    )]
    pub biases: Option<Encoding>,
    #[serde(serialize_with = "ser_rounding")]
    pub rounding: Rounding,
    pub prune: Option<Prune>,
    /// The tensor holding the layer's input channel scales (description 2.2), when it has them: set by the
    /// build from [`crate::model_convert::ModelOptions::channel_scales`], not by recipes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_scale: Option<String>,
    /// The tensor holding the layer's output channel scales (description 2.2), likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_scale: Option<String>,
}

fn ser_spec<S: serde::Serializer>(v: &Option<EncodingSpec>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(spec) if spec.sparse_requested => {
            s.serialize_str(&format!("sparse({})", spec.encoding))
        }
        Some(spec) => s.serialize_str(&spec.encoding.to_string()),
        None => s.serialize_none(),
    }
}

fn ser_encoding<S: serde::Serializer>(v: &Option<Encoding>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(e) => s.serialize_str(&e.to_string()),
        None => s.serialize_none(),
    }
}

fn ser_rounding<S: serde::Serializer>(v: &Rounding, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.name())
}

/// `*` matches any run of characters (dots included), `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((bp, bt)) = backtrack {
            pi = bp + 1;
            ti = bt + 1;
            backtrack = Some((bp, bt + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn bad(msg: String) -> ConvertError {
    ConvertError::Recipe(msg)
}

fn parse_weights(s: &str, at: &str) -> Result<EncodingSpec, ConvertError> {
    let spec: EncodingSpec = s.parse().map_err(|e| bad(format!("{at}: {e}")))?;
    if matches!(spec.encoding, Encoding::Raw(_)) {
        return Err(bad(format!("{at}: raw is not a weight encoding")));
    }
    Ok(spec)
}

fn parse_activations(s: &str, at: &str) -> Result<Encoding, ConvertError> {
    let spec: EncodingSpec = s.parse().map_err(|e| bad(format!("{at}: {e}")))?;
    match spec.encoding {
        Encoding::F32 | Encoding::Mx(_) | Encoding::Fixed { .. } if !spec.sparse_requested => {
            Ok(spec.encoding)
        }
        _ => Err(bad(format!(
            "{at}: activations can be f32, an MX type or fixed:W.F, not {s:?}"
        ))),
    }
}

/// A bias encoding: `None` for f32 (the default: nothing to record), else fixed point or an MX type.
fn parse_biases(s: &str, at: &str) -> Result<Option<Encoding>, ConvertError> {
    let spec: EncodingSpec = s.parse().map_err(|e| bad(format!("{at}: {e}")))?;
    match spec.encoding {
        Encoding::F32 if !spec.sparse_requested => Ok(None),
        Encoding::Mx(_) | Encoding::Fixed { .. } if !spec.sparse_requested => {
            Ok(Some(spec.encoding))
        }
        _ => Err(bad(format!(
            "{at}: biases can be f32, fixed:W.F or an MX type, not {s:?}"
        ))),
    }
}

fn parse_prune(p: &PruneSetting, at: &str) -> Result<Option<Prune>, ConvertError> {
    match p {
        PruneSetting::Off(false) => Ok(None),
        PruneSetting::Off(true) => Err(bad(format!("{at}: prune = true needs a method and a sparsity: prune = {{ method = \"l1\", sparsity = 0.5 }}"))),
        PruneSetting::On { method, sparsity, scope, seed } => {
            let method = match method.as_str() {
                "l1" => Method::L1,
                "random" => Method::Random,
                m => return Err(bad(format!("{at}: prune method {m:?} (use \"l1\" or \"random\")"))),
            };
            if !(0.0..1.0).contains(sparsity) {
                return Err(bad(format!("{at}: sparsity {sparsity} is outside [0, 1)")));
            }
            let scope = match scope.as_str() {
                "local" => Scope::Local,
                "global" => Scope::Global,
                s => return Err(bad(format!("{at}: prune scope {s:?} (use \"local\" or \"global\")"))),
            };
            Ok(Some(Prune { method, sparsity: *sparsity, scope, seed: *seed }))
        }
    }
}

/// Validates the values of one settings table.
fn check_settings(s: &Settings, at: &str) -> Result<(), ConvertError> {
    if let Some(w) = &s.weights {
        parse_weights(w, &format!("{at} weights"))?;
    }
    if let Some(a) = &s.activations {
        parse_activations(a, &format!("{at} activations"))?;
    }
    if let Some(b) = &s.biases {
        parse_biases(b, &format!("{at} biases"))?;
    }
    if let Some(r) = &s.rounding {
        r.parse::<Rounding>()
            .map_err(|e| bad(format!("{at}: {e}")))?;
    }
    if let Some(p) = &s.prune {
        parse_prune(p, &format!("{at} prune"))?;
    }
    Ok(())
}

impl Recipe {
    /// Parses and checks a recipe: every encoding, rounding and pruning setting is validated here, so errors
    /// surface before any work (with the caller naming the file).
    pub fn from_toml(text: &str) -> Result<Recipe, ConvertError> {
        let value: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if value.contains_key("passes") {
            return mase::recipe(&value);
        }
        let recipe: Recipe = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        recipe.check()?;
        Ok(recipe)
    }

    /// Whether a BatchNorm after a Linear is folded into it (the default).
    pub fn folds_batch_norm(&self) -> bool {
        self.fold_batch_norm.unwrap_or(true)
    }

    fn check(&self) -> Result<(), ConvertError> {
        let recipe = self;
        check_settings(&recipe.default, "[default]")?;
        for (i, o) in recipe.overrides.iter().enumerate() {
            if o.name.is_none() && o.kind.is_none() {
                return Err(bad(format!(
                    "layer override #{} needs `name` (a glob) or `kind`",
                    i + 1
                )));
            }
            check_settings(&o.settings, &format!("layer override #{}", i + 1))?;
            if let Some(k) = &o.kind {
                if LayerKind::parse(k).is_none() {
                    let kinds: Vec<&str> = LayerKind::ALL.iter().map(|k| k.name()).collect();
                    return Err(bad(format!(
                        "layer override #{}: unknown kind {k:?} (one of {})",
                        i + 1,
                        kinds.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Settings per layer. Weight defaults to f32, activations to f32, rounding to nearest; the default
    /// `prune` applies to linear-like layers only (embeddings are pruned only when an override says so).
    /// Returns the layers' recipes and warnings (overrides that matched no layer).
    pub fn resolve(
        &self,
        layers: &[Layer],
        has_weight: &dyn Fn(usize) -> bool,
    ) -> Result<(Vec<LayerRecipe>, Vec<String>), ConvertError> {
        let d = &self.default;
        let weights = parse_weights(d.weights.as_deref().unwrap_or("f32"), "[default] weights")?;
        let activations = parse_activations(
            d.activations.as_deref().unwrap_or("f32"),
            "[default] activations",
        )?;
        let rounding: Rounding = d
            .rounding
            .as_deref()
            .unwrap_or("nearest")
            .parse()
            .map_err(|e| bad(format!("[default] {e}")))?;
        let prune = match &d.prune {
            Some(p) => parse_prune(p, "[default] prune")?,
            None => None,
        };
        let biases = match &d.biases {
            Some(b) => parse_biases(b, "[default] biases")?,
            None => None,
        };
        let mut matched = vec![false; self.overrides.len()];
        let mut out = Vec::with_capacity(layers.len());
        for (li, layer) in layers.iter().enumerate() {
            let mut r = LayerRecipe {
                name: layer.name.clone(),
                kind: layer.kind,
                weights: Some(weights),
                activations: Some(activations),
                biases,
                rounding,
                prune: if layer.kind.is_linear_like() {
                    prune
                } else {
                    None
                },
                input_scale: None,
                output_scale: None,
            };
            for (oi, o) in self.overrides.iter().enumerate() {
                let name_ok = o.name.as_deref().is_none_or(|g| glob_match(g, &layer.name));
                let kind_ok = o.kind.as_deref().is_none_or(|k| k == layer.kind.name());
                if !(name_ok && kind_ok) {
                    continue;
                }
                matched[oi] = true;
                let at = format!("layer override #{}", oi + 1);
                let s = &o.settings;
                if let Some(w) = &s.weights {
                    r.weights = Some(parse_weights(w, &at)?);
                }
                if let Some(a) = &s.activations {
                    r.activations = Some(parse_activations(a, &at)?);
                }
                if let Some(b) = &s.biases {
                    r.biases = parse_biases(b, &at)?;
                }
                if let Some(x) = &s.rounding {
                    r.rounding = x.parse().map_err(|e| bad(format!("{at}: {e}")))?;
                }
                if let Some(p) = &s.prune {
                    r.prune = parse_prune(p, &at)?;
                }
            }
            if !has_weight(li) {
                r.weights = None;
                r.prune = None;
            }
            if !layer.kind.is_linear_like() {
                r.activations = None;
                r.biases = None;
            }
            out.push(r);
        }
        let warnings = self
            .imported_warnings
            .iter()
            .cloned()
            .chain(
                matched
                    .iter()
                    .enumerate()
                    .filter(|(i, m)| !**m && !self.overrides[*i].may_match_nothing)
                    .map(|(i, _)| {
                        let o = &self.overrides[i];
                        format!(
                            "layer override #{} (name {:?}, kind {:?}) matched no layer",
                            i + 1,
                            o.name,
                            o.kind
                        )
                    }),
            )
            .collect();
        Ok((out, warnings))
    }

    /// The recipe as stored in the file's metadata (with the resolved layers added by the caller).
    pub fn to_json(&self) -> Value {
        let settings = |s: &Settings| {
            let mut v = json!({
                "weights": s.weights, "activations": s.activations, "rounding": s.rounding,
                "prune": s.prune.as_ref().map(|p| match p {
                    PruneSetting::Off(b) => json!(b),
                    PruneSetting::On { method, sparsity, scope, seed } => json!({"method": method, "sparsity": sparsity, "scope": scope, "seed": seed}),
                }),
            });
            // Description 2.1: recorded only when biases are quantized.
            if let Some(b) = s.biases.as_ref().filter(|b| b.as_str() != "f32") {
                v["biases"] = json!(b);
            }
            v
        };
        let overrides: Vec<Value> = self
            .overrides
            .iter()
            .map(|o| {
                let mut v = settings(&o.settings);
                v["name"] = json!(o.name);
                v["kind"] = json!(o.kind);
                v
            })
            .collect();
        let mut out = json!({"default": settings(&self.default), "overrides": overrides});
        if !self.folds_batch_norm() {
            // Recorded only when set (description 2.1), so that other files stay 2.0.
            out["fold_batch_norm"] = json!(false);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "bert.encoder.layer.*.attention.*",
            "bert.encoder.layer.11.attention.self.query"
        ));
        assert!(!glob_match(
            "bert.encoder.layer.*.attention.*",
            "bert.encoder.layer.11.output.dense"
        ));
        assert!(glob_match("*", ""));
        assert!(glob_match("fc?_relu", "fc1_relu"));
        assert!(!glob_match("fc?_relu", "fc10_relu"));
        assert!(glob_match("*dense", "pooler.dense"));
        assert!(glob_match("a*b*c", "aXXbYYbZc"));
        assert!(!glob_match("a*b*c", "aXXbYYbZ"));
        assert!(glob_match("classifier", "classifier"));
        assert!(!glob_match("classifier", "classifier.x"));
    }

    fn layers() -> Vec<Layer> {
        vec![
            Layer {
                name: "emb.word".into(),
                kind: LayerKind::Embedding,
            },
            Layer {
                name: "enc.0.attention.q".into(),
                kind: LayerKind::Attention,
            },
            Layer {
                name: "enc.0.ffn.up".into(),
                kind: LayerKind::Ffn,
            },
            Layer {
                name: "enc.0.ln".into(),
                kind: LayerKind::LayerNorm,
            },
            Layer {
                name: "classifier".into(),
                kind: LayerKind::Classifier,
            },
        ]
    }

    #[test]
    fn overrides_apply_in_order_and_default_pruning_skips_embeddings() {
        let r = Recipe::from_toml(
            r#"
            [default]
            weights = "mxint8"
            activations = "mxint8"
            prune = { method = "l1", sparsity = 0.5, scope = "global" }
            [[layer]]
            kind = "embedding"
            weights = "f16"
            [[layer]]
            name = "enc.*.ffn.*"
            weights = "fixed:8.4"
            activations = "fixed:8.4"
            rounding = "even"
            [[layer]]
            name = "classifier"
            prune = false
            [[layer]]
            name = "nothing.*"
            weights = "f32"
            "#,
        )
        .unwrap();
        let (res, warnings) = r.resolve(&layers(), &|i| i != 3).unwrap();
        assert_eq!(res[0].weights.unwrap().encoding, Encoding::F16);
        assert!(res[0].activations.is_none() && res[0].prune.is_none());
        assert_eq!(
            res[1].weights.unwrap().encoding,
            Encoding::Mx(mxrt_format::MxElem::Int8)
        );
        assert_eq!(res[1].prune.unwrap().sparsity, 0.5);
        assert_eq!(
            res[2].weights.unwrap().encoding,
            Encoding::Fixed { width: 8, frac: 4 }
        );
        assert_eq!(
            res[2].activations,
            Some(Encoding::Fixed { width: 8, frac: 4 })
        );
        assert_eq!(res[2].rounding, Rounding::Even);
        assert!(res[3].weights.is_none() && res[3].activations.is_none());
        assert!(res[4].prune.is_none());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("#4"));
    }

    #[test]
    fn bad_recipes_say_what_is_wrong() {
        for (text, needle) in [
            ("[default]\nweights = \"mxint3\"", "mxint3"),
            ("[default]\nactivations = \"f16\"", "activations can be"),
            (
                "[default]\nprune = { method = \"l2\", sparsity = 0.5 }",
                "l2",
            ),
            (
                "[default]\nprune = { method = \"l1\", sparsity = 1.0 }",
                "outside [0, 1)",
            ),
            ("[default]\nprune = true", "needs a method"),
            ("[[layer]]\nweights = \"f32\"", "needs `name`"),
            ("[[layer]]\nkind = \"conv\"", "unknown kind"),
            ("[default]\nweight = \"f32\"", "unknown field"),
            ("[default\n", "expected"),
        ] {
            let err = Recipe::from_toml(text)
                .and_then(|r| r.resolve(&layers(), &|_| true).map(|_| ()))
                .unwrap_err();
            assert!(err.to_string().contains(needle), "{text:?}: {err}");
        }
    }
}
