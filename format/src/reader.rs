//! The zero-copy reader: validates a whole file once (FORMAT.md section 7) and hands out tensor views that
//! borrow their planes from the input bytes.

use std::collections::HashMap;

use serde_json::{Map, Value};
use zerocopy::FromBytes;

use crate::bits::{read_code, sign_extend};
use crate::encoding::{Encoding, RawDtype, Rounding};
use crate::error::{add, align_up, mul, Error, Result};
use crate::layout::*;
use crate::metadata::{check_required_features, parse_metadata};
use crate::mx::BLOCK;
use crate::shape::ShapeTerms;
use crate::table::{v1_entries, v2_entries, EntryFields, Placement};

/// How much to check at open.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Verify each tensor's CRC-32 (reads every data byte). Structure is always validated.
    pub verify_checksums: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            verify_checksums: true,
        }
    }
}

/// A validated `.mxrt` file borrowed from its bytes (a memory map or a buffer).
#[derive(Debug)]
pub struct MxrtFile<'a> {
    version: (u16, u16),
    layout: FormatVersion,
    plane_align: u64,
    file_len: u64,
    metadata: Map<String, Value>,
    tensors: Vec<TensorView<'a>>,
    by_name: HashMap<&'a str, usize>,
}

/// One tensor of a validated file. Its planes are slices of the file bytes, already checked against the
/// entry, so decoding never needs to re-check bounds.
#[derive(Debug, Clone)]
pub struct TensorView<'a> {
    pub name: &'a str,
    pub shape: Vec<u64>,
    pub encoding: Encoding,
    pub sparse: bool,
    pub rounding: Option<Rounding>,
    pub terms: ShapeTerms,
    pub(crate) planes: [&'a [u8]; 4],
    pub(crate) plane_offsets: [u64; 4],
    /// Sparse: bytes per row offset in plane 3 (8 in version 1; 2, 4 or 8 in version 2); dense: 0.
    pub row_offset_bytes: u8,
    pub(crate) crc32: u32,
}

impl<'a> TensorView<'a> {
    /// Plane bytes by role (`layout::PLANE_*`); empty when the role is unused.
    pub fn plane(&self, role: usize) -> &'a [u8] {
        self.planes[role]
    }

    /// Absolute file offset of a plane (0 when unused): what a GPU backend binds.
    pub fn plane_offset(&self, role: usize) -> u64 {
        self.plane_offsets[role]
    }

    /// Bytes of all planes of this tensor.
    pub fn stored_bytes(&self) -> u64 {
        self.planes.iter().map(|p| p.len() as u64).sum()
    }

    /// Number of stored elements (sparse: the non-zero ones).
    pub fn stored_elements(&self) -> u64 {
        if self.sparse {
            read_row_offset(
                self.planes[PLANE_ROW_OFFSETS],
                self.row_offset_bytes,
                self.terms.rows as usize,
            )
        } else {
            self.terms.numel
        }
    }
}

