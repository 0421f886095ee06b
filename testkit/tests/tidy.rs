//! Tidy tests, in the manner of rust-analyzer's `tidy.rs`: the architecture's rules
//! (ARCHITECTURE.md) checked over the whole workspace by `cargo test`. Each rule is a function over
//! text or `cargo metadata`, returning its violations; each has a test that feeds it a violation.
//!
//! - dependency rules between crates;
//! - fsync only in logstore;
//! - no `.unwrap()` outside tests;
//! - every public limit (`pub const` in a `limits.rs`) has a doc comment;
//! - every crate has a README or module docs;
//! - no `.rs` file over [`LONG_FILE_LINES`] lines without a `// tidy: long-file: <reason>` marker.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Longest `.rs` file without a stated reason.
const LONG_FILE_LINES: usize = 800;
/// The marker that states why a file is longer; it must be within the first lines of the file.
const LONG_FILE_MARKER: &str = "// tidy: long-file: ";
/// Lines from the top of a file searched for the long-file marker.
const LONG_FILE_MARKER_WITHIN: usize = 20;

/// The pure cores: these normal dependencies and no others (no I/O, async, JSON, HTTP, protobuf).
const PURE_CORES: &[(&str, &[&str])] =
    &[("ledger-core", &["serde", "rustc-hash", "thiserror"]), ("group-core", &["serde", "rustc-hash", "thiserror"])];
/// Crates that know no JSON, HTTP, protobuf, async runtime or consensus.
const NO_WIRE_OR_RUNTIME: &[&str] = &["ledger-core", "group-core", "logstore"];
/// What [`NO_WIRE_OR_RUNTIME`] crates must not depend on.
const WIRE_OR_RUNTIME: &[&str] =
    &["serde_json", "prost", "tonic", "axum", "hyper", "reqwest", "tokio", "openraft", "sqlx", "memberlist"];
/// Clients of the gateway's public HTTP API: they never talk to lognode directly.
const HTTP_API_CLIENTS: &[&str] = &["projector", "ledger-cli", "loadtest", "ledger-client"];
/// What an HTTP API client must not depend on.
const LOGNODE_SIDE: &[&str] = &["lognode", "ledger-proto", "tonic", "prost", "openraft", "ledger-discovery"];
/// The only crate that may depend on openraft.
const OPENRAFT_HOME: &str = "lognode";
/// A dev-dependency only...
const TEST_ONLY: &[&str] = &["testkit"];
/// ...except of these, test tools themselves (the chaos harness runs its hosts and processes with
/// the kit's network namespaces and process guards).
const TEST_TOOLS: &[&str] = &["chaos"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The workspace's `.rs` files (relative paths), without `target/` and hidden directories.
fn rust_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            if p.is_dir() {
                walk(&p, root, out);
            } else if name.ends_with(".rs") {
                out.push(p.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn read(root: &Path, rel: &Path) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()))
}

/// `cargo metadata --no-deps` of the workspace.
fn metadata(root: &Path) -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

/// `(package, dependency, kind)` for every declared dependency; kind is `normal`, `dev` or `build`.
fn dependencies(meta: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let kind = d["kind"].as_str().unwrap_or("normal");
            out.push((name.to_owned(), d["name"].as_str().unwrap_or_default().to_owned(), kind.to_owned()));
        }
    }
    out
}

/// Rule: the dependency rules between crates.
fn check_dependencies(deps: &[(String, String, String)]) -> Vec<String> {
    let mut v = Vec::new();
    for (pkg, dep, kind) in deps {
        let normal = kind == "normal";
        if let Some((_, allowed)) = PURE_CORES.iter().find(|(c, _)| c == pkg)
            && normal
            && !allowed.contains(&dep.as_str())
        {
            v.push(format!("{pkg} is a pure core and may not depend on {dep} (allowed: {allowed:?})"));
        }
        if NO_WIRE_OR_RUNTIME.contains(&pkg.as_str()) && normal && WIRE_OR_RUNTIME.contains(&dep.as_str()) {
            v.push(format!("{pkg} knows no JSON/HTTP/protobuf/runtime/consensus, but depends on {dep}"));
        }
        if dep == "openraft" && pkg != OPENRAFT_HOME {
            v.push(format!("only {OPENRAFT_HOME} knows openraft, but {pkg} depends on it ({kind})"));
        }
        if HTTP_API_CLIENTS.contains(&pkg.as_str()) && normal && LOGNODE_SIDE.contains(&dep.as_str()) {
            v.push(format!("{pkg} is a client of the public HTTP API, not of lognode, but depends on {dep}"));
        }
        if dep == "lognode" && normal {
            v.push(format!("lognode is a process reached over gRPC, but {pkg} depends on the crate"));
        }
        if TEST_ONLY.contains(&dep.as_str()) && kind != "dev" && !TEST_TOOLS.contains(&pkg.as_str()) {
            v.push(format!("{dep} is a dev-dependency only, but {pkg} has it as a {kind} dependency"));
        }
        // Its feature `certs` (a throwaway CA for tests and `ledger dev`) may bring a certificate
        // maker and logstore's private, synced files; nothing of lognode's side.
        if pkg == "lognode-args" && !["rcgen", "logstore"].contains(&dep.as_str()) {
            v.push(format!(
                "lognode-args depends on nothing but rcgen and logstore (the CLI uses it), but depends on {dep}"
            ));
        }
    }
    v
}

