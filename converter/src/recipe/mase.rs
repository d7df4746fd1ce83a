//! MASE's quantization pass configuration read as a recipe, so a lab's TOML converts as written:
//!
//! ```toml
//! [passes.quantize]
//! by = "type"                          # or "name": sections named after graph nodes
//! [passes.quantize.default.config]
//! name = "NA"                          # not quantized
//! [passes.quantize.linear.config]
//! name = "integer"                     # MASE's fixed-point quantizer
//! data_in_width = 8
//! data_in_frac_width = 4
//! weight_width = 8
//! weight_frac_width = 4
//! bias_width = 8
//! bias_frac_width = 4
//! ```
//!
//! `integer` becomes `fixed:W.F` for the weights, the input activations and the biases, rounded half to
//! even (MASE rounds with `torch.round`). By type, `linear` applies to every linear-like layer (attention
//! projections, FFN, pooler, classifier and MLP linears) and `default` to the linear-like layers the other
//! sections leave; embeddings stay f32 (MASE's pass quantizes linear layers, not embedding tables). By name,
//! a section `seq_blocks_2` applies to the layer `seq_blocks.2` (MASE's graph node names are the module path
//! with `_` for `.`). BatchNorms are not folded into the linear before them (`fold_batch_norm = false`), as
//! MASE keeps them apart. Other quantizers (`minifloat_*`, `log`, `block_fp`, …) have no mxrt equivalent and
//! are refused by name; quantizer sections of op types mxrt does not quantize (`relu`, `matmul`, …) are
//! ignored with a warning.

use super::{Override, Recipe, Settings};
use crate::error::ConvertError;

fn bad(msg: String) -> ConvertError {
    ConvertError::Recipe(format!("MASE quantization config: {msg}"))
}

/// The settings one `[passes.quantize.<section>.config]` stands for (`None`: not quantized).
fn section_settings(section: &str, config: &toml::Table) -> Result<Option<Settings>, ConvertError> {
    let name = config.get("name").and_then(|v| v.as_str()).unwrap_or("NA");
    match name {
        "NA" | "None" | "none" | "" => return Ok(None),
        "integer" => {}
        other => {
            return Err(bad(format!(
                "[passes.quantize.{section}.config] uses quantizer {other:?}, which mxrt does not have \
                 (MASE's \"integer\" is mxrt's fixed:W.F)"
            )))
        }
    }
    let int = |key: &str| -> Result<Option<i64>, ConvertError> {
        match config.get(key) {
            None => Ok(None),
            Some(v) => v.as_integer().map(Some).ok_or_else(|| {
                bad(format!(
                    "[passes.quantize.{section}.config] {key} must be an integer, found {v}"
                ))
            }),
        }
    };
    let fixed = |what: &str| -> Result<Option<String>, ConvertError> {
        match (
            int(&format!("{what}_width"))?,
            int(&format!("{what}_frac_width"))?,
        ) {
            (Some(w), Some(f)) => Ok(Some(format!("fixed:{w}.{f}"))),
            (None, None) => Ok(None),
            _ => Err(bad(format!(
                "[passes.quantize.{section}.config] gives only one of {what}_width and {what}_frac_width"
            ))),
        }
    };
    Ok(Some(Settings {
        weights: fixed("weight")?,
        activations: fixed("data_in")?,
        biases: fixed("bias")?,
        rounding: Some("even".into()),
        prune: None,
    }))
}

/// Layer kinds MASE's `linear` covers.
const LINEAR_KINDS: [&str; 5] = ["linear", "attention", "ffn", "pooler", "classifier"];

