//! Checks, from the sources alone, the rules `../shared/DESIGN.md` sets between the parts of mxrt:
//!
//! - **no module cycles inside a crate**: at every level of a crate's module tree, the imports between sibling
//!   modules (a module counts everything below it) form no cycle;
//! - **the runtime's layers** ("Inside the runtime"): each top-level module of `runtime/src` belongs to one
//!   layer, and imports only the layers [`RUNTIME_LAYERS`] allows it (backends never import graphs or the
//!   facade; graphs never import backends; the op set imports neither);
//! - **no oversized source file**: no `.rs .cu .cuh .cpp .h .wgsl .py .sh` file outside test folders over
//!   [`MAX_LINES`] lines.
//!
//! Imports are read as `crate::…` and `super::…` paths (in `use` items and in expressions, brace groups
//! expanded) after comments and string literals are blanked. Test code does not count: modules declared
//! under a `cfg(test)` attribute, items under one, and files in `tests/` folders. A path that reaches a
//! sibling only through a parent's re-export (`crate::cpu::Cpu` for `cpu::frame::Cpu`) counts as an import of
//! the parent, which the cycle rule does not see; the layer rule sees it, since it works on top-level modules.
//!
//! Everything works on an in-memory tree (relative path → text), so the tests plant violations in small
//! synthetic trees; [`check_repository`] reads the real one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// The largest number of lines a non-test source file may have.
pub const MAX_LINES: usize = 1000;

/// Extensions of the source files the size rule covers.
pub const SOURCE_EXTENSIONS: [&str; 8] = ["rs", "cu", "cuh", "cpp", "h", "wgsl", "py", "sh"];

/// A layer of the runtime: its name, its top-level modules, and the layers it may import.
pub struct Layer {
    pub name: &'static str,
    pub modules: &'static [&'static str],
    pub may_import: &'static [&'static str],
}

/// The runtime's layers, top to bottom (`../shared/DESIGN.md`, "Inside the runtime"). A layer may always
/// import itself; the crate root (`lib.rs`) is the facade.
pub const RUNTIME_LAYERS: [Layer; 8] = [
    Layer {
        name: "facade",
        modules: &["model", "bench"],
        may_import: &[
            "graphs",
            "op set",
            "cpu",
            "wgpu",
            "cuda",
            "device upload",
            "file",
        ],
    },
    Layer {
        name: "graphs",
        modules: &["graphs"],
        may_import: &["op set", "file"],
    },
    Layer {
        name: "op set",
        modules: &["ops"],
        may_import: &["file"],
    },
    Layer {
        name: "cpu",
        modules: &["cpu"],
        may_import: &["op set", "file"],
    },
    Layer {
        name: "wgpu",
        modules: &["wgpu"],
        may_import: &["op set", "device upload", "file"],
    },
    Layer {
        name: "cuda",
        modules: &["cuda"],
        may_import: &["op set", "device upload", "file"],
    },
    Layer {
        name: "device upload",
        modules: &["device_upload"],
        may_import: &["op set", "file"],
    },
    Layer {
        name: "file",
        modules: &["error", "mapped", "weights"],
        may_import: &[],
    },
];

/// Source files by path relative to the repository root (`/`-separated).
pub type Tree = BTreeMap<String, String>;

/// A broken rule, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Sibling modules of `parent` (in `krate`) that import each other in a loop, with one import per step.
    Cycle {
        krate: String,
        parent: String,
        steps: Vec<String>,
    },
    /// A runtime module importing a layer its own layer may not import.
    Layer {
        file: String,
        from: String,
        to: String,
        path: String,
    },
    /// A runtime top-level module that no layer lists.
    Unlayered { module: String },
    /// A source file over [`MAX_LINES`] lines.
    Oversized { file: String, lines: usize },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Cycle {
                krate,
                parent,
                steps,
            } => write!(
                f,
                "module cycle in {krate} under `{parent}`: {}",
                steps.join("; ")
            ),
            Violation::Layer {
                file,
                from,
                to,
                path,
            } => write!(
                f,
                "{file}: the {from} layer may not import the {to} layer (`{path}`)"
            ),
            Violation::Unlayered { module } => write!(
                f,
                "runtime/src: module `{module}` belongs to no layer (add it to archcheck's RUNTIME_LAYERS \
                 and to DESIGN.md)"
            ),
            Violation::Oversized { file, lines } => {
                write!(f, "{file}: {lines} lines (at most {MAX_LINES})")
            }
        }
    }
}

