//! Data-driven scripts (raft-rs `datadriven` style), shared by the pure cores' tests.
//!
//! A script is a text file of cases separated by blank lines. A case is a command line, optional
//! input lines, a line `----`, and the expected output up to the next blank line. Lines that are
//! blank or start with `#` between cases are kept as they are. [`run_dir`] runs every `*.txt` file
//! of a directory with a fresh [`Runner`] each, compares each case's output with the expected one,
//! and fails with a line-by-line diff of every case that differs; with `REWRITE=1` in the
//! environment it rewrites the files with the actual outputs instead (review with git).
//!
//! This module has no dependencies, so the pure cores can use it without losing their lightness.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The environment variable that makes [`run_dir`] rewrite the expected outputs.
pub const REWRITE_VAR: &str = "REWRITE";

/// One case of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// 1-based line of the command in its file.
    pub line: usize,
    /// The command line, then its input lines.
    pub input: Vec<String>,
    /// The expected output (each line ends with `\n`).
    pub expected: String,
}

impl Case {
    /// The command line's words: the command name first.
    pub fn words(&self) -> Vec<&str> {
        self.input.first().map(|l| l.split_whitespace().collect()).unwrap_or_default()
    }

    /// The command line's arguments (after the command name).
    pub fn args(&self) -> Args {
        Args::parse(self.words().get(1..).unwrap_or_default())
    }
}

/// A piece of a script: text kept as it is, or a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// A blank or `#` comment line.
    Text(String),
    /// A case.
    Case(Case),
}

/// Parses a script; the error names the line of a command that has no `----`.
pub fn parse(text: &str) -> Result<Vec<Chunk>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim().is_empty() || l.starts_with('#') {
            out.push(Chunk::Text(l.to_owned()));
            i += 1;
            continue;
        }
        let start = i;
        let mut input = Vec::new();
        while i < lines.len() && lines[i] != "----" {
            if lines[i].trim().is_empty() {
                return Err(format!("line {}: command without ----", start + 1));
            }
            input.push(lines[i].to_owned());
            i += 1;
        }
        if i == lines.len() {
            return Err(format!("line {}: command without ----", start + 1));
        }
        i += 1; // ----
        let mut expected = String::new();
        while i < lines.len() && !lines[i].is_empty() {
            expected.push_str(lines[i]);
            expected.push('\n');
            i += 1;
        }
        out.push(Chunk::Case(Case { line: start + 1, input, expected }));
    }
    Ok(out)
}

/// Runs the cases of one script, in order, on one state.
pub trait Runner {
    /// The actual output of `case` (each line ending with `\n`).
    fn run(&mut self, case: &Case) -> String;
}

impl<F: FnMut(&Case) -> String> Runner for F {
    fn run(&mut self, case: &Case) -> String {
        self(case)
    }
}

/// The outcome of one script: a diff for every case that differs, and the script rewritten with
/// the actual outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutcome {
    /// One message per differing case: `path:line: command`, then ` - expected` / ` + actual`
    /// lines (equal lines indented).
    pub failures: Vec<String>,
    /// The script with every expected output replaced by the actual one.
    pub rewritten: String,
}

/// Runs a script's text with `runner`; `path` only names it in messages.
pub fn run_text(path: &Path, text: &str, runner: &mut dyn Runner) -> Result<FileOutcome, String> {
    let chunks = parse(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut failures = Vec::new();
    let mut rewritten = String::new();
    for c in &chunks {
        match c {
            Chunk::Text(t) => {
                rewritten.push_str(t);
                rewritten.push('\n');
            }
            Chunk::Case(case) => {
                let actual = runner.run(case);
                if actual != case.expected {
                    failures.push(diff(path, case, &actual));
                }
                for l in &case.input {
                    rewritten.push_str(l);
                    rewritten.push('\n');
                }
                rewritten.push_str("----\n");
                rewritten.push_str(&actual);
            }
        }
    }
    Ok(FileOutcome { failures, rewritten })
}

fn diff(path: &Path, case: &Case, actual: &str) -> String {
    let mut d = format!("{}:{}: {}\n", path.display(), case.line, case.input.join(" | "));
    let (e, a): (Vec<_>, Vec<_>) = (case.expected.lines().collect(), actual.lines().collect());
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {
                let _ = writeln!(d, "   {x}");
            }
            (x, y) => {
                if let Some(x) = x {
                    let _ = writeln!(d, " - {x}");
                }
                if let Some(y) = y {
                    let _ = writeln!(d, " + {y}");
                }
            }
        }
    }
    d
}

