//! Where the clinicians' portal's page comes from: a folder the operator
//! names, or the page this binary carries (`build.rs` embeds `portal/dist`
//! when it exists at build time), so the HSP serves it from any directory.

use std::path::PathBuf;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/portal_assets.rs"));
}

/// What to say at start when there is no page: the portal then serves its
/// API and, at `/`, a page saying the same.
pub(crate) const MISSING: &str = "the portal's page is not in this binary (portal/dist did not \
    exist when it was built) and no --portal-assets was given: the portal serves its API only; \
    run scripts/portal-build and build again, or give --portal-assets portal/dist";

/// Sets `config`'s page: the folder `dir` if given (checked now, so a wrong
/// path stops the start instead of the first request), else the embedded
/// page. `Ok(false)` when there is neither.
pub(crate) fn configure(
    dir: Option<PathBuf>,
    config: &mut vitalgate_hsp::PortalConfig,
) -> Result<bool, String> {
    match dir {
        Some(dir) => {
            if !dir.join("index.html").is_file() {
                return Err(format!(
                    "the portal's page {}: no index.html there (scripts/portal-build builds it into portal/dist)",
                    dir.display()
                ));
            }
            config.assets_dir = Some(dir);
            Ok(true)
        }
        None => {
            config.embedded_assets = embedded::EMBEDDED;
            Ok(!embedded::EMBEDDED.is_empty())
        }
    }
}
