//! Byte layout of the header and of a tensor-table entry (FORMAT.md sections 2 and 4), as zerocopy types
//! with little-endian fields: they can be read from any `&[u8]` without alignment requirements.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub const MAGIC: [u8; 8] = *b"MXRT\r\n\x1a\n";
pub const VERSION_MAJOR: u16 = 1;
pub const VERSION_MINOR: u16 = 0;
pub const HEADER_LEN: u64 = 128;
pub const ENTRY_LEN: u64 = 152;
pub const TABLE_ALIGN: u64 = 8;
/// Alignment of every data plane: wgpu's minimum storage-buffer offset; enough for AVX2 and CUDA vector loads.
pub const PLANE_ALIGN: u64 = 256;
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

/// Offset of `header_crc32` within the header: the CRC covers the bytes before it.
pub const HEADER_CRC_OFFSET: usize = 124;

impl RawHeader {
    pub fn computed_crc(bytes: &[u8]) -> u32 {
        crc32fast::hash(&bytes[..HEADER_CRC_OFFSET])
    }
}
