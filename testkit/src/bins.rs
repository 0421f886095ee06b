//! Where the workspace's binaries are.

use std::path::{Path, PathBuf};

/// The environment variable that overrides where binary `name` is: `LEDGER_<NAME>_BIN`.
pub fn override_var(name: &str) -> String {
    format!("LEDGER_{}_BIN", name.to_uppercase().replace('-', "_"))
}

/// A workspace binary: `$LEDGER_<NAME>_BIN`, else the one next to the running test's target
/// directory (`cargo test --workspace` builds every workspace binary; a single crate's tests need
/// `cargo build -p <crate>` with the same `CARGO_TARGET_DIR` and profile first). Panics with that
/// advice when it is missing.
pub fn workspace_bin(name: &str) -> PathBuf {
    let var = override_var(name);
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --bin {name}` (same CARGO_TARGET_DIR and profile), \
         or set {var}",
        bin.display()
    );
    bin
}