/// What a check found, with the counts the closing notes quote.
#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// Non-test source files the size rule covers.
    pub files: usize,
    /// The largest of them: (path, lines).
    pub largest: Option<(String, usize)>,
    /// Module cycles found (each also a violation).
    pub cycles: usize,
}

/// Reads every source file under `root` (skipping `target`, hidden folders and `node_modules`) and checks it.
pub fn check_repository(root: &Path) -> std::io::Result<Report> {
    let mut tree = Tree::new();
    read_tree(root, root, &mut tree)?;
    Ok(check(&tree))
}

fn read_tree(root: &Path, dir: &Path, tree: &mut Tree) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() {
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            read_tree(root, &path, tree)?;
        } else if SOURCE_EXTENSIONS
            .iter()
            .any(|e| name.ends_with(&format!(".{e}")))
        {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = rel.to_string_lossy().replace('\\', "/");
            // Sources are UTF-8; anything else is not ours to judge.
            if let Ok(text) = std::fs::read_to_string(&path) {
                tree.insert(rel, text);
            }
        }
    }
    Ok(())
}

/// Checks a tree (paths relative to the repository root).
pub fn check(tree: &Tree) -> Report {
    let mut report = Report::default();
    check_sizes(tree, &mut report);
    for src in crate_sources(tree) {
        let modules = crate_modules(tree, &src);
        let edges = module_edges(&modules);
        let cycles = find_cycles(&src, &edges);
        report.cycles += cycles.len();
        report.violations.extend(cycles);
        if src == "runtime/src" {
            report.violations.extend(check_layers(&modules, &edges));
        }
    }
    report
}

/// A path inside a test folder, or a test module file by its name.
fn is_test_path(path: &str) -> bool {
    path.split('/').any(|c| c == "tests" || c == "benches")
}

fn check_sizes(tree: &Tree, report: &mut Report) {
    for (path, text) in tree {
        if is_test_path(path) {
            continue;
        }
        let lines = text.lines().count();
        report.files += 1;
        if report.largest.as_ref().is_none_or(|(_, l)| lines > *l) {
            report.largest = Some((path.clone(), lines));
        }
        if lines > MAX_LINES {
            report.violations.push(Violation::Oversized {
                file: path.clone(),
                lines,
            });
        }
    }
}

/// The `src` folders of the crates in the tree (those with a `lib.rs` or `main.rs`).
fn crate_sources(tree: &Tree) -> BTreeSet<String> {
    tree.keys()
        .filter_map(|p| {
            p.strip_suffix("/lib.rs")
                .or_else(|| p.strip_suffix("/main.rs"))
                .or(match p.as_str() {
                    "lib.rs" | "main.rs" => Some(""),
                    _ => None,
                })
        })
        .filter(|s| *s == "src" || s.ends_with("/src"))
        .map(str::to_string)
        .collect()
}

/// One module of a crate, from its file.
struct Module {
    file: String,
    /// `crate::…` paths this module's non-test code names, made absolute (segments), with the text seen.
    imports: Vec<(Vec<String>, String)>,
    /// Children declared under `cfg(test)`.
    test_children: BTreeSet<String>,
}

