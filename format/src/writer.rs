//! Assembling a file (FORMAT.md section 1) in memory; `file_io::write_atomically` puts it on disk.

use std::collections::HashSet;
use std::path::Path;

use zerocopy::IntoBytes;

use crate::encode::EncodedTensor;
use crate::error::{align_up, Error, Result};
use crate::file_io::write_atomically;
use crate::layout::*;
use crate::metadata::validate_metadata;

/// Collects metadata and encoded tensors, then lays out the file.
#[derive(Debug, Default)]
pub struct FileBuilder {
    metadata: serde_json::Map<String, serde_json::Value>,
    tensors: Vec<EncodedTensor>,
    names: HashSet<String>,
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

    /// The complete file image.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let metadata = serde_json::to_vec(&self.metadata).map_err(|e| Error::InvalidMetadata {
            reason: format!("cannot serialise: {e}"),
        })?;
        let metadata_len = metadata.len() as u64;
        let table_offset = align_up(HEADER_LEN + metadata_len, TABLE_ALIGN, "table offset")?;
        let count = self.tensors.len() as u64;
        let strings_offset = table_offset + ENTRY_LEN * count;
        let strings: Vec<u8> = self.tensors.iter().flat_map(|t| t.name.bytes()).collect();
        let data_offset = align_up(
            strings_offset + strings.len() as u64,
            PLANE_ALIGN,
            "data offset",
        )?;

        // Place planes in table order, plane order, each 256-aligned.
        let mut cursor = data_offset;
        let mut entries = Vec::with_capacity(self.tensors.len());
        let mut name_offset = 0u64;
        for t in &self.tensors {
            let mut planes = [RawPlane {
                offset: 0.into(),
                len: 0.into(),
            }; 4];
            let mut crc = crc32fast::Hasher::new();
            for (slot, bytes) in planes.iter_mut().zip(&t.planes) {
                if bytes.is_empty() {
                    continue;
                }
                cursor = align_up(cursor, PLANE_ALIGN, "plane offset")?;
                *slot = RawPlane {
                    offset: cursor.into(),
                    len: (bytes.len() as u64).into(),
                };
                cursor += bytes.len() as u64;
                crc.update(bytes);
            }
            let (encoding, param0, param1) = t.encoding.to_codes();
            let mut dims = [0u64.into(); MAX_RANK];
            for (d, &s) in dims.iter_mut().zip(&t.shape) {
                *d = s.into();
            }
            entries.push(RawEntry {
                name_offset: name_offset.into(),
                name_len: (t.name.len() as u32).into(),
                encoding,
                param0,
                param1,
                layout: u8::from(t.sparse),
                rank: t.shape.len() as u8,
                rounding: t.rounding.map_or(0, |r| r.code()),
                reserved: [0; 2],
                crc32: crc.finalize().into(),
                dims,
                planes,
            });
            name_offset += t.name.len() as u64;
        }
        let file_len = cursor;

        let mut table = Vec::with_capacity((ENTRY_LEN * count) as usize);
        entries
            .iter()
            .for_each(|e| table.extend_from_slice(e.as_bytes()));
        let mut table_crc = crc32fast::Hasher::new();
        table_crc.update(&table);
        table_crc.update(&strings);
        let mut header = RawHeader {
            magic: MAGIC,
            version_major: VERSION_MAJOR.into(),
            version_minor: VERSION_MINOR.into(),
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
            reserved: [0; 28],
            header_crc32: 0.into(),
        };
        header.header_crc32 = RawHeader::computed_crc(header.as_bytes()).into();

        let mut out = vec![0u8; file_len as usize];
        out[..HEADER_LEN as usize].copy_from_slice(header.as_bytes());
        out[HEADER_LEN as usize..][..metadata.len()].copy_from_slice(&metadata);
        out[table_offset as usize..][..table.len()].copy_from_slice(&table);
        out[strings_offset as usize..][..strings.len()].copy_from_slice(&strings);
        for (t, e) in self.tensors.iter().zip(&entries) {
            for (bytes, plane) in t.planes.iter().zip(&e.planes) {
                out[plane.offset.get() as usize..][..bytes.len()].copy_from_slice(bytes);
            }
        }
        Ok(out)
    }

    /// Writes the file to `path` atomically; returns its length.
    pub fn write_to_path(&self, path: &Path) -> Result<u64> {
        let bytes = self.to_bytes()?;
        write_atomically(path, |w| w.write_all(&bytes))?;
        Ok(bytes.len() as u64)
    }
}
