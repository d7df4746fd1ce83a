//! Model outputs (rows of f32 of any widths) as bytes and back, bit for bit: how a child `mxrt` process
//! hands its outputs to its parent (`eval` runs the FP32 reference in one). Layout: the magic
//! `MXRTROWS`, the row count (u64 LE), then per row its length (u64 LE) and its values (f32 LE).

use anyhow::{bail, Context, Result};

const MAGIC: &[u8; 8] = b"MXRTROWS";

pub fn encode_rows(rows: &[Vec<f32>]) -> Vec<u8> {
    let values: usize = rows.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(16 + 8 * rows.len() + 4 * values);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(rows.len() as u64).to_le_bytes());
    for row in rows {
        out.extend_from_slice(&(row.len() as u64).to_le_bytes());
        for v in row {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// The rows [`encode_rows`] wrote; a clear error for anything else (wrong magic, lengths past the end,
/// bytes left over).
pub fn decode_rows(bytes: &[u8]) -> Result<Vec<Vec<f32>>> {
    let mut rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .context("not an mxrt rows file (wrong magic)")?;
    let count = take_u64(&mut rest, bytes.len())?;
    let mut rows = Vec::new();
    for _ in 0..count {
        let len = take_u64(&mut rest, bytes.len())?;
        let raw = take(
            &mut rest,
            len.checked_mul(4)
                .context("rows file: a row length overflows")?,
            bytes.len(),
        )?;
        rows.push(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        );
    }
    if !rest.is_empty() {
        bail!("rows file has {} bytes after its last row", rest.len());
    }
    Ok(rows)
}

/// The next `n` bytes of `rest` (`total`: the file's size, for the message).
fn take<'a>(rest: &mut &'a [u8], n: usize, total: usize) -> Result<&'a [u8]> {
    if rest.len() < n {
        bail!("rows file truncated ({total} bytes)");
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_u64(rest: &mut &[u8], total: usize) -> Result<usize> {
    let b: [u8; 8] = take(rest, 8, total)?.try_into().expect("8 bytes");
    usize::try_from(u64::from_le_bytes(b)).context("rows file: a count beyond this machine")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_bit_for_bit() {
        let rows = vec![
            vec![1.5, -0.0, f32::NAN, f32::INFINITY, f32::MIN_POSITIVE / 2.0],
            vec![],
            vec![3.0e38; 3],
        ];
        let back = decode_rows(&encode_rows(&rows)).unwrap();
        let bits = |r: &[Vec<f32>]| -> Vec<Vec<u32>> {
            r.iter()
                .map(|row| row.iter().map(|v| v.to_bits()).collect())
                .collect()
        };
        assert_eq!(bits(&back), bits(&rows));
    }

    #[test]
    fn damaged_rows_files_are_refused() {
        let good = encode_rows(&[vec![1.0, 2.0]]);
        let err = |b: &[u8]| decode_rows(b).unwrap_err().to_string();
        assert_eq!(err(b"NOTROWS!"), "not an mxrt rows file (wrong magic)");
        assert_eq!(
            err(&good[..good.len() - 1]),
            "rows file truncated (31 bytes)"
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(err(&long), "rows file has 1 bytes after its last row");
        let mut lying = good.clone();
        lying[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(err(&lying).contains("rows file"), "{}", err(&lying));
    }
}
