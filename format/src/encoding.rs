//! Encoding identities: names as users write them (`mxint8`, `fixed:8.4`, `sparse(mxfp4)`), table codes, and
//! element widths. The numeric work lives in `mx`, `fixed`, `float` and `sparse`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// OCP MX element types (FORMAT.md table 5.2). The discriminant is the `param0` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MxElem {
    Int8 = 1,
    Int4 = 2,
    Fp8E4M3 = 3,
    Fp8E5M2 = 4,
    Fp6E3M2 = 5,
    Fp6E2M3 = 6,
    Fp4 = 7,
}

impl MxElem {
    pub const ALL: [MxElem; 7] = [
        MxElem::Int8,
        MxElem::Int4,
        MxElem::Fp8E4M3,
        MxElem::Fp8E5M2,
        MxElem::Fp6E3M2,
        MxElem::Fp6E2M3,
        MxElem::Fp4,
    ];

    pub fn from_code(code: u8) -> Option<MxElem> {
        MxElem::ALL.into_iter().find(|e| *e as u8 == code)
    }

    /// The name used on the command line and in FORMAT.md (`mxint8`, `mxfp8-e4m3`, ...).
    pub fn name(self) -> &'static str {
        match self {
            MxElem::Int8 => "mxint8",
            MxElem::Int4 => "mxint4",
            MxElem::Fp8E4M3 => "mxfp8-e4m3",
            MxElem::Fp8E5M2 => "mxfp8-e5m2",
            MxElem::Fp6E3M2 => "mxfp6-e3m2",
            MxElem::Fp6E2M3 => "mxfp6-e2m3",
            MxElem::Fp4 => "mxfp4",
        }
    }

    /// Bits of one element code.
    pub fn bits(self) -> u32 {
        match self {
            MxElem::Int8 | MxElem::Fp8E4M3 | MxElem::Fp8E5M2 => 8,
            MxElem::Fp6E3M2 | MxElem::Fp6E2M3 => 6,
            MxElem::Int4 | MxElem::Fp4 => 4,
        }
    }
}

/// Dtypes of tensors copied byte for byte (FORMAT.md 5.4). The discriminant is the `param0` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawDtype {
    Bool = 1,
    U8 = 2,
    I8 = 3,
    U16 = 4,
    I16 = 5,
    U32 = 6,
    I32 = 7,
    U64 = 8,
    I64 = 9,
    F64 = 10,
}

impl RawDtype {
    pub const ALL: [RawDtype; 10] = [
        RawDtype::Bool,
        RawDtype::U8,
        RawDtype::I8,
        RawDtype::U16,
        RawDtype::I16,
        RawDtype::U32,
        RawDtype::I32,
        RawDtype::U64,
        RawDtype::I64,
        RawDtype::F64,
    ];

    pub fn from_code(code: u8) -> Option<RawDtype> {
        RawDtype::ALL.into_iter().find(|d| *d as u8 == code)
    }

    pub fn size_bytes(self) -> u32 {
        match self {
            RawDtype::Bool | RawDtype::U8 | RawDtype::I8 => 1,
            RawDtype::U16 | RawDtype::I16 => 2,
            RawDtype::U32 | RawDtype::I32 => 4,
            RawDtype::U64 | RawDtype::I64 | RawDtype::F64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RawDtype::Bool => "bool",
            RawDtype::U8 => "u8",
            RawDtype::I8 => "i8",
            RawDtype::U16 => "u16",
            RawDtype::I16 => "i16",
            RawDtype::U32 => "u32",
            RawDtype::I32 => "i32",
            RawDtype::U64 => "u64",
            RawDtype::I64 => "i64",
            RawDtype::F64 => "f64",
        }
    }
}

/// The element encoding of a tensor, without its layout (dense or sparse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    F32,
    F16,
    Bf16,
    Mx(MxElem),
    /// Signed fixed point: `width` bits (2..=32), `frac` fraction bits (0..=64).
    Fixed {
        width: u8,
        frac: u8,
    },
    Raw(RawDtype),
}

/// Table code of each encoding family (FORMAT.md section 5).
pub(crate) mod code {
    pub const F32: u8 = 1;
    pub const F16: u8 = 2;
    pub const BF16: u8 = 3;
    pub const MX: u8 = 4;
    pub const FIXED: u8 = 5;
    pub const RAW: u8 = 6;
}

pub const FIXED_MAX_FRAC: u8 = 64;

impl Encoding {
    /// Build a fixed-point encoding, checking its parameters.
    pub fn fixed(width: u8, frac: u8) -> Result<Encoding> {
        check_fixed(width, frac).map_err(|reason| Error::BadEncodingSpec {
            spec: format!("fixed:{width}.{frac}"),
            reason,
        })?;
        Ok(Encoding::Fixed { width, frac })
    }

