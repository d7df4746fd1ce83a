//! Hostile files: every truncation and 10 000 random mutations (of a version 1 and a version 2 file), and
//! crafted version 1 headers and table entries whose checksums are valid but whose offsets, lengths, shapes
//! or counts lie (version 2's own fields: `tests/version2.rs`). Each must be an error naming the
//! problem; none may panic or read out of bounds (the reader only uses checked slicing, so an out-of-bounds
//! read would be a panic, which fails these tests).

use std::panic::{catch_unwind, AssertUnwindSafe};

use mxrt_format::layout::{RawEntry, RawHeader, ENTRY_LEN, HEADER_CRC_OFFSET, HEADER_LEN};
use mxrt_format::{
    encode_f32, encode_raw, Encoding, Error, FileBuilder, FormatVersion, MxElem, MxrtFile,
    RawDtype, ReadOptions,
};
use mxrt_format::{Rounding, SparsePolicy};
use rand::{rngs::StdRng, Rng, SeedableRng};
use zerocopy::{FromBytes, IntoBytes};

/// The version 1 file the crafted lies below edit (their offsets are version 1's).
fn valid_file() -> Vec<u8> {
    valid_file_of(FormatVersion::V1)
}

/// A small file exercising every layout: MX dense, sparse fixed point, packed widths, f16, scalar, empty, raw.
pub fn valid_file_of(version: FormatVersion) -> Vec<u8> {
    let mut meta = serde_json::Map::new();
    meta.insert("architecture".into(), serde_json::Value::Null);
    let mut b = FileBuilder::new(meta).unwrap().format_version(version);
    let n = |k: usize| {
        (0..k)
            .map(|i| ((i * 7919) % 23) as f32 / 4.0 - 2.0)
            .collect::<Vec<f32>>()
    };
    let mut sparse_vals = n(5 * 33);
    sparse_vals.iter_mut().step_by(3).for_each(|v| *v = 0.0);
    let r = Rounding::Nearest;
    b.push(
        encode_f32(
            "mx",
            &[3, 40],
            &n(120),
            Encoding::Mx(MxElem::Int8),
            r,
            SparsePolicy::Never,
        )
        .unwrap(),
    )
    .unwrap();
    b.push(
        encode_f32(
            "sp",
            &[5, 33],
            &sparse_vals,
            Encoding::fixed(4, 2).unwrap(),
            r,
            SparsePolicy::Always,
        )
        .unwrap(),
    )
    .unwrap();
    b.push(
        encode_f32(
            "fx",
            &[2, 9],
            &n(18),
            Encoding::fixed(12, 4).unwrap(),
            r,
            SparsePolicy::Never,
        )
        .unwrap(),
    )
    .unwrap();
    b.push(
        encode_f32(
            "f4",
            &[2, 5],
            &n(10),
            Encoding::Mx(MxElem::Fp4),
            r,
            SparsePolicy::Never,
        )
        .unwrap(),
    )
    .unwrap();
    b.push(encode_f32("h", &[7], &n(7), Encoding::F16, r, SparsePolicy::Never).unwrap())
        .unwrap();
    b.push(encode_f32("s", &[], &[1.5], Encoding::F32, r, SparsePolicy::Never).unwrap())
        .unwrap();
    b.push(encode_f32("e", &[0, 3], &[], Encoding::Bf16, r, SparsePolicy::Never).unwrap())
        .unwrap();
    b.push(
        encode_raw(
            "ids",
            &[2],
            RawDtype::I64,
            [5i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
        .unwrap(),
    )
    .unwrap();
    b.push(
        encode_f32(
            "p3",
            &[5],
            &n(5),
            Encoding::fixed(3, 1).unwrap(),
            r,
            SparsePolicy::Never,
        )
        .unwrap(),
    )
    .unwrap();
    b.to_bytes().unwrap()
}

fn parse(bytes: &[u8]) -> mxrt_format::Result<()> {
    MxrtFile::parse(bytes, ReadOptions::default()).map(|_| ())
}

/// Parses without panicking; with checksums off, also decodes every tensor (that must not panic either).
fn parse_guarded(bytes: &[u8], what: &str) -> mxrt_format::Result<()> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(f) = MxrtFile::parse(
            bytes,
            ReadOptions {
                verify_checksums: false,
            },
        ) {
            for t in f.tensors() {
                let _ = t.dequantize();
                let _ = t.zero_count();
            }
        }
        parse(bytes)
    }));
    match result {
        Ok(r) => r,
        Err(_) => panic!("reader panicked on {what}"),
    }
}

