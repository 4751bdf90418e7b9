//! Follows the HTTP/1.1 responses a connection writes, so that the ones hyper writes on its own —
//! the bare `400`, `414` and `431` it answers to a request head it cannot parse, with an empty body —
//! can be replaced by Odock's JSON error before they leave.
//!
//! hyper answers a request it could not parse without ever calling the service, so a final
//! response head written when no service call is waiting for one is hyper's own. The tracker
//! therefore needs the calls ([`Calls`]) and the response framing (`Content-Length`, chunked, or
//! none for `HEAD` / `204` / `304` / `1xx`) to find where each head starts. Anything it does not
//! understand (HTTP/2, an upgrade, a close-delimited body, a head that is not our own output) turns
//! it into a pass-through for the rest of the connection: it never alters bytes it cannot place.

use std::collections::VecDeque;

use bytes::Bytes;
use odock_core::{GatewayError, HttpError};
use parking_lot::Mutex;

/// Heads longer than this are not hyper's (a few hundred bytes); stop following the connection.
pub const MAX_TRACKED_HEAD: usize = 64 * 1024;

/// The service calls of one connection whose response head has not been written yet, in order;
/// `true` for a `HEAD` request (its response has no body whatever `Content-Length` says). Once the
/// connection is no longer followed ([`Calls::stop`]) nothing is recorded, so a long-lived HTTP/2
/// connection does not accumulate entries.
#[derive(Debug)]
pub struct Calls(Mutex<Option<VecDeque<bool>>>);

impl Default for Calls {
    fn default() -> Self {
        Self(Mutex::new(Some(VecDeque::new())))
    }
}

impl Calls {
    /// Records a service call; `is_head` for a `HEAD` request.
    pub fn push(&self, is_head: bool) {
        if let Some(calls) = self.0.lock().as_mut() {
            calls.push_back(is_head);
        }
    }

    fn pop(&self) -> Option<bool> {
        self.0.lock().as_mut().and_then(VecDeque::pop_front)
    }

    /// The connection is no longer followed: forget the calls and record no more.
    pub fn stop(&self) {
        *self.0.lock() = None;
    }

    /// Whether [`Calls::stop`] was called (tests).
    #[cfg(test)]
    pub fn is_stopped(&self) -> bool {
        self.0.lock().is_none()
    }
}

/// Where the outgoing byte stream is.
#[derive(Debug)]
pub enum Out {
    /// Collecting a response head (up to the blank line).
    Head(Vec<u8>),
    /// Inside a body.
    Body(Framing),
    /// Not followed any more.
    Passthrough,
}

/// A response body's framing.
#[derive(Debug, Clone)]
pub enum Framing {
    /// `Content-Length`: the bytes of the body still to come.
    Length(u64),
    /// `Transfer-Encoding: chunked`, with the chunk parser's state.
    Chunked(Chunked),
}

impl Framing {
    /// How many of `bytes` belong to the body: all of them, or up to its end.
    pub fn span(&self, bytes: &[u8]) -> Result<usize, Unfollowable> {
        match self {
            Framing::Length(remaining) => {
                Ok(usize::try_from(*remaining).map_or(bytes.len(), |r| r.min(bytes.len())))
            }
            Framing::Chunked(state) => {
                let mut probe = state.clone();
                Ok(probe.advance(bytes)?.unwrap_or(bytes.len()))
            }
        }
    }

    /// Accounts for `bytes` written; `true` when the body has ended with them.
    pub fn consume(&mut self, bytes: &[u8]) -> Result<bool, Unfollowable> {
        match self {
            Framing::Length(remaining) => {
                *remaining = remaining.saturating_sub(bytes.len() as u64);
                Ok(*remaining == 0)
            }
            Framing::Chunked(state) => Ok(state.advance(bytes)?.is_some()),
        }
    }
}

/// The output is not what the tracker expects; it stops following the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unfollowable;

/// Where a chunked body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// Reading a chunk-size line's hex digits (the size so far).
    Size(u64),
    /// Skipping a chunk extension (after `;`) of a chunk of that size.
    Extension(u64),
    /// After the size line's CR, expecting LF.
    SizeLf(u64),
    /// Inside chunk data: the bytes still to come.
    Data(u64),
    /// After chunk data, expecting CR.
    DataCr,
    /// After chunk data's CR, expecting LF.
    DataLf,
    /// After the last chunk: at the start of a trailer line or the final CRLF.
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// After a trailer line's CR, expecting LF.
    TrailerLf,
    /// After the final CR, expecting the LF that ends the body.
    EndLf,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked::Size(0)
    }
}