    /// Width in bits of one stored element code.
    pub fn element_bits(self) -> u32 {
        match self {
            Encoding::F32 => 32,
            Encoding::F16 | Encoding::Bf16 => 16,
            Encoding::Mx(e) => e.bits(),
            Encoding::Fixed { width, .. } => fixed_container_bits(width),
            Encoding::Raw(d) => d.size_bytes() * 8,
        }
    }

    /// True for the block formats, which pad rows to whole blocks and carry a scale plane.
    pub fn is_mx(self) -> bool {
        matches!(self, Encoding::Mx(_))
    }

    /// True if the values are floating point in the file (the sign-only code is a zero).
    pub(crate) fn has_negative_zero_code(self) -> bool {
        match self {
            Encoding::F32 | Encoding::F16 | Encoding::Bf16 => true,
            Encoding::Mx(e) => !matches!(e, MxElem::Int8 | MxElem::Int4),
            Encoding::Fixed { .. } | Encoding::Raw(_) => false,
        }
    }

    pub(crate) fn to_codes(self) -> (u8, u8, u8) {
        match self {
            Encoding::F32 => (code::F32, 0, 0),
            Encoding::F16 => (code::F16, 0, 0),
            Encoding::Bf16 => (code::BF16, 0, 0),
            Encoding::Mx(e) => (code::MX, e as u8, 0),
            Encoding::Fixed { width, frac } => (code::FIXED, width, frac),
            Encoding::Raw(d) => (code::RAW, d as u8, 0),
        }
    }

    /// Decode the `(encoding, param0, param1)` triple of a table entry; `Err` carries the reason.
    pub(crate) fn from_codes(
        enc: u8,
        p0: u8,
        p1: u8,
    ) -> std::result::Result<Encoding, (bool, String)> {
        // (true, _) = unknown encoding code; (false, reason) = bad parameters.
        let no_params = |e: Encoding| {
            if p0 == 0 && p1 == 0 {
                Ok(e)
            } else {
                Err((false, format!("param0={p0} param1={p1}, both must be 0")))
            }
        };
        match enc {
            code::F32 => no_params(Encoding::F32),
            code::F16 => no_params(Encoding::F16),
            code::BF16 => no_params(Encoding::Bf16),
            code::MX => match (MxElem::from_code(p0), p1) {
                (Some(e), 0) => Ok(Encoding::Mx(e)),
                (None, _) => Err((false, format!("unknown MX element type {p0}"))),
                (Some(_), _) => Err((false, format!("param1={p1}, must be 0"))),
            },
            code::FIXED => check_fixed(p0, p1)
                .map(|()| Encoding::Fixed {
                    width: p0,
                    frac: p1,
                })
                .map_err(|r| (false, r)),
            code::RAW => match (RawDtype::from_code(p0), p1) {
                (Some(d), 0) => Ok(Encoding::Raw(d)),
                (None, _) => Err((false, format!("unknown raw dtype {p0}"))),
                (Some(_), _) => Err((false, format!("param1={p1}, must be 0"))),
            },
            _ => Err((true, String::new())),
        }
    }
}

fn check_fixed(width: u8, frac: u8) -> std::result::Result<(), String> {
    if !(2..=32).contains(&width) {
        return Err(format!("width {width} is outside 2..=32"));
    }
    if frac > FIXED_MAX_FRAC {
        return Err(format!(
            "fraction width {frac} is outside 0..={FIXED_MAX_FRAC}"
        ));
    }
    Ok(())
}

/// Storage bits of a fixed-point code of `width` bits: packed below 8, else the smallest integer container.
pub fn fixed_container_bits(width: u8) -> u32 {
    match width {
        0..=7 => u32::from(width),
        8 => 8,
        9..=16 => 16,
        _ => 32,
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoding::F32 => f.write_str("f32"),
            Encoding::F16 => f.write_str("f16"),
            Encoding::Bf16 => f.write_str("bf16"),
            Encoding::Mx(e) => f.write_str(e.name()),
            Encoding::Fixed { width, frac } => write!(f, "fixed:{width}.{frac}"),
            Encoding::Raw(d) => write!(f, "raw-{}", d.name()),
        }
    }
}

/// What a user asks for: an encoding, and whether sparse storage may be used (`sparse(<inner>)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodingSpec {
    pub encoding: Encoding,
    /// `sparse(...)` was written: the writer may store the tensor sparse (it still does so only when smaller).
    pub sparse_requested: bool,
}

impl FromStr for EncodingSpec {
    type Err = Error;

