//! Who may run what on the gateway's host: the stdio command allow-list and the process caps.
//!
//! A STDIO MCP server is a command the gateway runs. The operator (SUPER_ADMIN) may configure any
//! command; a tenant administrator (ORG_ADMIN) only one the operator listed in
//! `ODOCK_MCP_STDIO_ALLOW` ([`StdioAllowList`]), and may not set the environment variables that
//! would change which binary or library actually runs ([`StdioAllowList::forbidden_env`]). Live
//! processes are capped globally and per organisation ([`ProcessLimits`]).

use std::path::{Component, Path};

/// The setting naming the commands an ORG_ADMIN may configure.
pub const STDIO_ALLOW_SETTING: &str = "ODOCK_MCP_STDIO_ALLOW";

/// Commands an ORG_ADMIN may configure for a STDIO MCP server: absolute paths (`/usr/bin/uvx`)
/// or bare program names (`npx`, looked up on the gateway's own `PATH` when the server starts).
/// A command matches an entry only when it is exactly that entry: `npx` does not allow
/// `/tmp/npx`, and `/usr/bin/npx` does not allow `npx`. Empty (the default): none.
///
/// Allowing a program trusts it with **any arguments** an ORG_ADMIN passes: allow servers, not
/// interpreters or shells (`python3 -c …` and `sh -c …` run anything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioAllowList {
    entries: Vec<String>,
}

/// An allow-list entry that is neither an absolute path nor a bare program name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is neither an absolute path nor a bare program name")]
pub struct StdioAllowError(pub String);

impl StdioAllowList {
    /// Parses a comma-separated list; empty entries are ignored.
    pub fn parse(list: &str) -> Result<Self, StdioAllowError> {
        Self::from_entries(list.split(','))
    }

    /// Builds a list from separate entries; empty entries are ignored, an invalid one is refused.
    pub fn from_entries<I, S>(entries: I) -> Result<Self, StdioAllowError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            if !valid_entry(entry) {
                return Err(StdioAllowError(entry.to_owned()));
            }
            list.entries.push(entry.to_owned());
        }
        Ok(list)
    }

    /// Whether nothing is allowed beyond operator-approved commands.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The allowed commands: absolute paths or bare program names.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Whether `command` (as configured, trimmed) is on the list.
    pub fn allows(&self, command: &str) -> bool {
        let command = command.trim();
        self.entries.iter().any(|entry| entry == command)
    }

    /// Environment variables an ORG_ADMIN may not set: `PATH` (it would decide which binary a
    /// launcher runs) and the dynamic loader's `LD_*` / `DYLD_*` (they load code into any program,
    /// however harmless the program).
    pub fn forbidden_env(name: &str) -> bool {
        let upper = name.to_ascii_uppercase();
        upper == "PATH" || upper.starts_with("LD_") || upper.starts_with("DYLD_")
    }
}

/// An absolute path without `.`/`..` components, or a bare name (no `/`, no whitespace).
fn valid_entry(entry: &str) -> bool {
    if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if entry.contains('/') {
        let path = Path::new(entry);
        return path.is_absolute()
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    }
    entry != "." && entry != ".."
}

/// Caps on live stdio child processes: one session holds one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessLimits {
    /// Across the pool (`ODOCK_MCP_STDIO_MAX`, default 64).
    pub max_total: usize,
    /// Per organisation (`ODOCK_MCP_STDIO_MAX_PER_ORG`, default a quarter of `max_total`, at
    /// least 1), so one tenant cannot take every slot.
    pub max_per_organisation: usize,
}

impl ProcessLimits {
    /// Default cap on live stdio processes across the pool.
    pub const DEFAULT_MAX_TOTAL: usize = 64;

    /// `max_total` processes, each organisation a quarter of them (at least one).
    pub fn new(max_total: usize) -> Self {
        Self {
            max_total,
            max_per_organisation: Self::default_share(max_total),
        }
    }

    /// The default per-organisation share of `max_total`: a quarter, at least 1.
    pub fn default_share(max_total: usize) -> usize {
        (max_total / 4).max(1)
    }
}

impl Default for ProcessLimits {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_TOTAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_absolute_paths_or_bare_names_and_match_exactly() {
        let list = StdioAllowList::parse(" npx, /usr/bin/uvx ,,").unwrap();
        assert!(list.allows("npx"));
        assert!(list.allows(" /usr/bin/uvx "));
        assert!(!list.allows("/tmp/npx"));
        assert!(!list.allows("uvx"));
        assert!(!list.allows("/bin/sh"));
        assert!(!StdioAllowList::default().allows("npx"));
        for bad in ["./server", "bin/server", "/usr/../bin/sh", "npx -y", ".."] {
            assert!(StdioAllowList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_and_loader_variables_are_forbidden_to_tenants() {
        for name in [
            "PATH",
            "path",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
        ] {
            assert!(StdioAllowList::forbidden_env(name), "{name}");
        }
        for name in ["API_TOKEN", "HOME", "OLD_PATH"] {
            assert!(!StdioAllowList::forbidden_env(name), "{name}");
        }
    }

    #[test]
    fn each_organisation_gets_a_quarter_by_default() {
        assert_eq!(ProcessLimits::default().max_per_organisation, 16);
        assert_eq!(ProcessLimits::new(2).max_per_organisation, 1);
    }
}
