//! The search space of `mxrt search`: for every group, a weight encoding, a sparsity (l1-norm pruning, each
//! tensor on its own) and an input-activation encoding, each from its list; the first value of each list is
//! the baseline. Written `encoding=mxint8,mxint4,fixed:4..8; sparsity=0..0.5:0.1; activations=mxint8,fixed:8`
//! (a bare list is the encodings). `fixed:W` without a fraction width, and each width of `fixed:A..B`, take
//! the fraction width the data (activations) or the weights' own RMSE (weights) pick, per layer, as
//! `mxrt convert --calibrate` does.
//!
//! A point of the search is one index per (group, dimension): `point[group * DIMS + dimension]`.

use anyhow::{bail, Result};
use mxrt_format::{Encoding, EncodingSpec};

/// Dimensions of a group's choice: weights, sparsity, activations.
pub const DIMS: usize = 3;
pub const WEIGHTS: usize = 0;
pub const SPARSITY: usize = 1;
pub const ACTIVATIONS: usize = 2;

/// One candidate encoding: as written, or a width whose fraction width is calibrated per layer.
#[derive(Debug, Clone, PartialEq)]
pub enum Candidate {
    Spec(String),
    FixedWidth(u8),
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Candidate::Spec(s) => write!(f, "{s}"),
            Candidate::FixedWidth(w) => write!(f, "fixed:{w}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Space {
    pub weights: Vec<Candidate>,
    pub sparsity: Vec<f64>,
    pub activations: Vec<Candidate>,
}

/// `fixed:W` (a width alone) or `fixed:A..B` (each width from A to B), else `None`.
fn fixed_widths(s: &str) -> Result<Option<Vec<u8>>> {
    let Some(rest) = s.strip_prefix("fixed:") else {
        return Ok(None);
    };
    if rest.contains('.') && !rest.contains("..") {
        return Ok(None); // fixed:W.F, a complete encoding
    }
    let width = |w: &str| -> Result<u8> {
        match w.trim().parse::<u8>() {
            Ok(w) if (2..=32).contains(&w) => Ok(w),
            _ => bail!("{s:?}: a fixed-point width is 2..32"),
        }
    };
    Ok(Some(match rest.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (width(a)?, width(b)?);
            if a > b {
                bail!("{s:?}: the range must go up (fixed:4..8)");
            }
            (a..=b).collect()
        }
        None => vec![width(rest)?],
    }))
}

/// A comma list of encodings, ranges expanded. `activations`: only what an activation can be.
fn encodings(list: &str, activations: bool) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match fixed_widths(s)? {
            Some(widths) => out.extend(widths.into_iter().map(Candidate::FixedWidth)),
            None => {
                let spec: EncodingSpec = s.parse().map_err(|e| anyhow::anyhow!("{s:?}: {e}"))?;
                let ok = match spec.encoding {
                    Encoding::Raw(_) => false,
                    Encoding::F32 | Encoding::Mx(_) | Encoding::Fixed { .. } => {
                        !(activations && spec.sparse_requested)
                    }
                    _ => !activations,
                };
                if !ok {
                    let what = if activations {
                        "an activation"
                    } else {
                        "a weight"
                    };
                    bail!("{s:?} is not {what} encoding");
                }
                out.push(Candidate::Spec(s.to_string()));
            }
        }
    }
    Ok(out)
}

/// `a..b:step` or a comma list of sparsities in [0, 1).
fn sparsities(s: &str) -> Result<Vec<f64>> {
    let number = |v: &str| -> Result<f64> {
        match v.trim().parse::<f64>() {
            Ok(x) if (0.0..1.0).contains(&x) => Ok(x),
            _ => bail!("sparsity {v:?}: a sparsity is a number in [0, 1)"),
        }
    };
    let values = match s.split_once("..") {
        Some((a, rest)) => {
            let Some((b, step)) = rest.split_once(':') else {
                bail!("sparsity {s:?}: a range needs a step, e.g. 0..0.5:0.1");
            };
            let (a, b, step) = (number(a)?, number(b)?, number(step)?);
            if step <= 0.0 || b < a {
                bail!("sparsity {s:?}: the range must go up by a positive step");
            }
            let count = ((b - a) / step + 1e-9).floor() as usize;
            // Rounded to 6 decimals so that 0.1 * 3 reads 0.3 in labels and recipes.
            (0..=count)
                .map(|i| ((a + i as f64 * step) * 1e6).round() / 1e6)
                .collect()
        }
        None => s.split(',').map(number).collect::<Result<Vec<f64>>>()?,
    };
    Ok(values)
}