/// Words of the fsync family, spelled in pieces so this file does not match itself.
fn fsync_calls() -> Vec<String> {
    ["sync_all", "sync_data", "fsync", "fdatasync"].iter().map(|w| format!("{w}(")).collect()
}

/// Rule: only logstore calls fsync (`sync_all`, `sync_data`, `fsync`, `fdatasync`).
fn check_fsync(rel: &Path, text: &str) -> Vec<String> {
    if rel.starts_with("logstore") {
        return Vec::new();
    }
    let calls = fsync_calls();
    code_lines(text)
        .filter(|(_, l)| calls.iter().any(|c| l.contains(&format!(".{c}")) || l.contains(&format!("::{c}"))))
        .map(|(n, l)| format!("{}:{n}: only logstore calls fsync: {}", rel.display(), l.trim()))
        .collect()
}

/// Whether a file is test code as a whole (integration tests, benches, examples, the kit).
fn is_test_file(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    s.contains("/tests/")
        || s.contains("/benches/")
        || s.contains("/bench/")
        || s.contains("/examples/")
        || s.starts_with("testkit/")
}

/// Lines that are not comments, numbered from 1, up to the first `#[cfg(test)]` (the tests module
/// by convention sits at the end of a file).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l))
}

/// Rule: no `.unwrap()` outside tests.
fn check_unwrap(rel: &Path, text: &str) -> Vec<String> {
    if is_test_file(rel) {
        return Vec::new();
    }
    let needle = concat!(".unwrap", "()");
    code_lines(text)
        .filter(|(_, l)| l.contains(needle))
        .map(|(n, l)| format!("{}:{n}: .unwrap() outside tests: {}", rel.display(), l.trim()))
        .collect()
}

/// Rule: every `pub const` of a `limits.rs` has a doc comment.
fn check_limit_docs(rel: &Path, text: &str) -> Vec<String> {
    if rel.file_name().is_none_or(|n| n != "limits.rs") || is_test_file(rel) {
        return Vec::new();
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut v = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if !l.trim_start().starts_with("pub const ") {
            continue;
        }
        let doc = lines[..i].iter().rev().map(|l| l.trim()).find(|l| !l.starts_with("#["));
        if !doc.is_some_and(|d| d.starts_with("///")) {
            v.push(format!("{}:{}: a public limit without a doc comment: {}", rel.display(), i + 1, l.trim()));
        }
    }
    v
}

/// Rule: every crate has a README or module docs (`//!` at the top of its lib.rs or main.rs).
fn check_crate_docs(crate_dir: &str, readme: Option<&str>, root_file: Option<&str>) -> Vec<String> {
    let has_readme = readme.is_some_and(|r| !r.trim().is_empty());
    let has_docs = root_file.is_some_and(|t| {
        t.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("// ")).is_some_and(|l| l.starts_with("//!"))
    });
    if has_readme || has_docs {
        Vec::new()
    } else {
        vec![format!("{crate_dir}: neither a README.md nor module docs (//!) in src/lib.rs or src/main.rs")]
    }
}

/// Rule: no `.rs` file over [`LONG_FILE_LINES`] lines without a stated reason.
fn check_long_file(rel: &Path, text: &str) -> Vec<String> {
    let n = text.lines().count();
    if n <= LONG_FILE_LINES {
        return Vec::new();
    }
    let reason = text
        .lines()
        .take(LONG_FILE_MARKER_WITHIN)
        .find_map(|l| l.trim().strip_prefix(LONG_FILE_MARKER))
        .is_some_and(|r| r.trim().len() >= 10);
    if reason {
        Vec::new()
    } else {
        vec![format!(
            "{}: {n} lines (over {LONG_FILE_LINES}): split it, or state why in the first {LONG_FILE_MARKER_WITHIN} \
             lines with `{LONG_FILE_MARKER}<reason>`",
            rel.display()
        )]
    }
}

fn over_files(rule: fn(&Path, &str) -> Vec<String>) -> Vec<String> {
    let root = workspace_root();
    rust_files(&root).iter().flat_map(|rel| rule(rel, &read(&root, rel))).collect()
}

#[track_caller]
fn assert_clean(rule: &str, violations: &[String]) {
    assert!(violations.is_empty(), "tidy: {rule}: {} violation(s):\n{}", violations.len(), violations.join("\n"));
}

#[test]
fn tidy_dependencies() {
    let deps = dependencies(&metadata(&workspace_root()));
    assert!(deps.iter().any(|(p, d, _)| p == "lognode" && d == "openraft"), "metadata without lognode's deps");
    assert_clean("dependency rules", &check_dependencies(&deps));
}

