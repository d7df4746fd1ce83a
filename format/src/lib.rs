#![doc = include_str!("../FORMAT.md")]
#![forbid(unsafe_code)]
//! # Crate `mxrt-format`
//! The specification above is implemented here: [`encode_f32`] and [`FileBuilder`] write, [`MxrtFile`] validates
//! and reads without copying, [`TensorView::dequantize`] decodes.

pub mod bits;
mod decode;
pub mod description;
mod encode;
pub mod encoding;
mod error;
mod file_io;
pub mod fixed;
pub mod float;
pub mod inspect;
pub mod layout;
mod metadata;
pub mod mx;
mod reader;
pub mod rows;
mod shape;
mod table;
mod writer;

pub use encode::{encode_f32, encode_raw, EncodedTensor, SparsePolicy};
pub use encoding::{Encoding, EncodingSpec, MxElem, RawDtype, Rounding};
pub use error::{Error, Result};
pub use file_io::{
    check_output, open_regular_file, remove_partial_files, write_atomically, StagedDir,
    PARTIAL_PREFIX,
};
pub use layout::FormatVersion;
pub use metadata::{parse_metadata, validate_metadata};
pub use reader::{read_row_offset, MxrtFile, ReadOptions, TensorView};
pub use shape::{row_offset_bytes_for, ShapeTerms};
pub use writer::{FileBuilder, PlaneAlign};