/// Row offset `row` of a sparse tensor's plane 3, stored in `width` bytes (2, 4 or 8) little-endian (0 past
/// the end; the reader validated the length).
pub fn read_row_offset(plane: &[u8], width: u8, row: usize) -> u64 {
    let width = usize::from(width.min(8));
    let mut b = [0u8; 8];
    if let Some(src) = plane.get(row * width..(row + 1) * width) {
        b[..width].copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

/// Mask of block `block` of a sparse tensor's plane 2 (0 past the end; the reader validated the length).
pub(crate) fn read_mask(plane: &[u8], block: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = plane.get(block * 4..block * 4 + 4) {
        b.copy_from_slice(src);
    }
    u32::from_le_bytes(b)
}

impl<'a> MxrtFile<'a> {
    /// Validates `bytes` as a whole `.mxrt` file of layout version 1 or 2.
    pub fn parse(bytes: &'a [u8], options: ReadOptions) -> Result<MxrtFile<'a>> {
        let actual = bytes.len() as u64;
        let Some(head) = bytes.get(..HEADER_LEN as usize) else {
            return Err(Error::Truncated {
                what: "header",
                needed: HEADER_LEN,
                actual,
            });
        };
        let h = RawHeader::ref_from_bytes(head).map_err(|_| Error::Truncated {
            what: "header",
            needed: HEADER_LEN,
            actual,
        })?;
        if h.magic != MAGIC {
            return Err(Error::BadMagic { found: h.magic });
        }
        let version = (h.version_major.get(), h.version_minor.get());
        let layout = match version.0 {
            1 => FormatVersion::V1,
            2 => FormatVersion::V2,
            _ => {
                return Err(Error::UnsupportedVersion {
                    major: version.0,
                    minor: version.1,
                })
            }
        };
        check_crc(
            "header",
            h.header_crc32.get(),
            RawHeader::computed_crc(head),
        )?;
        if h.flags.get() != 0 {
            return Err(Error::UnknownFlags {
                flags: h.flags.get(),
            });
        }
        let plane_align = match layout {
            FormatVersion::V1 => {
                check_zero(&h.reserved, "header reserved bytes", 96)?;
                PLANE_ALIGN
            }
            FormatVersion::V2 => {
                let log2 = h.reserved[0];
                if !(MIN_PLANE_ALIGN_LOG2..=MAX_PLANE_ALIGN_LOG2).contains(&log2) {
                    return Err(Error::BadPlaneAlignment { log2 });
                }
                check_zero(&h.reserved[1..], "header reserved bytes", 97)?;
                1u64 << log2
            }
        };
        if h.file_len.get() != actual {
            return Err(Error::FileLengthMismatch {
                header: h.file_len.get(),
                actual,
            });
        }

        // Canonical section positions. Version 1 entries have a fixed size; version 2 entries a size of their
        // own, so its table ends where the header says and the entries must fill it exactly (checked below).
        let metadata_len = h.metadata_len.get();
        let count = h.tensor_count.get();
        let metadata_end = add(HEADER_LEN, metadata_len, "metadata end")?;
        let table_offset = align_up(metadata_end, TABLE_ALIGN, "table offset")?;
        let min_table_len = match layout {
            FormatVersion::V1 => ENTRY_LEN,
            FormatVersion::V2 => ENTRY_V2_HEAD_LEN,
        };
        let min_strings_offset = add(
            table_offset,
            mul(count, min_table_len, "tensor table length")?,
            "strings offset",
        )?;
        let strings_offset = match layout {
            FormatVersion::V1 => min_strings_offset,
            FormatVersion::V2 if h.strings_offset.get() >= min_strings_offset => {
                h.strings_offset.get()
            }
            FormatVersion::V2 => min_strings_offset,
        };
        let strings_end = add(strings_offset, h.strings_len.get(), "strings end")?;
        let data_offset = align_up(strings_end, plane_align, "data offset")?;
        placed("metadata", h.metadata_offset.get(), HEADER_LEN)?;
        placed("tensor table", h.table_offset.get(), table_offset)?;
        placed("strings", h.strings_offset.get(), strings_offset)?;
        placed("data", h.data_offset.get(), data_offset)?;
        let data_end = add(data_offset, h.data_len.get(), "data end")?;
        if data_end != actual {
            return Err(Error::FileLengthMismatch {
                header: data_end,
                actual,
            });
        }
        if metadata_len < 2 {
            return Err(Error::InvalidMetadata {
                reason: format!("length {metadata_len} is too short for a JSON object"),
            });
        }
        // Everything below is in bounds: data_end == actual and the sections are ordered.
        let slice = |start: u64, end: u64| &bytes[start as usize..end as usize];
        check_zero(
            slice(metadata_end, table_offset),
            "gap after metadata",
            metadata_end,
        )?;
        check_zero(
            slice(strings_end, data_offset),
            "gap before data",
            strings_end,
        )?;

        let metadata_bytes = slice(HEADER_LEN, metadata_end);
        check_crc(
            "metadata",
            h.metadata_crc32.get(),
            crc32fast::hash(metadata_bytes),
        )?;
        let metadata = parse_metadata(metadata_bytes)?;
        check_required_features(&metadata, version)?;

        let table = slice(table_offset, strings_offset);
        let strings = slice(strings_offset, strings_end);
        let mut crc = crc32fast::Hasher::new();
        crc.update(table);
        crc.update(strings);
        check_crc("tensor table", h.table_crc32.get(), crc.finalize())?;

        let entries = match layout {
            FormatVersion::V1 => v1_entries(table)?,
            FormatVersion::V2 => {
                let (entries, used) = v2_entries(table, count)?;
                placed(
                    "strings",
                    strings_offset,
                    add(table_offset, used, "strings offset")?,
                )?;
                entries
            }
        };
        let ctx = Context {
            bytes,
            strings,
            data_offset,
            file_len: actual,
            plane_align,
            cursor: std::cell::Cell::new(data_offset),
        };
        let mut tensors = Vec::with_capacity(count as usize);
        let mut by_name = HashMap::with_capacity(count as usize);
        for entry in &entries {
            let view = ctx.entry(entry)?;
            if by_name.insert(view.name, tensors.len()).is_some() {
                return Err(Error::DuplicateName {
                    name: view.name.to_string(),
                });
            }
            tensors.push(view);
        }
        if layout == FormatVersion::V2 && ctx.cursor.get() != actual {
            // Canonical placement: the data section ends with the last plane.
            return Err(Error::DataLengthMismatch {
                placed: ctx.cursor.get() - data_offset,
                actual: actual - data_offset,
            });
        }
        check_data_section(bytes, data_offset, &tensors)?;
        for t in &tensors {
            validate_contents(t)?;
        }
        if options.verify_checksums {
            for t in &tensors {
                let mut crc = crc32fast::Hasher::new();
                t.planes.iter().for_each(|p| crc.update(p));
                check_crc(&format!("tensor {:?}", t.name), t.crc32, crc.finalize())?;
            }
        }
        Ok(MxrtFile {
            version,
            layout,
            plane_align,
            file_len: actual,
            metadata,
            tensors,
            by_name,
        })
    }

    /// The layout version (`major`) and the model-description version (`minor`) of the file.
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    pub fn layout(&self) -> FormatVersion {
        self.layout
    }

    /// The alignment of every data plane in this file (256 in version 1; chosen by the writer in version 2).
    pub fn plane_align(&self) -> u64 {
        self.plane_align
    }

    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// Tensors in table order.
    pub fn tensors(&self) -> &[TensorView<'a>] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorView<'a>> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }
}

fn check_crc(what: &str, stored: u32, computed: u32) -> Result<()> {
    if stored == computed {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch {
            what: what.to_string(),
            stored,
            computed,
        })
    }
}

fn check_zero(bytes: &[u8], what: &'static str, base: u64) -> Result<()> {
    match bytes.iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(Error::NonZeroPadding {
            what,
            offset: base + i as u64,
            value: bytes[i],
        }),
    }
}

fn placed(section: &'static str, found: u64, expected: u64) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::SectionMisplaced {
            section,
            found,
            expected,
        })
    }
}

