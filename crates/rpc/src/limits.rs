//! The open-files limit: every gRPC connection holds a descriptor, so an
//! HSP carrying ten thousand devices, or a load generator playing them,
//! needs more than the 1024 a login shell's soft limit often gives.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The open-files limits in force (`u64::MAX` for unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit, which the process may raise up to the hard one.
    pub soft: u64,
    /// The hard limit, which only a privileged process may raise.
    pub hard: u64,
}

/// The limits now.
pub fn open_files() -> OpenFiles {
    let limit = getrlimit(Resource::Nofile);
    OpenFiles {
        soft: limit.current.unwrap_or(u64::MAX),
        hard: limit.maximum.unwrap_or(u64::MAX),
    }
}

/// Raises the soft limit to `wanted`, or to the hard limit when that is
/// lower (processes started afterwards inherit it); never lowers it.
/// Returns the limits in force afterwards.
pub fn raise_open_files_limit(wanted: u64) -> std::io::Result<OpenFiles> {
    let before = getrlimit(Resource::Nofile);
    let now = open_files();
    let target = wanted.min(now.hard);
    if now.soft < target {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: before.maximum,
            },
        )?;
    }
    Ok(open_files())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_towards_the_hard_one_and_never_lowered() {
        let before = open_files();
        assert!(before.soft <= before.hard && before.soft > 0);
        let after = raise_open_files_limit(before.soft.saturating_add(1)).expect("raise");
        assert_eq!(after.hard, before.hard);
        assert_eq!(after.soft, before.soft.saturating_add(1).min(before.hard));
        let again = raise_open_files_limit(1).expect("no lowering");
        assert_eq!(again.soft, after.soft);
    }
}
