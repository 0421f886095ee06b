//! A small local data-driven runner with the same API as `testkit::datadriven` (`Case`,
//! `Case::words`, `Case::args`, `Args`, `run_dir`), so that `state_scripts.rs` switches to the
//! shared kit by replacing `mod datadriven_local` with `use testkit::datadriven` and deleting this
//! directory. Format: cases separated by blank lines; a command line, input lines, `----`, the
//! expected output; `#` lines are comments. `REWRITE=1` rewrites the expected outputs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One case of a script.
pub struct Case {
    /// 1-based line of the command.
    pub line: usize,
    /// The command line, then its input lines.
    pub input: Vec<String>,
    /// The expected output.
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

enum Chunk {
    Text(String),
    Case(Case),
}

fn parse(text: &str, path: &Path) -> Vec<Chunk> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim().is_empty() || lines[i].starts_with('#') {
            out.push(Chunk::Text(lines[i].to_owned()));
            i += 1;
            continue;
        }
        let start = i;
        let mut input = Vec::new();
        while i < lines.len() && lines[i] != "----" {
            assert!(!lines[i].trim().is_empty(), "{}:{}: command without ----", path.display(), start + 1);
            input.push(lines[i].to_owned());
            i += 1;
        }
        assert!(i < lines.len(), "{}:{}: command without ----", path.display(), start + 1);
        i += 1;
        let mut expected = String::new();
        while i < lines.len() && !lines[i].is_empty() {
            expected.push_str(lines[i]);
            expected.push('\n');
            i += 1;
        }
        out.push(Chunk::Case(Case { line: start + 1, input, expected }));
    }
    out
}

/// Runs every `*.txt` script of `dir` with a fresh runner each; panics with a diff of every case
/// whose output differs, or rewrites the scripts with `REWRITE=1`. Panics when there is none.
pub fn run_dir<R: FnMut(&Case) -> String>(dir: &Path, mut fresh: impl FnMut() -> R) {
    let rewrite = std::env::var_os("REWRITE").is_some();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.txt scripts in {}", dir.display());
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read script");
        let mut run = fresh();
        let mut rewritten = String::new();
        for c in parse(&text, f) {
            match c {
                Chunk::Text(t) => writeln!(rewritten, "{t}").expect("fmt"),
                Chunk::Case(case) => {
                    let actual = run(&case);
                    if actual != case.expected {
                        let mut d = format!("{}:{}: {}\n", f.display(), case.line, case.input.join(" | "));
                        for l in case.expected.lines() {
                            writeln!(d, " - {l}").expect("fmt");
                        }
                        for l in actual.lines() {
                            writeln!(d, " + {l}").expect("fmt");
                        }
                        failures.push(d);
                    }
                    write!(rewritten, "{}\n----\n{actual}", case.input.join("\n")).expect("fmt");
                }
            }
        }
        if rewrite {
            std::fs::write(f, rewritten).expect("rewrite script");
        }
    }
    assert!(failures.is_empty(), "{} case(s) differ (- expected, + actual):\n{}", failures.len(), failures.join("\n"));
}

/// `key=value` words and bare flags; a value `x*N` is `x` repeated N times.
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
                    base.repeat(n.parse().expect("repeat count"))
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

    /// Whether the word is there.
    pub fn flag(&self, k: &str) -> bool {
        self.kv.contains_key(k)
    }

    /// A required comma-separated list (empty value: empty list).
    pub fn list(&self, k: &str) -> Vec<String> {
        let v = self.str(k);
        if v.is_empty() { Vec::new() } else { v.split(',').map(str::to_owned).collect() }
    }
}