#[test]
fn tidy_fsync_only_in_logstore() {
    assert_clean("fsync only in logstore", &over_files(check_fsync));
}

#[test]
fn tidy_no_unwrap_outside_tests() {
    assert_clean("no .unwrap() outside tests", &over_files(check_unwrap));
}

#[test]
fn tidy_public_limits_documented() {
    assert_clean("public limits documented", &over_files(check_limit_docs));
}

#[test]
fn tidy_long_files_state_a_reason() {
    assert_clean("long files", &over_files(check_long_file));
}

#[test]
fn tidy_every_crate_documented() {
    let root = workspace_root();
    let meta = metadata(&root);
    let mut v = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().expect("crate dir");
        let readme = std::fs::read_to_string(dir.join("README.md")).ok();
        let lib = std::fs::read_to_string(dir.join("src/lib.rs"))
            .or_else(|_| std::fs::read_to_string(dir.join("src/main.rs")));
        v.extend(check_crate_docs(&dir.display().to_string(), readme.as_deref(), lib.ok().as_deref()));
    }
    assert!(meta["packages"].as_array().is_some_and(|a| a.len() > 10), "too few crates in the metadata");
    assert_clean("crate docs", &v);
}

// Tests of the tidy tests: each rule fails on a temporary violation.

fn dep(p: &str, d: &str, k: &str) -> (String, String, String) {
    (p.to_owned(), d.to_owned(), k.to_owned())
}

#[test]
fn dependency_rules_catch_violations() {
    assert!(
        check_dependencies(&[
            dep("lognode", "openraft", "normal"),
            dep("gateway", "testkit", "dev"),
            dep("chaos", "testkit", "normal")
        ])
        .is_empty()
    );
    for bad in [
        dep("ledger-core", "tokio", "normal"),
        dep("group-core", "serde_json", "normal"),
        dep("logstore", "prost", "normal"),
        dep("gateway", "openraft", "normal"),
        dep("projector", "ledger-proto", "normal"),
        dep("ledger-cli", "lognode", "normal"),
        dep("gateway", "testkit", "normal"),
        dep("lognode-args", "clap", "normal"),
    ] {
        assert!(!check_dependencies(std::slice::from_ref(&bad)).is_empty(), "not caught: {bad:?}");
    }
}

#[test]
fn fsync_rule_catches_a_call_outside_logstore() {
    let call = format!("    file.{}?;\n", fsync_calls()[0]);
    assert_eq!(check_fsync(Path::new("lognode/src/x.rs"), &call).len(), 1);
    assert!(check_fsync(Path::new("logstore/src/x.rs"), &call).is_empty());
    assert!(check_fsync(Path::new("lognode/src/x.rs"), "// we never call fsync( here\n").is_empty());
}

#[test]
fn unwrap_rule_catches_an_unwrap_outside_tests() {
    let text = format!(
        "fn f() {{ x{}; }}\n#[cfg(test)]\nmod tests {{ fn g() {{ y{}; }} }}\n",
        concat!(".unwrap", "()"),
        concat!(".unwrap", "()")
    );
    let v = check_unwrap(Path::new("gateway/src/x.rs"), &text);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].starts_with("gateway/src/x.rs:1:"));
    assert!(check_unwrap(Path::new("gateway/tests/x.rs"), &text).is_empty());
}

#[test]
fn limit_rule_catches_an_undocumented_limit() {
    let ok = "/// Why.\n#[allow(x)]\npub const A: u32 = 1;\n";
    assert!(check_limit_docs(Path::new("a/src/limits.rs"), ok).is_empty());
    let bad = "/// Why.\npub const A: u32 = 1;\npub const B: u32 = 2;\n";
    assert_eq!(check_limit_docs(Path::new("a/src/limits.rs"), bad).len(), 1);
    assert!(check_limit_docs(Path::new("a/src/other.rs"), bad).is_empty());
}

#[test]
fn crate_docs_rule_catches_an_undocumented_crate() {
    assert!(check_crate_docs("a", Some("# a\n"), None).is_empty());
    assert!(check_crate_docs("a", None, Some("// tidy: long-file: x\n//! Docs.\n")).is_empty());
    assert_eq!(check_crate_docs("a", None, Some("use x;\n")).len(), 1);
    assert_eq!(check_crate_docs("a", Some(" \n"), None).len(), 1);
}

#[test]
fn long_file_rule_catches_a_long_file_without_a_reason() {
    let body = "fn f() {}\n".repeat(LONG_FILE_LINES + 1);
    assert_eq!(check_long_file(Path::new("a/src/x.rs"), &body).len(), 1);
    let marked = format!("{LONG_FILE_MARKER}one protocol, read in one place\n{body}");
    assert!(check_long_file(Path::new("a/src/x.rs"), &marked).is_empty());
    let empty_reason = format!("{LONG_FILE_MARKER}\n{body}");
    assert_eq!(check_long_file(Path::new("a/src/x.rs"), &empty_reason).len(), 1);
    assert!(check_long_file(Path::new("a/src/x.rs"), "fn f() {}\n").is_empty());
}
