//! The worked example of FORMAT.md section 8 is produced by this writer, byte for byte: if the layout changes,
//! this test fails until the document is updated with it.

use mxrt_format::{
    encode_f32, Encoding, FileBuilder, MxElem, MxrtFile, ReadOptions, Rounding, SparsePolicy,
};

/// The example file of FORMAT.md section 8.
fn example() -> Vec<u8> {
    let mut meta = serde_json::Map::new();
    meta.insert("architecture".into(), serde_json::Value::Null);
    let mut b = FileBuilder::new(meta).unwrap();
    let values = [1.0, -0.5, 0.25, 2.0, 0.0, -3.0];
    let t = encode_f32(
        "w",
        &[2, 3],
        &values,
        Encoding::Mx(MxElem::Int8),
        Rounding::Nearest,
        SparsePolicy::Never,
    );
    b.push(t.unwrap()).unwrap();
    b.to_bytes().unwrap()
}

/// `xxd`-style dump; runs of all-zero lines are shown as one `*` line, like `hexdump`.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut in_zero_run = false;
    for (i, line) in bytes.chunks(16).enumerate() {
        let zero = line.iter().all(|&b| b == 0);
        let last = (i + 1) * 16 >= bytes.len();
        if zero && !last && i > 0 {
            if !in_zero_run {
                out.push_str("*\n");
            }
            in_zero_run = true;
            continue;
        }
        in_zero_run = false;
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = line
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "{:08x}: {:<47}  {}\n",
            i * 16,
            hex.join(" "),
            ascii
        ));
    }
    out
}

#[test]
fn format_md_hex_dump_matches_the_writer() {
    let bytes = example();
    let dump = hex_dump(&bytes);
    let doc = include_str!("../FORMAT.md");
    let start = doc
        .find("```hexdump\n")
        .expect("FORMAT.md has a ```hexdump block")
        + "```hexdump\n".len();
    let end = start + doc[start..].find("```").unwrap();
    assert_eq!(
        &doc[start..end],
        dump,
        "FORMAT.md section 8 is stale; the writer now produces:\n{dump}"
    );
}

#[test]
fn the_example_decodes_as_documented() {
    let bytes = example();
    assert_eq!(bytes.len(), 266);
    let f = MxrtFile::parse(&bytes, ReadOptions::default()).unwrap();
    assert_eq!((f.version(), f.plane_align()), ((2, 0), 8));
    let w = f.tensor("w").unwrap();
    assert_eq!(w.plane_offset(0), 200);
    assert_eq!(w.plane_offset(1), 264);
    assert_eq!(w.plane(1), [127, 128]);
    assert_eq!(&w.plane(0)[..3], [0x40, 0xe0, 0x10]);
    assert_eq!(&w.plane(0)[32..35], [0x40, 0x00, 0xa0]);
    assert_eq!(
        w.dequantize().unwrap(),
        vec![1.0, -0.5, 0.25, 2.0, 0.0, -3.0]
    );
}
