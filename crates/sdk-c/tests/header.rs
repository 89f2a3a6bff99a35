//! The committed header is what cbindgen makes from this crate now, and
//! `vg_error_name` agrees with it.
#![allow(missing_docs)]

use std::ffi::CStr;
use std::path::{Path, PathBuf};

const HEADER: &str = "include/vitalgate.h";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate(dir: &Path) -> String {
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    // From the crate root (cbindgen follows its modules): only this crate's
    // files are parsed, and no `cargo metadata` runs from inside the test.
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen")
        .write(&mut out);
    String::from_utf8(out).expect("UTF-8")
}

#[test]
fn the_committed_header_is_current() {
    let dir = crate_dir();
    let generated = generate(&dir);
    let path = dir.join(HEADER);
    if std::env::var_os("VITALGATE_WRITE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{HEADER} is stale: regenerate it with \
         `VITALGATE_WRITE_HEADER=1 cargo test --workspace --test header` and commit it"
    );
}

#[test]
fn every_error_code_is_named_as_the_header_names_it() {
    let header = std::fs::read_to_string(crate_dir().join(HEADER)).expect("header");
    let mut code = 0;
    loop {
        let name = vitalgate_sdk_c::error::vg_error_name(code);
        // SAFETY: vg_error_name returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(name) }.to_str().expect("ASCII");
        if name == "VG_ERROR_UNKNOWN" {
            break;
        }
        assert!(
            header.contains(&format!("{name} = {code},")),
            "{name} is not code {code} in the header"
        );
        code += 1;
    }
    assert_eq!(
        code,
        vitalgate_sdk_c::VgError::ResumptionRefused as i32 + 1,
        "every code up to the last has a name"
    );
}
