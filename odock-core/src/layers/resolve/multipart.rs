//! Just enough `multipart/form-data` to govern a request: read the text fields (the model name, the
//! prompt) and swap one field's value (the model name → the upstream slug) without touching the
//! other parts' bytes (file uploads pass through as sent).

use bytes::{Bytes, BytesMut};

/// The boundary parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// One part: where its value starts and ends in the body, and its field name.
struct Part {
    name: String,
    is_file: bool,
    value_start: usize,
    value_end: usize,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn parts(body: &[u8], boundary: &str) -> Result<Vec<Part>, &'static str> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut at = find(body, delimiter, 0).ok_or("no boundary found")?;
    let mut parts = Vec::new();
    loop {
        let after = at + delimiter.len();
        if body.get(after..after + 2) == Some(b"--") {
            return Ok(parts);
        }
        let headers_start = find(body, b"\r\n", after).ok_or("truncated part")? + 2;
        let headers_end = find(body, b"\r\n\r\n", headers_start).ok_or("truncated part headers")?;
        let headers = std::str::from_utf8(&body[headers_start..headers_end])
            .map_err(|_| "part headers are not UTF-8")?;
        let value_start = headers_end + 4;
        let mut closing = b"\r\n".to_vec();
        closing.extend_from_slice(delimiter);
        let next = find(body, &closing, value_start).ok_or("missing closing boundary")?;
        let disposition = headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .ok_or("part without Content-Disposition")?;
        let param = |key: &str| {
            disposition.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        parts.push(Part {
            name: param("name").unwrap_or_default(),
            is_file: param("filename").is_some(),
            value_start,
            value_end: next,
        });
        at = next + 2;
    }
}

/// The text fields (not file uploads) as `(name, value)`.
pub fn text_fields(body: &[u8], boundary: &str) -> Result<Vec<(String, String)>, &'static str> {
    Ok(parts(body, boundary)?
        .into_iter()
        .filter(|p| !p.is_file)
        .filter_map(|p| {
            let value = std::str::from_utf8(&body[p.value_start..p.value_end]).ok()?;
            Some((p.name, value.to_owned()))
        })
        .collect())
}

/// `body` with the value of text field `name` replaced by `value`; every other byte is kept.
/// `None` when the body does not parse or has no such field.
pub fn replace_text_field(body: &Bytes, boundary: &str, name: &str, value: &str) -> Option<Bytes> {
    let part = parts(body, boundary)
        .ok()?
        .into_iter()
        .find(|p| !p.is_file && p.name == name)?;
    let mut out = BytesMut::with_capacity(body.len() + value.len());
    out.extend_from_slice(&body[..part.value_start]);
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(&body[part.value_end..]);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--b1\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-image\r\n--b1\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n\x00\x01binary\r\n--b1--\r\n";

    #[test]
    fn reads_boundaries_and_text_fields() {
        assert_eq!(
            boundary("multipart/form-data; boundary=b1").as_deref(),
            Some("b1")
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"b 2\"").as_deref(),
            Some("b 2")
        );
        assert_eq!(boundary("application/json"), None);
        assert_eq!(
            text_fields(BODY, "b1").unwrap(),
            vec![("model".to_owned(), "gpt-image".to_owned())]
        );
        assert!(text_fields(b"garbage", "b1").is_err());
    }

    #[test]
    fn replaces_one_field_and_keeps_the_rest_byte_for_byte() {
        let replaced =
            replace_text_field(&Bytes::from_static(BODY), "b1", "model", "upstream-slug").unwrap();
        let expected = String::from_utf8_lossy(BODY).replace("gpt-image", "upstream-slug");
        assert_eq!(String::from_utf8_lossy(&replaced), expected);
        assert!(replaced.windows(8).any(|w| w == b"\x00\x01binary"));
        assert!(replace_text_field(&Bytes::from_static(BODY), "b1", "missing", "x").is_none());
    }
}
