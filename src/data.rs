//! Input and evaluation data: text columns of TSV/CSV files, SST-2 and STS-B files, feature matrices as CSV
//! or NumPy `.npy`. Every malformed line is an error naming the file and line.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Splits one CSV line (RFC 4180 quoting: `"a,b"`, `""` inside quotes) or one TSV line.
fn fields(line: &str, tab: bool) -> Vec<String> {
    if tab {
        return line.split('\t').map(str::to_string).collect();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Largest input data file read (texts, features): a bound on memory, far above any evaluation set.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// The bytes of an input data file: a regular file (checked before opening, so a FIFO never blocks and
/// `/dev/zero` is never read), or standard input for `-`; at most [`MAX_INPUT_BYTES`] either way.
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let too_large = || {
        anyhow::anyhow!(
            "{} is larger than {} MiB: split it (an input file is read into memory whole)",
            path.display(),
            MAX_INPUT_BYTES >> 20
        )
    };
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        let file = mxrt_format::open_regular_file(path).with_context(|| {
            format!(
                "cannot read {} (give a regular file, or - for standard input)",
                path.display()
            )
        })?;
        if file.metadata().is_ok_and(|m| m.len() > MAX_INPUT_BYTES) {
            return Err(too_large());
        }
        file.take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_input`] as UTF-8 text.
pub fn read_input_text(path: &Path) -> Result<String> {
    String::from_utf8(read_input(path)?)
        .map_err(|e| anyhow::anyhow!("{} is not UTF-8 text ({})", path.display(), e.utf8_error()))
}

fn read_lines(path: &Path) -> Result<(Vec<String>, bool)> {
    let text = read_input_text(path)?;
    // `.csv` is comma-separated, other names tab-separated; standard input by its first line.
    let tab = if path.as_os_str() == "-" {
        text.lines()
            .next()
            .is_none_or(|l| l.contains('\t') || !l.contains(','))
    } else {
        path.extension().is_none_or(|e| e != "csv")
    };
    Ok((
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        tab,
    ))
}

/// The text column of a TSV/CSV file: the column named `sentence`, `text` or `sentence1` in a header line,
/// else the first column of every line.
pub fn read_texts(path: &Path) -> Result<Vec<String>> {
    let (lines, tab) = read_lines(path)?;
    let Some(first) = lines.first() else {
        bail!("{} holds no lines", path.display())
    };
    let header = fields(first, tab);
    let named = header
        .iter()
        .position(|h| ["sentence", "text", "sentence1"].contains(&h.trim()));
    let (column, skip) = match named {
        Some(c) => (c, 1),
        None => (0, 0),
    };
    lines[skip..]
        .iter()
        .enumerate()
        .map(|(i, l)| {
            fields(l, tab)
                .get(column)
                .map(|s| s.trim().to_string())
                .with_context(|| {
                    format!(
                        "{} line {}: no column {column}",
                        path.display(),
                        i + 1 + skip
                    )
                })
        })
        .collect()
}

/// SST-2: `sentence<TAB>label` with a header line.
pub fn read_sst2(path: &Path) -> Result<Vec<(String, usize)>> {
    let (lines, tab) = read_lines(path)?;
    let header = lines.first().map(|l| fields(l, tab)).unwrap_or_default();
    let (s, l) = match (
        header.iter().position(|h| h.trim() == "sentence"),
        header.iter().position(|h| h.trim() == "label"),
    ) {
        (Some(s), Some(l)) => (s, l),
        _ => bail!(
            "{}: expected a header with `sentence` and `label` columns (GLUE SST-2 format)",
            path.display()
        ),
    };
    lines[1..]
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let f = fields(line, tab);
            let at = || format!("{} line {}", path.display(), i + 2);
            let sentence = f.get(s).with_context(at)?.trim().to_string();
            let label = f
                .get(l)
                .with_context(at)?
                .trim()
                .parse::<usize>()
                .with_context(at)?;
            Ok((sentence, label))
        })
        .collect()
}

/// STS Benchmark: genre, file, year, id, score, sentence1, sentence2 (tab-separated, extra columns ignored).
pub fn read_stsb(path: &Path) -> Result<Vec<(String, String, f64)>> {
    let (lines, _) = read_lines(path)?;
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let f = fields(line, true);
            let at = || {
                format!(
                    "{} line {}: expected genre, file, year, id, score, sentence1, sentence2",
                    path.display(),
                    i + 1
                )
            };
            if f.len() < 7 {
                bail!(at());
            }
            let score = f[4].trim().parse::<f64>().with_context(at)?;
            Ok((f[5].trim().to_string(), f[6].trim().to_string(), score))
        })
        .collect()
}

/// A matrix of numbers from CSV (a non-numeric first line is taken as a header): `(values, rows, cols)`.
pub fn read_csv_matrix(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let (lines, tab) = read_lines(path)?;
    let mut values = Vec::new();
    let mut cols = None;
    let mut rows = 0;
    for (i, line) in lines.iter().enumerate() {
        let parsed: std::result::Result<Vec<f32>, _> = fields(line, tab)
            .iter()
            .map(|v| v.trim().parse::<f32>())
            .collect();
        let Ok(row) = parsed else {
            if i == 0 {
                continue; // header
            }
            bail!("{} line {}: not a row of numbers", path.display(), i + 1);
        };
        match cols {
            None => cols = Some(row.len()),
            Some(c) if c != row.len() => bail!(
                "{} line {}: {} columns, earlier lines have {c}",
                path.display(),
                i + 1,
                row.len()
            ),
            _ => {}
        }
        values.extend(row);
        rows += 1;
    }
    Ok((values, rows, cols.unwrap_or(0)))
}

/// A 1-D or 2-D little-endian f32/f64/i64 `.npy` array (C order) as f32: `(values, rows, cols)`.
pub fn read_npy(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let bytes = read_input(path)?;
    let bad = |m: &str| anyhow::anyhow!("{}: {m}", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-order arrays are not supported"));
    }
    let descr = header
        .split("'descr':")
        .nth(1)
        .and_then(|r| r.split('\'').nth(1))
        .ok_or_else(|| bad("no descr"))?;
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|r| r.split('(').nth(1))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let (rows, cols) = match shape.as_slice() {
        [n] => (*n, 1),
        [r, c] => (*r, *c),
        _ => return Err(bad("only 1-D and 2-D arrays are supported")),
    };
    let data = &bytes[start + header_len..];
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| bad("shape overflows"))?;
    let values: Vec<f32> = match descr {
        "<f4" => data
            .chunks_exact(4)
            .take(n)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        "<f8" => data
            .chunks_exact(8)
            .take(n)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        "<i8" => data
            .chunks_exact(8)
            .take(n)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        d => return Err(bad(&format!("dtype {d} is not supported (<f4, <f8, <i8)"))),
    };
    if values.len() != n {
        return Err(bad(&format!(
            "holds {} values, its shape needs {n}",
            values.len()
        )));
    }
    Ok((values, rows, cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(
            fields(r#"a,"b,c","d""e",f"#, false),
            vec!["a", "b,c", "d\"e", "f"]
        );
        assert_eq!(fields("a\tb c\t", true), vec!["a", "b c", ""]);
    }

    #[test]
    fn npy_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5] {
            bytes.extend(v.to_le_bytes());
        }
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(
            read_npy(&p).unwrap(),
            (vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5], 2, 3)
        );
        std::fs::write(&p, &bytes[..bytes.len() - 4]).unwrap();
        assert!(read_npy(&p)
            .unwrap_err()
            .to_string()
            .contains("holds 5 values"));
        std::fs::write(&p, b"nope").unwrap();
        assert!(read_npy(&p).is_err());
    }
}
