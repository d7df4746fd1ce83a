//! Format 2.0's own fields, each lied about with valid checksums (plane alignment, compact entries, narrow
//! row offsets, canonical plane positions), and the version scheme: unknown layout versions and required
//! description features are refused with both versions named; version 1 and 2 decode to the same values.

use mxrt_format::layout::{RawHeader, ENTRY_V2_HEAD_LEN, HEADER_CRC_OFFSET};
use mxrt_format::{
    encode_f32, Encoding, Error, FileBuilder, FormatVersion, MxElem, MxrtFile, PlaneAlign,
    ReadOptions, Rounding, SparsePolicy,
};
use zerocopy::FromBytes;

fn values(n: usize, zero_every: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if i % zero_every == 0 {
                0.0
            } else {
                ((i * 7919) % 23) as f32 / 4.0 - 2.0
            }
        })
        .collect()
}

/// Tensors 0 (dense MXINT8 [3, 40]), 1 (sparse MXINT8 [5, 33]) and 2 (dense f32 [4]).
fn tensors() -> Vec<mxrt_format::EncodedTensor> {
    let r = Rounding::Nearest;
    vec![
        encode_f32(
            "mx",
            &[3, 40],
            &values(120, 7),
            Encoding::Mx(MxElem::Int8),
            r,
            SparsePolicy::Never,
        )
        .unwrap(),
        encode_f32(
            "sp",
            &[5, 33],
            &values(165, 2),
            Encoding::Mx(MxElem::Int8),
            r,
            SparsePolicy::Always,
        )
        .unwrap(),
        encode_f32(
            "b",
            &[4],
            &[1.0, 2.0, 3.0, 4.0],
            Encoding::F32,
            r,
            SparsePolicy::Never,
        )
        .unwrap(),
    ]
}

fn build(version: FormatVersion, meta: serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let mut b = FileBuilder::new(meta).unwrap().format_version(version);
    tensors().into_iter().for_each(|t| b.push(t).unwrap());
    b.to_bytes().unwrap()
}

fn v2() -> Vec<u8> {
    build(FormatVersion::V2, serde_json::Map::new())
}

fn parse(bytes: &[u8]) -> mxrt_format::Result<MxrtFile<'_>> {
    MxrtFile::parse(bytes, ReadOptions::default())
}

fn header(bytes: &[u8]) -> &RawHeader {
    RawHeader::ref_from_bytes(&bytes[..128]).unwrap()
}

/// Recomputes the table and header checksums after an edit, so only the lie remains.
fn reseal(bytes: &mut [u8]) {
    let h = header(bytes);
    let (table, strings_end) = (
        h.table_offset.get() as usize,
        (h.strings_offset.get() + h.strings_len.get()) as usize,
    );
    let crc = crc32fast::hash(&bytes[table..strings_end]);
    bytes[92..96].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..HEADER_CRC_OFFSET]);
    bytes[HEADER_CRC_OFFSET..128].copy_from_slice(&crc.to_le_bytes());
}

/// Byte offset of entry `index`'s head in a version 2 file of [`tensors`] (ranks 2, 2, 1).
fn entry_at(bytes: &[u8], index: usize) -> usize {
    let ranks = [2usize, 2, 1];
    header(bytes).table_offset.get() as usize
        + ranks[..index]
            .iter()
            .map(|r| ENTRY_V2_HEAD_LEN as usize + 8 * r)
            .sum::<usize>()
}

fn lie(edit: impl FnOnce(&mut Vec<u8>)) -> Error {
    let mut bytes = v2();
    edit(&mut bytes);
    reseal(&mut bytes);
    match parse(&bytes) {
        Ok(_) => panic!("the lie was accepted"),
        Err(e) => e,
    }
}

