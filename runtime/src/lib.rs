//! `mxrt-runtime`: opens `.mxrt` files for execution. For now: memory-map and validate once; model graphs and
//! backends build on [`MappedFile`].

#![deny(unsafe_code)]

mod mapped;

pub use mapped::{MappedFile, OpenError};
