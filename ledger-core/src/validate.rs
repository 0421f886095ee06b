//! Field validation (defence in depth: the gateway validates too), and the
//! one definition of acceptable text ([`check_text`], [`check_json_text`]).

use crate::code::ResultCode;
use crate::limits::{
    AMOUNT_MAX, AMOUNT_MIN, CURRENCY_LEN_MAX, CURRENCY_LEN_MIN, ID_BYTES_MAX, ID_BYTES_MIN, METADATA_BYTES_MAX,
    TIMEOUT_MS_MAX,
};

/// True if `id` is 1–128 bytes of `[A-Za-z0-9._:-]`.
pub fn is_valid_id(id: &str) -> bool {
    (ID_BYTES_MIN..=ID_BYTES_MAX).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// True if `c` is 3–12 uppercase ASCII letters.
pub fn is_valid_currency(c: &str) -> bool {
    (CURRENCY_LEN_MIN..=CURRENCY_LEN_MAX).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_uppercase())
}

pub(crate) fn id(id: &str) -> Result<(), ResultCode> {
    if is_valid_id(id) { Ok(()) } else { Err(ResultCode::InvalidId) }
}

pub(crate) fn currency(c: &str) -> Result<(), ResultCode> {
    if is_valid_currency(c) { Ok(()) } else { Err(ResultCode::InvalidCurrency) }
}

pub(crate) fn amount(a: u64) -> Result<(), ResultCode> {
    if (AMOUNT_MIN..=AMOUNT_MAX).contains(&a) { Ok(()) } else { Err(ResultCode::InvalidAmount) }
}

pub(crate) fn metadata(m: &str) -> Result<(), ResultCode> {
    if m.len() > METADATA_BYTES_MAX {
        return Err(ResultCode::MetadataTooLarge);
    }
    check_json_text(m).map_err(|_| ResultCode::InvalidText)
}

/// Where control characters are allowed in a string (see [`check_text`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlChars {
    /// None at all: identifiers, record keys, header names and values.
    None,
    /// Only TAB, LF and CR: free text (the string values and keys inside
    /// metadata and record values).
    TabNewline,
}

/// Why a string is not acceptable text (see [`check_text`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextError {
    /// U+0000 (raw, or escaped as `\u0000` in JSON text). PostgreSQL cannot
    /// store it in `text` or `jsonb`, C string APIs cut at it, and terminals
    /// and logs lose everything after it.
    Nul {
        /// Byte offset of the NUL (or of its escape) in the string.
        at: usize,
    },
    /// A UTF-16 surrogate that is not half of a pair, escaped in JSON text
    /// (`\ud800` alone). It encodes no character: no UTF-8 text can hold it.
    LoneSurrogate {
        /// Byte offset of the escape in the string.
        at: usize,
    },
    /// A control character (U+0001..=U+001F, U+007F..=U+009F) where none is
    /// allowed, raw or escaped.
    Control {
        /// Byte offset of the character (or of its escape) in the string.
        at: usize,
        /// The character.
        ch: char,
    },
    /// Malformed JSON text: a `\u` escape without four hex digits.
    BadEscape {
        /// Byte offset of the escape in the string.
        at: usize,
    },
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            TextError::Nul { at } => write!(f, "a NUL character (U+0000) at byte {at}"),
            TextError::LoneSurrogate { at } => write!(f, "a lone UTF-16 surrogate escape at byte {at}"),
            TextError::Control { at, ch } => {
                write!(f, "a control character (U+{:04X}) at byte {at}", u32::from(ch))
            }
            TextError::BadEscape { at } => write!(f, "a malformed \\u escape at byte {at}"),
        }
    }
}

fn is_control(c: char) -> bool {
    matches!(u32::from(c), 0x01..=0x1F | 0x7F..=0x9F)
}

fn control_allowed(c: char, allow: ControlChars) -> bool {
    allow == ControlChars::TabNewline && matches!(c, '\t' | '\n' | '\r')
}