#[test]
fn the_valid_file_is_valid() {
    for version in [FormatVersion::V1, FormatVersion::V2] {
        the_valid_file_is_valid_in(version);
    }
}

fn the_valid_file_is_valid_in(version: FormatVersion) {
    let bytes = valid_file_of(version);
    let f = MxrtFile::parse(&bytes, ReadOptions::default()).unwrap();
    assert_eq!(f.layout(), version);
    assert_eq!(f.tensors().len(), 9);
    assert_eq!(f.tensor("p3").unwrap().plane(0).len(), 2); // 5 codes x 3 bits: bit 15 unused
    assert!(f.tensor("sp").unwrap().sparse);
    assert_eq!(f.tensor("ids").unwrap().zero_count(), 0);
    assert_eq!(
        f.tensor("ids").unwrap().plane(0),
        [5i64, -1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>()
    );
    assert!(f.tensor("ids").unwrap().dequantize().is_err());
}

#[test]
fn every_truncation_is_an_error() {
    for version in [FormatVersion::V1, FormatVersion::V2] {
        every_truncation_is_an_error_in(version);
    }
}

fn every_truncation_is_an_error_in(version: FormatVersion) {
    let bytes = valid_file_of(version);
    for len in 0..bytes.len() {
        let err = parse_guarded(&bytes[..len], &format!("truncation to {len}")).unwrap_err();
        let ok = match len {
            0..=127 => matches!(err, Error::Truncated { .. }),
            _ => matches!(err, Error::FileLengthMismatch { .. }),
        };
        assert!(ok, "truncation to {len}: {err}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        parse(&longer),
        Err(Error::FileLengthMismatch { .. })
    ));
}

#[test]
fn ten_thousand_random_mutations_are_all_detected() {
    for version in [FormatVersion::V1, FormatVersion::V2] {
        ten_thousand_random_mutations_are_all_detected_in(version);
    }
}

fn ten_thousand_random_mutations_are_all_detected_in(version: FormatVersion) {
    let bytes = valid_file_of(version);
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for i in 0..10_000 {
        let mut m = bytes.clone();
        let at = rng.gen_range(0..m.len());
        if i % 2 == 0 {
            m[at] ^= 1 << rng.gen_range(0..8);
        } else {
            let old = m[at];
            m[at] = loop {
                let v: u8 = rng.gen();
                if v != old {
                    break v;
                }
            };
        }
        let what = format!(
            "{version:?}: mutation {i} at byte {at} ({:#04x} -> {:#04x})",
            bytes[at], m[at]
        );
        let err = parse_guarded(&m, &what).expect_err(&what);
        assert!(!err.to_string().is_empty());
    }
}

/// Rewrites header and table entries of a valid file, then reseals the table and header checksums (and,
/// when asked, the tensor checksums) so that only the structural lie remains.
fn craft(
    edit: impl FnOnce(&mut RawHeader, &mut Vec<RawEntry>, &mut Vec<u8>),
    reseal_tensors: bool,
) -> Vec<u8> {
    let mut bytes = valid_file();
    let mut h = RawHeader::read_from_bytes(&bytes[..HEADER_LEN as usize]).unwrap();
    let table = h.table_offset.get() as usize;
    let count = h.tensor_count.get() as usize;
    let strings_end = (h.strings_offset.get() + h.strings_len.get()) as usize;
    let mut entries: Vec<RawEntry> = (0..count)
        .map(|i| {
            RawEntry::read_from_bytes(
                &bytes[table + i * ENTRY_LEN as usize..][..ENTRY_LEN as usize],
            )
            .unwrap()
        })
        .collect();
    edit(&mut h, &mut entries, &mut bytes);
    if reseal_tensors {
        for e in entries.iter_mut() {
            let mut crc = crc32fast::Hasher::new();
            for p in &e.planes {
                let (o, l) = (p.offset.get() as usize, p.len.get() as usize);
                if let Some(s) = bytes.get(o..o.saturating_add(l)) {
                    crc.update(s);
                }
            }
            e.crc32 = crc.finalize().into();
        }
    }
    for (i, e) in entries.iter().enumerate() {
        bytes[table + i * ENTRY_LEN as usize..][..ENTRY_LEN as usize].copy_from_slice(e.as_bytes());
    }
    h.table_crc32 = crc32fast::hash(&bytes[table..strings_end]).into();
    bytes[..HEADER_LEN as usize].copy_from_slice(h.as_bytes());
    let crc = crc32fast::hash(&bytes[..HEADER_CRC_OFFSET]);
    bytes[HEADER_CRC_OFFSET..HEADER_LEN as usize].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn header_lie(edit: impl FnOnce(&mut RawHeader)) -> Error {
    let bytes = craft(|h, _, _| edit(h), false);
    parse_guarded(&bytes, "crafted header").unwrap_err()
}

fn entry_lie(index: usize, edit: impl FnOnce(&mut RawEntry)) -> Error {
    let bytes = craft(|_, e, _| edit(&mut e[index]), false);
    parse_guarded(&bytes, "crafted entry").unwrap_err()
}

fn data_lie(tensor: usize, plane: usize, edit: impl FnOnce(&mut [u8])) -> Error {
    let bytes = craft(
        |_, e, b| {
            let (o, l) = (
                e[tensor].planes[plane].offset.get() as usize,
                e[tensor].planes[plane].len.get() as usize,
            );
            edit(&mut b[o..o + l]);
        },
        true,
    );
    parse_guarded(&bytes, "crafted data").unwrap_err()
}

macro_rules! assert_err {
    ($err:expr, $pat:pat) => {{
        let err = $err;
        assert!(matches!(err, $pat), "unexpected error: {err:?}");
    }};
}

#[test]
fn lying_headers() {
    assert_err!(header_lie(|h| h.magic[0] = b'X'), Error::BadMagic { .. });
    // Version 2 is read now (a version 1 file relabelled 2 fails on the layout); 3 is unknown.
    assert_err!(
        header_lie(|h| h.version_major = 3.into()),
        Error::UnsupportedVersion { major: 3, .. }
    );
    assert_err!(
        header_lie(|h| h.version_major = 0.into()),
        Error::UnsupportedVersion { major: 0, .. }
    );
    assert_err!(
        header_lie(|h| h.flags = 4.into()),
        Error::UnknownFlags { flags: 4 }
    );
    assert_err!(
        header_lie(|h| h.reserved[3] = 1),
        Error::NonZeroPadding { .. }
    );
    assert_err!(
        header_lie(|h| h.file_len = (h.file_len.get() + 256).into()),
        Error::FileLengthMismatch { .. }
    );
    assert_err!(
        header_lie(|h| h.metadata_offset = 0.into()),
        Error::SectionMisplaced {
            section: "metadata",
            ..
        }
    );
    assert_err!(
        header_lie(|h| h.table_offset = (h.table_offset.get() + 8).into()),
        Error::SectionMisplaced { .. }
    );
    assert_err!(
        header_lie(|h| h.strings_offset = 0.into()),
        Error::SectionMisplaced {
            section: "strings",
            ..
        }
    );
    assert_err!(
        header_lie(|h| h.data_offset = (h.data_offset.get() - 256).into()),
        Error::SectionMisplaced { .. }
    );
    assert_err!(
        header_lie(|h| h.tensor_count = u64::MAX.into()),
        Error::Overflow { .. }
    );
    assert_err!(
        header_lie(|h| h.metadata_len = (u64::MAX - 64).into()),
        Error::Overflow { .. }
    );
    assert_err!(
        header_lie(|h| h.strings_len = u64::MAX.into()),
        Error::Overflow { .. }
    );
    assert_err!(
        header_lie(|h| h.data_len = u64::MAX.into()),
        Error::Overflow { .. }
    );
    // A count one too high moves every later section: caught before any entry is read.
    assert_err!(
        header_lie(|h| h.tensor_count = (h.tensor_count.get() + 1).into()),
        Error::SectionMisplaced { .. }
    );
    assert_err!(
        header_lie(|h| h.data_len = (h.data_len.get() - 1).into()),
        Error::FileLengthMismatch { .. }
    );
    assert_err!(
        header_lie(|h| h.metadata_crc32 = (h.metadata_crc32.get() ^ 1).into()),
        Error::ChecksumMismatch { .. }
    );
    // Bad header checksum.
    let mut bytes = valid_file();
    bytes[HEADER_CRC_OFFSET] ^= 0xff;
    assert_err!(parse(&bytes).unwrap_err(), Error::ChecksumMismatch { .. });
    assert_err!(
        parse(&bytes[..10]).unwrap_err(),
        Error::Truncated { what: "header", .. }
    );
}

#[test]
fn invalid_metadata_with_a_valid_checksum() {
    let bytes = craft(
        |h, _, b| {
            let (o, l) = (
                h.metadata_offset.get() as usize,
                h.metadata_len.get() as usize,
            );
            b[o..o + l].fill(b' ');
            b[o] = b'[';
            b[o + l - 1] = b']';
            h.metadata_crc32 = crc32fast::hash(&b[o..o + l]).into();
        },
        false,
    );
    assert_err!(parse(&bytes).unwrap_err(), Error::InvalidMetadata { .. });
}

#[test]
fn lying_table_entries() {
    assert_err!(
        entry_lie(0, |e| e.name_offset = u64::MAX.into()),
        Error::InvalidEntry { index: 0, .. }
    );
    assert_err!(
        entry_lie(1, |e| e.name_len = 0.into()),
        Error::InvalidEntry { index: 1, .. }
    );
    assert_err!(
        entry_lie(1, |e| e.name_len = 5000.into()),
        Error::InvalidEntry { .. }
    );
    assert_err!(
        entry_lie(2, |e| e.reserved = [0, 1]),
        Error::InvalidEntry { .. }
    );
    // Tensor 1 renamed to tensor 0's name.
    assert_err!(
        entry_lie(1, |e| {
            e.name_offset = 0.into();
            e.name_len = 2.into()
        }),
        Error::DuplicateName { .. }
    );
    assert_err!(
        entry_lie(0, |e| e.encoding = 99),
        Error::UnknownEncoding { code: 99, .. }
    );
    assert_err!(
        entry_lie(0, |e| e.param0 = 9),
        Error::InvalidEncodingParams { .. }
    );
    assert_err!(
        entry_lie(2, |e| e.param0 = 40),
        Error::InvalidEncodingParams { .. }
    );
    assert_err!(
        entry_lie(0, |e| e.layout = 2),
        Error::InvalidEncodingParams { .. }
    );
    assert_err!(
        entry_lie(7, |e| e.layout = 1),
        Error::InvalidEncodingParams { .. }
    ); // raw cannot be sparse
    assert_err!(
        entry_lie(0, |e| e.rounding = 7),
        Error::InvalidEncodingParams { .. }
    );
    assert_err!(
        entry_lie(0, |e| e.rank = 9),
        Error::InvalidEncodingParams { .. }
    );
    assert_err!(
        entry_lie(0, |e| e.dims[5] = 1.into()),
        Error::InvalidEncodingParams { .. }
    );
    assert_err!(
        entry_lie(0, |e| e.dims[0] = u64::MAX.into()),
        Error::Overflow { .. }
    );
    assert_err!(
        entry_lie(0, |e| {
            e.dims[0] = (1u64 << 40).into();
            e.dims[1] = (1u64 << 40).into()
        }),
        Error::Overflow { .. }
    );
    // Shape that disagrees with the plane lengths.
    assert_err!(
        entry_lie(0, |e| e.dims[0] = 4.into()),
        Error::BadPlane { plane: 0, .. }
    );
    assert_err!(
        entry_lie(4, |e| e.dims[0] = 8.into()),
        Error::BadPlane { .. }
    );
    // Plane offsets outside the file, overflowing, misaligned, or empty-but-placed.
    assert_err!(
        entry_lie(0, |e| e.planes[0].offset = (1u64 << 40).into()),
        Error::BadPlane { .. }
    );
    assert_err!(
        entry_lie(0, |e| e.planes[0].offset = (u64::MAX - 255).into()),
        Error::BadPlane { .. }
    );
    assert_err!(
        entry_lie(0, |e| e.planes[0].offset = 0.into()),
        Error::BadPlane { .. }
    );
    assert_err!(
        entry_lie(0, |e| e.planes[0].offset =
            (e.planes[0].offset.get() + 8).into()),
        Error::BadPlane { .. }
    );
    assert_err!(
        entry_lie(0, |e| e.planes[3].offset = 256.into()),
        Error::BadPlane { plane: 3, .. }
    );
    assert_err!(
        entry_lie(1, |e| e.planes[3].len = (e.planes[3].len.get() + 8).into()),
        Error::BadPlane { .. }
    );
    // Two tensors sharing bytes.
    let overlap = craft(
        |_, e, _| e[4].planes[0].offset = e[0].planes[0].offset,
        true,
    );
    assert_err!(
        parse_guarded(&overlap, "overlap").unwrap_err(),
        Error::PlanesOverlap { .. }
    );
}

#[test]
fn lying_plane_contents() {
    // Tensor checksum.
    let bytes = craft(
        |_, e, b| b[e[0].planes[0].offset.get() as usize] ^= 1,
        false,
    );
    assert_err!(parse(&bytes).unwrap_err(), Error::ChecksumMismatch { .. });
    // Sparse: a row offset that disagrees with the masks, a mask bit beyond the last column,
    // a stored count larger than the tensor.
    assert_err!(data_lie(1, 3, |p| p[8] ^= 1), Error::BadSparse { .. });
    assert_err!(data_lie(1, 3, |p| p[0] = 1), Error::BadSparse { .. });
    assert_err!(data_lie(1, 2, |p| p[7] |= 0x80), Error::BadSparse { .. }); // row 0 block 1 bit 31 (cols = 33)
    assert_err!(
        data_lie(1, 3, |p| {
            let n = p.len();
            p[n - 8..].copy_from_slice(&1000u64.to_le_bytes())
        }),
        Error::BadSparse { .. }
    );
    // Fixed point 12-bit in an i16 container: code 0x7fff is out of range.
    assert_err!(
        data_lie(2, 0, |p| {
            p[0] = 0xff;
            p[1] = 0x7f
        }),
        Error::CodeOutOfRange { .. }
    );
    // MX padding must be zero (row 0, column 40 of a [3, 40] tensor).
    assert_err!(data_lie(0, 0, |p| p[40] = 1), Error::BadPlane { .. });
    // Unused bits of the last byte of a packed plane (5 three-bit codes use 15 of 16 bits).
    assert_err!(
        data_lie(8, 0, |p| p[1] |= 0x80),
        Error::BadPlane { plane: 0, .. }
    );
    let bytes = craft(
        |h, _, b| {
            // Gap bytes between planes must be zero.
            let at = (h.data_offset.get() + 200) as usize;
            b[at] = 1;
        },
        false,
    );
    assert_err!(parse(&bytes).unwrap_err(), Error::NonZeroPadding { .. });
}

/// FORMAT.md section 5: a raw bool holds 0 or 1. A file whose (checksummed) bool bytes hold 2 or 255 is
/// refused at open, naming the tensor and the element; the writer refuses such bytes before writing them.
#[test]
fn bool_tensors_hold_only_zero_and_one() {
    for bad in [2u8, 255] {
        let e = encode_raw("mask", &[3], RawDtype::Bool, vec![0, bad, 1]).unwrap_err();
        assert!(
            matches!(&e, Error::CodeOutOfRange { tensor, index: 1, code, .. } if tensor == "mask" && *code == i64::from(bad)),
            "{e}"
        );
        // The same bytes smuggled past the encoder (its output fields are public) are refused by the reader.
        let mut t = encode_raw("mask", &[3], RawDtype::Bool, vec![0, 1, 1]).unwrap();
        t.planes[0][1] = bad;
        let mut b = FileBuilder::new(serde_json::Map::new()).unwrap();
        b.push(t).unwrap();
        let e = parse(&b.to_bytes().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("tensor \"mask\": element 1 holds code {bad}, outside the range of raw-bool")
        );
    }
    let good = encode_raw("mask", &[3], RawDtype::Bool, vec![0, 1, 1]).unwrap();
    let mut b = FileBuilder::new(serde_json::Map::new()).unwrap();
    b.push(good).unwrap();
    parse(&b.to_bytes().unwrap()).unwrap();
}

/// Planes that no allocation can hold are an error from the encoder, not an abort inside it: a sparse
/// [2^40, 0] tensor stores no element but would need 8 TB of row offsets.
#[test]
fn planes_beyond_memory_are_refused_by_the_encoder() {
    let e = encode_f32(
        "huge",
        &[1 << 40, 0],
        &[],
        Encoding::Mx(MxElem::Int8),
        Rounding::Nearest,
        SparsePolicy::Always,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "tensor \"huge\": its planes need {} bytes, more than this machine can allocate",
            ((1u64 << 40) + 1) * 8
        )
    );
    // Dense, the same shape needs no bytes at all.
    encode_f32(
        "huge",
        &[1 << 40, 0],
        &[],
        Encoding::Mx(MxElem::Int8),
        Rounding::Nearest,
        SparsePolicy::Never,
    )
    .unwrap();
}
