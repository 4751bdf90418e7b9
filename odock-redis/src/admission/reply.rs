//! Decoding the scripts' replies.

use std::time::Duration;

use odock_core::rate_limit::{Denied, RateAdmission, RateDenied, ScopeLimits};
use redis::Value;

use crate::connection::RedisStoreError;

/// The limit names of the admission script's rate-refusal codes.
const LIMITS: [&str; 4] = [
    "requests_per_second",
    "requests_per_minute",
    "tokens_per_minute",
    "max_concurrent_requests",
];

/// What the admission script decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Admitted {
        requests: Option<(u64, u64)>,
        tokens: Option<(u64, u64)>,
    },
    RateRefused(RateDenied),
    /// Refused by the window at this (0-based) index.
    WindowRefused(usize),
    /// These (0-based) windows have no counters in Redis yet.
    Missing(Vec<usize>),
}

fn malformed(what: &str, reply: &[Value]) -> RedisStoreError {
    RedisStoreError::Reply(format!("{what}: {reply:?}"))
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// A 1-based index from a reply, checked against `len`, as 0-based.
fn index(value: &Value, len: usize) -> Option<usize> {
    let i = usize::try_from(int(value)?.checked_sub(1)?).ok()?;
    (i < len).then_some(i)
}

pub(crate) fn admission(
    reply: &[Value],
    scopes: &[ScopeLimits],
    windows: usize,
) -> Result<Decision, RedisStoreError> {
    let bad = || malformed("admission", reply);
    let (code, rest) = reply.split_first().ok_or_else(bad)?;
    match int(code).ok_or_else(bad)? {
        1 if rest.len() == 3 * scopes.len() => {
            let mut admission = RateAdmission::default();
            for (limits, left) in scopes.iter().zip(rest.chunks_exact(3)) {
                let left = |i: usize| int(&left[i]).and_then(|n| u64::try_from(n).ok());
                if let Some(remaining) = left(0) {
                    admission.note_requests(u64::from(limits.requests_per_second), remaining);
                }
                if let Some(remaining) = left(1) {
                    admission.note_requests(u64::from(limits.requests_per_minute), remaining);
                }
                if let Some(remaining) = left(2) {
                    admission.note_tokens(limits.tokens_per_minute, remaining);
                }
            }
            Ok(Decision::Admitted {
                requests: admission.requests,
                tokens: admission.tokens,
            })
        }
        0 => {
            let [scope, limit, retry_us] = rest else {
                return Err(bad());
            };
            let scope = index(scope, scopes.len()).ok_or_else(bad)?;
            let limit = index(limit, LIMITS.len()).ok_or_else(bad)?;
            let retry_us = int(retry_us).ok_or_else(bad)?;
            Ok(Decision::RateRefused(RateDenied {
                scope: scopes[scope].scope,
                denied: Denied {
                    limit: LIMITS[limit],
                    retry_after: Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)),
                },
            }))
        }
        2 => {
            let [window] = rest else {
                return Err(bad());
            };
            Ok(Decision::WindowRefused(
                index(window, windows).ok_or_else(bad)?,
            ))
        }
        3 => rest
            .iter()
            .map(|value| index(value, windows).ok_or_else(bad))
            .collect::<Result<_, _>>()
            .map(Decision::Missing),
        _ => Err(bad()),
    }
}

/// What the finishing script did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Done; `(window, used after, added)` for every window whose spend grew.
    Done(Vec<(String, i64, i64)>),
    /// The lease was not live (already closed or swept): nothing changed in the windows.
    NotLive,
    /// These windows have no counters in Redis: rebuild them and call again.
    Missing(Vec<String>),
}

pub(crate) fn finish(reply: &[Value]) -> Result<Reply, RedisStoreError> {
    let bad = || malformed("finish", reply);
    let (code, rest) = reply.split_first().ok_or_else(bad)?;
    match int(code).ok_or_else(bad)? {
        1 => rest
            .chunks(3)
            .map(|triple| match triple {
                [window, after, added] => Ok((
                    text(window),
                    int(after).ok_or_else(bad)?,
                    int(added).ok_or_else(bad)?,
                )),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()
            .map(Reply::Done),
        0 => Ok(Reply::NotLive),
        3 => Ok(Reply::Missing(rest.iter().map(text).collect())),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(name: &'static str) -> ScopeLimits {
        ScopeLimits {
            scope: name,
            key: format!("{name}:1"),
            requests_per_second: 10,
            burst: 10,
            requests_per_minute: 100,
            tokens_per_minute: 1_000,
            max_concurrent: 0,
            lease_ttl: Duration::from_secs(30),
        }
    }

    #[test]
    fn admissions_keep_the_tightest_headroom() {
        let scopes = [scope("organisation"), scope("api_key")];
        let reply: Vec<Value> = [1, 9, 99, 900, 4, 50, -1]
            .into_iter()
            .map(Value::Int)
            .collect();
        assert_eq!(
            admission(&reply, &scopes, 0).unwrap(),
            Decision::Admitted {
                requests: Some((10, 4)),
                tokens: Some((1_000, 900)),
            }
        );
    }

    #[test]
    fn refusals_name_the_scope_limit_or_window_and_bad_replies_are_errors() {
        let scopes = [scope("organisation"), scope("api_key")];
        let reply: Vec<Value> = [0, 2, 3, 5_000_000].into_iter().map(Value::Int).collect();
        assert_eq!(
            admission(&reply, &scopes, 0).unwrap(),
            Decision::RateRefused(RateDenied {
                scope: "api_key",
                denied: Denied {
                    limit: "tokens_per_minute",
                    retry_after: Duration::from_secs(5),
                },
            })
        );
        let window = vec![Value::Int(2), Value::Int(2)];
        assert_eq!(
            admission(&window, &scopes, 2).unwrap(),
            Decision::WindowRefused(1)
        );
        let missing = vec![Value::Int(3), Value::Int(1), Value::Int(3)];
        assert_eq!(
            admission(&missing, &scopes, 3).unwrap(),
            Decision::Missing(vec![0, 2])
        );
        for bad in [
            vec![],
            vec![Value::Int(2), Value::Int(9)],
            vec![Value::Int(7)],
        ] {
            assert!(admission(&bad, &scopes, 2).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn finish_replies_decode() {
        let done = vec![
            Value::Int(1),
            Value::BulkString(b"w1".to_vec()),
            Value::Int(50),
            Value::Int(20),
        ];
        assert_eq!(
            finish(&done).unwrap(),
            Reply::Done(vec![("w1".to_owned(), 50, 20)])
        );
        assert_eq!(finish(&[Value::Int(0)]).unwrap(), Reply::NotLive);
        assert!(finish(&[Value::Int(1), Value::Int(2)]).is_err());
    }
}
