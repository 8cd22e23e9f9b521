//! The layers of `src/` (docs/architecture.md), checked from the source itself: every
//! `crate::…`, `super::…` and `self::…` path of every file (in `use` lines and in code) is
//! resolved to the file of the module it names, and
//!
//! - `core/` reaches nothing of callhook outside `core/`, and no shell crate (tokio, sqlx,
//!   axum, reqwest, hyper);
//! - `store/` reaches only `core/` and itself;
//! - `api/` and `web/` never reach each other;
//! - no files of different folders import each other in a cycle.
//!
//! It reads text: a path written inside a macro is seen, one a macro builds from pieces is not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates the pure core may not use.
const SHELL_CRATES: &[&str] = &["tokio", "sqlx", "axum", "reqwest", "hyper"];

/// One source file of the library.
struct File {
    /// Relative to `src/`: `store/sql/claims.rs`.
    path: String,
    /// Its module: `["store", "sql", "claims"]` (`[]` for `lib.rs`).
    module: Vec<String>,
    /// Its folder relative to `src/`: `store/sql`, or `` for the top.
    folder: String,
    /// The code with comments, strings and character literals blanked out.
    code: String,
}

/// A path one file reaches: a module path of the crate, or an outside crate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Crate(Vec<String>),
    Extern(String),
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every file of the library (`main.rs` is the binary: it reaches the library as `callhook::`).
fn library() -> Vec<File> {
    let root = src();
    let mut paths = Vec::new();
    rs_files(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel == "main.rs" {
                return None;
            }
            let mut module: Vec<String> = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_owned)
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let folder = rel.rsplit_once('/').map_or("", |(f, _)| f).to_owned();
            let code = blank_out(&std::fs::read_to_string(&p).unwrap());
            Some(File {
                path: rel,
                module,
                folder,
                code,
            })
        })
        .collect()
}

/// `src` with comments, string literals (raw ones too) and character literals replaced by
/// spaces, newlines kept: what is left is code.
fn blank_out(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let at = |k: usize| b.get(k).copied();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out: Vec<char> = Vec::with_capacity(b.len());
    // Blanks `b[from..to]`, keeping its newlines.
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        out.extend(
            b[from..to.min(b.len())]
                .iter()
                .map(|&c| if c == '\n' { c } else { ' ' }),
        );
    };
    let mut i = 0;
    while i < b.len() {
        let end = if b[i] == '/' && at(i + 1) == Some('/') {
            (i..b.len()).find(|&k| b[k] == '\n').unwrap_or(b.len())
        } else if b[i] == '/' && at(i + 1) == Some('*') {
            let (mut k, mut depth) = (i, 0);
            loop {
                if k >= b.len() {
                    break b.len();
                } else if b[k] == '/' && at(k + 1) == Some('*') {
                    depth += 1;
                    k += 2;
                } else if b[k] == '*' && at(k + 1) == Some('/') {
                    depth -= 1;
                    k += 2;
                    if depth == 0 {
                        break k;
                    }
                } else {
                    k += 1;
                }
            }
        } else if b[i] == 'r' && (i == 0 || !ident(b[i - 1])) && {
            let hashes = (i + 1..b.len()).take_while(|&k| b[k] == '#').count();
            at(i + 1 + hashes) == Some('"')
        } {
            // r"…" or r#"…"#: ends at a quote followed by as many hashes.
            let hashes = (i + 1..b.len()).take_while(|&k| b[k] == '#').count();
            let mut k = i + hashes + 2;
            while k < b.len() && !(b[k] == '"' && (1..=hashes).all(|h| at(k + h) == Some('#'))) {
                k += 1;
            }
            k + hashes + 1
        } else if b[i] == '"' {
            let mut k = i + 1;
            while k < b.len() && b[k] != '"' {
                k += if b[k] == '\\' { 2 } else { 1 };
            }
            k + 1
        } else if b[i] == '\'' && at(i + 1) == Some('\\') {
            // '\n', '\'', '\u{1F600}': the escaped character, then up to the closing quote.
            (i + 3..b.len())
                .find(|&k| b[k] == '\'')
                .map_or(b.len(), |k| k + 1)
        } else if b[i] == '\'' && at(i + 2) == Some('\'') {
            // 'x' (a lifetime has no closing quote).
            i + 3
        } else {
            out.push(b[i]);
            i += 1;
            continue;
        };
        blank(&mut out, i, end);
        i = end.max(i + 1);
    }
    out.into_iter().collect()
}

