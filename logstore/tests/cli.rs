//! The `logstore` command line: verify, dump and bench, and clear messages for bad input.

use std::process::Command;

use logstore::{FsyncMode, Log, LogConfig};

/// The tests of this file run one at a time. A child spawned by one test holds copies of the
/// other test's open files between its fork and its exec; when that copy is the log's LOCK file,
/// a `logstore verify` started right after the log was closed can find the log still locked
/// (seen once in CI: `verify` of a clean log failed).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn logstore(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_logstore")).args(args).output().expect("run logstore");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn verify_reports_a_clean_log_and_names_the_file_and_offset_of_corruption() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (log, _) =
            Log::open(dir.path(), LogConfig { fsync: FsyncMode::Never, ..LogConfig::default() }).expect("open");
        log.append(0, (0..10).map(|i| vec![i as u8; 40]).collect()).expect("append");
    }
    let path = dir.path().to_str().expect("utf-8 path");
    let (ok, out, err) = logstore(&["verify", path]);
    assert!(ok, "verify of a clean log failed:\n{out}\n{err}");
    assert!(out.contains("last_index: Some(\n        9,"), "{out}");

    let (ok, out, err) = logstore(&["dump", path, "--from", "8"]);
    assert!(ok, "dump failed:\n{out}\n{err}");
    assert_eq!(out.lines().count(), 2, "{out}");

    let seg = dir.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[16 + 5] ^= 0xFF; // inside record 0
    std::fs::write(&seg, bytes).expect("write");
    let (ok, _, err) = logstore(&["verify", path]);
    assert!(!ok, "corruption must fail");
    assert!(err.contains("00000000000000000000.log") && err.contains("byte offset 0"), "{err}");
}

#[test]
fn bad_input_gets_a_message_naming_the_problem() {
    let _serial = serial();
    let (ok, _, err) = logstore(&["verify", "/nonexistent/ledger-log"]);
    assert!(!ok);
    assert!(err.contains("is not a directory"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b");
    let path = path.to_str().expect("utf-8 path");
    let (ok, _, err) = logstore(&["bench", path, "--fsync", "sometimes"]);
    assert!(!ok);
    assert!(err.contains("unknown fsync mode"), "{err}");
    let (ok, out, _) = logstore(&["bench", path, "--records", "50", "--fsync", "never"]);
    assert!(ok);
    assert!(out.contains("UNSAFE") && out.contains("appended 50 records"), "{out}");
}
