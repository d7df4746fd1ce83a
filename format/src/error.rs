//! The one error type of `mxrt-format`: every way reading, validating or writing a file can fail.

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Variants name the tensor (by name or table index) or the byte
/// offset involved, so a message alone tells the user what is wrong with which file part.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- header -------------------------------------------------------------------------------------------
    #[error("file is truncated: {needed} bytes needed for the {what}, only {actual} present")]
    Truncated {
        what: &'static str,
        needed: u64,
        actual: u64,
    },
    #[error("not an .mxrt file: bad magic bytes {found:02x?}")]
    BadMagic { found: [u8; 8] },
    #[error(
        "this file is .mxrt format {major}.{minor}; this reader (mxrt-format {}) reads formats 1.x and \
         2.0 to 2.{}: a newer mxrt is needed",
        env!("CARGO_PKG_VERSION"),
        crate::layout::VERSION_MINOR
    )]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error(
        "this file (.mxrt format {major}.{minor}) requires {feature:?}, which this reader (format 2.0 to \
         2.{}) does not implement: a newer mxrt is needed",
        crate::layout::VERSION_MINOR
    )]
    RequiresFeature {
        feature: String,
        major: u16,
        minor: u16,
    },
    #[error("unknown header flags 0x{flags:08x} (no flags are defined in versions 1 and 2)")]
    UnknownFlags { flags: u32 },
    #[error("plane alignment 2^{log2} is outside 2^3 ..= 2^16 (header byte 96)")]
    BadPlaneAlignment { log2: u8 },
    #[error(
        "the tensor table places {placed} bytes of planes, but the data section holds {actual}"
    )]
    DataLengthMismatch { placed: u64, actual: u64 },
    #[error("{what} checksum mismatch: stored 0x{stored:08x}, computed 0x{computed:08x} (file corrupted)")]
    ChecksumMismatch {
        what: String,
        stored: u32,
        computed: u32,
    },
    #[error("header says the file is {header} bytes, but it is {actual} bytes")]
    FileLengthMismatch { header: u64, actual: u64 },
    #[error("{section} section: header says offset {found}, but the layout requires {expected}")]
    SectionMisplaced {
        section: &'static str,
        found: u64,
        expected: u64,
    },
    #[error("{what} overflows 64-bit arithmetic")]
    Overflow { what: String },
    #[error("non-zero byte 0x{value:02x} at offset {offset} in {what}, which must be zero")]
    NonZeroPadding {
        what: &'static str,
        offset: u64,
        value: u8,
    },

    // ---- metadata -----------------------------------------------------------------------------------------
    #[error("metadata is invalid: {reason}")]
    InvalidMetadata { reason: String },

    // ---- tensor table -------------------------------------------------------------------------------------
    #[error("tensor #{index}: {reason}")]
    InvalidEntry { index: u64, reason: String },
    #[error("tensor name {name:?} appears more than once")]
    DuplicateName { name: String },
    #[error("tensor {tensor:?}: unknown encoding code {code}")]
    UnknownEncoding { tensor: String, code: u8 },
    #[error("tensor {tensor:?}: invalid encoding parameters: {reason}")]
    InvalidEncodingParams { tensor: String, reason: String },
    #[error("tensor {tensor:?}: plane {plane} ({role}) {reason}")]
    BadPlane {
        tensor: String,
        plane: usize,
        role: &'static str,
        reason: String,
    },
    #[error(
        "tensor {a:?} plane {plane_a} overlaps tensor {b:?} plane {plane_b} at offset {offset}"
    )]
    PlanesOverlap {
        a: String,
        plane_a: usize,
        b: String,
        plane_b: usize,
        offset: u64,
    },
    #[error("tensor {tensor:?}: sparse structure is inconsistent: {reason}")]
    BadSparse { tensor: String, reason: String },
    #[error(
        "tensor {tensor:?}: element {index} holds code {code}, outside the range of {encoding}"
    )]
    CodeOutOfRange {
        tensor: String,
        index: u64,
        code: i64,
        encoding: String,
    },

    // ---- encoding / writing -------------------------------------------------------------------------------
    #[error("cannot parse encoding {spec:?}: {reason}")]
    BadEncodingSpec { spec: String, reason: String },
    #[error("tensor {tensor:?}: shape {shape:?} holds {expected} elements but {actual} values were given")]
    ShapeMismatch {
        tensor: String,
        shape: Vec<u64>,
        expected: u64,
        actual: u64,
    },
    #[error("tensor {tensor:?}: value {value} at flat index {index} cannot be encoded as {encoding}: {reason}")]
    Unencodable {
        tensor: String,
        index: u64,
        value: f32,
        encoding: String,
        reason: &'static str,
    },
    #[error("tensor {tensor:?}: {reason}")]
    Unsupported { tensor: String, reason: String },
    #[error("plane alignment {spec:?} is not `auto` or a power of two from 8 to 65536")]
    BadPlaneAlignmentSpec { spec: String },
    #[error("refusing to write {path}: {reason}")]
    UnsafeOutput { path: PathBuf, reason: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checked `a + b` that names what overflowed.
pub(crate) fn add(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_add(b).ok_or_else(|| Error::Overflow {
        what: what.to_string(),
    })
}

/// Checked `a * b` that names what overflowed.
pub(crate) fn mul(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_mul(b).ok_or_else(|| Error::Overflow {
        what: what.to_string(),
    })
}

/// `x` rounded up to a multiple of `align` (a power of two), checked.
pub(crate) fn align_up(x: u64, align: u64, what: &str) -> Result<u64> {
    Ok(add(x, align - 1, what)? & !(align - 1))
}