/// The paths of one `use` tree (`a::{b, c::{self, d}}` → `a::b`, `a::c`, `a::c::d`), each as
/// its segments; a glob or a rename ends a path.
fn expand(tree: &str) -> Vec<Vec<String>> {
    fn parse(s: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        loop {
            while *i < s.len() && s[*i].is_whitespace() {
                *i += 1;
            }
            if *i >= s.len() {
                break;
            }
            if s[*i] == '{' {
                *i += 1;
                loop {
                    parse(s, i, path.clone(), out);
                    while *i < s.len() && s[*i].is_whitespace() {
                        *i += 1;
                    }
                    match s.get(*i) {
                        Some(',') => *i += 1,
                        Some('}') => {
                            *i += 1;
                            return;
                        }
                        _ => return,
                    }
                    while *i < s.len() && s[*i].is_whitespace() {
                        *i += 1;
                    }
                    if s.get(*i) == Some(&'}') {
                        *i += 1;
                        return;
                    }
                }
            }
            if s[*i] == '*' {
                *i += 1;
                out.push(path);
                return;
            }
            let start = *i;
            while *i < s.len() && (s[*i].is_alphanumeric() || s[*i] == '_') {
                *i += 1;
            }
            let ident: String = s[start..*i].iter().collect();
            if ident.is_empty() {
                out.push(path);
                return;
            }
            if ident != "self" {
                path.push(ident);
            }
            while *i < s.len() && s[*i].is_whitespace() {
                *i += 1;
            }
            if s[*i..].starts_with(&[':', ':']) {
                *i += 2;
                continue;
            }
            // `as name`, or the end of this branch.
            if s[*i..].starts_with(&['a', 's']) {
                *i += 2;
                while *i < s.len() && s[*i].is_whitespace() {
                    *i += 1;
                }
                while *i < s.len() && (s[*i].is_alphanumeric() || s[*i] == '_') {
                    *i += 1;
                }
            }
            out.push(path);
            return;
        }
        out.push(path);
    }
    let chars: Vec<char> = tree.chars().collect();
    let mut out = Vec::new();
    parse(&chars, &mut 0, Vec::new(), &mut out);
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path `file` reaches, resolved from the module it is written in (a `mod tests { … }`
/// inside the file is a module of its own for `super::`).
fn targets(file: &File) -> BTreeSet<Target> {
    let code: Vec<char> = file.code.chars().collect();
    let n = code.len();
    let skip_space = |mut k: usize| {
        while k < n && code[k].is_whitespace() {
            k += 1;
        }
        k
    };
    let path_follows = |k: usize| code[k..].starts_with(&[':', ':']);
    let mut out = BTreeSet::new();
    // The inline modules open here, with the brace depth inside each.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < n {
        let c = code[i];
        if c == '{' {
            depth += 1;
            i += 1;
            continue;
        }
        if c == '}' {
            depth = depth.saturating_sub(1);
            while inline.last().is_some_and(|(_, d)| *d > depth) {
                inline.pop();
            }
            i += 1;
            continue;
        }
        if !is_ident(c) || (i > 0 && is_ident(code[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && is_ident(code[i]) {
            i += 1;
        }
        let word: String = code[start..i].iter().collect();
        match word.as_str() {
            "mod" => {
                // `mod name {` opens an inline module; `mod name;` only declares a file.
                let name_start = skip_space(i);
                let mut k = name_start;
                while k < n && is_ident(code[k]) {
                    k += 1;
                }
                let brace = skip_space(k);
                if k > name_start && code.get(brace) == Some(&'{') {
                    depth += 1;
                    inline.push((code[name_start..k].iter().collect(), depth));
                    i = brace + 1;
                }
            }
            "use" => {
                let end = (i..n).find(|&k| code[k] == ';').unwrap_or(n);
                let tree: String = code[i..end].iter().collect();
                for segments in expand(tree.trim().trim_start_matches("::")) {
                    out.extend(resolve(&file.module, &inline, segments));
                }
                i = end + 1;
            }
            "crate" | "super" | "self" if path_follows(i) => {
                while i < n && (is_ident(code[i]) || code[i] == ':') {
                    i += 1;
                }
                let path: String = code[start..i].iter().collect();
                let segments: Vec<String> = path
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                out.extend(resolve(&file.module, &inline, segments));
            }
            // Outside crates named in code, not only in `use`: `tokio::spawn(…)`.
            w if SHELL_CRATES.contains(&w) && path_follows(i) => {
                out.insert(Target::Extern(word));
            }
            _ => {}
        }
    }
    out
}

/// What `segments`, written in `module` inside the inline modules `inline`, reach.
fn resolve(module: &[String], inline: &[(String, usize)], segments: Vec<String>) -> Option<Target> {
    let mut here: Vec<String> = module.to_vec();
    here.extend(inline.iter().map(|(m, _)| m.clone()));
    let mut it = segments.into_iter().peekable();
    let mut path = match it.peek()?.as_str() {
        "crate" => {
            it.next();
            Vec::new()
        }
        "super" | "self" => here,
        // An outside crate (`tokio::…`) or a name in scope (`Vec`, an enum's variants).
        first => return Some(Target::Extern(first.to_owned())),
    };
    for s in it {
        match s.as_str() {
            "super" => {
                path.pop();
            }
            "self" => {}
            _ => path.push(s),
        }
    }
    Some(Target::Crate(path))
}

/// The file of the module `path` names: the longest module of a file that starts it.
fn file_of<'a>(files: &'a [File], path: &[String]) -> &'a File {
    files
        .iter()
        .filter(|f| path.starts_with(&f.module))
        .max_by_key(|f| f.module.len())
        .expect("lib.rs is the module of every path")
}

/// Imports between files: (from, to), paths relative to `src/`.
type Edges = BTreeSet<(String, String)>;
/// The outside crates (and other names not of the crate) each file's paths begin with.
type Externs = BTreeMap<String, BTreeSet<String>>;

/// Every file's imports: (from, to) file paths, and the outside crates each names.
fn graph(files: &[File]) -> (Edges, Externs) {
    let mut edges = Edges::new();
    let mut externs = Externs::new();
    for f in files {
        for t in targets(f) {
            match t {
                Target::Crate(path) => {
                    let to = file_of(files, &path);
                    if to.path != f.path {
                        edges.insert((f.path.clone(), to.path.clone()));
                    }
                }
                Target::Extern(name) => {
                    externs.entry(f.path.clone()).or_default().insert(name);
                }
            }
        }
    }
    (edges, externs)
}

/// The library's files and their imports, read once for all the tests below.
fn library_graph() -> &'static (Vec<File>, Edges, Externs) {
    static GRAPH: std::sync::OnceLock<(Vec<File>, Edges, Externs)> = std::sync::OnceLock::new();
    GRAPH.get_or_init(|| {
        let files = library();
        let (edges, externs) = graph(&files);
        (files, edges, externs)
    })
}

/// The top folder of a file: `core`, `store`, … (`` for a file directly in `src/`).
fn top(path: &str) -> &str {
    path.split_once('/').map_or("", |(t, _)| t)
}

#[test]
fn core_imports_nothing_above_it_and_no_shell_crate() {
    let (_, edges, externs) = library_graph();
    let wrong: Vec<String> = edges
        .iter()
        .filter(|(from, to)| top(from) == "core" && top(to) != "core")
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(wrong.is_empty(), "core/ reaches outside core/: {wrong:#?}");
    let shell: Vec<String> = externs
        .iter()
        .filter(|(f, _)| top(f) == "core")
        .flat_map(|(f, names)| {
            names
                .iter()
                .filter(|n| SHELL_CRATES.contains(&n.as_str()))
                .map(move |n| format!("{f} uses {n}"))
        })
        .collect();
    assert!(shell.is_empty(), "core/ uses a shell crate: {shell:#?}");
}

#[test]
fn store_imports_only_core_and_itself() {
    let (_, edges, _) = library_graph();
    let wrong: Vec<String> = edges
        .iter()
        .filter(|(from, to)| top(from) == "store" && !["core", "store"].contains(&top(to)))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(wrong.is_empty(), "store/ reaches above it: {wrong:#?}");
}

#[test]
fn the_api_and_the_web_page_never_import_each_other() {
    let (_, edges, _) = library_graph();
    let wrong: Vec<String> = edges
        .iter()
        .filter(|(from, to)| matches!((top(from), top(to)), ("api", "web") | ("web", "api")))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "api/ and web/ import each other: {wrong:#?}"
    );
}

