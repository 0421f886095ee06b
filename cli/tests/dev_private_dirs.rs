//! Issue 21: `ledger dev`'s private PostgreSQL directory is never a planted link, and a cluster
//! it did not create is never started as its own. Runs the real `ledger` binary; it fails before
//! starting any lognode.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

/// A data dir `ledger dev` accepts as its own (its marker), holding nothing else yet.
fn dev_data_dir(root: &Path, name: &str) -> std::path::PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("ledger-dev.json"), r#"{"layout": 1, "nodes": 3}"#).unwrap();
    d
}

/// `ledger dev` with a private PostgreSQL (no DATABASE_URL), expected to fail early.
fn dev_with_private_pg(dir: &Path, data: &str) -> support::Run {
    let (base, _) = support::free_ports(3);
    let out = std::process::Command::new(support::ledger_bin())
        .args(["dev", "--port-base", &base.to_string(), "--data-dir", data])
        .current_dir(dir)
        .env_remove("CARGO")
        .env_remove("DATABASE_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    support::Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn postgres_installed() -> bool {
    ["/usr/lib/postgresql", "/usr/bin/initdb"].iter().any(|p| Path::new(p).exists())
}

#[test]
fn a_planted_link_or_a_foreign_cluster_is_refused_and_left_alone() {
    if !postgres_installed() {
        assert!(std::env::var_os("CI").is_none(), "PostgreSQL (initdb) must be installed under CI");
        eprintln!("SKIPPED: PostgreSQL is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The postgres user (ledger dev as root) must be able to traverse the test's directories.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // 1. `<data-dir>/postgres` is a symlink to a directory of someone else's.
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = std::fs::metadata(&victim).unwrap();
    let d1 = dev_data_dir(tmp.path(), "d1");
    std::os::unix::fs::symlink(&victim, d1.join("postgres")).unwrap();
    let r = dev_with_private_pg(tmp.path(), "d1");
    r.fails(1, "is not a private directory of `ledger dev` (it is a symbolic link)");
    let after = std::fs::metadata(&victim).unwrap();
    assert_eq!((after.uid(), after.gid(), after.mode()), (before.uid(), before.gid(), before.mode()), "untouched");
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0, "nothing written through the link");

    // 2. A directory with a planted PG_VERSION (no initdb by ledger dev) is not started as ours.
    let d2 = dev_data_dir(tmp.path(), "d2");
    let pg = d2.join("postgres");
    std::fs::create_dir(&pg).unwrap();
    std::fs::set_permissions(&pg, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(pg.join("PG_VERSION"), "15\n").unwrap();
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name("postgres").unwrap().expect("a postgres user");
        for p in [pg.clone(), pg.join("PG_VERSION")] {
            std::os::unix::fs::chown(&p, Some(user.uid.as_raw()), Some(user.gid.as_raw())).unwrap();
        }
    }
    let r = dev_with_private_pg(tmp.path(), "d2");
    assert_eq!(r.code, Some(1), "{r:#?}");
    assert!(r.stderr.contains("holds a PostgreSQL cluster that `ledger dev` did not create"), "{r:#?}");
    assert_eq!(std::fs::read_to_string(pg.join("PG_VERSION")).unwrap(), "15\n");
}
