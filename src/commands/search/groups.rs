//! Which weight layers of the checkpoint take one choice together (`--group`): each layer (`layer`), each
//! layer kind (`kind`), or a comma list of selectors, each a group: a layer kind (`embedding`, `attention`,
//! `ffn`, `pooler`, `classifier`, `linear`) or a layer-name glob (`encoder.layer.0.*`). A layer goes to the
//! first selector that matches it; layers no selector matches stay at the baseline.

use anyhow::{bail, Result};
use mxrt_converter::model::LayerKind;
use mxrt_converter::model_convert::Source;
use mxrt_converter::recipe::glob_match;
use serde::Serialize;

/// A group of weight layers that take one choice together.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Group {
    pub name: String,
    pub layers: Vec<String>,
}

/// The groups, and the weight layers in none of them (they keep the baseline).
pub(crate) fn groups(source: &Source, how: &str) -> Result<(Vec<Group>, Vec<String>)> {
    let weight_layers: Vec<(String, LayerKind)> = source
        .layers()
        .iter()
        .enumerate()
        .filter(|(li, _)| source.layer_weights(*li).next().is_some())
        .map(|(_, l)| (l.name.clone(), l.kind))
        .collect();
    let mut out: Vec<Group> = Vec::new();
    let mut push = |name: String, layer: &str| match out.iter_mut().find(|g| g.name == name) {
        Some(g) => g.layers.push(layer.to_string()),
        None => out.push(Group {
            name,
            layers: vec![layer.to_string()],
        }),
    };
    match how {
        "layer" => {
            for (name, _) in &weight_layers {
                push(name.clone(), name);
            }
            return Ok((out, Vec::new()));
        }
        "kind" => {
            for (name, kind) in &weight_layers {
                let group = match kind {
                    LayerKind::Embedding => "embeddings".to_string(),
                    k => k.name().to_string(),
                };
                push(group, name);
            }
            return Ok((out, Vec::new()));
        }
        _ => {}
    }
    let selectors: Vec<&str> = how
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let matches = |selector: &str, name: &str, kind: LayerKind| -> bool {
        let by_kind = match selector {
            "embeddings" => Some(LayerKind::Embedding),
            s => LayerKind::parse(s),
        };
        match by_kind {
            Some(k) => k == kind,
            None => glob_match(selector, name),
        }
    };
    let mut rest = Vec::new();
    for (name, kind) in &weight_layers {
        match selectors.iter().find(|s| matches(s, name, *kind)) {
            Some(s) => push(s.to_string(), name),
            None => rest.push(name.clone()),
        }
    }
    for s in &selectors {
        if !out.iter().any(|g| g.name == *s) {
            let names: Vec<&str> = weight_layers
                .iter()
                .take(6)
                .map(|(n, _)| n.as_str())
                .collect();
            bail!(
                "--group: {s:?} matches no weight layer left (a selector is layer, kind, a layer kind: embedding, \
                 attention, ffn, pooler, classifier, linear, or a layer-name glob; the layers are named e.g. {})",
                names.join(", ")
            );
        }
    }
    Ok((out, rest))
}
