//! Configuration as a pure function: [`resolve`] turns the command line's
//! flags, the file's section and the environment into a service's settings,
//! with no I/O (reading files, opening stores is `load.rs`'s). Precedence,
//! for every setting: flag, then environment variable, then file, then
//! default.
//!
//! The environment is an explicit map ([`Env`]): the binary passes the
//! process's, tests pass a table. clap reads only the command line.

pub(crate) mod file;
pub(crate) mod flags;
pub(crate) mod resolve;

use std::collections::BTreeMap;
use std::str::FromStr;

/// Environment variables, as a map.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env(BTreeMap<String, String>);

impl Env {
    /// The process's `VITALGATE_*` variables, and OpenTelemetry's
    /// standard `OTEL_*` ones.
    pub(crate) fn from_process() -> Self {
        Self(
            std::env::vars()
                .filter(|(name, _)| name.starts_with("VITALGATE_") || name.starts_with("OTEL_"))
                .collect(),
        )
    }

    /// A given set of variables (for tests).
    #[cfg(test)]
    pub(crate) fn of(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// A variable's value, parsed; an empty value counts as unset.
    pub(crate) fn get<T: FromStr>(&self, name: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.0.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|e| format!("{name}={text:?}: {e}")),
        }
    }

    /// A comma-separated list.
    pub(crate) fn list(&self, name: &str) -> Option<Vec<String>> {
        self.0
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
    }

    /// A boolean (`true`/`false`, `1`/`0`, `yes`/`no`).
    pub(crate) fn flag(&self, name: &str) -> Result<Option<bool>, String> {
        match self.0.get(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(Some(true)),
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(Some(false)),
            Some(v) => Err(format!("{name}={v:?}: not true or false")),
        }
    }
}

/// The first of flag, environment and file that is set, else `default`.
pub(crate) fn pick<T>(flag: Option<T>, env: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(env).or(file).unwrap_or(default)
}

/// Like [`pick`] for settings with no default.
pub(crate) fn pick_opt<T>(flag: Option<T>, env: Option<T>, file: Option<T>) -> Option<T> {
    flag.or(env).or(file)
}

/// A secret as configured: its value, or the file that holds it (which keeps
/// it out of `ps`, shell history and the configuration file). The file is
/// read when the service starts (`load::secret`), not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Secret {
    Value(String),
    File(std::path::PathBuf),
}

impl Secret {
    /// The secret from a value or a file setting, each already picked by
    /// precedence; both at once is a mistake worth naming.
    pub(crate) fn pick(
        what: &str,
        value: Option<String>,
        file: Option<std::path::PathBuf>,
    ) -> Result<Option<Self>, String> {
        match (value, file) {
            (Some(_), Some(file)) => Err(format!(
                "{what} is given twice, as a value and as the file {}: give one",
                file.display()
            )),
            (Some(value), None) => Ok(Some(Self::Value(value))),
            (None, Some(file)) => Ok(Some(Self::File(file))),
            (None, None) => Ok(None),
        }
    }
}
