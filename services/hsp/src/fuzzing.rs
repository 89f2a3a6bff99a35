//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, never in
//! a service's build): the parsing a client's bytes meet before the store,
//! without a network, a TTP or a database.

pub use crate::portal::fuzzing::{portal_input, PortalInput};

/// A vitals record's plaintext as a device session handles it: decoded as a
/// `VitalsBatch` and every sample checked at a fixed clock. Returns how many
/// samples passed.
pub fn vitals_batch(plaintext: &[u8]) -> Result<usize, String> {
    use prost::Message as _;
    const NOW_MS: i64 = 1_800_000_000_000;
    let batch = vitalgate_proto::v1::VitalsBatch::decode(plaintext).map_err(|e| e.to_string())?;
    let samples: Vec<_> = batch
        .samples
        .iter()
        .map(|s| crate::samples::from_wire(1, s))
        .collect();
    let window = crate::samples::SampleWindow::of(&crate::HspConfig::new(
        std::path::PathBuf::new(),
        String::new(),
        String::new(),
    ));
    crate::samples::check_batch(&samples, window, NOW_MS).map_err(|bad| bad.path())?;
    Ok(samples.len())
}