/// The one definition of acceptable text, shared by the gateway (which
/// checks every string a request carries) and the core (which checks again
/// on apply): no NUL, and control characters only where `allow` says.
/// A Rust `&str` cannot hold a lone surrogate; JSON text can, escaped: see
/// [`check_json_text`].
pub fn check_text(s: &str, allow: ControlChars) -> Result<(), TextError> {
    for (at, c) in s.char_indices() {
        if c == '\0' {
            return Err(TextError::Nul { at });
        }
        if is_control(c) && !control_allowed(c, allow) {
            return Err(TextError::Control { at, ch: c });
        }
    }
    Ok(())
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at + 4)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// [`check_text`] for JSON text (metadata, record values): the text itself
/// holds no NUL or control character other than JSON whitespace, and every
/// string in it, once its escapes are decoded, is acceptable free text
/// ([`ControlChars::TabNewline`]) with no lone surrogate. A lexical scan of
/// the escapes only: the JSON is not parsed (the core never parses metadata).
pub fn check_json_text(s: &str) -> Result<(), TextError> {
    check_text(s, ControlChars::TabNewline)?;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let at = i;
        match b.get(i + 1) {
            Some(b'u') => {
                let v = hex4(b, i + 2).ok_or(TextError::BadEscape { at })?;
                i += 6;
                match v {
                    0 => return Err(TextError::Nul { at }),
                    0xD800..=0xDBFF => {
                        let low =
                            if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u') { hex4(b, i + 2) } else { None };
                        match low {
                            Some(0xDC00..=0xDFFF) => i += 6,
                            _ => return Err(TextError::LoneSurrogate { at }),
                        }
                    }
                    0xDC00..=0xDFFF => return Err(TextError::LoneSurrogate { at }),
                    _ => {
                        if let Some(c) = char::from_u32(v)
                            && is_control(c)
                            && !control_allowed(c, ControlChars::TabNewline)
                        {
                            return Err(TextError::Control { at, ch: c });
                        }
                    }
                }
            }
            // `\"`, `\\`, `\n`, ...: two bytes, never a NUL.
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    Ok(())
}

pub(crate) fn timeout(pending: bool, timeout_ms: Option<u64>) -> Result<(), ResultCode> {
    match (pending, timeout_ms) {
        (_, None) => Ok(()),
        (true, Some(t)) if (1..=TIMEOUT_MS_MAX).contains(&t) => Ok(()),
        _ => Err(ResultCode::InvalidTimeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule8_text_refuses_nul_and_controls_outside_free_text() {
        assert_eq!(check_text("ok key", ControlChars::None), Ok(()));
        assert_eq!(check_text("a\0b", ControlChars::TabNewline), Err(TextError::Nul { at: 1 }));
        assert_eq!(check_text("a\tb", ControlChars::None), Err(TextError::Control { at: 1, ch: '\t' }));
        assert_eq!(check_text("a\tb\nc\r", ControlChars::TabNewline), Ok(()));
        assert_eq!(check_text("\u{1b}[2J", ControlChars::TabNewline), Err(TextError::Control { at: 0, ch: '\u{1b}' }));
        assert_eq!(check_text("x\u{85}", ControlChars::TabNewline), Err(TextError::Control { at: 1, ch: '\u{85}' }));
        assert_eq!(check_text("é€😀", ControlChars::None), Ok(()));
    }

    #[test]
    fn rule8_json_text_escapes_are_checked_like_raw_characters() {
        for ok in
            [r#"{}"#, r#"{"a":"b\n\t\r\"\\\/"}"#, r#"{"a":"\ud83d\ude00"}"#, r#"{"a":"\u00e9"}"#, r#"{"a":"\\u0000"}"#]
        {
            assert_eq!(check_json_text(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_json_text(r#"{"a":"\u0000"}"#), Err(TextError::Nul { at: 6 }));
        assert_eq!(check_json_text(r#"{"a":"\ud800"}"#), Err(TextError::LoneSurrogate { at: 6 }));
        assert_eq!(check_json_text(r#"{"a":"\ud800\u0041"}"#), Err(TextError::LoneSurrogate { at: 6 }));
        assert_eq!(check_json_text(r#"{"a":"\udc00"}"#), Err(TextError::LoneSurrogate { at: 6 }));
        assert_eq!(check_json_text(r#"{"a":"\u001b"}"#), Err(TextError::Control { at: 6, ch: '\u{1b}' }));
        assert_eq!(check_json_text(r#"{"a":"\u12"}"#), Err(TextError::BadEscape { at: 6 }));
        assert_eq!(check_json_text("{\"a\":\"\0\"}"), Err(TextError::Nul { at: 6 }));
    }

    #[test]
    fn rule8_metadata_with_nul_is_invalid_text() {
        assert_eq!(metadata(r#"{"a":"\u0000"}"#), Err(ResultCode::InvalidText));
        assert_eq!(metadata(r#"{"a":"x"}"#), Ok(()));
    }
}