#[test]
fn the_version_2_file_reads_back_with_narrow_offsets_and_small_alignment() {
    let bytes = v2();
    let f = parse(&bytes).unwrap();
    assert_eq!(f.version(), (2, 0));
    assert_eq!(f.layout(), FormatVersion::V2);
    assert_eq!(f.plane_align(), 8);
    let sp = f.tensor("sp").unwrap();
    assert_eq!(sp.row_offset_bytes, 2);
    assert_eq!(sp.plane(3).len(), 6 * 2);
    // Canonical positions: each plane at the next multiple of 8 after the one before it.
    let mut end = header(&bytes).data_offset.get();
    for t in f.tensors() {
        for role in 0..4 {
            if !t.plane(role).is_empty() {
                assert_eq!(
                    t.plane_offset(role),
                    end.next_multiple_of(8),
                    "{} plane {role}",
                    t.name
                );
                end = t.plane_offset(role) + t.plane(role).len() as u64;
            }
        }
    }
    assert_eq!(end, bytes.len() as u64);
}

#[test]
fn both_versions_decode_to_the_same_values() {
    let (one, two) = (build(FormatVersion::V1, Default::default()), v2());
    let (one, two) = (parse(&one).unwrap(), parse(&two).unwrap());
    for (a, b) in one.tensors().iter().zip(two.tensors()) {
        assert_eq!((a.name, &a.shape, a.sparse), (b.name, &b.shape, b.sparse));
        let (x, y) = (a.dequantize().unwrap(), b.dequantize().unwrap());
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{}",
            a.name
        );
        assert_eq!(a.stored_elements(), b.stored_elements());
    }
    assert_eq!(one.tensor("sp").unwrap().row_offset_bytes, 8);
}

#[test]
fn row_offsets_widen_only_when_the_stored_count_needs_it() {
    // 300 x 300 with about one zero in 25: over 80,000 stored elements, past u16.
    let v = values(90_000, 50);
    let nonzero = v.iter().filter(|&&x| x != 0.0).count() as u64;
    assert!(nonzero > 65_535);
    let t = encode_f32(
        "w",
        &[300, 300],
        &v,
        Encoding::F16,
        Rounding::Nearest,
        SparsePolicy::Always,
    )
    .unwrap();
    let mut b = FileBuilder::new(Default::default()).unwrap();
    b.push(t).unwrap();
    let bytes = b.to_bytes().unwrap();
    let f = parse(&bytes).unwrap();
    let w = f.tensor("w").unwrap();
    assert_eq!((w.row_offset_bytes, w.plane(3).len()), (4, 301 * 4));
    assert_eq!(w.stored_elements(), nonzero);
    assert_eq!(
        f.plane_align(),
        256,
        "180 KB of planes: the automatic alignment is 256"
    );
}

#[test]
fn a_chosen_alignment_is_kept_and_bad_ones_are_refused() {
    let mut b = FileBuilder::new(Default::default())
        .unwrap()
        .plane_align(PlaneAlign::Log2(12));
    tensors().into_iter().for_each(|t| b.push(t).unwrap());
    let bytes = b.to_bytes().unwrap();
    let f = parse(&bytes).unwrap();
    assert_eq!(f.plane_align(), 4096);
    assert!(f.tensors().iter().all(|t| t.plane_offset(0) % 4096 == 0));
    assert_eq!(PlaneAlign::parse("auto").unwrap(), PlaneAlign::Auto);
    assert_eq!(PlaneAlign::parse("64").unwrap(), PlaneAlign::Log2(6));
    for bad in ["4", "100", "131072", "x"] {
        let e = PlaneAlign::parse(bad).unwrap_err();
        assert!(
            matches!(e, Error::BadPlaneAlignmentSpec { .. }),
            "{bad}: {e}"
        );
    }
}

#[test]
fn lying_alignment_bytes() {
    for log2 in [0u8, 2, 17, 255] {
        let e = lie(|b| b[96] = log2);
        assert!(
            matches!(e, Error::BadPlaneAlignment { log2: l } if l == log2),
            "{e}"
        );
    }
    // A valid alignment that is not the one the file was laid out with moves the data section.
    let e = lie(|b| b[96] = 9);
    assert!(
        matches!(
            e,
            Error::SectionMisplaced {
                section: "data",
                ..
            }
        ),
        "{e}"
    );
    let e = lie(|b| b[97] = 1);
    assert!(matches!(e, Error::NonZeroPadding { offset: 97, .. }), "{e}");
}

