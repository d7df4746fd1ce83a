//! Input and evaluation data: text columns of TSV/CSV files, SST-2 and STS-B files, feature matrices as CSV,
//! NumPy `.npy` or `.npz`. Parsing is done by maintained readers (`csv`: RFC 4180 quoting, fields that span
//! lines, a UTF-8 byte-order mark; `npyz`: every NumPy header and dtype; `zip` for `.npz`); this module
//! adds the rules of our formats (column counts exact, numbers finite or refused where the caller says)
//! and errors that name the file, line and column.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Largest input data file read (texts, features): a bound on memory, far above any evaluation set.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// The bytes of an input data file: a regular file (checked before opening, so a FIFO never blocks and
/// `/dev/zero` is never read), or standard input for `-`; at most [`MAX_INPUT_BYTES`] either way.
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
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

/// [`read_input`] as UTF-8 text, without a leading byte-order mark.
pub fn read_input_text(path: &Path) -> Result<String> {
    let text = String::from_utf8(read_input(path)?).map_err(|e| {
        anyhow::anyhow!("{} is not UTF-8 text ({})", path.display(), e.utf8_error())
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The non-blank lines of a text file, trimmed: one text each.
pub fn read_text_lines(path: &Path) -> Result<Vec<String>> {
    Ok(read_input_text(path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// One record of a delimited file, with the line it starts on.
struct Record {
    line: u64,
    fields: Vec<String>,
}

/// The non-blank records of a CSV (comma, RFC 4180 quoting) or TSV (tab; quotes are ordinary characters,
/// as in the GLUE files) file. `.csv` is comma-separated, other names tab-separated; standard input by its
/// first line.
fn read_records(path: &Path) -> Result<Vec<Record>> {
    let text = read_input_text(path)?;
    let comma = if path.as_os_str() == "-" {
        text.lines()
            .next()
            .is_some_and(|l| l.contains(',') && !l.contains('\t'))
    } else {
        path.extension().is_some_and(|e| e == "csv")
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(if comma { b',' } else { b'\t' })
        .quoting(comma)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            anyhow::anyhow!("{} line {line}: {e}", path.display())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        out.push(Record {
            line,
            fields: record.iter().map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// Every record must have exactly `expected` fields (a stray delimiter shifts every column after it).
fn check_width(path: &Path, r: &Record, expected: &[usize], of: &str) -> Result<()> {
    if expected.contains(&r.fields.len()) {
        return Ok(());
    }
    let want = expected
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" or ");
    bail!(
        "{} line {}: {} fields, {of} has {want} (a stray tab or comma? quote CSV fields that hold commas)",
        path.display(),
        r.line,
        r.fields.len()
    )
}

/// The header names of the two text columns of sentence-pair files: GLUE's RTE/STS-B/WNLI, QNLI, QQP and
/// MRPC spellings, then the NLI and `text_a`/`text_b` conventions.
const PAIR_COLUMNS: [(&str, &str); 6] = [
    ("sentence1", "sentence2"),
    ("question", "sentence"),
    ("question1", "question2"),
    ("#1 String", "#2 String"),
    ("premise", "hypothesis"),
    ("text_a", "text_b"),
];

/// Header names of a single text column.
const TEXT_COLUMNS: [&str; 3] = ["sentence", "text", "sentence1"];

/// The texts to run: a `.txt` file (one text per line), or the text column of a TSV/CSV file (the column
/// named `sentence` or `text` in a header line, else the first column of every line). A header naming two
/// text columns (`sentence1`/`sentence2`, `question`/`sentence`, …) gives sentence pairs.
pub fn read_text_inputs(path: &Path) -> Result<Vec<(String, Option<String>)>> {
    if path.extension().is_some_and(|e| e == "txt") {
        let texts = read_text_lines(path)?;
        if texts.is_empty() {
            bail!("{} holds no lines", path.display());
        }
        return Ok(texts.into_iter().map(|t| (t, None)).collect());
    }
    let records = read_records(path)?;
    let Some(first) = records.first() else {
        bail!("{} holds no lines", path.display())
    };
    let width = first.fields.len();
    let header: Vec<&str> = first.fields.iter().map(|h| h.trim()).collect();
    if let Some((a, b)) = pair_columns(&header) {
        return records[1..]
            .iter()
            .map(|r| {
                check_width(path, r, &[width], "the header")?;
                Ok((
                    r.fields[a].trim().to_string(),
                    Some(r.fields[b].trim().to_string()),
                ))
            })
            .collect();
    }
    let named = header.iter().position(|h| TEXT_COLUMNS.contains(h));
    let (column, skip, of) = match named {
        Some(c) => (c, 1, "the header"),
        None => (0, 0, "the first line"),
    };
    records[skip..]
        .iter()
        .map(|r| {
            check_width(path, r, &[width], of)?;
            Ok((r.fields[column].trim().to_string(), None))
        })
        .collect()
}

/// The columns of the first pair of [`PAIR_COLUMNS`] both present in `header`.
fn pair_columns(header: &[&str]) -> Option<(usize, usize)> {
    PAIR_COLUMNS.iter().find_map(|(a, b)| {
        Some((
            header.iter().position(|h| h == a)?,
            header.iter().position(|h| h == b)?,
        ))
    })
}

/// A labelled sentence-pair file (GLUE MRPC, QNLI, RTE, STS-B, or any TSV/CSV with a header naming two text
/// columns as [`read_text_inputs`] knows them and a `label`, `Quality` or `score` column): the pairs and
/// each row's label as written, with the line it is on (for messages).
pub struct LabelledPairs {
    pub pairs: Vec<(String, String)>,
    pub labels: Vec<(String, u64)>,
}

pub fn read_labelled_pairs(path: &Path) -> Result<LabelledPairs> {
    let records = read_records(path)?;
    let header: Vec<&str> = records
        .first()
        .map(|r| r.fields.iter().map(|h| h.trim()).collect())
        .unwrap_or_default();
    let Some((a, b)) = pair_columns(&header) else {
        bail!(
            "{}: expected a header naming two text columns ({})",
            path.display(),
            PAIR_COLUMNS
                .iter()
                .map(|(a, b)| format!("{a}/{b}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let Some(l) = ["label", "Quality", "score"]
        .iter()
        .find_map(|name| header.iter().position(|h| h == name))
    else {
        bail!(
            "{}: expected a `label`, `Quality` or `score` column in the header",
            path.display()
        )
    };
    let mut out = LabelledPairs {
        pairs: Vec::new(),
        labels: Vec::new(),
    };
    for r in &records[1..] {
        check_width(path, r, &[header.len()], "the header")?;
        out.pairs.push((
            r.fields[a].trim().to_string(),
            r.fields[b].trim().to_string(),
        ));
        out.labels.push((r.fields[l].trim().to_string(), r.line));
    }
    Ok(out)
}

/// SST-2: `sentence<TAB>label` with a header line (or `text,label`, as IMDb CSVs have it); labels are
/// class indices below `num_labels`.
pub fn read_sst2(path: &Path, num_labels: usize) -> Result<Vec<(String, usize)>> {
    let records = read_records(path)?;
    let header: Vec<&str> = records
        .first()
        .map(|r| r.fields.iter().map(|h| h.trim()).collect())
        .unwrap_or_default();
    let (Some(s), Some(l)) = (
        header.iter().position(|h| TEXT_COLUMNS.contains(h)),
        header.iter().position(|h| *h == "label"),
    ) else {
        bail!(
            "{}: expected a header with `sentence` (or `text`) and `label` columns (GLUE SST-2 format, \
             IMDb as `text,label`)",
            path.display()
        )
    };
    records[1..]
        .iter()
        .map(|r| {
            check_width(path, r, &[header.len()], "the header")?;
            let text = r.fields[l].trim();
            let label = text
                .parse::<usize>()
                .ok()
                .filter(|&v| v < num_labels)
                .with_context(|| {
                    format!(
                        "{} line {}: label {text:?}, the model's labels are 0 to {}",
                        path.display(),
                        r.line,
                        num_labels.saturating_sub(1)
                    )
                })?;
            Ok((r.fields[s].trim().to_string(), label))
        })
        .collect()
}

/// STS Benchmark: genre, file, year, id, score, sentence1, sentence2, and in some rows two source columns
/// (tab-separated, no header); the score a number from 0 to 5.
pub fn read_stsb(path: &Path) -> Result<Vec<(String, String, f64)>> {
    read_records(path)?
        .iter()
        .map(|r| {
            check_width(
                path,
                r,
                &[7, 9],
                "the STS Benchmark format (genre, file, year, id, score, sentence1, sentence2[, source1, source2])",
            )?;
            let score = r.fields[4].trim();
            let score = score
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..=5.0).contains(v))
                .with_context(|| {
                    format!(
                        "{} line {}: score {score:?}, expected a number from 0 to 5",
                        path.display(),
                        r.line
                    )
                })?;
            Ok((
                r.fields[5].trim().to_string(),
                r.fields[6].trim().to_string(),
                score,
            ))
        })
        .collect()
}

/// A matrix of numbers, row-major.
#[derive(Debug, PartialEq)]
pub struct Matrix {
    pub values: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

/// A matrix of numbers from CSV or TSV (a non-numeric first line is taken as a header); every row as wide
/// as the first. Values that are not finite are kept: the caller decides (see [`check_finite`]).
pub fn read_csv_matrix(path: &Path) -> Result<Matrix> {
    let records = read_records(path)?;
    let mut values = Vec::new();
    let mut width = None;
    let mut of = "the first row";
    let mut rows = 0;
    for (i, r) in records.iter().enumerate() {
        let parsed: Vec<Option<f32>> = r.fields.iter().map(|v| v.trim().parse().ok()).collect();
        if i == 0 && parsed.iter().any(Option::is_none) {
            width = Some(r.fields.len());
            of = "the header";
            continue;
        }
        let w = *width.get_or_insert(r.fields.len());
        check_width(path, r, &[w], of)?;
        for (col, v) in parsed.iter().enumerate() {
            let Some(v) = v else {
                bail!(
                    "{} line {}, column {}: {:?} is not a number",
                    path.display(),
                    r.line,
                    col + 1,
                    r.fields[col].trim()
                );
            };
            values.push(*v);
        }
        rows += 1;
    }
    Ok(Matrix {
        values,
        rows,
        cols: width.unwrap_or(0),
    })
}

/// A 1-D or 2-D array (C order, any NumPy number or bool dtype, either byte order) as f32.
fn npy_matrix(bytes: &[u8], what: &str) -> Result<Matrix> {
    let mut data = bytes;
    let header = npyz::NpyHeader::from_reader(&mut data)
        .with_context(|| format!("{what}: not a NumPy .npy array"))?;
    let npy = npyz::NpyFile::with_header(header, data);
    if npy.order() == npyz::Order::Fortran {
        bail!("{what}: Fortran-order arrays are not supported (save with numpy.ascontiguousarray)");
    }
    let (rows, cols) = match *npy.shape() {
        [n] => (n, 1),
        [r, c] => (r, c),
        ref s => bail!("{what}: shape {s:?}; only 1-D and 2-D arrays are supported"),
    };
    let dtype = npy.dtype();
    let n = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(dtype.num_bytes()? as u64))
        .with_context(|| format!("{what}: shape [{rows}, {cols}] overflows"))?;
    // Checked before reading: a header claiming 2^80 values must not be believed by an allocation.
    if n != data.len() as u64 {
        bail!(
            "{what}: shape [{rows}, {cols}] of {} needs {n} bytes of data, the file holds {}",
            dtype.descr(),
            data.len()
        );
    }
    let (rows, cols) = (rows as usize, cols as usize);
    macro_rules! as_f32 {
        ($npy:expr, $($t:ty),*) => {{
            let npy = $npy;
            $(
                let npy = match npy.try_data::<$t>() {
                    Ok(data) => {
                        let values = data
                            .map(|v| v.map(|v| v as f32))
                            .collect::<std::io::Result<Vec<f32>>>()
                            .with_context(|| format!("{what}: truncated or unreadable data"))?;
                        return Ok(Matrix { values, rows, cols });
                    }
                    Err(npy) => npy,
                };
            )*
            npy
        }};
    }
    let npy = as_f32!(npy, f32, f64, i64, i32, i16, i8, u64, u32, u16, u8);
    if let Ok(data) = npy.try_data::<bool>() {
        let values = data
            .map(|v| v.map(|b| if b { 1.0 } else { 0.0 }))
            .collect::<std::io::Result<Vec<f32>>>()
            .with_context(|| format!("{what}: truncated or unreadable data"))?;
        return Ok(Matrix { values, rows, cols });
    }
    bail!(
        "{what}: dtype {} is not supported (floating point, integer or bool numbers)",
        dtype.descr()
    )
}

/// A `.npy` array (see [`npy_matrix`]).
pub fn read_npy(path: &Path) -> Result<Matrix> {
    npy_matrix(&read_input(path)?, &path.display().to_string())
}

/// The arrays of a `.npz` archive (`numpy.savez`, compressed or not) by name.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, Matrix>> {
    let bytes = read_input(path)?;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .with_context(|| format!("{}: not a .npz (zip) archive", path.display()))?;
    let mut arrays = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .with_context(|| format!("{}: unreadable archive entry {i}", path.display()))?;
        let entry_name = entry.name().map(|n| n.to_string()).with_context(|| {
            format!(
                "{}: archive entry {i} has an unreadable name",
                path.display()
            )
        })?;
        let Some(name) = entry_name.strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        let what = format!("{} array {name:?}", path.display());
        let mut data = Vec::new();
        (&mut entry)
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut data)
            .with_context(|| format!("{what}: cannot decompress"))?;
        if data.len() as u64 > MAX_INPUT_BYTES {
            bail!(
                "{what}: larger than {} MiB uncompressed",
                MAX_INPUT_BYTES >> 20
            );
        }
        arrays.insert(name.clone(), npy_matrix(&data, &what)?);
    }
    if arrays.is_empty() {
        bail!("{}: the archive holds no .npy arrays", path.display());
    }
    Ok(arrays)
}

/// Features (and labels, when the archive has them) from a feature file: `.npy`, `.npz` (features in `x`
/// or `features`, or the only array; labels in `y` or `labels`), or CSV/TSV.
pub fn read_features(path: &Path) -> Result<(Matrix, Option<Matrix>)> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => Ok((read_npy(path)?, None)),
        Some("npz") => {
            let mut arrays = read_npz(path)?;
            let labels = ["y", "labels"].iter().find_map(|k| arrays.remove(*k));
            let names: Vec<String> = arrays.keys().cloned().collect();
            let features = match ["x", "features"].iter().find_map(|k| arrays.remove(*k)) {
                Some(f) => f,
                None if arrays.len() == 1 => arrays.into_values().next().expect("one array"),
                None => bail!(
                    "{}: which array holds the features? name it `x` or `features` (found {})",
                    path.display(),
                    names.join(", ")
                ),
            };
            Ok((features, labels))
        }
        _ => Ok((read_csv_matrix(path)?, None)),
    }
}

/// Refuses a matrix whose rows are neither the model's `inputs` features nor the features followed by
/// `outputs` one-hot label columns (the hls4ml jet CSV).
pub fn check_feature_width(path: &Path, m: &Matrix, inputs: usize, outputs: usize) -> Result<()> {
    if m.cols != inputs && m.cols != inputs + outputs {
        bail!(
            "{}: rows of {} values; the model takes {inputs} features (or {inputs} features + {outputs} \
             one-hot label columns)",
            path.display(),
            m.cols
        );
    }
    Ok(())
}

/// The first `inputs` columns of each row of `m`, row-major (the matrix itself when that is all it holds).
pub fn feature_columns(m: Matrix, inputs: usize) -> Vec<f32> {
    if m.cols == inputs {
        return m.values;
    }
    m.values
        .chunks(m.cols.max(1))
        .flat_map(|r| r[..inputs].iter().copied())
        .collect()
}

/// Class indices from one-hot rows (`width` > 1: exactly one 1, the rest 0) or from a column of indices
/// (`width` 1: whole numbers below `classes`); errors name the row.
pub fn class_labels(
    path: &Path,
    values: &[f32],
    width: usize,
    classes: usize,
) -> Result<Vec<usize>> {
    if width == 1 {
        return values
            .iter()
            .enumerate()
            .map(|(row, &v)| {
                if v.fract() == 0.0 && v >= 0.0 && (v as usize) < classes {
                    Ok(v as usize)
                } else {
                    bail!(
                        "{}: row {}: label {v}, the model's classes are 0 to {}",
                        path.display(),
                        row + 1,
                        classes.saturating_sub(1)
                    )
                }
            })
            .collect();
    }
    if width != classes {
        bail!(
            "{}: label rows of {width} values; the model has {classes} classes (give one-hot rows of {classes}, or one class index per row)",
            path.display()
        );
    }
    values
        .chunks(width)
        .enumerate()
        .map(|(row, r)| {
            let ones: Vec<usize> = (0..r.len()).filter(|&i| r[i] == 1.0).collect();
            match ones.as_slice() {
                [one] if r.iter().all(|&v| v == 0.0 || v == 1.0) => Ok(*one),
                _ => bail!(
                    "{}: row {}: one-hot label {:?} is not one 1 among 0s",
                    path.display(),
                    row + 1,
                    r
                ),
            }
        })
        .collect()
}

/// Refuses NaN and infinities in a feature matrix, naming the row and column (1-based, as a spreadsheet
/// shows them), unless `allow` (`--allow-nonfinite`).
pub fn check_finite(path: &Path, m: &Matrix, allow: bool) -> Result<()> {
    if allow {
        return Ok(());
    }
    if let Some(at) = m.values.iter().position(|v| !v.is_finite()) {
        let width = m.cols.max(1);
        bail!(
            "{}: row {}, column {} holds {} (pass --allow-nonfinite to run on it anyway)",
            path.display(),
            at / width + 1,
            at % width + 1,
            m.values[at]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn csv_quoting_bom_and_exact_widths() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(
            &dir,
            "t.csv",
            "\u{feff}text,id\n\"a, b\",1\n\"say \"\"hi\"\"\nthere\",2\n".as_bytes(),
        );
        assert_eq!(
            read_text_inputs(&p).unwrap(),
            vec![
                ("a, b".to_string(), None),
                ("say \"hi\"\nthere".to_string(), None)
            ]
        );
        // Two text columns: pairs (RTE's layout), whatever other columns there are.
        let p = file(
            &dir,
            "rte.tsv",
            b"index\tsentence1\tsentence2\tlabel\n0\tA cat sat.\tA cat is sitting.\tentailment\n",
        );
        assert_eq!(
            read_text_inputs(&p).unwrap(),
            vec![(
                "A cat sat.".to_string(),
                Some("A cat is sitting.".to_string())
            )]
        );
        let pairs = read_labelled_pairs(&p).unwrap();
        assert_eq!(pairs.labels, vec![("entailment".to_string(), 2)]);
        // MRPC names its columns `#1 String`, `#2 String` and its label `Quality`.
        let p = file(
            &dir,
            "mrpc.tsv",
            "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t7\t8\tHe said so.\tHe said it.\n"
                .as_bytes(),
        );
        let pairs = read_labelled_pairs(&p).unwrap();
        assert_eq!(
            pairs.pairs,
            vec![("He said so.".to_string(), "He said it.".to_string())]
        );
        assert_eq!(pairs.labels[0].0, "1");
        let e = read_labelled_pairs(&file(&dir, "x.tsv", b"a\tb\n1\t2\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("two text columns"), "{e}");
        // IMDb-style `text,label` CSVs evaluate like SST-2.
        let p = file(&dir, "imdb.csv", b"text,label\ngreat,1\nawful,0\n");
        assert_eq!(
            read_sst2(&p, 2).unwrap(),
            vec![("great".to_string(), 1), ("awful".to_string(), 0)]
        );
        let p = file(
            &dir,
            "t.tsv",
            b"sentence\tlabel\n\"quoted\" start\t1\nextra\t0\t9\n",
        );
        let e = read_sst2(&p, 2).unwrap_err().to_string();
        assert!(e.ends_with("t.tsv line 3: 3 fields, the header has 2 (a stray tab or comma? quote CSV fields that hold commas)"), "{e}");
        let p = file(
            &dir,
            "t.tsv",
            b"sentence\tlabel\n\"quoted\" start\t1\nb\t2\n",
        );
        let e = read_sst2(&p, 2).unwrap_err().to_string();
        assert!(
            e.ends_with("t.tsv line 3: label \"2\", the model's labels are 0 to 1"),
            "{e}"
        );
        let p = file(&dir, "t.tsv", b"sentence\tlabel\n\"quoted\" start\t1\n");
        assert_eq!(
            read_sst2(&p, 2).unwrap(),
            vec![("\"quoted\" start".to_string(), 1)]
        );
    }

    #[test]
    fn matrices_name_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "m.csv", b"a,b\n1,2\n3,x\n");
        let e = read_csv_matrix(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("m.csv line 3, column 2: \"x\" is not a number"),
            "{e}"
        );
        let p = file(&dir, "m.csv", b"1,2\n3\n");
        let e = read_csv_matrix(&p).unwrap_err().to_string();
        assert!(e.contains("m.csv line 2: 1 fields"), "{e}");
        let p = file(&dir, "m.csv", b"1,2\n3,nan\n");
        let m = read_csv_matrix(&p).unwrap();
        assert_eq!((m.rows, m.cols), (2, 2));
        let e = check_finite(&p, &m, false).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "m.csv: row 2, column 2 holds NaN (pass --allow-nonfinite to run on it anyway)"
            ),
            "{e}"
        );
        check_finite(&p, &m, true).unwrap();
    }

    fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn npy_dtypes_truncation_and_lies() {
        let dir = tempfile::tempdir().unwrap();
        let f4: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let p = file(&dir, "x.npy", &npy_bytes("<f4", "(2, 3)", &f4));
        assert_eq!(
            read_npy(&p).unwrap(),
            Matrix {
                values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5],
                rows: 2,
                cols: 3
            }
        );
        let be: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let p = file(&dir, "x.npy", &npy_bytes(">f8", "(2,)", &be));
        assert_eq!(read_npy(&p).unwrap().values, vec![1.5, -2.0]);
        let p = file(&dir, "x.npy", &npy_bytes("|u1", "(3,)", &[0, 7, 255]));
        assert_eq!(read_npy(&p).unwrap().values, vec![0.0, 7.0, 255.0]);
        let p = file(&dir, "x.npy", &npy_bytes("|b1", "(2,)", &[1, 0]));
        assert_eq!(read_npy(&p).unwrap().values, vec![1.0, 0.0]);
        let p = file(&dir, "x.npy", &npy_bytes("<f4", "(2, 3)", &f4[..20]));
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("x.npy: shape [2, 3] of '<f4' needs 24 bytes of data, the file holds 20"),
            "{e}"
        );
        let p = file(
            &dir,
            "x.npy",
            &npy_bytes("<f4", "(1099511627776, 1099511627776)", &f4),
        );
        assert!(read_npy(&p).unwrap_err().to_string().contains("overflows"));
        let p = file(&dir, "x.npy", &npy_bytes("<f4", "(1099511627776, 2)", &f4));
        assert!(read_npy(&p)
            .unwrap_err()
            .to_string()
            .contains("the file holds 24"));
        let p = file(&dir, "x.npy", &npy_bytes("<f4", "(1, 2, 3)", &f4));
        assert!(read_npy(&p)
            .unwrap_err()
            .to_string()
            .contains("only 1-D and 2-D"));
        let p = file(&dir, "x.npy", b"nope");
        assert!(read_npy(&p)
            .unwrap_err()
            .to_string()
            .contains("not a NumPy .npy array"));
    }

    #[test]
    fn npz_features_and_labels() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.npz");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        let f4: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let i8s: Vec<u8> = [1i64, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        for (name, bytes, method) in [
            (
                "x.npy",
                npy_bytes("<f4", "(2, 2)", &f4),
                zip::CompressionMethod::Deflated,
            ),
            (
                "y.npy",
                npy_bytes("<i8", "(2,)", &i8s),
                zip::CompressionMethod::Stored,
            ),
        ] {
            let options = zip::write::SimpleFileOptions::default().compression_method(method);
            zip.start_file(name, options).unwrap();
            zip.write_all(&bytes).unwrap();
        }
        zip.finish().unwrap();
        let (x, y) = read_features(&p).unwrap();
        assert_eq!(
            x,
            Matrix {
                values: vec![1.0, 2.0, 3.0, 4.0],
                rows: 2,
                cols: 2
            }
        );
        assert_eq!(y.unwrap().values, vec![1.0, 0.0]);
    }
}
