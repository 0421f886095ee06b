//! What the CLI prints: aligned tables and key-value blocks for people, JSON with `--json`.
//! Everything goes through [`Out`] (stdout) or [`error_line`] (stderr); a closed stdout (e.g.
//! `ledger tail ... | head`) ends the program quietly instead of panicking.

use std::io::Write as _;

use serde::Serialize;

/// Where a command's output goes, and in which form.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    /// `--json`: print JSON documents instead of tables.
    pub json: bool,
    /// `--consistency` of reads.
    pub consistency: ledger_client::Consistency,
}

/// Column alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// Is `c` a control character a terminal may act on (C0 except TAB and LF, DEL, C1)?
fn is_terminal_control(c: char) -> bool {
    matches!(u32::from(c), 0x00..=0x08 | 0x0B..=0x1F | 0x7F..=0x9F)
}

/// `s` with every control character other than TAB and LF written as `\u{..}`, so text from
/// the ledger (keys, values, ids, error details) can never drive the terminal (escape sequences
/// that move the cursor, retitle the window or hide what came before).
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_terminal_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_terminal_control(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Like [`escape_controls`], and TAB and LF too: for one field printed on one line (a record
/// key), which must not fake further lines.
pub fn escape_field(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\n' || c == '\t' || is_terminal_control(c) {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl Out {
    /// Prints text (a trailing newline is added when missing), control characters escaped
    /// ([`escape_controls`]).
    pub fn text(&self, s: &str) {
        let s = escape_controls(s);
        let mut o = std::io::stdout().lock();
        let r = if s.ends_with('\n') { o.write_all(s.as_bytes()) } else { writeln!(o, "{s}") };
        if r.and_then(|()| o.flush()).is_err() {
            // The reader went away (a closed pipe): nothing more can be shown.
            std::process::exit(0);
        }
    }

    /// Prints a value as pretty JSON.
    pub fn json_value<T: Serialize>(&self, v: &T) {
        match serde_json::to_string_pretty(v) {
            Ok(s) => self.text(&s),
            Err(e) => error_line(&format!("cannot encode the answer as JSON: {e}")),
        }
    }

    /// Prints a value as one line of JSON (for streams such as `tail`).
    pub fn json_line<T: Serialize>(&self, v: &T) {
        match serde_json::to_string(v) {
            Ok(s) => self.text(&s),
            Err(e) => error_line(&format!("cannot encode the answer as JSON: {e}")),
        }
    }
}

/// Writes `error: <message>` on stderr.
pub fn error_line(message: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "error: {}", escape_controls(message));
}

/// Writes a note for people on stderr (progress, hints), keeping stdout for results.
pub fn note(message: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{}", escape_controls(message));
}

/// Renders a table: a header row, then the rows, columns padded to their widest cell and
/// separated by two spaces. Short rows are padded with empty cells.
pub fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut l = String::new();
        for (i, (_, align)) in headers.iter().enumerate() {
            let cell = cells.next().unwrap_or("");
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            match align {
                Align::Left => {
                    l.push_str(cell);
                    l.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    l.push_str(&" ".repeat(pad));
                    l.push_str(cell);
                }
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().map(|(h, _)| *h), &mut out);
    for row in rows {
        line(&mut row.iter().map(String::as_str), &mut out);
    }
    out
}

/// Renders `key  value` lines with the keys padded to the widest.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(format!("{k:<w$}  {v}").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_never_written_raw() {
        assert_eq!(escape_controls("plain\ttext\nnext"), "plain\ttext\nnext");
        assert_eq!(escape_controls("k\u{1b}]0;pwned\u{7}"), "k\\u{1b}]0;pwned\\u{7}");
        assert_eq!(escape_controls("\u{9b}2J\u{7f}"), "\\u{9b}2J\\u{7f}");
        assert_eq!(escape_field("a\nb\tc\u{1b}"), "a\\u{a}b\\u{9}c\\u{1b}");
        assert_eq!(escape_field("é€"), "é€");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &[("ID", Align::Left), ("BALANCE", Align::Right), ("NOTE", Align::Left)],
            &[vec!["alice".into(), "5".into(), "x".into()], vec!["b".into(), "12345678".into()]],
        );
        assert_eq!(t, "ID      BALANCE  NOTE\nalice         5  x\nb      12345678\n");
    }

    #[test]
    fn key_values_align_keys() {
        assert_eq!(key_values(&[("id", "a".into()), ("currency", "USD".into())]), "id        a\ncurrency  USD\n");
    }
}
