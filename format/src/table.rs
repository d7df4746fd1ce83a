//! The tensor table of both layout versions (FORMAT.md section 4), read into one shape: [`EntryFields`]
//! holds what an entry says, whichever version wrote it, and the reader validates that one shape.

use zerocopy::FromBytes;

use crate::error::{Error, Result};
use crate::layout::*;

/// One table entry as written, before validation.
pub(crate) struct EntryFields<'t> {
    pub index: u64,
    /// Version 1 stores it; version 2 derives it (names follow each other in table order).
    pub name_offset: u64,
    pub name_len: u32,
    pub encoding: u8,
    pub param0: u8,
    pub param1: u8,
    pub layout: u8,
    pub rank: u8,
    pub rounding: u8,
    pub reserved_zero: bool,
    pub crc32: u32,
    /// Version 1: all 8 dims (those past `rank` must be zero); version 2: exactly `rank` dims.
    pub dims: Vec<u64>,
    pub placement: Placement<'t>,
}

/// Where an entry's planes are and how its sparse row offsets are stored.
pub(crate) enum Placement<'t> {
    /// Version 1: offsets and lengths in the entry; row offsets are u64.
    Explicit(&'t [RawPlane; 4]),
    /// Version 2: planes follow each other at the file's alignment; the entry gives the sparse row-offset
    /// width and stored element count (both 0 for dense tensors).
    Canonical {
        row_offset_bytes: u8,
        stored_elements: u64,
    },
}

/// Version 1: `count` entries of 152 bytes.
pub(crate) fn v1_entries(table: &[u8]) -> Result<Vec<EntryFields<'_>>> {
    table
        .chunks_exact(ENTRY_LEN as usize)
        .enumerate()
        .map(|(index, raw)| {
            let index = index as u64;
            let e = RawEntry::ref_from_bytes(raw).map_err(|_| Error::InvalidEntry {
                index,
                reason: "table entry is not 152 bytes".into(),
            })?;
            Ok(EntryFields {
                index,
                name_offset: e.name_offset.get(),
                name_len: e.name_len.get(),
                encoding: e.encoding,
                param0: e.param0,
                param1: e.param1,
                layout: e.layout,
                rank: e.rank,
                rounding: e.rounding,
                reserved_zero: e.reserved == [0, 0],
                crc32: e.crc32.get(),
                dims: e.dims.iter().map(|d| d.get()).collect(),
                placement: Placement::Explicit(&e.planes),
            })
        })
        .collect()
}

/// Version 2: `count` entries of a 24-byte head and `rank` u64 dims each, read from the start of `table`;
/// also returns the bytes they take (the reader requires them to fill the table exactly).
pub(crate) fn v2_entries(table: &[u8], count: u64) -> Result<(Vec<EntryFields<'_>>, u64)> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    let mut name_offset = 0u64;
    for index in 0..count {
        let truncated = |needed: usize| Error::InvalidEntry {
            index,
            reason: format!(
                "the table ends {} bytes into this entry, which needs {needed}",
                table.len() - at
            ),
        };
        let head_len = ENTRY_V2_HEAD_LEN as usize;
        let head = table
            .get(at..at + head_len)
            .ok_or_else(|| truncated(head_len))?;
        let e = RawEntryV2::ref_from_bytes(head).map_err(|_| truncated(head_len))?;
        // The rank sizes the entry, so a wrong one is refused here, before it misplaces every later entry.
        let rank = usize::from(e.rank);
        if rank > MAX_RANK {
            return Err(Error::InvalidEntry {
                index,
                reason: format!("rank {rank} is above {MAX_RANK}"),
            });
        }
        let needed = head_len + rank * 8;
        let raw_dims = table
            .get(at + head_len..at + needed)
            .ok_or_else(|| truncated(needed))?;
        let dims = raw_dims
            .chunks_exact(8)
            .map(|d| u64::from_le_bytes(d.try_into().unwrap_or([0; 8])))
            .collect();
        let name_len = u32::from(e.name_len.get());
        entries.push(EntryFields {
            index,
            name_offset,
            name_len,
            encoding: e.encoding,
            param0: e.param0,
            param1: e.param1,
            layout: e.layout,
            rank: e.rank,
            rounding: e.rounding,
            reserved_zero: e.reserved == [0; 3],
            crc32: e.crc32.get(),
            dims,
            placement: Placement::Canonical {
                row_offset_bytes: e.row_offset_bytes,
                stored_elements: e.stored_elements.get(),
            },
        });
        name_offset += u64::from(name_len);
        at += needed;
    }
    Ok((entries, at as u64))
}
