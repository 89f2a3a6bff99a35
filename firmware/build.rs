//! Puts memory.x and device.x where cortex-m-rt's link.x finds them.
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    for script in ["memory.x", "device.x"] {
        std::fs::copy(script, out.join(script)).expect("copy a linker script");
        println!("cargo:rerun-if-changed={script}");
    }
    println!("cargo:rustc-link-search={}", out.display());
}
