//! Why a configuration could not be loaded: shared by the settings modules, which check their own
//! keys, and the loader.

use std::path::PathBuf;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for [`FileConfig`](crate::config::FileConfig).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file's path.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },
    /// A setting has an invalid value.
    #[error("invalid {name}: {message}")]
    Invalid {
        /// The setting: a file key or an environment variable.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
}