/// The crate's modules by path (`[]` is the root), test modules left out.
fn crate_modules(tree: &Tree, src: &str) -> BTreeMap<Vec<String>, Module> {
    let prefix = if src.is_empty() {
        String::new()
    } else {
        format!("{src}/")
    };
    let mut modules = BTreeMap::new();
    for (path, text) in tree {
        let Some(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        let Some(rel) = rel.strip_suffix(".rs") else {
            continue;
        };
        if rel.starts_with("bin/") {
            continue;
        }
        let mut segments: Vec<String> = rel.split('/').map(str::to_string).collect();
        match segments.last().map(String::as_str) {
            Some("lib") | Some("main") if segments.len() == 1 => segments.clear(),
            Some("mod") => {
                segments.pop();
            }
            _ => {}
        }
        let code = strip_tests(&blank_comments_and_strings(text));
        let imports = find_paths(&code.text)
            .into_iter()
            .filter_map(|raw| absolute(&segments, &raw).map(|abs| (abs, raw)))
            .collect();
        modules.insert(
            segments,
            Module {
                file: path.clone(),
                imports,
                test_children: code.test_modules,
            },
        );
    }
    // Leave out test modules and everything below them.
    let test_roots: Vec<Vec<String>> = modules
        .iter()
        .flat_map(|(m, module)| {
            module.test_children.iter().map(move |c| {
                let mut p = m.clone();
                p.push(c.clone());
                p
            })
        })
        .collect();
    modules.retain(|m, _| !test_roots.iter().any(|t| m.starts_with(t)));
    modules
}

/// `raw` (`crate::a::b`, `super::c`, `$crate::d`) as segments from the crate root, for module `at`; `None`
/// for paths that do not start at the crate or a parent.
fn absolute(at: &[String], raw: &str) -> Option<Vec<String>> {
    let mut parts = raw.split("::").map(str::trim).filter(|p| !p.is_empty());
    let first = parts.next()?;
    let mut base: Vec<String> = match first {
        "crate" | "$crate" => Vec::new(),
        "super" => {
            // A file module's `super` is its parent (for `a/mod.rs` and `a.rs` alike: the module is `a`).
            let mut b = at.to_vec();
            b.pop()?;
            b
        }
        _ => return None,
    };
    for p in parts {
        if p == "super" {
            base.pop()?;
        } else if p == "self" {
            continue;
        } else {
            base.push(p.to_string());
        }
    }
    Some(base)
}

/// Module-to-module imports: (from module, to module, file, path as written). `to` is the longest known
/// module prefix of the imported path.
type Edges = Vec<(Vec<String>, Vec<String>, String, String)>;

fn module_edges(modules: &BTreeMap<Vec<String>, Module>) -> Edges {
    let mut edges = Vec::new();
    for (from, module) in modules {
        for (abs, raw) in &module.imports {
            let to = (0..=abs.len())
                .rev()
                .map(|n| abs[..n].to_vec())
                .find(|p| modules.contains_key(p))
                .unwrap_or_default();
            if &to != from {
                edges.push((from.clone(), to, module.file.clone(), raw.clone()));
            }
        }
    }
    edges
}

fn display_module(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Cycles among siblings: an import from `a::x` to `b::y` is an edge `a → b` among the children of their
/// common parent (imports between a module and its own ancestors or descendants are not sibling edges).
fn find_cycles(src: &str, edges: &Edges) -> Vec<Violation> {
    // parent → (child → child → example import)
    let mut levels: BTreeMap<Vec<String>, BTreeMap<String, BTreeMap<String, String>>> =
        BTreeMap::new();
    for (from, to, file, raw) in edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue; // ancestor and descendant
        }
        let parent = from[..common].to_vec();
        levels
            .entry(parent)
            .or_default()
            .entry(from[common].clone())
            .or_default()
            .entry(to[common].clone())
            .or_insert_with(|| format!("{file} names `{raw}`"));
    }
    let krate = if src.is_empty() { "." } else { src };
    let mut out = Vec::new();
    for (parent, graph) in &levels {
        for component in strongly_connected(graph) {
            if component.len() < 2 {
                continue;
            }
            // Walk the cycle inside the component for the message.
            let steps = cycle_steps(graph, &component);
            out.push(Violation::Cycle {
                krate: krate.to_string(),
                parent: display_module(parent),
                steps,
            });
        }
    }
    out
}