/// The `*.txt` scripts of `dir`, sorted.
pub fn scripts(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("testdata dir {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

/// Runs every script of `dir` with a fresh runner from `fresh`; panics with the diff of every
/// differing case, or (with `REWRITE=1`) rewrites the scripts. Panics when `dir` has no script.
pub fn run_dir<R: Runner>(dir: &Path, mut fresh: impl FnMut() -> R) {
    let rewrite = std::env::var_os(REWRITE_VAR).is_some();
    let files = scripts(dir);
    assert!(!files.is_empty(), "no *.txt scripts in {}", dir.display());
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        let mut runner = fresh();
        let outcome = run_text(f, &text, &mut runner).unwrap_or_else(|e| panic!("{e}"));
        if rewrite {
            std::fs::write(f, &outcome.rewritten).unwrap_or_else(|e| panic!("rewrite {}: {e}", f.display()));
        }
        failures.extend(outcome.failures);
    }
    assert!(failures.is_empty(), "{} case(s) differ (- expected, + actual):\n{}", failures.len(), failures.join("\n"));
}

/// A command's arguments: `key=value` words and bare flags (a flag's value is empty). A value
/// `x*N` (N digits) stands for `x` repeated N times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    kv: BTreeMap<String, String>,
}

impl Args {
    /// Parses the words.
    pub fn parse(words: &[&str]) -> Args {
        let mut kv = BTreeMap::new();
        for w in words {
            let (k, v) = w.split_once('=').unwrap_or((w, ""));
            let v = match v.rsplit_once('*') {
                Some((base, n)) if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    base.repeat(n.parse().unwrap_or_else(|_| panic!("bad repeat count in {w}")))
                }
                _ => v.to_owned(),
            };
            kv.insert(k.to_owned(), v);
        }
        Args { kv }
    }

    /// Parses the words of a line.
    pub fn parse_line(line: &str) -> Args {
        Args::parse(&line.split_whitespace().collect::<Vec<_>>())
    }

    /// A value, if the word is there.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.kv.get(k).map(String::as_str)
    }

    /// A required value.
    pub fn str(&self, k: &str) -> String {
        self.kv.get(k).unwrap_or_else(|| panic!("missing {k}=")).clone()
    }

    /// A value with a default.
    pub fn str_or(&self, k: &str, default: &str) -> String {
        self.kv.get(k).cloned().unwrap_or_else(|| default.to_owned())
    }

    /// A required number.
    pub fn u64(&self, k: &str) -> u64 {
        self.str(k).parse().unwrap_or_else(|_| panic!("bad number for {k}"))
    }

    /// A required number.
    pub fn u32(&self, k: &str) -> u32 {
        self.str(k).parse().unwrap_or_else(|_| panic!("bad number for {k}"))
    }

    /// An optional number.
    pub fn opt_u64(&self, k: &str) -> Option<u64> {
        self.kv.get(k).map(|v| v.parse().unwrap_or_else(|_| panic!("bad number for {k}")))
    }

    /// Whether the word is there (bare or with a value).
    pub fn flag(&self, k: &str) -> bool {
        self.kv.contains_key(k)
    }

    /// A required comma-separated list (empty value: empty list).
    pub fn list(&self, k: &str) -> Vec<String> {
        let v = self.str(k);
        if v.is_empty() { Vec::new() } else { v.split(',').map(str::to_owned).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "# a comment\nadd a=1 b=2\n----\n3\n\nsum\n1\n2\n----\n3\n";

    fn calc(case: &Case) -> String {
        let a = case.args();
        match case.words()[0] {
            "add" => format!("{}\n", a.u64("a") + a.u64("b")),
            "sum" => format!("{}\n", case.input[1..].iter().map(|l| l.parse::<u64>().unwrap_or(0)).sum::<u64>()),
            other => format!("unknown {other}\n"),
        }
    }

    #[test]
    fn parses_cases_with_input_lines_and_keeps_text() {
        let chunks = parse(SCRIPT).expect("parse");
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[0], Chunk::Text("# a comment".into()));
        let Chunk::Case(c) = &chunks[3] else { panic!("not a case: {chunks:?}") };
        assert_eq!((c.line, c.input.len(), c.expected.as_str()), (6, 3, "3\n"));
    }

    #[test]
    fn a_command_without_separator_is_an_error() {
        assert_eq!(parse("add a=1\n\n").expect_err("no ----"), "line 1: command without ----");
        assert_eq!(parse("add a=1").expect_err("no ----"), "line 1: command without ----");
    }

    #[test]
    fn a_differing_output_fails_and_rewrites() {
        let ok = run_text(Path::new("x.txt"), SCRIPT, &mut calc).expect("run");
        assert!(ok.failures.is_empty(), "{:?}", ok.failures);
        assert_eq!(ok.rewritten, SCRIPT);
        let wrong = SCRIPT.replace("----\n3\n\nsum", "----\n4\n\nsum");
        let bad = run_text(Path::new("x.txt"), &wrong, &mut calc).expect("run");
        assert_eq!(bad.failures, vec!["x.txt:2: add a=1 b=2\n - 4\n + 3\n".to_owned()]);
        assert_eq!(bad.rewritten, SCRIPT);
    }

    #[test]
    fn args_repeat_flags_and_lists() {
        let a = Args::parse_line("id=ab*3 quiet l=x,y e=");
        assert_eq!(a.str("id"), "ababab");
        assert!(a.flag("quiet") && !a.flag("nope"));
        assert_eq!(a.list("l"), vec!["x".to_owned(), "y".to_owned()]);
        assert!(a.list("e").is_empty());
        assert_eq!(a.str_or("cur", "USD"), "USD");
    }
}
