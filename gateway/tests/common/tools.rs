//! External tools of the contract tests (PyPI and npm packages that `.ci/run` installs). A
//! missing tool fails the test with the command that installs it: never a silent skip.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What `.ci/run` installs from PyPI (and how to install it by hand).
pub const PIP_INSTALL: &str = "pip install 'schemathesis==4.*' 'hypothesis<6.150' 'openapi-python-client==0.29.*' 'openapi-spec-validator==0.9.*'";
/// What `.ci/run` installs from npm.
pub const NPM_INSTALL: &str = "npm ci --prefix gateway/tests/contract";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed OpenAPI document.
pub fn committed_spec() -> PathBuf {
    repo_root().join("openapi").join("ledger.v1.json")
}

/// `program` from PATH, or a panic naming the install command.
#[track_caller]
pub fn require(program: &str, install: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.is_file()));
    found.unwrap_or_else(|| {
        panic!(
            "`{program}` is not installed; this test needs it (CI installs it in .ci/run). Install it with:\n    \
             {install}"
        )
    })
}

/// `python3`, with `module` importable, or a panic naming the install command.
#[track_caller]
pub fn python_with(module: &str) -> PathBuf {
    let py = require("python3", "apt-get install python3 python3-pip");
    let ok = Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "the Python module `{module}` is not installed; install the test tools with:\n    {PIP_INSTALL}");
    py
}

/// `gateway/tests/contract/node_modules` with `package`, or a panic naming the install command.
#[track_caller]
pub fn node_modules(package: &str) -> PathBuf {
    node_modules_of("contract", package, NPM_INSTALL)
}

/// What `.ci/run` installs for the console's browser test: npm's playwright-core (Debian's
/// chromium comes from apt).
pub const NPM_INSTALL_CONSOLE: &str = "npm ci --prefix gateway/tests/console";

/// `gateway/tests/console/node_modules` with `package`, or a panic naming the install command.
#[track_caller]
pub fn console_modules(package: &str) -> PathBuf {
    node_modules_of("console", package, NPM_INSTALL_CONSOLE)
}

#[track_caller]
fn node_modules_of(suite: &str, package: &str, install: &str) -> PathBuf {
    require("node", "apt-get install nodejs npm");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(suite).join("node_modules");
    assert!(
        dir.join(package).join("package.json").is_file(),
        "the npm package `{package}` is not installed in {}; install the test tools with:\n    {install}",
        dir.display()
    );
    dir
}

/// Runs `cmd` (stdin closed) for at most `limit`; kills it past that. Returns its output and
/// whether it finished in time.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> (Output, bool) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // Drain both pipes on threads so a chatty tool never blocks on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut b);
        b
    });
    let deadline = Instant::now() + limit;
    let mut in_time = true;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() >= deadline {
            in_time = false;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    (Output { status, stdout, stderr }, in_time)
}

/// The last `n` lines of `bytes`, for failure messages.
pub fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every `$ref` of `doc` that does not resolve to a node of `doc` (local refs only).
pub fn unresolved_refs(doc: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, root: &serde_json::Value, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    let ok = r.strip_prefix('#').is_some_and(|ptr| root.pointer(ptr).is_some());
                    if !ok {
                        bad.push(r.to_owned());
                    }
                }
                m.values().for_each(|c| walk(c, root, bad));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|c| walk(c, root, bad)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    walk(doc, doc, &mut bad);
    bad.sort();
    bad.dedup();
    bad
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, text).expect("write");
    p
}