    /// Parses `f32`, `f16`, `bf16`, `mxint8`, `mxint4`, `mxfp8-e4m3`, `mxfp8-e5m2`, `mxfp6-e3m2`, `mxfp6-e2m3`,
    /// `mxfp4`, `fixed:W.F`, and `sparse(<any of those>)`. Underscores are accepted for dashes
    /// (`mxfp8_e4m3`, as in the conformance file names).
    fn from_str(spec: &str) -> Result<Self> {
        let bad = |reason: String| Error::BadEncodingSpec {
            spec: spec.to_string(),
            reason,
        };
        let s = spec.trim().to_ascii_lowercase().replace('_', "-");
        if let Some(inner) = s.strip_prefix("sparse(").and_then(|r| r.strip_suffix(')')) {
            let inner: EncodingSpec = inner
                .parse()
                .map_err(|_| bad(format!("unknown inner encoding {inner:?}")))?;
            if inner.sparse_requested {
                return Err(bad("sparse(...) cannot be nested".into()));
            }
            return Ok(EncodingSpec {
                encoding: inner.encoding,
                sparse_requested: true,
            });
        }
        let encoding = match s.as_str() {
            "f32" => Encoding::F32,
            "f16" => Encoding::F16,
            "bf16" => Encoding::Bf16,
            _ => {
                if let Some(e) = MxElem::ALL.into_iter().find(|e| e.name() == s) {
                    Encoding::Mx(e)
                } else if let Some(wf) = s.strip_prefix("fixed:") {
                    let (w, f) = wf
                        .split_once('.')
                        .ok_or_else(|| bad("expected fixed:W.F, e.g. fixed:8.4".into()))?;
                    let width: u8 = w
                        .parse()
                        .map_err(|_| bad(format!("width {w:?} is not a number")))?;
                    let frac: u8 = f
                        .parse()
                        .map_err(|_| bad(format!("fraction width {f:?} is not a number")))?;
                    Encoding::fixed(width, frac).map_err(|_| {
                        bad(format!("need 2 <= W <= 32 and 0 <= F <= {FIXED_MAX_FRAC}, got W={width} F={frac}"))
                    })?
                } else {
                    return Err(bad(
                        "expected one of f32, f16, bf16, mxint8, mxint4, mxfp8-e4m3, mxfp8-e5m2, mxfp6-e3m2, \
                         mxfp6-e2m3, mxfp4, fixed:W.F, sparse(<encoding>)"
                            .into(),
                    ));
                }
            }
        };
        Ok(EncodingSpec {
            encoding,
            sparse_requested: false,
        })
    }
}

/// Rounding mode for MX and fixed-point encoding (FORMAT.md 5.2 step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rounding {
    /// Half away from zero (the microxcaling reference's "nearest"). The default.
    #[default]
    Nearest,
    /// Half to even.
    Even,
}

impl Rounding {
    pub(crate) fn code(self) -> u8 {
        match self {
            Rounding::Nearest => 1,
            Rounding::Even => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rounding::Nearest => "nearest",
            Rounding::Even => "even",
        }
    }
}

impl FromStr for Rounding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "nearest" => Ok(Rounding::Nearest),
            "even" => Ok(Rounding::Even),
            _ => Err(Error::BadEncodingSpec {
                spec: s.to_string(),
                reason: "rounding must be `nearest` or `even`".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_itself() {
        let mut all = vec![
            Encoding::F32,
            Encoding::F16,
            Encoding::Bf16,
            Encoding::fixed(8, 4).unwrap(),
        ];
        all.extend(MxElem::ALL.map(Encoding::Mx));
        for e in all {
            let spec: EncodingSpec = e.to_string().parse().unwrap();
            assert_eq!(spec.encoding, e);
            assert!(!spec.sparse_requested);
            let sparse: EncodingSpec = format!("sparse({e})").parse().unwrap();
            assert_eq!(
                sparse,
                EncodingSpec {
                    encoding: e,
                    sparse_requested: true
                }
            );
        }
        assert_eq!(
            "mxfp8_e4m3".parse::<EncodingSpec>().unwrap().encoding,
            Encoding::Mx(MxElem::Fp8E4M3)
        );
    }

    #[test]
    fn bad_specs_are_rejected_with_reasons() {
        for bad in [
            "",
            "int8",
            "fixed:1.0",
            "fixed:33.0",
            "fixed:8",
            "fixed:8.65",
            "sparse(sparse(f32))",
            "mxint3",
        ] {
            let err = bad.parse::<EncodingSpec>().unwrap_err();
            assert!(matches!(err, Error::BadEncodingSpec { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn container_widths() {
        let got: Vec<u32> = [2u8, 3, 7, 8, 9, 16, 17, 32]
            .iter()
            .map(|&w| fixed_container_bits(w))
            .collect();
        assert_eq!(got, vec![2, 3, 7, 8, 16, 16, 32, 32]);
    }

    #[test]
    fn table_codes_round_trip() {
        for e in MxElem::ALL
            .map(Encoding::Mx)
            .into_iter()
            .chain(RawDtype::ALL.map(Encoding::Raw))
        {
            let (a, b, c) = e.to_codes();
            assert_eq!(Encoding::from_codes(a, b, c).unwrap(), e);
        }
        assert!(Encoding::from_codes(0, 0, 0).unwrap_err().0);
        assert!(!Encoding::from_codes(code::MX, 8, 0).unwrap_err().0);
        assert!(!Encoding::from_codes(code::FIXED, 33, 0).unwrap_err().0);
        assert!(!Encoding::from_codes(code::F32, 1, 0).unwrap_err().0);
    }
}
