//! Byte layout of the header and of the tensor-table entries of both format versions (FORMAT.md sections 2
//! and 4), as zerocopy types with little-endian fields: they can be read from any `&[u8]` without alignment
//! requirements.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub const MAGIC: [u8; 8] = *b"MXRT\r\n\x1a\n";
/// The layout version the writer produces by default, and the newest this reader knows.
pub const VERSION_MAJOR: u16 = 2;
/// The newest model-description (minor) version this crate documents and reads (FORMAT.md section 10).
/// 2.1 added the recipe layers' `biases` (quantized biases) among others, 2.2 the recipe layers' channel
/// scales; the writer marks a file with the oldest minor whose fields it uses
/// ([`crate::FileBuilder::description_minor`]).
pub const VERSION_MINOR: u16 = 2;
/// Oldest layout version this reader still reads.
pub const OLDEST_MAJOR: u16 = 1;
pub const HEADER_LEN: u64 = 128;
/// Version 1: every table entry is 152 bytes.
pub const ENTRY_LEN: u64 = 152;
/// Version 2: an entry is this head followed by `rank` u64 dims.
pub const ENTRY_V2_HEAD_LEN: u64 = 24;
pub const TABLE_ALIGN: u64 = 8;
/// Version 1's alignment of every data plane (wgpu's minimum storage-buffer offset).
pub const PLANE_ALIGN: u64 = 256;
/// Version 2: the plane alignment is `2^plane_align_log2` (header byte 96), chosen by the writer in this range.
pub const MIN_PLANE_ALIGN_LOG2: u8 = 3;
pub const MAX_PLANE_ALIGN_LOG2: u8 = 16;
pub const MAX_RANK: usize = 8;
pub const MAX_NAME_LEN: u32 = 4096;
/// Plane roles, indexed as in the table entry.
pub const PLANE_ROLES: [&str; 4] = ["elements", "scales", "masks", "row offsets"];
pub const PLANE_ELEMENTS: usize = 0;
pub const PLANE_SCALES: usize = 1;
pub const PLANE_MASKS: usize = 2;
pub const PLANE_ROW_OFFSETS: usize = 3;

#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawHeader {
    pub magic: [u8; 8],
    pub version_major: U16,
    pub version_minor: U16,
    pub flags: U32,
    pub file_len: U64,
    pub metadata_offset: U64,
    pub metadata_len: U64,
    pub table_offset: U64,
    pub tensor_count: U64,
    pub strings_offset: U64,
    pub strings_len: U64,
    pub data_offset: U64,
    pub data_len: U64,
    pub metadata_crc32: U32,
    pub table_crc32: U32,
    pub reserved: [u8; 28],
    pub header_crc32: U32,
}
const _: () = assert!(std::mem::size_of::<RawHeader>() == HEADER_LEN as usize);

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawPlane {
    pub offset: U64,
    pub len: U64,
}

#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawEntry {
    pub name_offset: U64,
    pub name_len: U32,
    pub encoding: u8,
    pub param0: u8,
    pub param1: u8,
    pub layout: u8,
    pub rank: u8,
    pub rounding: u8,
    pub reserved: [u8; 2],
    pub crc32: U32,
    pub dims: [U64; MAX_RANK],
    pub planes: [RawPlane; 4],
}
const _: () = assert!(std::mem::size_of::<RawEntry>() == ENTRY_LEN as usize);

/// A version 2 table entry's fixed part; `rank` little-endian u64 dims follow it. Plane positions are not
/// stored: planes follow each other in table order, each at the file's plane alignment (FORMAT.md section 4).
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawEntryV2 {
    pub name_len: U16,
    pub encoding: u8,
    pub param0: u8,
    pub param1: u8,
    pub layout: u8,
    pub rank: u8,
    pub rounding: u8,
    /// Sparse: bytes per row offset (2, 4 or 8); dense: 0.
    pub row_offset_bytes: u8,
    pub reserved: [u8; 3],
    pub crc32: U32,
    /// Sparse: the number of stored elements (the last row offset); dense: 0.
    pub stored_elements: U64,
}
const _: () = assert!(std::mem::size_of::<RawEntryV2>() == ENTRY_V2_HEAD_LEN as usize);

/// The layout versions this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatVersion {
    /// 152-byte entries with explicit plane offsets, 256-byte plane alignment, u64 sparse row offsets.
    V1,
    /// Compact entries, canonical plane positions, per-file plane alignment, narrow sparse row offsets.
    V2,
}

impl FormatVersion {
    pub fn major(self) -> u16 {
        match self {
            FormatVersion::V1 => 1,
            FormatVersion::V2 => 2,
        }
    }
}

/// Offset of `header_crc32` within the header: the CRC covers the bytes before it.
pub const HEADER_CRC_OFFSET: usize = 124;

impl RawHeader {
    pub fn computed_crc(bytes: &[u8]) -> u32 {
        crc32fast::hash(&bytes[..HEADER_CRC_OFFSET])
    }
}
