//! The layout rules of docs/ARCHITECTURE.md, checked on the source itself:
//! no two modules import each other (at the top level, and among siblings
//! inside a directory module), `main.rs` stays a thin dispatcher, and no
//! function hands an error back as a bare `String`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(&root).unwrap().to_path_buf();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `restore/mysql/split.rs` -> ["restore", "mysql", "split"]; `mod.rs`
/// names its directory.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts
}

/// Code only: comments and string literals could name modules too.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut in_str = false;
        for c in line.chars() {
            if c == '"' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// Edges between modules: `crate::a::b` paths and `super::x` where `x` is a
/// sibling module. Each edge is reduced to the two modules that differ
/// under their common parent, so `restore::scratch` -> `restore::postgres`
/// is a sibling edge and `commands::nightly` -> `history` a top-level one.
/// References into one's own ancestors or descendants are not edges.
fn edges(files: &[(PathBuf, String)]) -> BTreeSet<(Vec<String>, Vec<String>)> {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(p, _)| module_of(p)).collect();
    let crate_path =
        regex::Regex::new(r"crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)").unwrap();
    let super_path = regex::Regex::new(r"super::([a-z_][a-z0-9_]*)").unwrap();
    let group = regex::Regex::new(r"crate::\{([^}]*)\}").unwrap();
    let mut out = BTreeSet::new();
    for (rel, text) in files {
        let from = module_of(rel);
        if from.is_empty() || from == ["main"] {
            continue;
        }
        let text = code(text);
        let mut targets: Vec<Vec<String>> = Vec::new();
        let mut resolve = |path: &str| {
            let parts: Vec<String> = path.split("::").map(str::to_string).collect();
            // The longest prefix that is a module.
            for n in (1..=parts.len()).rev() {
                if modules.contains(&parts[..n]) {
                    targets.push(parts[..n].to_vec());
                    return;
                }
            }
        };
        for c in crate_path.captures_iter(&text) {
            resolve(&c[1]);
        }
        for c in group.captures_iter(&text) {
            for item in c[1].split(',') {
                let item = item.trim().split([' ', '{']).next().unwrap_or("");
                resolve(item);
            }
        }
        let parent = &from[..from.len() - 1];
        for c in super_path.captures_iter(&text) {
            let mut sib = parent.to_vec();
            sib.push(c[1].to_string());
            if modules.contains(&sib) && sib != from {
                targets.push(sib);
            }
        }
        for to in targets {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len().min(to.len()) {
                continue; // an ancestor or a descendant
            }
            out.insert((from[..=common].to_vec(), to[..=common].to_vec()));
        }
    }
    out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let files = sources();
    let edges = edges(&files);
    assert!(
        edges.len() > 20,
        "the scan must see the crate's imports: {edges:?}"
    );
    // Any cycle shows up as a pair reachable both ways.
    let mut graph: BTreeMap<&Vec<String>, Vec<&Vec<String>>> = BTreeMap::new();
    for (a, b) in &edges {
        graph.entry(a).or_default().push(b);
    }
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(m) = stack.pop() {
            for n in graph.get(m).into_iter().flatten() {
                if seen.insert(*n) {
                    stack.push(n);
                }
            }
        }
        seen
    };
    let mut cycles = Vec::new();
    for (a, b) in &edges {
        if reach(b).contains(a) {
            cycles.push(format!("{} -> {}", a.join("::"), b.join("::")));
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles (each edge lies on one):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn main_is_a_thin_dispatcher() {
    let main =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/main.rs")).unwrap();
    let lines = main.lines().count();
    assert!(lines <= 200, "src/main.rs has {lines} lines");
}

#[test]
fn no_function_returns_a_string_error() {
    let bare = regex::Regex::new(r"->\s*Result<[^;{]*,\s*String>").unwrap();
    let mut found = Vec::new();
    for (rel, text) in sources() {
        for (i, line) in text.lines().enumerate() {
            if bare.is_match(line) {
                found.push(format!("src/{}:{}: {}", rel.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