#[test]
fn lying_compact_entries() {
    let e = lie(|b| {
        let at = entry_at(b, 1);
        b[at + 8] = 3; // row-offset width
    });
    assert!(
        e.to_string().contains("sparse row offsets of 3 bytes"),
        "{e}"
    );
    let e = lie(|b| {
        let at = entry_at(b, 0);
        b[at + 16] = 1; // stored elements of a dense tensor
    });
    assert!(
        e.to_string()
            .contains("a dense tensor with a row-offset width"),
        "{e}"
    );
    let e = lie(|b| {
        let at = entry_at(b, 2);
        b[at + 6] = 9; // rank
    });
    assert!(
        matches!(e, Error::InvalidEntry { index: 2, .. }) && e.to_string().contains("rank 9"),
        "{e}"
    );
    let e = lie(|b| {
        let at = entry_at(b, 1);
        b[at + 9] = 1; // reserved
    });
    assert!(e.to_string().contains("reserved bytes are not zero"), "{e}");
    // More stored elements than the row offsets say: the planes after the elements move, and the last
    // row offset read there disagrees with the entry.
    let e = lie(|b| {
        let at = entry_at(b, 1);
        b[at + 16] = b[at + 16].wrapping_sub(1);
    });
    assert!(
        matches!(
            e,
            Error::BadSparse { .. } | Error::DataLengthMismatch { .. }
        ),
        "{e}"
    );
    let e = lie(|b| {
        let at = entry_at(b, 1);
        b[at + 16..at + 24].copy_from_slice(&u64::MAX.to_le_bytes());
    });
    assert!(matches!(e, Error::BadSparse { .. }), "{e}");
    // A rank 1 entry read as rank 2 takes 8 more bytes than the table has.
    let e = lie(|b| {
        let at = entry_at(b, 2);
        b[at + 6] = 2;
    });
    assert!(matches!(e, Error::InvalidEntry { index: 2, .. }), "{e}");
}

#[test]
fn lying_section_lengths() {
    // The header places the strings 8 bytes after the end of the entries.
    let e = lie(|b| {
        let v = header(b).strings_offset.get() + 8;
        b[56..64].copy_from_slice(&v.to_le_bytes());
    });
    assert!(matches!(e, Error::SectionMisplaced { .. }), "{e}");
    // Eight more zero bytes of data than the planes take.
    let e = lie(|b| {
        b.extend_from_slice(&[0; 8]);
        let (file_len, data_len) = (header(b).file_len.get() + 8, header(b).data_len.get() + 8);
        b[16..24].copy_from_slice(&file_len.to_le_bytes());
        b[80..88].copy_from_slice(&data_len.to_le_bytes());
    });
    assert!(matches!(e, Error::DataLengthMismatch { .. }), "{e}");
}

#[test]
fn a_newer_layout_names_both_versions() {
    let e = lie(|b| b[8..12].copy_from_slice(&[3, 0, 1, 0]));
    let text = e.to_string();
    assert!(
        matches!(e, Error::UnsupportedVersion { major: 3, minor: 1 }),
        "{text}"
    );
    assert!(
        text.contains("format 3.1") && text.contains("1.x") && text.contains("2.0"),
        "{text}"
    );
}

#[test]
fn a_newer_description_minor_version_is_read_unless_it_requires_a_feature() {
    // Minor 7: newer optional fields are ignored by this reader.
    let mut bytes = v2();
    bytes[10] = 7;
    reseal(&mut bytes);
    assert_eq!(parse(&bytes).unwrap().version(), (2, 7));
    // A field that changes results is listed in `requires`: a reader without it refuses the file.
    let mut meta = serde_json::Map::new();
    meta.insert("requires".into(), serde_json::json!(["quantized_biases"]));
    let mut bytes = build(FormatVersion::V2, meta);
    bytes[10] = 3;
    reseal(&mut bytes);
    let e = parse(&bytes).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, Error::RequiresFeature { ref feature, major: 2, minor: 3 } if feature == "quantized_biases"),
        "{text}"
    );
    assert!(
        text.contains("format 2.3") && text.contains("2.0 to 2.2"),
        "{text}"
    );
    let mut meta = serde_json::Map::new();
    meta.insert("requires".into(), serde_json::json!("quantized_biases"));
    assert!(matches!(
        FileBuilder::new(meta),
        Err(Error::InvalidMetadata { .. })
    ));
}
