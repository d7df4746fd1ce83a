//! Measured memory of this process from /proc/self/status: peak resident set, and the current split into
//! file-backed pages (the mapped model) and anonymous pages (activations, allocations).

/// `(VmHWM, RssFile, RssAnon)` in bytes; `None` where /proc is unavailable (not Linux).
pub fn rss() -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((field("VmHWM:")?, field("RssFile:")?, field("RssAnon:")?))
}

/// Tracks the largest file-backed and anonymous RSS seen across samples.
#[derive(Default, Clone, Copy)]
pub struct Peak {
    pub hwm: u64,
    pub file: u64,
    pub anon: u64,
}

impl Peak {
    pub fn sample(&mut self) {
        if let Some((hwm, file, anon)) = rss() {
            self.hwm = self.hwm.max(hwm);
            self.file = self.file.max(file);
            self.anon = self.anon.max(anon);
        }
    }
}
