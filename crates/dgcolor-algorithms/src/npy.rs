//! A reader for the NumPy `.npy` format (format versions 1.0, 2.0 and 3.0, as specified in
//! `numpy/lib/format.py`), limited to what the project needs: little-endian 64-bit integer
//! arrays (`<i8`) in C order. Anything else is an error that says what was found.

use std::fmt;

/// A C-order array of i64 with its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyI64 {
    pub shape: Vec<usize>,
    pub data: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyError(pub String);

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "npy: {}", self.0)
    }
}

impl std::error::Error for NpyError {}

fn err<T>(msg: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(msg.into()))
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses a `.npy` file holding an `<i8` array in C order.
pub fn parse_i64(bytes: &[u8]) -> Result<NpyI64, NpyError> {
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return err("not a .npy file (missing the \\x93NUMPY magic string)");
    }
    let (major, minor) = (bytes[6], bytes[7]);
    // Version 1 stores the header length in 2 bytes, versions 2 and 3 in 4 (3 = UTF-8 header).
    let (len_bytes, header_start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => return err(format!("unsupported format version {major}.{minor}")),
    };
    if bytes.len() < header_start {
        return err("truncated header length");
    }
    let header_len = bytes[8..8 + len_bytes]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| acc << 8 | b as usize);
    let data_start = header_start + header_len;
    if bytes.len() < data_start {
        return err(format!(
            "header of {header_len} bytes runs past the end of the file ({} bytes)",
            bytes.len()
        ));
    }
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| NpyError("header is not valid text".into()))?;
    let descr = dict_value(header, "descr")?;
    if descr != "'<i8'" && descr != "\"<i8\"" {
        return err(format!("dtype {descr} is not supported (only '<i8')"));
    }
    let fortran = dict_value(header, "fortran_order")?;
    match fortran {
        "False" => {}
        "True" => return err("fortran_order True is not supported"),
        other => return err(format!("bad fortran_order value `{other}`")),
    }
    let shape = parse_shape(dict_value(header, "shape")?)?;
    let count: usize = shape.iter().product();
    let payload = &bytes[data_start..];
    if payload.len() != count * 8 {
        return err(format!(
            "shape {shape:?} needs {} data bytes, the file has {}",
            count * 8,
            payload.len()
        ));
    }
    let data = payload
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    Ok(NpyI64 { shape, data })
}

/// The text of `'key': <value>` in the header's Python dict literal, up to the next
/// top-level comma or the closing brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Result<&'a str, NpyError> {
    let header = header.trim();
    if !header.starts_with('{') {
        return err(format!("header is not a dict literal: `{header}`"));
    }
    let needle_single = format!("'{key}'");
    let needle_double = format!("\"{key}\"");
    let pos = header
        .find(&needle_single)
        .or_else(|| header.find(&needle_double))
        .ok_or_else(|| NpyError(format!("header lacks `{key}`: `{header}`")))?;
    let rest = header[pos + key.len() + 2..].trim_start();
    let Some(rest) = rest.strip_prefix(':') else {
        return err(format!("header entry `{key}` has no `:`"));
    };
    let rest = rest.trim_start();
    let mut depth = 0i32;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Ok(rest[..i].trim()),
            _ => {}
        }
    }
    err(format!("header entry `{key}` is not terminated"))
}

fn parse_shape(text: &str) -> Result<Vec<usize>, NpyError> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| NpyError(format!("shape `{text}` is not a tuple")))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| NpyError(format!("shape `{text}` has a non-integer entry `{s}`")))
        })
        .collect()
}
