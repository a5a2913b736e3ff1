//! A value in a rendered script, carried by the text itself: U+E000, the value's bytes in hex,
//! U+E001. Script text written by a person never contains these private-use characters (a
//! template that does is refused), so the marks cannot be forged.

pub const OPEN: char = '\u{E000}';
pub const CLOSE: char = '\u{E001}';

/// Writes `value` as a placeholder.
pub fn encode(value: &str, out: &mut String) {
    use std::fmt::Write;
    out.push(OPEN);
    for b in value.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out.push(CLOSE);
}

/// Reads the value of the placeholder whose hex digits are `hex`.
pub fn decode(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for v in ["", "a b", "é\u{E000}\n'\"", "\0"] {
            let mut out = String::new();
            encode(v, &mut out);
            let hex = out.trim_start_matches(OPEN).trim_end_matches(CLOSE);
            assert_eq!(decode(hex).as_deref(), Some(v));
        }
        assert_eq!(decode("4"), None);
        assert_eq!(decode("zz"), None);
        assert_eq!(decode("ff"), None);
    }
}
