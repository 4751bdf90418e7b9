//! A secret string that never prints itself.

use std::fmt;
use std::sync::Arc;

/// Holds a credential (a provider key, an MCP token) in memory. `Debug` and `Display` print `***`,
/// so a secret can sit inside structs that are logged without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The clear value, for the one place that must send it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `sk_` + first 3 + `…` + last 4 for keys that look like virtual keys; otherwise the first 3 and
    /// last 4 characters around an ellipsis (or only the ellipsis for short values).
    pub fn preview(&self) -> String {
        preview(&self.0)
    }
}

/// See [`Secret::preview`].
pub fn preview(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let (prefix, body) = match value.strip_prefix("sk_") {
        Some(rest) => ("sk_", rest.chars().collect::<Vec<_>>()),
        None => ("", chars),
    };
    if body.len() < 12 {
        return format!("{prefix}…");
    }
    let head: String = body[..3].iter().collect();
    let tail: String = body[body.len() - 4..].iter().collect();
    format!("{prefix}{head}…{tail}")
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("sk-live-very-secret");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "sk-live-very-secret");
    }

    #[test]
    fn previews_follow_the_documented_shape() {
        assert_eq!(preview("sk_fd5abcdefghijklmnopb566"), "sk_fd5…b566");
        assert_eq!(preview("sk-proj-abcdefghijkl1234"), "sk-…1234");
        assert_eq!(preview("short"), "…");
    }
}
