//! Assembling a file (FORMAT.md section 1) in memory; `file_io::write_atomically` puts it on disk. Version 2
//! by default; version 1 on request (for fixtures and for tests of the version 1 reader).

use std::collections::HashSet;
use std::path::Path;

use zerocopy::IntoBytes;

use crate::encode::EncodedTensor;
use crate::error::{align_up, Error, Result};
use crate::file_io::write_atomically;
use crate::layout::*;
use crate::metadata::validate_metadata;
use crate::shape::row_offset_bytes_for;

/// Collects metadata and encoded tensors, then lays out the file.
#[derive(Debug)]
pub struct FileBuilder {
    metadata: serde_json::Map<String, serde_json::Value>,
    tensors: Vec<EncodedTensor>,
    names: HashSet<String>,
    version: FormatVersion,
    plane_align: PlaneAlign,
    description_minor: u16,
}

impl Default for FileBuilder {
    fn default() -> Self {
        FileBuilder {
            metadata: serde_json::Map::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
            version: FormatVersion::V2,
            plane_align: PlaneAlign::Auto,
            description_minor: 0,
        }
    }
}

/// How a version 2 file aligns its data planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaneAlign {
    /// The largest alignment in 8..=256 bytes whose padding stays within about 1 % of the tensor bytes:
    /// 256 (wgpu's storage-buffer offset alignment, whole cache lines) for real models, 8 for tiny ones.
    Auto,
    /// `2^log2` bytes, `log2` in 3..=16.
    Log2(u8),
}

impl PlaneAlign {
    /// Parses `auto` or a power of two from 8 to 65536.
    pub fn parse(text: &str) -> Result<PlaneAlign> {
        if text.eq_ignore_ascii_case("auto") {
            return Ok(PlaneAlign::Auto);
        }
        let n: u64 = text.parse().map_err(|_| Error::BadPlaneAlignmentSpec {
            spec: text.to_string(),
        })?;
        let log2 = n.trailing_zeros() as u8;
        if !n.is_power_of_two() || !(MIN_PLANE_ALIGN_LOG2..=MAX_PLANE_ALIGN_LOG2).contains(&log2) {
            return Err(Error::BadPlaneAlignmentSpec {
                spec: text.to_string(),
            });
        }
        Ok(PlaneAlign::Log2(log2))
    }
}

impl FileBuilder {
    pub fn new(metadata: serde_json::Map<String, serde_json::Value>) -> Result<FileBuilder> {
        validate_metadata(&metadata)?;
        Ok(FileBuilder {
            metadata,
            ..FileBuilder::default()
        })
    }

    /// Replaces the metadata (for writers that know it only after encoding the tensors).
    pub fn set_metadata(
        &mut self,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        validate_metadata(&metadata)?;
        self.metadata = metadata;
        Ok(())
    }

    /// Adds a tensor; names must be unique and 1..=4096 bytes.
    pub fn push(&mut self, tensor: EncodedTensor) -> Result<()> {
        if tensor.name.is_empty() || tensor.name.len() > MAX_NAME_LEN as usize {
            return Err(Error::Unsupported {
                tensor: tensor.name.clone(),
                reason: format!("names must be 1..={MAX_NAME_LEN} bytes long"),
            });
        }
        if tensor.shape.len() > MAX_RANK {
            return Err(Error::Unsupported {
                tensor: tensor.name.clone(),
                reason: format!(
                    "rank {} is above the maximum of {MAX_RANK}",
                    tensor.shape.len()
                ),
            });
        }
        if !self.names.insert(tensor.name.clone()) {
            return Err(Error::DuplicateName { name: tensor.name });
        }
        self.tensors.push(tensor);
        Ok(())
    }

    pub fn tensors(&self) -> &[EncodedTensor] {
        &self.tensors
    }

    /// Writes layout version `version` (default: 2). Version 1 ignores the plane alignment (always 256).
    pub fn format_version(mut self, version: FormatVersion) -> FileBuilder {
        self.version = version;
        self
    }

    /// The model-description version a layout 2 file declares (its header's minor version; default 0):
    /// the oldest that has every field the metadata uses (FORMAT.md section 10). At most
    /// [`VERSION_MINOR`]; layout 1 files are always description 2.0 (minor 0).
    pub fn description_minor(mut self, minor: u16) -> FileBuilder {
        self.description_minor = minor.min(VERSION_MINOR);
        self
    }

