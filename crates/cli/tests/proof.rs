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

/// Whether `text` defines a test function `name`: `fn name(` or `fn name<`,
/// or `name => body` in the core's `for_each_provider!` list, which makes a
/// test of that name per crypto provider.
fn defines(text: &str, name: &str) -> bool {
    let by_provider = text.contains("for_each_provider!(")
        && text.lines().any(|line| {
            line.trim_start()
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(" =>"))
        });
    by_provider
        || text.match_indices("fn ").any(|(at, _)| {
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
    let listed = "for_each_provider!(\n    a_listed_test => its_body,\n);\n";
    assert!(defines(listed, "a_listed_test") && !defines(listed, "a_listed"));
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

type Package = (String, String);

/// What Cargo.lock says the workspace ships: every package reachable from the
/// workspace's crates through their normal and build dependencies, as
/// (name, version). A workspace crate's dev-dependencies (named in its
/// manifest under `[dev-dependencies]` and nowhere else) are left out, as the
/// SBOM leaves them out; a registry package's entries in Cargo.lock are its
/// normal and build dependencies only.
fn shipped_packages(root: &Path) -> BTreeSet<Package> {
    let lock: toml::Table =
        toml::from_str(&read(&root.join("Cargo.lock"))).expect("Cargo.lock parses");
    let packages = lock["package"].as_array().expect("packages");
    let field = |p: &toml::Value, k: &str| p[k].as_str().expect("name and version").to_string();
    let workspace: toml::Table =
        toml::from_str(&read(&root.join("Cargo.toml"))).expect("Cargo.toml parses");
    let mut dev_only: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for member in workspace["workspace"]["members"]
        .as_array()
        .expect("members")
    {
        let manifest: toml::Table = toml::from_str(&read(
            &root.join(member.as_str().expect("path")).join("Cargo.toml"),
        ))
        .expect("a member's Cargo.toml parses");
        let names = |section: &str| -> BTreeSet<String> {
            manifest
                .get(section)
                .and_then(toml::Value::as_table)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default()
        };
        let shipped: BTreeSet<String> = names("dependencies")
            .union(&names("build-dependencies"))
            .cloned()
            .collect();
        let name = manifest["package"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        dev_only.insert(
            name,
            names("dev-dependencies")
                .difference(&shipped)
                .cloned()
                .collect(),
        );
    }
    // A dependency is written `name` or, when two versions are locked, `name version`.
    let find = |entry: &str| -> Package {
        let mut words = entry.split(' ');
        let name = words.next().expect("a name");
        let version = words.next();
        packages
            .iter()
            .map(|p| (field(p, "name"), field(p, "version")))
            .find(|(n, v)| n == name && version.is_none_or(|want| v == want))
            .unwrap_or_else(|| panic!("Cargo.lock names {entry} but does not lock it"))
    };
    let mut shipped = BTreeSet::new();
    let mut queue: Vec<Package> = dev_only.keys().map(|name| find(name)).collect();
    while let Some(package) = queue.pop() {
        if !shipped.insert(package.clone()) {
            continue;
        }
        let entry = packages
            .iter()
            .find(|p| field(p, "name") == package.0 && field(p, "version") == package.1)
            .expect("locked");
        let skip = dev_only
            .get(&package.0)
            .filter(|_| entry.get("source").is_none());
        for dependency in entry
            .get("dependencies")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            let dependency = dependency.as_str().expect("a dependency");
            let name = dependency.split(' ').next().unwrap_or_default();
            if skip.is_some_and(|dev| dev.contains(name)) {
                continue;
            }
            queue.push(find(dependency));
        }
    }
    shipped
}

#[test]
fn sbom_lists_exactly_the_locked_packages() {
    let root = workspace();
    let sbom: serde_json::Value =
        serde_json::from_str(&read(&root.join("sbom.cdx.json"))).expect("sbom.cdx.json parses");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    let subject = &sbom["metadata"]["component"];
    let listed: BTreeSet<Package> = sbom["components"]
        .as_array()
        .expect("components")
        .iter()
        .chain([subject])
        .map(|c| {
            let field = |k: &str| c[k].as_str().expect("name and version").to_string();
            (field("name"), field("version"))
        })
        .collect();
    let shipped = shipped_packages(&root);
    assert!(
        shipped.len() > 300,
        "Cargo.lock was not read ({} packages)",
        shipped.len()
    );
    let stale: Vec<_> = listed.difference(&shipped).collect();
    let missing: Vec<_> = shipped.difference(&listed).collect();
    assert!(
        stale.is_empty() && missing.is_empty(),
        "sbom.cdx.json is out of date with Cargo.lock (run scripts/sbom):\n\
         in the SBOM only: {stale:?}\nin Cargo.lock only: {missing:?}"
    );
}