impl Space {
    /// Parses `--space`; `activations` is `--activations` (one encoding or a list), if given.
    pub fn parse(space: &str, activations: Option<&str>) -> Result<Space> {
        let mut weights = None;
        let mut sparsity = None;
        let mut acts = None;
        for part in space.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, list) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => ("encoding", part),
            };
            let slot_taken = match key {
                "encoding" | "weights" => weights.replace(encodings(list, false)?).is_some(),
                "sparsity" => sparsity.replace(sparsities(list)?).is_some(),
                "activations" => acts.replace(encodings(list, true)?).is_some(),
                _ => {
                    bail!("--space: unknown dimension {key:?} (encoding, sparsity or activations)")
                }
            };
            if slot_taken {
                bail!("--space: {key} is given twice");
            }
        }
        let acts = match (acts, activations) {
            (Some(_), Some(_)) => bail!(
                "--activations and --space \"activations=...\" both give the activations: give one"
            ),
            (Some(a), None) => a,
            (None, a) => encodings(a.unwrap_or("mxint8"), true)?,
        };
        let space = Space {
            weights: weights.unwrap_or_else(|| vec![Candidate::Spec("mxint8".into())]),
            sparsity: sparsity.unwrap_or_else(|| vec![0.0]),
            activations: acts,
        };
        if space.weights.is_empty() || space.activations.is_empty() || space.sparsity.is_empty() {
            bail!("--space: every dimension needs at least one value");
        }
        if space.points_per_group() < 2 {
            bail!("--space needs at least two choices (the baseline first, then the candidates), e.g. mxint8,mxint4");
        }
        for (name, dup) in [
            ("encoding", has_duplicates(&space.weights)),
            ("activations", has_duplicates(&space.activations)),
            ("sparsity", has_duplicates(&space.sparsity)),
        ] {
            if dup {
                bail!("--space: a {name} value is listed twice");
            }
        }
        Ok(space)
    }

    /// Values of each dimension.
    pub fn cardinalities(&self) -> [usize; DIMS] {
        [
            self.weights.len(),
            self.sparsity.len(),
            self.activations.len(),
        ]
    }

    /// Choices one group has.
    pub fn points_per_group(&self) -> usize {
        self.cardinalities().iter().product()
    }

    /// The value `i` of dimension `d` as a label: `mxint4`, `sparsity=0.3`, `act=fixed:8`.
    pub fn value(&self, d: usize, i: usize) -> String {
        match d {
            WEIGHTS => self.weights[i].to_string(),
            SPARSITY => format!("sparsity={}", self.sparsity[i]),
            _ => format!("act={}", self.activations[i]),
        }
    }

    /// A group's choice (its `DIMS` indices) as a label that tells every choice apart: the weight encoding,
    /// then the sparsity and activations where those are searched.
    pub fn choice_label(&self, idx: &[usize]) -> String {
        let card = self.cardinalities();
        let mut parts = vec![self.value(WEIGHTS, idx[WEIGHTS])];
        for d in [SPARSITY, ACTIVATIONS] {
            if card[d] > 1 {
                parts.push(self.value(d, idx[d]));
            }
        }
        parts.join(" ")
    }

    /// The space as one line, e.g. `encoding=mxint8,mxint4; activations=mxint8`.
    pub fn describe(&self) -> String {
        let list = |v: Vec<String>| v.join(",");
        let mut s = format!(
            "encoding={}",
            list(self.weights.iter().map(ToString::to_string).collect())
        );
        if self.sparsity.len() > 1 || self.sparsity[0] != 0.0 {
            s += &format!(
                "; sparsity={}",
                list(self.sparsity.iter().map(ToString::to_string).collect())
            );
        }
        s += &format!(
            "; activations={}",
            list(self.activations.iter().map(ToString::to_string).collect())
        );
        s
    }

    /// Widths of the fixed-point candidates whose fraction widths are calibrated: (weights, activations).
    pub fn calibrated_widths(&self) -> (Vec<u8>, Vec<u8>) {
        let widths = |v: &[Candidate]| {
            v.iter()
                .filter_map(|c| match c {
                    Candidate::FixedWidth(w) => Some(*w),
                    Candidate::Spec(_) => None,
                })
                .collect()
        };
        (widths(&self.weights), widths(&self.activations))
    }
}

fn has_duplicates<T: PartialEq>(v: &[T]) -> bool {
    v.iter()
        .enumerate()
        .any(|(i, x)| v[..i].iter().any(|y| y == x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_syntax_expands_ranges() {
        let s = Space::parse(
            "encoding=mxint8,mxint4,mxfp4,fixed:4..8; sparsity=0..0.5:0.1",
            None,
        )
        .unwrap();
        assert_eq!(s.weights.len(), 3 + 5);
        assert_eq!(s.weights[3], Candidate::FixedWidth(4));
        assert_eq!(s.weights[7], Candidate::FixedWidth(8));
        assert_eq!(s.sparsity, vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5]);
        assert_eq!(s.activations, vec![Candidate::Spec("mxint8".into())]);
        assert_eq!(s.points_per_group(), 8 * 6);
        assert_eq!(s.choice_label(&[4, 3, 0]), "fixed:5 sparsity=0.3");
        assert_eq!(s.calibrated_widths(), (vec![4, 5, 6, 7, 8], vec![]));
    }

    #[test]
    fn a_bare_list_is_the_encodings_and_activations_can_be_searched() {
        let s = Space::parse("mxint8,fixed:8.4", None).unwrap();
        assert_eq!(s.cardinalities(), [2, 1, 1]);
        assert_eq!(s.choice_label(&[1, 0, 0]), "fixed:8.4");
        let s = Space::parse("encoding=mxint8; activations=mxint8,fixed:8", None).unwrap();
        assert_eq!(s.cardinalities(), [1, 1, 2]);
        assert_eq!(s.choice_label(&[0, 0, 1]), "mxint8 act=fixed:8");
        assert_eq!(s.calibrated_widths(), (vec![], vec![8]));
    }

    #[test]
    fn bad_spaces_are_refused_with_the_reason() {
        let err = |s: &str, a: Option<&str>| Space::parse(s, a).unwrap_err().to_string();
        assert!(err("mxint8", None).contains("at least two"));
        assert!(err("mxint8,mxint3", None).contains("mxint3"));
        assert!(err("mxint8,fixed:9..4", None).contains("go up"));
        assert!(err("mxint8,fixed:1", None).contains("2..32"));
        assert!(err("mxint8; sparsity=0..0.5", None).contains("step"));
        assert!(err("mxint8; sparsity=0,1.5", None).contains("[0, 1)"));
        assert!(err("mxint8; colour=red", None).contains("unknown dimension"));
        assert!(err("mxint8,mxint8", None).contains("twice"));
        assert!(err("mxint8; activations=sparse(mxint8),f32", None).contains("activation"));
        assert!(err("mxint8; activations=f32,mxint8", Some("mxint8")).contains("both"));
    }
}