/// Tarjan's strongly connected components of a small graph.
fn strongly_connected(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// One loop through `component`, as "a → b (file names `path`)" steps.
fn cycle_steps(
    graph: &BTreeMap<String, BTreeMap<String, String>>,
    component: &[String],
) -> Vec<String> {
    let inside: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let start = component[0].as_str();
    let mut path = vec![start];
    let mut seen = BTreeSet::from([start]);
    let mut at = start;
    loop {
        let next = graph[at]
            .keys()
            .map(String::as_str)
            .find(|n| *n == start || (inside.contains(n) && !seen.contains(n)))
            .or_else(|| {
                graph[at]
                    .keys()
                    .map(String::as_str)
                    .find(|n| inside.contains(n))
            });
        let Some(next) = next else { break };
        path.push(next);
        if next == start || !seen.insert(next) {
            break;
        }
        at = next;
    }
    path.windows(2)
        .map(|w| format!("{} → {} ({})", w[0], w[1], graph[w[0]][w[1]]))
        .collect()
}

fn layer_of(module: &str) -> Option<&'static Layer> {
    RUNTIME_LAYERS.iter().find(|l| l.modules.contains(&module))
}

fn check_layers(modules: &BTreeMap<Vec<String>, Module>, edges: &Edges) -> Vec<Violation> {
    let mut out = Vec::new();
    for m in modules.keys().filter(|m| m.len() == 1) {
        if layer_of(&m[0]).is_none() {
            out.push(Violation::Unlayered {
                module: m[0].clone(),
            });
        }
    }
    for (from, to, file, raw) in edges {
        let (Some(f), Some(t)) = (from.first(), to.first()) else {
            continue; // the crate root is the facade; an import of the root itself names no layer
        };
        let (Some(lf), Some(lt)) = (layer_of(f), layer_of(t)) else {
            continue; // reported above
        };
        if lf.name != lt.name && !lf.may_import.contains(&lt.name) {
            out.push(Violation::Layer {
                file: file.clone(),
                from: lf.name.into(),
                to: lt.name.into(),
                path: raw.clone(),
            });
        }
    }
    out
}

