//! Embeds the clinicians' portal (`portal/dist`, built by
//! `scripts/portal-build`) in the binary when it exists at build time, so
//! `vitalgate hsp --portal-listen` serves its page from any directory.
//! Without it the binary is built all the same and says at start that its
//! page is missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let portal = manifest.join("../../portal");
    let dist = portal.join("dist");
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &mut files);
        files.sort();
        println!("cargo:rerun-if-changed={}", dist.display());
    } else {
        // A path that does not exist would rerun this script (and rebuild the
        // binary) on every build: watch the portal's folder instead, which
        // changes when the page is built into it.
        println!("cargo:rerun-if-changed={}", portal.display());
    }
    let mut code = String::from(
        "/// The portal's built page, by request path (`/index.html`, …).\n\
         pub(crate) static EMBEDDED: &[(&str, &[u8])] = &[\n",
    );
    for file in &files {
        let relative = file.strip_prefix(&dist).expect("collected under dist");
        let key = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
        let absolute = file.canonicalize().expect("a file just listed");
        writeln!(
            code,
            "    ({key:?}, include_bytes!({:?})),",
            absolute.display()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("portal_assets.rs"), code).expect("OUT_DIR is writable");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