/// A recipe from a TOML table holding `[passes.quantize]`.
pub fn recipe(doc: &toml::Table) -> Result<Recipe, ConvertError> {
    let quantize = doc
        .get("passes")
        .and_then(|p| p.get("quantize"))
        .and_then(|q| q.as_table())
        .ok_or_else(|| bad("no [passes.quantize] table".into()))?;
    let by = quantize
        .get("by")
        .and_then(|v| v.as_str())
        .unwrap_or("type");
    if !matches!(by, "type" | "name") {
        return Err(bad(format!(
            "by = {by:?} (MASE groups by \"type\" or \"name\")"
        )));
    }
    let mut overrides = Vec::new();
    let mut warnings = Vec::new();
    let mut default = None;
    for (section, value) in quantize {
        if section == "by" || section == "report" {
            continue;
        }
        let Some(config) = value.get("config").and_then(|c| c.as_table()) else {
            return Err(bad(format!(
                "[passes.quantize.{section}] has no config table"
            )));
        };
        let settings = section_settings(section, config)?;
        if section == "default" {
            default = settings;
            continue;
        }
        let settings = settings.unwrap_or_else(|| Settings {
            weights: Some("f32".into()),
            activations: Some("f32".into()),
            biases: Some("f32".into()),
            rounding: None,
            prune: None,
        });
        if by == "name" {
            // MASE's node names are the module path with `_` for `.`: `?` matches either.
            overrides.push(Override {
                name: Some(section.replace('_', "?")),
                kind: None,
                settings,
                may_match_nothing: false,
            });
        } else if section == "linear" {
            for kind in LINEAR_KINDS {
                overrides.push(Override {
                    name: None,
                    kind: Some(kind.into()),
                    settings: settings.clone(),
                    may_match_nothing: true,
                });
            }
        } else {
            warnings.push(format!(
                "MASE quantization config: [passes.quantize.{section}] ignored (mxrt quantizes the \
                 weights, inputs and biases of linear layers only)"
            ));
        }
    }
    // MASE's default applies to the linear layers no section names; tables stay f32.
    let mut settings = Settings {
        weights: Some("f32".into()),
        ..Settings::default()
    };
    if let Some(d) = default {
        let mut first = Vec::new();
        for kind in LINEAR_KINDS {
            first.push(Override {
                name: None,
                kind: Some(kind.into()),
                settings: d.clone(),
                may_match_nothing: true,
            });
        }
        // Before the sections, so that those win.
        overrides.splice(0..0, first);
        settings.rounding = d.rounding.clone();
    }
    let recipe = Recipe {
        fold_batch_norm: Some(false),
        default: settings,
        overrides,
        imported_warnings: warnings,
    };
    recipe.check()?;
    Ok(recipe)
}

#[cfg(test)]
mod tests {
    use super::super::Recipe;
    use crate::model::{Layer, LayerKind};
    use mxrt_format::{Encoding, Rounding};

    fn layers() -> Vec<Layer> {
        [
            ("seq_blocks.0", LayerKind::BatchNorm),
            ("seq_blocks.2", LayerKind::Linear),
            ("seq_blocks.4", LayerKind::Linear),
        ]
        .into_iter()
        .map(|(n, k)| Layer {
            name: n.into(),
            kind: k,
        })
        .collect()
    }

    #[test]
    fn a_mase_config_by_type_is_fixed_point_on_every_linear() {
        let r = Recipe::from_toml(
            r#"
            model = "jsc-tiny"
            [passes.quantize]
            by = "type"
            [passes.quantize.default.config]
            name = "NA"
            [passes.quantize.linear.config]
            name = "integer"
            "data_in_width" = 8
            "data_in_frac_width" = 4
            "weight_width" = 6
            "weight_frac_width" = 3
            "bias_width" = 10
            "bias_frac_width" = 5
            [passes.quantize.relu.config]
            name = "integer"
            data_in_width = 8
            data_in_frac_width = 4
            "#,
        )
        .unwrap();
        assert!(!r.folds_batch_norm());
        let (res, warnings) = r.resolve(&layers(), &|i| i != 0).unwrap();
        assert!(res[0].weights.is_none() && res[0].biases.is_none());
        for l in &res[1..] {
            assert_eq!(
                l.weights.unwrap().encoding,
                Encoding::Fixed { width: 6, frac: 3 }
            );
            assert_eq!(l.activations, Some(Encoding::Fixed { width: 8, frac: 4 }));
            assert_eq!(l.biases, Some(Encoding::Fixed { width: 10, frac: 5 }));
            assert_eq!(l.rounding, Rounding::Even);
        }
        assert!(
            warnings.iter().any(|w| w.contains("passes.quantize.relu")),
            "{warnings:?}"
        );
    }

    #[test]
    fn by_name_matches_module_paths_and_other_quantizers_are_refused() {
        let r = Recipe::from_toml(
            r#"
            [passes.quantize]
            by = "name"
            [passes.quantize.default.config]
            name = "NA"
            [passes.quantize.seq_blocks_4.config]
            name = "integer"
            weight_width = 4
            weight_frac_width = 2
            "#,
        )
        .unwrap();
        let (res, _) = r.resolve(&layers(), &|i| i != 0).unwrap();
        assert_eq!(res[1].weights.unwrap().encoding, Encoding::F32);
        assert_eq!(
            res[2].weights.unwrap().encoding,
            Encoding::Fixed { width: 4, frac: 2 }
        );
        assert_eq!(res[2].activations, Some(Encoding::F32));
        for (text, needle) in [
            (
                "[passes.quantize]\nby = \"type\"\n[passes.quantize.linear.config]\nname = \"log\"\n",
                "quantizer \"log\"",
            ),
            (
                "[passes.quantize]\nby = \"type\"\n[passes.quantize.linear.config]\nname = \"integer\"\nweight_width = 8\n",
                "only one of weight_width",
            ),
            ("[passes.quantize]\nby = \"graph\"\n", "by = \"graph\""),
        ] {
            let e = Recipe::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
