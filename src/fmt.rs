//! Output helpers: stdout that tolerates a closed pipe, grouped numbers, percentages, aligned tables.

use std::io::Write;

/// Writes to stdout. A closed pipe (`mxrt inspect big.mxrt | head`) ends the program quietly with success,
/// as other command-line tools do, instead of the panic `println!` would give.
pub fn emit(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other,
    }
}

/// `println!` through [`emit`]; evaluates to `std::io::Result<()>`.
macro_rules! outln {
    () => { $crate::fmt::emit("\n") };
    ($($arg:tt)*) => { $crate::fmt::emit(&format!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use outln;

/// `12345678` as `12,345,678`.
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `[30522, 384]`
pub fn shape(dims: &[u64]) -> String {
    format!(
        "[{}]",
        dims.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Saving of `stored` against `reference`, in per cent (0 when the reference is empty).
pub use mxrt_format::inspect::saving_percent;

/// A table printed with columns padded to their widest cell; columns listed in `right` are right-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
}

impl Table {
    pub fn new(header: &[&str], right: &[usize]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            right: right.to_vec(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if self.right.contains(&i) {
                        format!("{c:>w$}", w = widths[i])
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = line(&self.header);
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_and_saving() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(45439980), "45,439,980");
        assert_eq!(saving_percent(25, 100), 75.0);
        assert_eq!(saving_percent(1, 0), 0.0);
        assert_eq!(shape(&[]), "[]");
        assert_eq!(shape(&[2, 3]), "[2, 3]");
    }

    #[test]
    fn table_alignment() {
        let mut t = Table::new(&["name", "bytes"], &[1]);
        t.row(vec!["a".into(), "1,000".into()]);
        t.row(vec!["longer".into(), "7".into()]);
        assert_eq!(t.render(), "name    bytes\na       1,000\nlonger      7\n");
    }
}