/// Rust source with comments and the contents of string and character literals replaced by spaces
/// (newlines kept), so that paths are only found in code.
pub fn blank_comments_and_strings(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let at = |k: usize| c.get(k).copied();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '/' && at(i + 1) == Some('/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == Some('*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == Some('/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (at(i + 1) == Some('"') || at(i + 1) == Some('#'))
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
        {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            out.push('"');
            j += 1;
            let end: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let end: Vec<char> = end.chars().collect();
            while j < c.len() && c[j..].iter().take(end.len()).ne(end.iter()) {
                out.push(blank(c[j]));
                j += 1;
            }
            out.push('"');
            i = (j + end.len()).min(c.len());
            for _ in 0..(i - j).saturating_sub(1) {
                out.push(' ');
            }
            for _ in 0..=hashes {
                out.push(' ');
            }
        } else if c[i] == '"' {
            out.push('"');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' && i + 1 < c.len() {
                    out.push(' ');
                    i += 1;
                }
                out.push(blank(c[i]));
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if at(i + 1) == Some('\\') {
                out.push('\'');
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    out.push(' ');
                    i += 1;
                }
                out.push('\'');
                i += 1;
            } else if at(i + 2) == Some('\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Code without its test parts, and the child modules declared for tests only.
struct NonTestCode {
    text: String,
    test_modules: BTreeSet<String>,
}

/// Removes every item under a `#[cfg(…test…)]` attribute (not `cfg(not(test))`), recording `mod x;`
/// declarations among them. `code` has comments and strings blanked.
fn strip_tests(code: &str) -> NonTestCode {
    let c: Vec<char> = code.chars().collect();
    let mut keep = vec![true; c.len()];
    let mut test_modules = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = find_from(&c, i, "#[cfg(") {
        let Some(close) = matching(&c, at + 1, '[', ']') else {
            break;
        };
        let attr: String = c[at..=close].iter().collect();
        i = close + 1;
        let is_test = contains_word(&attr, "test") && !attr.contains("not(test");
        if !is_test {
            continue;
        }
        // The item: skip further attributes, then up to its `;` or its `{ … }`.
        let mut j = close + 1;
        loop {
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            if c.get(j) == Some(&'#') && c.get(j + 1) == Some(&'[') {
                match matching(&c, j + 1, '[', ']') {
                    Some(e) => j = e + 1,
                    None => break,
                }
            } else {
                break;
            }
        }
        let item_start = j;
        let mut k = j;
        let mut end = c.len() - 1;
        while k < c.len() {
            if c[k] == ';' {
                end = k;
                break;
            }
            if c[k] == '{' {
                end = matching(&c, k, '{', '}').unwrap_or(c.len() - 1);
                break;
            }
            k += 1;
        }
        let item: String = c[item_start..=end.min(c.len() - 1)].iter().collect();
        let words: Vec<&str> = item
            .split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(p) = words.iter().position(|w| *w == "mod") {
            if let Some(name) = words.get(p + 1) {
                if item.trim_end().ends_with(';') {
                    test_modules.insert(name.to_string());
                }
            }
        }
        for flag in keep.iter_mut().take(end + 1).skip(at) {
            *flag = false;
        }
        i = end + 1;
    }
    let text = c
        .iter()
        .zip(&keep)
        .map(|(ch, k)| if *k || *ch == '\n' { *ch } else { ' ' })
        .collect();
    NonTestCode { text, test_modules }
}

fn find_from(c: &[char], from: usize, needle: &str) -> Option<usize> {
    let n: Vec<char> = needle.chars().collect();
    (from..c.len().saturating_sub(n.len() - 1)).find(|&i| c[i..i + n.len()] == n[..])
}

/// The index of the bracket closing the one at `open`.
fn matching(c: &[char], open: usize, o: char, cl: char) -> Option<usize> {
    let mut depth = 0usize;
    for (k, ch) in c.iter().enumerate().skip(open) {
        if *ch == o {
            depth += 1;
        } else if *ch == cl {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(k);
            }
        }
    }
    None
}

fn contains_word(text: &str, word: &str) -> bool {
    text.split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
        .any(|w| w == word)
}

/// Every path starting `crate::`, `$crate::` or `super::` in `code`, brace groups expanded
/// (`crate::a::{b, c::d}` gives `crate::a::b` and `crate::a::c::d`).
pub fn find_paths(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let starts_word =
            i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_' || c[i - 1] == ':');
        let at_root = ["crate::", "$crate::", "super::"]
            .iter()
            .any(|p| c[i..].iter().take(p.len()).copied().eq(p.chars()));
        if starts_word && at_root {
            let (paths, end) = parse_path(&c, i, String::new());
            out.extend(paths);
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The paths of a (possibly grouped) path at `i`, prefixed by `prefix`, and where it ends.
fn parse_path(c: &[char], mut i: usize, prefix: String) -> (Vec<String>, usize) {
    let mut path = prefix;
    loop {
        while i < c.len() && c[i].is_whitespace() {
            i += 1;
        }
        if c.get(i) == Some(&'{') {
            let Some(close) = matching(c, i, '{', '}') else {
                return (vec![path], c.len());
            };
            let mut out = Vec::new();
            let mut k = i + 1;
            while k < close {
                while k < close && (c[k].is_whitespace() || c[k] == ',') {
                    k += 1;
                }
                if k >= close {
                    break;
                }
                let (paths, end) = parse_path(c, k, path.clone());
                out.extend(paths);
                // Skip `as name` and anything else up to the next comma at this depth.
                k = end;
                while k < close && c[k] != ',' {
                    if c[k] == '{' {
                        k = matching(c, k, '{', '}').unwrap_or(close);
                    }
                    k += 1;
                }
            }
            return (out, close + 1);
        }
        let start = i;
        while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$' || c[i] == '*') {
            i += 1;
        }
        if i == start {
            return (vec![path], i);
        }
        let segment: String = c[start..i].iter().collect();
        if segment != "*" && segment != "self" {
            if !path.is_empty() {
                path.push_str("::");
            }
            path.push_str(&segment);
        }
        if c.get(i) == Some(&':') && c.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            return (vec![path], i);
        }
    }
}