    /// The plane alignment of a version 2 file (default: [`PlaneAlign::Auto`]).
    pub fn plane_align(mut self, align: PlaneAlign) -> FileBuilder {
        self.plane_align = align;
        self
    }

    /// The plane alignment (as log2) [`PlaneAlign::Auto`] picks for these tensors: the largest in 8..=256
    /// bytes with `planes × alignment ≤ tensor bytes / 100` (worst-case padding about 1 %), else 8.
    fn auto_align_log2(&self) -> u8 {
        let planes = self
            .tensors
            .iter()
            .flat_map(|t| &t.planes)
            .filter(|p| !p.is_empty())
            .count() as u64;
        let bytes: u64 = self
            .tensors
            .iter()
            .flat_map(|t| &t.planes)
            .map(|p| p.len() as u64)
            .sum();
        (MIN_PLANE_ALIGN_LOG2..=8)
            .rev()
            .find(|&log2| planes.saturating_mul(1 << log2) <= bytes / 100)
            .unwrap_or(MIN_PLANE_ALIGN_LOG2)
    }

    /// The complete file image.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let metadata = serde_json::to_vec(&self.metadata).map_err(|e| Error::InvalidMetadata {
            reason: format!("cannot serialise: {e}"),
        })?;
        let metadata_len = metadata.len() as u64;
        let table_offset = align_up(HEADER_LEN + metadata_len, TABLE_ALIGN, "table offset")?;
        let count = self.tensors.len() as u64;
        let (align_log2, plane_align) = match (self.version, self.plane_align) {
            (FormatVersion::V1, _) => (0, PLANE_ALIGN),
            (FormatVersion::V2, PlaneAlign::Log2(l)) => (l, 1u64 << l),
            (FormatVersion::V2, PlaneAlign::Auto) => {
                let l = self.auto_align_log2();
                (l, 1u64 << l)
            }
        };
        // Each tensor's planes as stored: version 2 narrows sparse row offsets to the width that holds them.
        let stored: Vec<[std::borrow::Cow<'_, [u8]>; 4]> =
            self.tensors.iter().map(|t| self.stored_planes(t)).collect();
        let table_len: u64 = match self.version {
            FormatVersion::V1 => ENTRY_LEN * count,
            FormatVersion::V2 => self
                .tensors
                .iter()
                .map(|t| ENTRY_V2_HEAD_LEN + 8 * t.shape.len() as u64)
                .sum(),
        };
        let strings_offset = table_offset + table_len;
        let strings: Vec<u8> = self.tensors.iter().flat_map(|t| t.name.bytes()).collect();
        let data_offset = align_up(
            strings_offset + strings.len() as u64,
            plane_align,
            "data offset",
        )?;

        // Place planes in table order, plane order, each aligned (version 2: exactly where the reader
        // expects them; version 1 records the offsets).
        let mut cursor = data_offset;
        let mut placed: Vec<[(u64, u64); 4]> = Vec::with_capacity(self.tensors.len());
        let mut table = Vec::with_capacity(table_len as usize);
        let mut name_offset = 0u64;
        for (t, planes_bytes) in self.tensors.iter().zip(&stored) {
            let mut planes = [(0u64, 0u64); 4];
            let mut crc = crc32fast::Hasher::new();
            for (slot, bytes) in planes.iter_mut().zip(planes_bytes) {
                if bytes.is_empty() {
                    continue;
                }
                cursor = align_up(cursor, plane_align, "plane offset")?;
                *slot = (cursor, bytes.len() as u64);
                cursor += bytes.len() as u64;
                crc.update(bytes);
            }
            let crc = crc.finalize();
            let (encoding, param0, param1) = t.encoding.to_codes();
            let rounding = t.rounding.map_or(0, |r| r.code());
            match self.version {
                FormatVersion::V1 => {
                    let mut dims = [0u64.into(); MAX_RANK];
                    for (d, &s) in dims.iter_mut().zip(&t.shape) {
                        *d = s.into();
                    }
                    let entry = RawEntry {
                        name_offset: name_offset.into(),
                        name_len: (t.name.len() as u32).into(),
                        encoding,
                        param0,
                        param1,
                        layout: u8::from(t.sparse),
                        rank: t.shape.len() as u8,
                        rounding,
                        reserved: [0; 2],
                        crc32: crc.into(),
                        dims,
                        planes: planes.map(|(offset, len)| RawPlane {
                            offset: offset.into(),
                            len: len.into(),
                        }),
                    };
                    table.extend_from_slice(entry.as_bytes());
                }
                FormatVersion::V2 => {
                    let stored_elements = if t.sparse { t.last_row_offset() } else { 0 };
                    let entry = RawEntryV2 {
                        name_len: (t.name.len() as u16).into(),
                        encoding,
                        param0,
                        param1,
                        layout: u8::from(t.sparse),
                        rank: t.shape.len() as u8,
                        rounding,
                        row_offset_bytes: if t.sparse {
                            row_offset_bytes_for(stored_elements)
                        } else {
                            0
                        },
                        reserved: [0; 3],
                        crc32: crc.into(),
                        stored_elements: stored_elements.into(),
                    };
                    table.extend_from_slice(entry.as_bytes());
                    t.shape
                        .iter()
                        .for_each(|d| table.extend_from_slice(&d.to_le_bytes()));
                }
            }
            placed.push(planes);
            name_offset += t.name.len() as u64;
        }
        let file_len = cursor;

        let mut table_crc = crc32fast::Hasher::new();
        table_crc.update(&table);
        table_crc.update(&strings);
        let mut reserved = [0u8; 28];
        reserved[0] = align_log2;
        let mut header = RawHeader {
            magic: MAGIC,
            version_major: self.version.major().into(),
            version_minor: match self.version {
                FormatVersion::V1 => 0,
                FormatVersion::V2 => self.description_minor,
            }
            .into(),
            flags: 0.into(),
            file_len: file_len.into(),
            metadata_offset: HEADER_LEN.into(),
            metadata_len: metadata_len.into(),
            table_offset: table_offset.into(),
            tensor_count: count.into(),
            strings_offset: strings_offset.into(),
            strings_len: (strings.len() as u64).into(),
            data_offset: data_offset.into(),
            data_len: (file_len - data_offset).into(),
            metadata_crc32: crc32fast::hash(&metadata).into(),
            table_crc32: table_crc.finalize().into(),
            reserved,
            header_crc32: 0.into(),
        };
        header.header_crc32 = RawHeader::computed_crc(header.as_bytes()).into();

        let mut out = vec![0u8; file_len as usize];
        out[..HEADER_LEN as usize].copy_from_slice(header.as_bytes());
        out[HEADER_LEN as usize..][..metadata.len()].copy_from_slice(&metadata);
        out[table_offset as usize..][..table.len()].copy_from_slice(&table);
        out[strings_offset as usize..][..strings.len()].copy_from_slice(&strings);
        for (planes_bytes, planes) in stored.iter().zip(&placed) {
            for (bytes, &(offset, _)) in planes_bytes.iter().zip(planes) {
                out[offset as usize..][..bytes.len()].copy_from_slice(bytes);
            }
        }
        Ok(out)
    }

    /// A tensor's planes as this version stores them: version 2 rewrites the (u64) sparse row offsets of
    /// an encoded tensor in the narrowest width that holds them.
    fn stored_planes<'t>(&self, t: &'t EncodedTensor) -> [std::borrow::Cow<'t, [u8]>; 4] {
        use std::borrow::Cow;
        let mut planes = [0, 1, 2, 3].map(|role| Cow::Borrowed(&t.planes[role][..]));
        if t.sparse && self.version == FormatVersion::V2 {
            let width = usize::from(row_offset_bytes_for(t.last_row_offset()));
            let narrow: Vec<u8> = t.planes[PLANE_ROW_OFFSETS]
                .chunks_exact(8)
                .flat_map(|o| o[..width].to_vec())
                .collect();
            planes[PLANE_ROW_OFFSETS] = Cow::Owned(narrow);
        }
        planes
    }

    /// Writes the file to `path` atomically; returns its length.
    pub fn write_to_path(&self, path: &Path) -> Result<u64> {
        let bytes = self.to_bytes()?;
        write_atomically(path, |w| w.write_all(&bytes))?;
        Ok(bytes.len() as u64)
    }
}