/// The strongly connected parts of the import graph (Tarjan's algorithm), of two files or more.
fn cycles(nodes: &[String], edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    struct State<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        counter: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, s: &mut State<'a>) {
        s.index.insert(v, s.counter);
        s.low.insert(v, s.counter);
        s.counter += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.next.get(v).cloned().unwrap_or_default() {
            if !s.index.contains_key(w) {
                visit(w, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut part = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                part.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if part.len() > 1 {
                part.sort();
                s.out.push(part);
            }
        }
    }
    let mut s = State {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        counter: 0,
        out: Vec::new(),
    };
    for (from, to) in edges {
        s.next.entry(from.as_str()).or_default().push(to.as_str());
    }
    for v in nodes {
        if !s.index.contains_key(v.as_str()) {
            visit(v, &mut s);
        }
    }
    s.out
}

#[test]
fn no_files_of_different_folders_import_each_other_in_a_cycle() {
    let (files, edges, _) = library_graph();
    let nodes: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let folder: BTreeMap<&str, &str> = files
        .iter()
        .map(|f| (f.path.as_str(), f.folder.as_str()))
        .collect();
    let across: Vec<Vec<String>> = cycles(&nodes, edges)
        .into_iter()
        .filter(|part| {
            part.iter()
                .map(|p| folder[p.as_str()])
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .collect();
    assert!(
        across.is_empty(),
        "files of different folders that import each other in a cycle: {across:#?}"
    );
}

/// The checker itself: a path hidden in a comment or a string is no import, a `use` tree is
/// read whole, `super` in an inline module is that module's parent, and a shell crate named
/// in code is seen.
#[test]
fn the_checker_reads_paths_as_the_compiler_does() {
    let file = |path: &str, src: &str| {
        let module: Vec<String> = path
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_owned)
            .collect();
        File {
            path: path.to_owned(),
            module,
            folder: path.rsplit_once('/').map_or("", |(f, _)| f).to_owned(),
            code: blank_out(src),
        }
    };
    let f = file(
        "core/x.rs",
        r##"
        // use crate::store::Store;
        /* crate::web::page */
        const S: &str = "crate::api::x";
        const R: &str = r#"crate::app"#;
        const C: char = '{';
        use crate::{core::id::{self, Id}, ingest as i};
        use super::number::*;
        fn f<'a>(x: &'a str) { tokio::spawn(async {}); crate::config::Settings::default(); }
        mod tests { use super::Y; }
        "##,
    );
    let got = targets(&f);
    let path = |p: &[&str]| Target::Crate(p.iter().map(|s| s.to_string()).collect());
    let want: BTreeSet<Target> = [
        path(&["core", "id"]),
        path(&["core", "id", "Id"]),
        path(&["ingest"]),
        path(&["core", "number"]),
        path(&["config", "Settings", "default"]),
        path(&["core", "x", "Y"]),
        Target::Extern("tokio".into()),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    let nodes = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    let edges: BTreeSet<(String, String)> = [("a", "b"), ("b", "a"), ("b", "c")]
        .into_iter()
        .map(|(x, y)| (x.to_owned(), y.to_owned()))
        .collect();
    assert_eq!(cycles(&nodes, &edges), [["a", "b"]]);
}