impl Chunked {
    /// Advances over `bytes`; `Some(n)` when the body ended after the first `n` of them.
    pub fn advance(&mut self, bytes: &[u8]) -> Result<Option<usize>, Unfollowable> {
        let mut i = 0;
        while i < bytes.len() {
            if let Chunked::Data(remaining) = *self {
                let take =
                    usize::try_from(remaining).map_or(bytes.len() - i, |r| r.min(bytes.len() - i));
                i += take;
                let left = remaining - take as u64;
                *self = if left == 0 {
                    Chunked::DataCr
                } else {
                    Chunked::Data(left)
                };
                continue;
            }
            let byte = bytes[i];
            *self = match *self {
                // Handled above.
                Chunked::Data(_) => return Err(Unfollowable),
                Chunked::Size(size) => match byte {
                    b'\r' => Chunked::SizeLf(size),
                    b';' => Chunked::Extension(size),
                    _ => {
                        let digit = (byte as char).to_digit(16).ok_or(Unfollowable)?;
                        let size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(digit)))
                            .ok_or(Unfollowable)?;
                        Chunked::Size(size)
                    }
                },
                Chunked::Extension(size) => match byte {
                    b'\r' => Chunked::SizeLf(size),
                    _ => Chunked::Extension(size),
                },
                Chunked::SizeLf(size) => match (byte, size) {
                    (b'\n', 0) => Chunked::TrailerStart,
                    (b'\n', size) => Chunked::Data(size),
                    _ => return Err(Unfollowable),
                },
                Chunked::DataCr => match byte {
                    b'\r' => Chunked::DataLf,
                    _ => return Err(Unfollowable),
                },
                Chunked::DataLf => match byte {
                    b'\n' => Chunked::Size(0),
                    _ => return Err(Unfollowable),
                },
                Chunked::TrailerStart => match byte {
                    b'\r' => Chunked::EndLf,
                    _ => Chunked::TrailerLine,
                },
                Chunked::TrailerLine => match byte {
                    b'\r' => Chunked::TrailerLf,
                    _ => Chunked::TrailerLine,
                },
                Chunked::TrailerLf => match byte {
                    b'\n' => Chunked::TrailerStart,
                    _ => return Err(Unfollowable),
                },
                Chunked::EndLf => match byte {
                    b'\n' => {
                        *self = Chunked::default();
                        return Ok(Some(i + 1));
                    }
                    _ => return Err(Unfollowable),
                },
            };
            i += 1;
        }
        Ok(None)
    }
}

/// The end of a head (`\r\n\r\n`) in `acc`, given that the first `scanned` bytes held none.
pub fn head_end(acc: &[u8], scanned: usize) -> Option<usize> {
    let from = scanned.saturating_sub(3);
    acc[from..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| from + p + 4)
}

/// What to write for a complete head, and where the stream goes next.
pub fn decide(head: Vec<u8>, calls: &Calls) -> (Bytes, Out) {
    let Some(status) = status_of(&head) else {
        return (Bytes::from(head), Out::Passthrough);
    };
    if (100..200).contains(&status) {
        // Interim answers (100 Continue) belong to the call in progress; 101 switches protocols.
        let next = if status == 101 {
            Out::Passthrough
        } else {
            Out::Head(Vec::new())
        };
        return (Bytes::from(head), next);
    }
    let Some(is_head_request) = calls.pop() else {
        // No call is waiting for an answer: hyper wrote this itself, for a request it refused.
        return (json_answer(status), Out::Passthrough);
    };
    let next = if is_head_request || status == 204 || status == 304 {
        Out::Head(Vec::new())
    } else {
        match framing(&head) {
            Some(Framing::Length(0)) => Out::Head(Vec::new()),
            Some(framing) => Out::Body(framing),
            // Close-delimited: the body runs to the end of the connection.
            None => Out::Passthrough,
        }
    };
    (Bytes::from(head), next)
}

/// `HTTP/1.x NNN ...` → NNN.
fn status_of(head: &[u8]) -> Option<u16> {
    if head.len() < 12 || !head.starts_with(b"HTTP/1.") || head[8] != b' ' {
        return None;
    }
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The body framing a response head announces.
fn framing(head: &[u8]) -> Option<Framing> {
    let text = std::str::from_utf8(head).ok()?;
    let mut length = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().contains("chunked") {
                return Some(Framing::Chunked(Chunked::default()));
            }
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        }
    }
    length.map(Framing::Length)
}

/// Odock's JSON answer in place of hyper's bare one, closing the connection as hyper would.
pub fn json_answer(status: u16) -> Bytes {
    let error = match status {
        431 => HttpError::HeadersTooLarge,
        414 => HttpError::UriTooLong,
        408 => HttpError::Timeout,
        _ => HttpError::Malformed,
    };
    let error = GatewayError::Http(error);
    let body = serde_json::json!({ "error": error.error_object() }).to_string();
    let status = error.status();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_end_where_the_last_chunk_does() {
        let body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\nHTTP/1.1";
        let mut state = Chunked::default();
        assert_eq!(state.advance(body), Ok(Some(body.len() - 8)));
        // Byte by byte, the same.
        let mut state = Chunked::default();
        let end = body
            .iter()
            .enumerate()
            .find_map(|(i, b)| state.advance(&[*b]).unwrap().map(|_| i + 1));
        assert_eq!(end, Some(body.len() - 8));
        // Trailers.
        let mut state = Chunked::default();
        let body = b"0\r\nx-t: 1\r\n\r\n";
        assert_eq!(state.advance(body), Ok(Some(body.len())));
        // Garbage.
        assert_eq!(Chunked::default().advance(b"zz\r\n"), Err(Unfollowable));
    }

    #[test]
    fn heads_with_a_waiting_call_pass_and_others_become_json() {
        let calls = Calls::default();
        calls.push(false);
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n".to_vec();
        let (bytes, next) = decide(head.clone(), &calls);
        assert_eq!(&bytes[..], &head[..]);
        assert!(matches!(next, Out::Body(Framing::Length(2))));

        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let (bytes, next) = decide(hyper.to_vec(), &calls);
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
        assert!(matches!(next, Out::Passthrough));

        // A HEAD answer has no body, whatever its length says.
        calls.push(true);
        let (_, next) = decide(head, &calls);
        assert!(matches!(next, Out::Head(_)));
        // 100 Continue belongs to the call in progress.
        calls.push(false);
        let (_, next) = decide(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(), &calls);
        assert!(matches!(next, Out::Head(_)));
        assert_eq!(calls.pop(), Some(false));
    }

    #[test]
    fn head_ends_are_found_across_writes() {
        let acc = b"HTTP/1.1 200 OK\r\n\r".to_vec();
        assert_eq!(head_end(&acc, 0), None);
        let mut acc = acc;
        acc.extend_from_slice(b"\nbody");
        assert_eq!(head_end(&acc, 18), Some(19));
    }
}