struct Context<'a> {
    bytes: &'a [u8],
    strings: &'a [u8],
    data_offset: u64,
    file_len: u64,
    plane_align: u64,
    /// Version 2: where the next plane goes (planes follow each other in table order).
    cursor: std::cell::Cell<u64>,
}

impl<'a> Context<'a> {
    fn entry(&self, e: &EntryFields<'_>) -> Result<TensorView<'a>> {
        let index = e.index;
        let invalid = |reason: String| Error::InvalidEntry { index, reason };
        if !e.reserved_zero {
            return Err(invalid("reserved bytes are not zero".into()));
        }
        let name_len = e.name_len;
        if name_len == 0 || name_len > MAX_NAME_LEN {
            return Err(invalid(format!(
                "name length {name_len} is outside 1..={MAX_NAME_LEN}"
            )));
        }
        let name_start = e.name_offset;
        let name_end = name_start
            .checked_add(u64::from(name_len))
            .filter(|&end| end <= self.strings.len() as u64);
        let Some(name_end) = name_end else {
            return Err(invalid(format!(
                "name at {name_start}+{name_len} lies outside the {}-byte string section",
                self.strings.len()
            )));
        };
        let name = std::str::from_utf8(&self.strings[name_start as usize..name_end as usize])
            .map_err(|_| invalid("name is not valid UTF-8".into()))?;
        let encoding =
            Encoding::from_codes(e.encoding, e.param0, e.param1).map_err(|(unknown, reason)| {
                if unknown {
                    Error::UnknownEncoding {
                        tensor: name.to_string(),
                        code: e.encoding,
                    }
                } else {
                    Error::InvalidEncodingParams {
                        tensor: name.to_string(),
                        reason,
                    }
                }
            })?;
        let bad_entry = |reason: String| Error::InvalidEncodingParams {
            tensor: name.to_string(),
            reason,
        };
        let sparse = match e.layout {
            0 => false,
            1 if !matches!(encoding, Encoding::Raw(_)) => true,
            1 => return Err(bad_entry("raw tensors cannot be sparse".into())),
            l => return Err(bad_entry(format!("unknown layout {l}"))),
        };
        let rounding = match e.rounding {
            0 => None,
            1 => Some(Rounding::Nearest),
            2 => Some(Rounding::Even),
            r => return Err(bad_entry(format!("unknown rounding code {r}"))),
        };
        let rank = usize::from(e.rank);
        if rank > MAX_RANK {
            return Err(bad_entry(format!("rank {rank} is above {MAX_RANK}")));
        }
        if e.dims[rank.min(e.dims.len())..].iter().any(|&d| d != 0) {
            return Err(bad_entry(format!("dims beyond rank {rank} are not zero")));
        }
        let shape: Vec<u64> = e.dims[..rank].to_vec();
        let terms = ShapeTerms::new(&shape, &format!("shape {shape:?} of tensor {name:?}"))?;

        let what = format!("planes of tensor {name:?}");
        let (planes, offsets, row_offset_bytes) = match e.placement {
            Placement::Explicit(raw) => {
                self.explicit_planes(name, raw, encoding, sparse, &terms)?
            }
            Placement::Canonical {
                row_offset_bytes,
                stored_elements,
            } => {
                if sparse && ![2, 4, 8].contains(&row_offset_bytes) {
                    return Err(bad_entry(format!(
                        "sparse row offsets of {row_offset_bytes} bytes (2, 4 or 8 are defined)"
                    )));
                }
                if !sparse && (row_offset_bytes, stored_elements) != (0, 0) {
                    return Err(bad_entry(
                        "a dense tensor with a row-offset width or stored-element count".into(),
                    ));
                }
                if stored_elements > terms.numel {
                    return Err(Error::BadSparse {
                        tensor: name.to_string(),
                        reason: format!(
                            "{stored_elements} stored elements in a tensor of {}",
                            terms.numel
                        ),
                    });
                }
                let lens = if sparse {
                    terms.sparse_plane_lens(encoding, stored_elements, row_offset_bytes, &what)?
                } else {
                    terms.dense_plane_lens(encoding, &what)?
                };
                let (planes, offsets) = self.canonical_planes(name, lens)?;
                if sparse {
                    let last = read_row_offset(
                        planes[PLANE_ROW_OFFSETS],
                        row_offset_bytes,
                        terms.rows as usize,
                    );
                    if last != stored_elements {
                        return Err(Error::BadSparse {
                            tensor: name.to_string(),
                            reason: format!(
                                "the last row offset is {last}, the entry says {stored_elements} stored elements"
                            ),
                        });
                    }
                }
                (planes, offsets, row_offset_bytes)
            }
        };
        Ok(TensorView {
            name,
            shape,
            encoding,
            sparse,
            rounding,
            terms,
            planes,
            plane_offsets: offsets,
            row_offset_bytes,
            crc32: e.crc32,
        })
    }

    /// Version 1: each plane where the entry puts it (checked), of exactly the length the entry implies;
    /// a sparse tensor's element count comes from its (u64) row offsets.
    #[allow(clippy::type_complexity)]
    fn explicit_planes(
        &self,
        name: &str,
        raw: &[RawPlane; 4],
        encoding: Encoding,
        sparse: bool,
        terms: &ShapeTerms,
    ) -> Result<([&'a [u8]; 4], [u64; 4], u8)> {
        let what = format!("planes of tensor {name:?}");
        let mut planes: [&'a [u8]; 4] = [&[]; 4];
        let mut offsets = [0u64; 4];
        let expected = if sparse {
            let lens = terms.sparse_plane_lens(encoding, 0, 8, &what)?;
            for role in [PLANE_SCALES, PLANE_MASKS, PLANE_ROW_OFFSETS] {
                (planes[role], offsets[role]) = self.plane(name, role, &raw[role], lens[role])?;
            }
            let stored = read_row_offset(planes[PLANE_ROW_OFFSETS], 8, terms.rows as usize);
            if stored > terms.numel {
                return Err(Error::BadSparse {
                    tensor: name.to_string(),
                    reason: format!("{stored} stored elements in a tensor of {}", terms.numel),
                });
            }
            terms.sparse_plane_lens(encoding, stored, 8, &what)?
        } else {
            terms.dense_plane_lens(encoding, &what)?
        };
        for role in 0..4 {
            if !(sparse && role != PLANE_ELEMENTS) {
                (planes[role], offsets[role]) =
                    self.plane(name, role, &raw[role], expected[role])?;
            }
        }
        Ok((planes, offsets, if sparse { 8 } else { 0 }))
    }

    /// Version 2: the used planes (`len > 0`) in role order, each at the next multiple of the file's plane
    /// alignment after the previous plane.
    fn canonical_planes(&self, name: &str, lens: [u64; 4]) -> Result<([&'a [u8]; 4], [u64; 4])> {
        let mut planes: [&'a [u8]; 4] = [&[]; 4];
        let mut offsets = [0u64; 4];
        for role in 0..4 {
            let len = lens[role];
            if len == 0 {
                continue;
            }
            let offset = align_up(self.cursor.get(), self.plane_align, "plane offset")?;
            let end = add(offset, len, "plane end")?;
            if end > self.file_len {
                return Err(Error::BadPlane {
                    tensor: name.to_string(),
                    plane: role,
                    role: PLANE_ROLES[role],
                    reason: format!(
                        "of {len} bytes at {offset} runs past the end of the file ({} bytes)",
                        self.file_len
                    ),
                });
            }
            planes[role] = &self.bytes[offset as usize..end as usize];
            offsets[role] = offset;
            self.cursor.set(end);
        }
        Ok((planes, offsets))
    }

    /// Checks one plane's position and length and returns its bytes.
    fn plane(
        &self,
        tensor: &str,
        role: usize,
        p: &RawPlane,
        expected: u64,
    ) -> Result<(&'a [u8], u64)> {
        let bad = |reason: String| Error::BadPlane {
            tensor: tensor.to_string(),
            plane: role,
            role: PLANE_ROLES[role],
            reason,
        };
        let (offset, len) = (p.offset.get(), p.len.get());
        if len != expected {
            return Err(bad(format!(
                "has length {len}, the entry requires {expected}"
            )));
        }
        if len == 0 {
            return if offset == 0 {
                Ok((&[], 0))
            } else {
                Err(bad(format!("is empty but has offset {offset}, not 0")))
            };
        }
        if offset % PLANE_ALIGN != 0 {
            return Err(bad(format!(
                "offset {offset} is not a multiple of {PLANE_ALIGN}"
            )));
        }
        let end = offset.checked_add(len);
        if offset < self.data_offset || end.is_none_or(|end| end > self.file_len) {
            return Err(bad(format!(
                "at {offset}+{len} lies outside the data section [{}, {})",
                self.data_offset, self.file_len
            )));
        }
        Ok((
            &self.bytes[offset as usize..(offset + len) as usize],
            offset,
        ))
    }
}

/// Planes must not overlap; bytes of the data section outside every plane must be zero.
fn check_data_section(bytes: &[u8], data_offset: u64, tensors: &[TensorView<'_>]) -> Result<()> {
    let mut spans: Vec<(u64, u64, usize, usize)> = Vec::new();
    for (ti, t) in tensors.iter().enumerate() {
        for role in 0..4 {
            if !t.planes[role].is_empty() {
                spans.push((t.plane_offsets[role], t.planes[role].len() as u64, ti, role));
            }
        }
    }
    spans.sort_unstable();
    let mut cursor = data_offset;
    let mut previous: Option<(usize, usize)> = None;
    for &(offset, len, ti, role) in &spans {
        if offset < cursor {
            let (pt, pr) = previous.unwrap_or((ti, role));
            return Err(Error::PlanesOverlap {
                a: tensors[pt].name.to_string(),
                plane_a: pr,
                b: tensors[ti].name.to_string(),
                plane_b: role,
                offset,
            });
        }
        check_zero(
            &bytes[cursor as usize..offset as usize],
            "gap between data planes",
            cursor,
        )?;
        cursor = offset + len;
        previous = Some((ti, role));
    }
    check_zero(&bytes[cursor as usize..], "end of data section", cursor)
}

/// Content rules that keep decoding well defined: sparse masks and row offsets agree, padding is zero,
/// fixed-point codes are in range.
fn validate_contents(t: &TensorView<'_>) -> Result<()> {
    let bits = t.encoding.element_bits();
    let elements = t.planes[PLANE_ELEMENTS];
    let terms = &t.terms;
    if t.sparse {
        validate_sparse(t)?;
    } else if t.encoding.is_mx() {
        // Padding codes after the last column of each row are zero.
        let stride = terms.dense_row_stride(t.encoding);
        if stride != terms.cols {
            for r in 0..terms.rows {
                for c in terms.cols..stride {
                    if read_code(elements, bits, r * stride + c) != 0 {
                        return Err(Error::BadPlane {
                            tensor: t.name.to_string(),
                            plane: PLANE_ELEMENTS,
                            role: PLANE_ROLES[PLANE_ELEMENTS],
                            reason: format!("padding element at row {r}, column {c} is not zero"),
                        });
                    }
                }
            }
        }
    }
    // Unused high bits of the last element byte are zero.
    let count = element_count(t);
    let used_bits = count * u64::from(bits);
    if !used_bits.is_multiple_of(8) {
        if let Some(&last) = elements.last() {
            if last >> (used_bits % 8) != 0 {
                return Err(Error::BadPlane {
                    tensor: t.name.to_string(),
                    plane: PLANE_ELEMENTS,
                    role: PLANE_ROLES[PLANE_ELEMENTS],
                    reason: "unused bits of the last byte are not zero".into(),
                });
            }
        }
    }
    if t.encoding == Encoding::Raw(RawDtype::Bool) {
        check_bools(t.name, elements)?;
    }
    if let Encoding::Fixed { width, .. } = t.encoding {
        if fixed_container(width) != width {
            let (lo, hi) = crate::fixed::code_range(width);
            for i in 0..count {
                let q = i64::from(sign_extend(read_code(elements, bits, i), bits));
                if q < lo || q > hi {
                    return Err(Error::CodeOutOfRange {
                        tensor: t.name.to_string(),
                        index: i,
                        code: q,
                        encoding: t.encoding.to_string(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// A raw bool tensor holds bytes 0 and 1 only (FORMAT.md section 5): any other byte is refused, naming it.
pub(crate) fn check_bools(tensor: &str, bytes: &[u8]) -> Result<()> {
    match bytes.iter().position(|&b| b > 1) {
        Some(at) => Err(Error::CodeOutOfRange {
            tensor: tensor.to_string(),
            index: at as u64,
            code: i64::from(bytes[at]),
            encoding: Encoding::Raw(RawDtype::Bool).to_string(),
        }),
        None => Ok(()),
    }
}

/// Codes held by the element plane: the stored ones (sparse) or every row padded to its stride (dense).
/// Validated plane lengths guarantee the product fits.
fn element_count(t: &TensorView<'_>) -> u64 {
    if t.sparse {
        t.stored_elements()
    } else {
        t.terms.rows * t.terms.dense_row_stride(t.encoding)
    }
}

fn fixed_container(width: u8) -> u8 {
    crate::encoding::fixed_container_bits(width) as u8
}

fn validate_sparse(t: &TensorView<'_>) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::BadSparse {
            tensor: t.name.to_string(),
            reason,
        })
    };
    let terms = &t.terms;
    let (masks, offsets) = (t.planes[PLANE_MASKS], t.planes[PLANE_ROW_OFFSETS]);
    let width = t.row_offset_bytes;
    if read_row_offset(offsets, width, 0) != 0 {
        return bad("row offset 0 is not 0".into());
    }
    let bpr = terms.blocks_per_row as usize;
    let tail_bits = terms.cols as usize % BLOCK;
    let tail_mask: u32 = if tail_bits == 0 {
        u32::MAX
    } else {
        (1u32 << tail_bits) - 1
    };
    let mut stored = 0u64;
    for r in 0..terms.rows as usize {
        for j in 0..bpr {
            let m = read_mask(masks, r * bpr + j);
            if j + 1 == bpr && m & !tail_mask != 0 {
                return bad(format!(
                    "mask of row {r} block {j} has bits set beyond column {}",
                    terms.cols
                ));
            }
            stored += u64::from(m.count_ones());
        }
        let next = read_row_offset(offsets, width, r + 1);
        if next != stored {
            return bad(format!(
                "row offset {} is {next}, the masks of rows 0..={r} hold {stored} elements",
                r + 1
            ));
        }
    }
    Ok(())
}
